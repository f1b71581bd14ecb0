//! Pure, mergeable summaries: cardinality, quantiles, top-N heavy hitters, exact dense
//! counters and rates.
//!
//! Every summary here merges exactly or within a stated error bound, so per-worker summaries
//! (and per-minute buckets) can be combined at output time. No I/O, no clock, no threads,
//! no random seeds: identical input gives identical state.

pub mod cardinality;
pub mod dense;
pub mod hash;
pub mod prefetch;
pub mod quantiles;
pub mod rate;
pub mod topn;

pub use cardinality::Cardinality;
pub use dense::DenseCounts;
pub use quantiles::Quantiles;
pub use rate::Rate;
pub use topn::{TopKey, TopN};
