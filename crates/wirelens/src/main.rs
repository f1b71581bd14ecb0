//! The `wirelens` binary: one executable with subcommands. `read` summarizes capture files;
//! the agent and the terminal UI plug into the same engine.

use clap::{Parser, Subcommand};
use wirelens::read;

/// Network observability: packets in, mergeable pktvisor-compatible metrics out.
#[derive(Parser)]
#[command(name = "wirelens", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize capture files (pcap, pcapng, gzip, `-` for stdin) into one JSON document.
    Read(read::ReadArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Read(args) => read::run(args),
    };
    if let Err(e) = result {
        eprintln!("wirelens: {e:#}");
        std::process::exit(1);
    }
}
