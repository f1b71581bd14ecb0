//! GeoIP city and ASN lookups on MaxMind DB files, formatted the way pktvisor reports them
//! (`EU/Sweden/E/Linköping`, `1221/Telstra Pty Ltd`, `Unknown`), with a bounded per-worker LRU
//! cache; it does not download or update databases.
//!
//! [`GeoDb`] loads the files once (the only I/O here) and is shared read-only between workers;
//! each worker puts a [`GeoCache`] in front of it so repeated addresses cost one hash probe.
//!
//! ```
//! use std::net::IpAddr;
//! use std::sync::Arc;
//! use geo::{GeoCache, GeoDb};
//!
//! // `GeoDb::open(Some(city_path), Some(asn_path))?` in real use; without databases every
//! // lookup is disabled and answers empty strings, as pktvisor does.
//! let db = Arc::new(GeoDb::disabled());
//! let mut cache = GeoCache::new(Arc::clone(&db), geo::DEFAULT_CAPACITY);
//! let ip: IpAddr = "89.160.20.112".parse().unwrap();
//! let (location, asn) = cache.lookup(ip);
//! assert_eq!((location.location.as_str(), asn), ("", ""));
//! ```

mod cache;
mod db;
mod record;

pub use cache::{CacheStats, DEFAULT_CAPACITY, GeoCache};
pub use db::{DbKind, GeoDb, GeoError, Location, UNKNOWN};

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync>(_: &T) -> bool {
        true
    }
    fn sendable<T: Send>(_: &T) -> bool {
        true
    }

    /// One database set is shared by all workers; each worker's cache moves to its thread.
    #[test]
    fn thread_safety() {
        let db = std::sync::Arc::new(GeoDb::disabled());
        assert!(shareable(&*db));
        let cache = GeoCache::new(db, DEFAULT_CAPACITY);
        assert!(sendable(&cache));
        assert_eq!(cache.capacity(), 10_000);
    }
}
