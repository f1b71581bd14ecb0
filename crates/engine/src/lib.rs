//! The engine: the only crate that owns threads. It reads inputs, assigns every record to its
//! 60-second period, shards packets across workers by a symmetric flow hash (both directions of
//! a conversation meet in one worker), and merges the workers' summaries at the end (offline)
//! or on request (the live runtime).

pub mod afpacket;
pub mod live;
pub mod offline;
pub mod period;
pub mod streams;
