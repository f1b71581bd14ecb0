//! Pure, bounded per-connection state: IP defragmentation, TCP stream reassembly for
//! length-prefixed protocols (DNS over TCP), and request/response transaction matching.
//!
//! All time comes in as an argument (`now_ns`, packet time); every table has a configured cap
//! and counts what it refuses instead of growing. Nothing here does I/O, reads a clock or keeps
//! globals; tables are keyed with a seeded `foldhash` so attacker-chosen keys cannot be aimed at
//! one bucket without knowing the seed.

pub mod defrag;
mod slab;
pub mod tcp;
pub mod xact;
