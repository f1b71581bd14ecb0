//! The `wirelens` front ends as a library, so that tests drive exactly what the binary runs.

pub mod agent;
pub mod dnstap_live;
pub mod read;
