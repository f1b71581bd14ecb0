//! The `wirelens` binary: one executable with subcommands. `read` summarizes capture files;
//! the agent and the terminal UI plug into the same engine.

use clap::{Parser, Subcommand};
use wirelens::{agent, read};

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
    /// Run the agent: capture, keep 60-second periods, serve the REST API and Prometheus.
    Agent(agent::AgentArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Read(args) => read::run(args),
        Command::Agent(args) => agent::run(args),
    };
    if let Err(e) = result {
        // A closed stdout (`wirelens read F | head`) is the reader's choice, not an error.
        if e.chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            std::process::exit(0);
        }
        eprintln!("wirelens: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, without repeating a cause the message already holds.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
