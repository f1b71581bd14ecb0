//! GeoIP city and ASN lookups on MaxMind DB files, formatted the way pktvisor reports them
//! (`EU/Sweden/E/Linköping`, `1221/Telstra Pty Ltd`, `Unknown`), with a bounded per-worker LRU
//! cache; it does not download or update databases.
//!
//! [`GeoDb`] loads the files once (the only I/O here) and is shared read-only between workers;
//! each worker puts a [`GeoCache`] in front of it so repeated addresses cost one hash probe.

mod cache;
mod db;
mod record;

pub use cache::{CacheStats, DEFAULT_CAPACITY, GeoCache};
pub use db::{DbKind, GeoDb, GeoError, Location, UNKNOWN};
