//! Pure, bounded per-connection state: IP defragmentation, TCP stream reassembly for
//! length-prefixed protocols (DNS over TCP), and request/response transaction matching.
//!
//! All time comes in as an argument; every table has a configured cap and counts what it
//! refuses instead of growing.

pub mod defrag;
pub mod tcp;
pub mod xact;
