//! The `wirelens` binary: one executable with subcommands (`read`, later `agent`, `top`).

fn main() {
    println!("wirelens");
}
