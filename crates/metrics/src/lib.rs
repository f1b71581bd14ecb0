//! Pure, mergeable summaries: counters, cardinality, quantiles, top-N heavy hitters and rates.
//!
//! Every summary here merges exactly or within a stated error bound, so per-worker summaries
//! can be combined at output time. No I/O, no clock, no threads.

pub mod cardinality;
pub mod quantiles;
pub mod rate;
pub mod topn;
