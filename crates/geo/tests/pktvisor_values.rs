//! Checks lookups on pktvisor's GeoIP2 test databases against the values pktvisor's own
//! `src/tests/test_geoip.cpp` asserts, plus cache behaviour on real records.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

mod common;

use common::fixtures_dir;
use geo::{CacheStats, DbKind, GeoCache, GeoDb, GeoError, Location, UNKNOWN};

fn both() -> Option<GeoDb> {
    let dir = fixtures_dir()?;
    Some(
        GeoDb::open(
            Some(&dir.join("GeoIP2-City-Test.mmdb")),
            Some(&dir.join("GeoIP2-ISP-Test.mmdb")),
        )
        .expect("open test databases"),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn city_values_from_pktvisor_tests() {
    let Some(db) = both() else { return };
    assert!(db.city_enabled() && db.asn_enabled());
    assert_eq!(db.city_database_type(), Some("GeoIP2-City"));
    assert_eq!(db.asn_database_type(), Some("GeoIP2-ISP"));

    let russia = db.location(ip("2a02:dac0::"));
    assert_eq!(russia.location, "EU/Russia");
    assert_eq!(russia.lat, "60.000000");
    assert_eq!(russia.lon, "100.000000");

    assert_eq!(
        db.location(ip("89.160.20.112")).location,
        "EU/Sweden/E/Linköping"
    );
    assert_eq!(
        db.location(ip("216.160.83.56")).location,
        "NA/United States/WA/Milton"
    );
}

#[test]
fn asn_values_from_pktvisor_tests() {
    let Some(db) = both() else { return };
    assert_eq!(db.asn(ip("1.128.0.0")), "1221/Telstra Pty Ltd");
    assert_eq!(db.asn(ip("2401:8080::")), "237/Merit Network Inc.");
}

#[test]
fn isp_record_without_asn_fields_is_empty() {
    let Some(db) = both() else { return };
    // Covered by the ISP test database, but only with isp/organization fields.
    assert_eq!(db.asn(ip("4.0.20.112")), "");
}

#[test]
fn not_found_is_unknown() {
    let Some(db) = both() else { return };
    assert_eq!(db.asn(ip("6.6.6.6")), UNKNOWN);
    let loc = db.location(ip("6.6.6.6"));
    assert_eq!(loc.location, UNKNOWN);
    assert!(loc.is_unknown());
    assert_eq!((loc.lat.as_str(), loc.lon.as_str()), ("", ""));
    assert_eq!(db.location(ip("127.0.0.1")).location, UNKNOWN);
    assert_eq!(db.location(ip("::1")).location, UNKNOWN);
}

#[test]
fn string_lookups_for_ecs_subnets() {
    let Some(db) = both() else { return };
    // The ECS address in pktvisor's ecs.pcap; not in the test databases.
    assert_eq!(db.location_of_str("2001:470:1f0b:1600::").location, UNKNOWN);
    assert_eq!(db.asn_of_str("2001:470:1f0b:1600::"), UNKNOWN);
    assert_eq!(
        db.location_of_str("89.160.20.112").location,
        "EU/Sweden/E/Linköping"
    );
    assert_eq!(db.asn_of_str("1.128.0.0"), "1221/Telstra Pty Ltd");
    assert_eq!(
        db.location_of_str("2a02:dac0::"),
        db.location(ip("2a02:dac0::"))
    );
    // Not an address: "Unknown", as libmaxminddb's failed getaddrinfo gives.
    assert_eq!(db.location_of_str("not-an-ip").location, UNKNOWN);
    assert_eq!(db.asn_of_str(""), UNKNOWN);
}

#[test]
fn only_one_database_loaded() {
    let Some(dir) = fixtures_dir() else { return };
    let city_only = GeoDb::open(Some(&dir.join("GeoIP2-City-Test.mmdb")), None).unwrap();
    assert!(city_only.city_enabled() && !city_only.asn_enabled());
    assert_eq!(city_only.asn(ip("1.128.0.0")), "");
    assert_eq!(
        city_only.location(ip("216.160.83.56")).location,
        "NA/United States/WA/Milton"
    );

    let asn_only = GeoDb::open(None, Some(&dir.join("GeoIP2-ISP-Test.mmdb"))).unwrap();
    assert_eq!(asn_only.location(ip("216.160.83.56")), Location::default());
    assert_eq!(asn_only.asn(ip("1.128.0.0")), "1221/Telstra Pty Ltd");
}

#[test]
fn missing_and_invalid_databases_are_errors() {
    let err = GeoDb::open(Some(Path::new("/nonexistent/GeoIP2-City.mmdb")), None).unwrap_err();
    assert!(
        matches!(
            err,
            GeoError::Read {
                kind: DbKind::City,
                ..
            }
        ),
        "{err:?}"
    );
    // A capture file is not a MaxMind DB.
    let Some(dir) = fixtures_dir() else { return };
    let err = GeoDb::open(None, Some(&dir.join("dns_ipv4_udp.pcap"))).unwrap_err();
    assert!(
        matches!(
            err,
            GeoError::Invalid {
                kind: DbKind::Asn,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn cache_returns_database_values_and_counts_hits() {
    let Some(db) = both() else { return };
    let db = Arc::new(db);
    let mut cache = GeoCache::new(Arc::clone(&db), 2);
    let sweden = ip("89.160.20.112");
    let telstra = ip("1.128.0.0");
    let milton = ip("216.160.83.56");

    for _ in 0..3 {
        let (loc, asn) = cache.lookup(sweden);
        assert_eq!(loc, &db.location(sweden));
        assert_eq!(asn, db.asn(sweden));
    }
    assert_eq!(cache.asn(telstra), "1221/Telstra Pty Ltd");
    assert_eq!(
        cache.location(telstra).location,
        db.location(telstra).location
    );
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 3,
            misses: 2,
            evictions: 0
        }
    );

    // Sweden is the least recently used now; Milton pushes it out and reuses its buffers.
    assert_eq!(
        cache.location(milton).location,
        "NA/United States/WA/Milton"
    );
    assert!(!cache.contains(sweden));
    assert!(cache.contains(telstra) && cache.contains(milton));
    assert_eq!(cache.asn(milton), db.asn(milton));
    assert_eq!(cache.location(sweden).location, "EU/Sweden/E/Linköping");
    assert_eq!(
        cache.stats(),
        CacheStats {
            hits: 4,
            misses: 4,
            evictions: 2
        }
    );

    let (loc, asn) = cache.lookup_str("2a02:dac0::");
    assert_eq!(
        (loc.location.as_str(), loc.lat.as_str(), asn),
        ("EU/Russia", "60.000000", db.asn(ip("2a02:dac0::")).as_str())
    );
    let (loc, asn) = cache.lookup_str("bogus");
    assert_eq!((loc.location.as_str(), asn), (UNKNOWN, UNKNOWN));
}

#[test]
fn every_network_in_the_test_databases_formats_without_panicking() {
    let Some(db) = both() else { return };
    // A sweep over addresses in and around the test networks: each location is "Unknown" or a
    // well-formed path, never empty with the database loaded. (An ASN can be empty: ISP records
    // without autonomous_system_* fields format to "", as in pktvisor.)
    let mut cache = GeoCache::new(Arc::new(db), 16);
    let mut known = 0;
    for a in 0u8..=255 {
        for b in [0u8, 128, 160, 216] {
            for addr in [
                IpAddr::from([a, b, 20, 112]),
                IpAddr::from([0x2a, a, 0xda, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b]),
            ] {
                let (loc, asn) = cache.lookup(addr);
                assert!(!loc.location.is_empty(), "{addr}: {loc:?} {asn}");
                assert!(!asn.ends_with('/'), "{addr}: {asn}");
                if !loc.is_unknown() {
                    known += 1;
                    assert!(!loc.location.ends_with('/'), "{addr}: {loc:?}");
                    assert_eq!(loc.lat.is_empty(), loc.lon.is_empty(), "{addr}: {loc:?}");
                }
            }
        }
    }
    assert!(known > 0);
}

#[test]
fn eviction_reuses_the_evicted_buffers() {
    let Some(db) = both() else { return };
    let mut cache = GeoCache::new(Arc::new(db), 1);
    // Longer strings first, so the newcomer fits in the buffers it inherits.
    let (loc, asn) = cache.lookup(ip("216.160.83.56"));
    let (loc_ptr, asn_ptr) = (loc.location.as_ptr(), asn.as_ptr());
    assert_eq!(loc.location, "NA/United States/WA/Milton");
    let (loc, asn) = cache.lookup(ip("89.160.20.112"));
    assert_eq!(loc.location, "EU/Sweden/E/Linköping");
    assert_eq!(loc.location.as_ptr(), loc_ptr);
    if !asn.is_empty() {
        assert_eq!(asn.as_ptr(), asn_ptr);
    }
    assert_eq!(cache.stats().evictions, 1);
}
