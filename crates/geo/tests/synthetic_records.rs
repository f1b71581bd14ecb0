//! Formatting edge cases on hand-written MaxMind DB records: missing parts, fields of the wrong
//! type, every integer type an ASN number can have, and corrupted databases (which must never
//! panic a lookup).

mod common;

use std::net::IpAddr;

use common::{V, fixtures_dir, ipv4_db, map};
use geo::{GeoDb, Location, UNKNOWN};
use proptest::prelude::*;

fn names_en(name: &'static str) -> V {
    map(vec![(
        "names",
        map(vec![("en", V::Str(name)), ("de", V::Str("Name"))]),
    )])
}

fn city_db() -> GeoDb {
    let full = map(vec![
        ("city", names_en("Linköping")),
        (
            "continent",
            map(vec![
                ("code", V::Str("EU")),
                ("geoname_id", V::U32(6_255_148)),
            ]),
        ),
        (
            "country",
            map(vec![
                ("iso_code", V::Str("SE")),
                ("names", map(vec![("en", V::Str("Sweden"))])),
            ]),
        ),
        (
            "location",
            map(vec![
                ("latitude", V::Double(58.4167)),
                ("longitude", V::Double(15.6167)),
                ("accuracy_radius", V::U16(76)),
            ]),
        ),
        (
            "subdivisions",
            V::Array(vec![
                map(vec![("iso_code", V::Str("E"))]),
                map(vec![("iso_code", V::Str("X"))]),
            ]),
        ),
    ]);
    let records = vec![
        ([1, 0, 0, 0], 8, full),
        // No continent and no English country name: the ISO code stands in, after a bare slash.
        (
            [2, 0, 0, 0],
            8,
            map(vec![("country", map(vec![("iso_code", V::Str("SE"))]))]),
        ),
        // An English name of the wrong type is present, so the ISO code is not used.
        (
            [3, 0, 0, 0],
            8,
            map(vec![
                ("continent", map(vec![("code", V::Str("EU"))])),
                (
                    "country",
                    map(vec![
                        ("iso_code", V::Str("SE")),
                        ("names", map(vec![("en", V::U16(7))])),
                    ]),
                ),
            ]),
        ),
        // Coordinates stored as 32-bit floats are not doubles: pktvisor leaves them out.
        (
            [4, 0, 0, 0],
            8,
            map(vec![
                ("continent", map(vec![("code", V::Str("OC"))])),
                (
                    "location",
                    map(vec![
                        ("latitude", V::Float(-33.5)),
                        ("longitude", V::Double(-151.25)),
                    ]),
                ),
            ]),
        ),
        // Found, but nothing usable.
        ([5, 0, 0, 0], 8, map(vec![])),
        // Empty subdivision list, city without an English name.
        (
            [6, 0, 0, 0],
            8,
            map(vec![
                (
                    "city",
                    map(vec![("names", map(vec![("fr", V::Str("Québec"))]))]),
                ),
                ("continent", map(vec![("code", V::Str("NA"))])),
                ("country", names_en("Canada")),
                ("subdivisions", V::Array(vec![])),
            ]),
        ),
        // A continent that is not a map cannot be navigated: skipped.
        (
            [7, 0, 0, 0],
            8,
            map(vec![
                ("continent", V::Str("EU")),
                ("country", names_en("X")),
            ]),
        ),
        // A /32 inside an otherwise empty /8.
        (
            [8, 8, 8, 8],
            32,
            map(vec![
                ("continent", map(vec![("code", V::Str("NA"))])),
                ("country", names_en("United States")),
            ]),
        ),
    ];
    GeoDb::from_bytes(Some(ipv4_db("GeoIP2-City", &records)), None).expect("synthetic city db")
}

fn asn_db() -> GeoDb {
    let org = |n: V| {
        map(vec![
            ("autonomous_system_number", n),
            ("autonomous_system_organization", V::Str("Org Inc.")),
        ])
    };
    let records = vec![
        ([1, 0, 0, 0], 8, org(V::U32(1221))),
        ([2, 0, 0, 0], 8, org(V::U16(237))),
        ([3, 0, 0, 0], 8, org(V::I32(-5))),
        ([4, 0, 0, 0], 8, org(V::U64(1 << 40))),
        ([5, 0, 0, 0], 8, org(V::Str("AS15169"))),
        // No uint128 case in pktvisor: the number is left out, the organization stays.
        ([6, 0, 0, 0], 8, org(V::U128(1))),
        (
            [7, 0, 0, 0],
            8,
            map(vec![("autonomous_system_organization", V::Str("Only Org"))]),
        ),
        (
            [8, 0, 0, 0],
            8,
            map(vec![("autonomous_system_number", V::Bool(true))]),
        ),
        (
            [9, 0, 0, 0],
            8,
            map(vec![("autonomous_system_number", V::U32(0))]),
        ),
    ];
    GeoDb::from_bytes(None, Some(ipv4_db("GeoLite2-ASN", &records))).expect("synthetic asn db")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn loc(db: &GeoDb, s: &str) -> (String, String, String) {
    let Location { location, lat, lon } = db.location(ip(s));
    (location, lat, lon)
}

fn owned(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

#[test]
fn city_formatting_rules() {
    let db = city_db();
    assert_eq!(db.city_database_type(), Some("GeoIP2-City"));
    assert_eq!(
        loc(&db, "1.2.3.4"),
        owned("EU/Sweden/E/Linköping", "58.416700", "15.616700")
    );
    assert_eq!(loc(&db, "2.2.3.4"), owned("/SE", "", ""));
    assert_eq!(loc(&db, "3.2.3.4"), owned("EU", "", ""));
    assert_eq!(loc(&db, "4.2.3.4"), owned("OC", "", "-151.250000"));
    assert_eq!(loc(&db, "5.2.3.4"), owned("", "", ""));
    assert_eq!(loc(&db, "6.2.3.4"), owned("NA/Canada", "", ""));
    assert_eq!(loc(&db, "7.2.3.4"), owned("/X", "", ""));
    assert_eq!(loc(&db, "8.8.8.8"), owned("NA/United States", "", ""));
    assert_eq!(loc(&db, "8.8.8.9"), owned(UNKNOWN, "", ""));
    assert_eq!(loc(&db, "200.1.1.1"), owned(UNKNOWN, "", ""));
    // IPv6 against an IPv4-only database is a lookup error, reported as not found.
    assert_eq!(loc(&db, "2a02:dac0::"), owned(UNKNOWN, "", ""));
}

#[test]
fn asn_number_types() {
    let db = asn_db();
    let asn = |s: &str| db.asn(ip(s));
    assert_eq!(asn("1.0.0.1"), "1221/Org Inc.");
    assert_eq!(asn("2.0.0.1"), "237/Org Inc.");
    assert_eq!(asn("3.0.0.1"), "-5/Org Inc.");
    assert_eq!(asn("4.0.0.1"), "1099511627776/Org Inc.");
    assert_eq!(asn("5.0.0.1"), "AS15169/Org Inc.");
    assert_eq!(asn("6.0.0.1"), "/Org Inc.");
    assert_eq!(asn("7.0.0.1"), "/Only Org");
    assert_eq!(asn("8.0.0.1"), "");
    assert_eq!(asn("9.0.0.1"), "0");
    assert_eq!(asn("10.0.0.1"), UNKNOWN);
    assert_eq!(asn("::1"), UNKNOWN);
}

/// Flips bytes anywhere before the metadata of a database; loading may fail, but lookups on
/// whatever loads must return without panicking.
fn survive_corruption(
    mut bytes: Vec<u8>,
    flips: &[(usize, u8)],
    city: bool,
) -> Result<(), TestCaseError> {
    let meta = bytes
        .windows(14)
        .rposition(|w| w == b"\xAB\xCD\xEFMaxMind.com")
        .expect("metadata marker");
    for &(at, x) in flips {
        let i = at % meta;
        bytes[i] ^= x | 1;
    }
    let db = if city {
        GeoDb::from_bytes(Some(bytes), None)
    } else {
        GeoDb::from_bytes(None, Some(bytes))
    };
    let Ok(db) = db else { return Ok(()) };
    for s in [
        "1.2.3.4",
        "2.0.0.1",
        "8.8.8.8",
        "89.160.20.112",
        "216.160.83.56",
        "1.128.0.0",
        "2a02:dac0::",
        "2401:8080::",
    ] {
        let l = db.location(ip(s));
        let a = db.asn(ip(s));
        // A damaged double can be huge: "%f" spells out up to 309 integer digits.
        prop_assert!(l.lat.len() <= 320 && l.lon.len() <= 320 && a.len() < 1 << 20);
        prop_assert!(!city || a.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn corrupted_synthetic_databases_do_not_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), city in any::<bool>()) {
        let records = vec![
            ([1, 0, 0, 0], 8, map(vec![("continent", map(vec![("code", V::Str("EU"))])), ("country", names_en("Sweden"))])),
            ([2, 0, 0, 0], 8, map(vec![("autonomous_system_number", V::U32(1)), ("autonomous_system_organization", V::Str("A"))])),
            ([8, 8, 8, 8], 32, map(vec![("location", map(vec![("latitude", V::Double(1.5))]))])),
        ];
        survive_corruption(ipv4_db("Test", &records), &flips, city)?;
    }

    #[test]
    fn corrupted_fixture_databases_do_not_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), city in any::<bool>()) {
        if let Some(dir) = fixtures_dir() {
            let name = if city { "GeoIP2-City-Test.mmdb" } else { "GeoIP2-ISP-Test.mmdb" };
            let bytes = std::fs::read(dir.join(name)).expect("read fixture");
            survive_corruption(bytes, &flips, city)?;
        }
    }
}
