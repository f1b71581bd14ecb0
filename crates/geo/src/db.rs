//! City and ASN MaxMind DB readers and the pktvisor-compatible formatting of their records;
//! this module does no caching (see `cache`) and reads files only in [`GeoDb::open`].

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{LookupResult, PathElement, Reader};

use crate::record::{PathSet, Paths, Pick, Step, Value};

/// The string reported for an address the database does not cover.
pub const UNKNOWN: &str = "Unknown";

/// A geolocation as pktvisor reports it.
///
/// `location` is `<continent code>/<country name (en) or ISO code>/<subdivision ISO>/<city (en)>`
/// with missing parts omitted, [`UNKNOWN`] when the address is not in the database, and empty
/// when no city database is loaded. `lat`/`lon` are 6-decimal strings (`"60.000000"`), empty when
/// the record has no coordinates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Slash-separated location path, [`UNKNOWN`] or empty.
    pub location: String,
    /// Latitude with six decimals, or empty.
    pub lat: String,
    /// Longitude with six decimals, or empty.
    pub lon: String,
}

impl Location {
    /// Empties all three strings, keeping their buffers for reuse.
    pub fn clear(&mut self) {
        self.location.clear();
        self.lat.clear();
        self.lon.clear();
    }

    /// True when the address was looked up and not found.
    pub fn is_unknown(&self) -> bool {
        self.location == UNKNOWN
    }
}

/// Which of the two databases an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// The city (geolocation) database.
    City,
    /// The ASN (or ISP) database.
    Asn,
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbKind::City => "city",
            DbKind::Asn => "asn",
        })
    }
}

/// Failure to load a database.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("cannot read {kind} database {}: {source}", path.display())]
    Read {
        /// Which database.
        kind: DbKind,
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid MaxMind DB.
    #[error("invalid {kind} database {}: {source}", path.display())]
    Invalid {
        /// Which database.
        kind: DbKind,
        /// The path given, or `<memory>` for [`GeoDb::from_bytes`].
        path: PathBuf,
        /// The decoder's complaint.
        source: maxminddb::MaxMindDbError,
    },
}

/// The city and ASN databases, each optional. Immutable after loading, so one instance is shared
/// (`Arc`) by every worker; each worker keeps its own [`crate::GeoCache`] in front of it.
#[derive(Debug, Default)]
pub struct GeoDb {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

impl GeoDb {
    /// A database set with both lookups disabled (they return empty strings, as pktvisor does).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Loads the given database files (read fully into memory). `None` disables that lookup.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoError> {
        Ok(Self {
            city: city.map(|p| load(DbKind::City, p)).transpose()?,
            asn: asn.map(|p| load(DbKind::Asn, p)).transpose()?,
        })
    }

    /// Builds the database set from bytes already in memory. `None` disables that lookup.
    pub fn from_bytes(city: Option<Vec<u8>>, asn: Option<Vec<u8>>) -> Result<Self, GeoError> {
        let parse = |kind, bytes| {
            Reader::from_source(bytes).map_err(|source| GeoError::Invalid {
                kind,
                path: PathBuf::from("<memory>"),
                source,
            })
        };
        Ok(Self {
            city: city.map(|b| parse(DbKind::City, b)).transpose()?,
            asn: asn.map(|b| parse(DbKind::Asn, b)).transpose()?,
        })
    }

    /// True when a city database is loaded.
    pub fn city_enabled(&self) -> bool {
        self.city.is_some()
    }

    /// True when an ASN database is loaded.
    pub fn asn_enabled(&self) -> bool {
        self.asn.is_some()
    }

    /// The `database_type` from the city database's metadata (e.g. `GeoIP2-City`).
    pub fn city_database_type(&self) -> Option<&str> {
        self.city
            .as_ref()
            .map(|r| r.metadata().database_type.as_str())
    }

    /// The `database_type` from the ASN database's metadata (e.g. `GeoIP2-ISP`).
    pub fn asn_database_type(&self) -> Option<&str> {
        self.asn
            .as_ref()
            .map(|r| r.metadata().database_type.as_str())
    }

    /// The geolocation of `ip` (see [`Location`]). Allocates the result; hot paths use
    /// [`GeoDb::location_into`] or a [`crate::GeoCache`].
    pub fn location(&self, ip: IpAddr) -> Location {
        let mut out = Location::default();
        self.location_into(ip, &mut out);
        out
    }

    /// Writes the geolocation of `ip` into `out`, reusing its buffers.
    pub fn location_into(&self, ip: IpAddr, out: &mut Location) {
        out.clear();
        let Some(reader) = &self.city else {
            return;
        };
        match reader.lookup(ip) {
            Ok(found) if found.has_data() => format_location(&found, out),
            // Not covered, or an IPv6 address against an IPv4-only database: pktvisor says
            // "Unknown" for both.
            _ => out.location.push_str(UNKNOWN),
        }
    }

    /// The geolocation of an address given as text (e.g. an EDNS Client Subnet address such as
    /// `2001:470:1f0b:1600::`). Text that is not an IP address is [`UNKNOWN`].
    pub fn location_of_str(&self, text: &str) -> Location {
        let mut out = Location::default();
        self.location_of_str_into(text, &mut out);
        out
    }

    /// Like [`GeoDb::location_of_str`], writing into `out`.
    pub fn location_of_str_into(&self, text: &str, out: &mut Location) {
        match text.parse::<IpAddr>() {
            Ok(ip) => self.location_into(ip, out),
            Err(_) => {
                out.clear();
                if self.city_enabled() {
                    out.location.push_str(UNKNOWN);
                }
            }
        }
    }

    /// The ASN string of `ip`: `<number>/<organization>`, [`UNKNOWN`] when not found, empty when
    /// no ASN database is loaded.
    pub fn asn(&self, ip: IpAddr) -> String {
        let mut out = String::new();
        self.asn_into(ip, &mut out);
        out
    }

    /// Writes the ASN string of `ip` into `out`, reusing its buffer.
    pub fn asn_into(&self, ip: IpAddr, out: &mut String) {
        out.clear();
        let Some(reader) = &self.asn else {
            return;
        };
        match reader.lookup(ip) {
            Ok(found) if found.has_data() => format_asn(&found, out),
            _ => out.push_str(UNKNOWN),
        }
    }

    /// The ASN string of an address given as text; text that is not an IP address is
    /// [`UNKNOWN`].
    pub fn asn_of_str(&self, text: &str) -> String {
        let mut out = String::new();
        self.asn_of_str_into(text, &mut out);
        out
    }

    /// Like [`GeoDb::asn_of_str`], writing into `out`.
    pub fn asn_of_str_into(&self, text: &str, out: &mut String) {
        match text.parse::<IpAddr>() {
            Ok(ip) => self.asn_into(ip, out),
            Err(_) => {
                out.clear();
                if self.asn_enabled() {
                    out.push_str(UNKNOWN);
                }
            }
        }
    }
}

fn load(kind: DbKind, path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
        kind,
        path: path.to_path_buf(),
        source,
    })?;
    Reader::from_source(bytes).map_err(|source| GeoError::Invalid {
        kind,
        path: path.to_path_buf(),
        source,
    })
}

/// `Some(value)` when the path exists (whatever its type), `None` when it is missing or cannot be
/// navigated (libmaxminddb leaves `has_data` false in both cases).
fn get<'a, S: AsRef<[u8]>>(
    found: &LookupResult<'a, S>,
    path: &[PathElement<'_>],
) -> Option<Value<'a>> {
    found.decode_path::<Value<'a>>(path).ok().flatten()
}

/// The city fields, in the order [`format_location`] uses them.
struct CityPaths;
impl PathSet for CityPaths {
    const PATHS: &'static Paths = &[
        &[Step::Key("continent"), Step::Key("code")],
        &[Step::Key("country"), Step::Key("names"), Step::Key("en")],
        &[Step::Key("country"), Step::Key("iso_code")],
        &[
            Step::Key("subdivisions"),
            Step::First,
            Step::Key("iso_code"),
        ],
        &[Step::Key("city"), Step::Key("names"), Step::Key("en")],
        &[Step::Key("location"), Step::Key("latitude")],
        &[Step::Key("location"), Step::Key("longitude")],
    ];
}

/// The ASN fields.
struct AsnPaths;
impl PathSet for AsnPaths {
    const PATHS: &'static Paths = &[
        &[Step::Key("autonomous_system_number")],
        &[Step::Key("autonomous_system_organization")],
    ];
}

/// The leaves of `P::PATHS` in one walk over the record; when that walk fails (a damaged
/// record), each field is looked up on its own so the readable ones still count, as with
/// libmaxminddb's per-field `MMDB_get_value`.
fn pick<'a, S: AsRef<[u8]>, P: PathSet>(found: &LookupResult<'a, S>) -> [Option<Value<'a>>; 8] {
    match found.decode::<Pick<'a, P>>() {
        Ok(Some(Pick(values, _))) => values,
        _ => pick_per_field::<S, P>(found),
    }
}

fn pick_per_field<'a, S: AsRef<[u8]>, P: PathSet>(
    found: &LookupResult<'a, S>,
) -> [Option<Value<'a>>; 8] {
    let mut values = [None; 8];
    for (slot, path) in values.iter_mut().zip(P::PATHS) {
        let elems: [PathElement<'static>; 4] = std::array::from_fn(|i| match path.get(i) {
            Some(Step::Key(k)) => PathElement::Key(k),
            Some(Step::First) | None => PathElement::Index(0),
        });
        if let Some(elems) = elems.get(..path.len()) {
            *slot = get(found, elems);
        }
    }
    values
}

fn as_str(v: Option<Value<'_>>) -> Option<&str> {
    match v {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn format_location<S: AsRef<[u8]>>(found: &LookupResult<'_, S>, out: &mut Location) {
    let [
        continent,
        country_en,
        country_iso,
        subdivision,
        city,
        lat,
        lon,
        _,
    ] = pick::<S, CityPaths>(found);
    let loc = &mut out.location;
    // The continent has no separator before it: a record without one yields "/Country/...",
    // exactly like pktvisor.
    if let Some(code) = as_str(continent) {
        loc.push_str(code);
    }
    // The ISO code is a fallback only when the English name is absent, not when it has
    // another type.
    if let Some(name) = as_str(country_en.or(country_iso)) {
        loc.push('/');
        loc.push_str(name);
    }
    for part in [subdivision, city] {
        if let Some(s) = as_str(part) {
            loc.push('/');
            loc.push_str(s);
        }
    }
    if let Some(Value::Double(v)) = lat {
        push_fixed6(&mut out.lat, v);
    }
    if let Some(Value::Double(v)) = lon {
        push_fixed6(&mut out.lon, v);
    }
}

fn format_asn<S: AsRef<[u8]>>(found: &LookupResult<'_, S>, out: &mut String) {
    let [number, org, ..] = pick::<S, AsnPaths>(found);
    // Writing integers into a String cannot fail.
    match number {
        Some(Value::Unsigned(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(Value::Signed(n)) => {
            let _ = write!(out, "{n}");
        }
        Some(Value::Str(s)) => out.push_str(s),
        _ => {}
    }
    if let Some(org) = as_str(org) {
        out.push('/');
        out.push_str(org);
    }
}

/// Appends `v` the way C++ `std::to_string(double)` (printf `%f`) does: six decimals, and glibc's
/// spellings for the non-finite values.
fn push_fixed6(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str(if v.is_sign_negative() { "-nan" } else { "nan" });
    } else if v.is_infinite() {
        out.push_str(if v < 0.0 { "-inf" } else { "inf" });
    } else {
        let _ = write!(out, "{v:.6}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed6(v: f64) -> String {
        let mut s = String::new();
        push_fixed6(&mut s, v);
        s
    }

    #[test]
    fn fixed6_matches_printf_f() {
        assert_eq!(fixed6(60.0), "60.000000");
        assert_eq!(fixed6(100.0), "100.000000");
        assert_eq!(fixed6(-122.3042), "-122.304200");
        assert_eq!(fixed6(47.2513), "47.251300");
        assert_eq!(fixed6(0.0000005), "0.000000"); // 5e-7 is slightly below the tie in binary
        assert_eq!(fixed6(1.0000015), "1.000001"); // just below the tie in binary, as printf says
        assert_eq!(fixed6(-0.0), "-0.000000");
        assert_eq!(fixed6(f64::NAN), "nan");
        assert_eq!(fixed6(-f64::NAN), "-nan");
        assert_eq!(fixed6(f64::INFINITY), "inf");
        assert_eq!(fixed6(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn disabled_db_returns_empty_strings() {
        let db = GeoDb::disabled();
        assert!(!db.city_enabled());
        assert!(!db.asn_enabled());
        let ip: IpAddr = "89.160.20.112".parse().unwrap();
        assert_eq!(db.location(ip), Location::default());
        assert_eq!(db.asn(ip), "");
        assert_eq!(db.location_of_str("not an ip"), Location::default());
        assert_eq!(db.asn_of_str("not an ip"), "");
        assert_eq!(db.city_database_type(), None);
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = GeoDb::open(Some(Path::new("/nonexistent/wirelens-geo.mmdb")), None).unwrap_err();
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
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot read city database /nonexistent/wirelens-geo.mmdb: "),
            "{msg}"
        );
        let err = GeoDb::open(None, Some(Path::new("/nonexistent/asn.mmdb"))).unwrap_err();
        assert!(
            matches!(
                err,
                GeoError::Read {
                    kind: DbKind::Asn,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_bytes_are_an_invalid_database() {
        let err =
            GeoDb::from_bytes(Some(b"definitely not a maxmind db".to_vec()), None).unwrap_err();
        assert!(
            matches!(
                err,
                GeoError::Invalid {
                    kind: DbKind::City,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid city database <memory>: "),
            "{err}"
        );
        let err = GeoDb::from_bytes(None, Some(Vec::new())).unwrap_err();
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

    /// The one-pass walk and the per-field lookups agree on every network of pktvisor's test
    /// databases (when present).
    #[test]
    fn one_pass_matches_per_field_on_fixture_databases() {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/pktvisor");
        if !dir.join("GeoIP2-City-Test.mmdb").is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "fixtures missing under CI"
            );
            eprintln!("note: fixtures not found, skipping");
            return;
        }
        fn check<P: PathSet>(path: PathBuf) -> usize {
            let reader = Reader::open_readfile(path).unwrap();
            let mut n = 0;
            for found in reader.networks(Default::default()).unwrap() {
                let found = found.unwrap();
                let Ok(Some(Pick(one, _))) = found.decode::<Pick<'_, P>>() else {
                    panic!("one-pass decode failed at {:?}", found.network());
                };
                assert_eq!(one, pick_per_field::<_, P>(&found), "{:?}", found.network());
                n += usize::from(one.iter().any(Option::is_some));
            }
            n
        }
        assert!(check::<CityPaths>(dir.join("GeoIP2-City-Test.mmdb")) > 100);
        assert!(check::<AsnPaths>(dir.join("GeoIP2-ISP-Test.mmdb")) > 100);
    }

    #[test]
    fn location_clear_and_unknown() {
        let mut l = Location {
            location: UNKNOWN.to_string(),
            lat: "1.000000".into(),
            lon: "2.000000".into(),
        };
        assert!(l.is_unknown());
        l.clear();
        assert_eq!(l, Location::default());
        assert!(!l.is_unknown());
    }
}
