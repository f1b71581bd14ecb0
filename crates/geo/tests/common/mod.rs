//! Test support: locating pktvisor's fixture databases and writing tiny MaxMind DB files with
//! hand-picked records (an IPv4 tree with 24-bit records); not a general MMDB writer.

#![allow(dead_code)]

use std::path::PathBuf;

/// `/work/shared/fixtures/pktvisor`, or `None` (skip) when the shared tree is absent outside CI.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/pktvisor");
    if dir.join("GeoIP2-City-Test.mmdb").is_file() && dir.join("GeoIP2-ISP-Test.mmdb").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("GeoIP fixtures missing in {}", dir.display());
    }
    eprintln!(
        "note: {} not found, skipping GeoIP fixture test",
        dir.display()
    );
    None
}

/// A MaxMind DB data-section value.
#[derive(Debug, Clone)]
pub enum V {
    Str(&'static str),
    Double(f64),
    Float(f32),
    U16(u16),
    U32(u32),
    I32(i32),
    U64(u64),
    U128(u128),
    Bool(bool),
    Map(Vec<(&'static str, V)>),
    Array(Vec<V>),
}

/// Shorthand for a map value.
pub fn map(pairs: Vec<(&'static str, V)>) -> V {
    V::Map(pairs)
}

fn control(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (first, ext) = if ty <= 7 {
        (ty << 5, None)
    } else {
        (0, Some(ty - 7))
    };
    let (low, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    out.push(first | low);
    out.extend(ext);
    out.extend(extra);
}

fn minimal_be(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    &bytes[skip..]
}

fn encode(out: &mut Vec<u8>, v: &V) {
    match v {
        V::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        V::Double(d) => {
            control(out, 3, 8);
            out.extend_from_slice(&d.to_be_bytes());
        }
        V::Float(f) => {
            control(out, 15, 4);
            out.extend_from_slice(&f.to_be_bytes());
        }
        V::U16(n) => uint(out, 5, &n.to_be_bytes()),
        V::U32(n) => uint(out, 6, &n.to_be_bytes()),
        V::U64(n) => uint(out, 9, &n.to_be_bytes()),
        V::U128(n) => uint(out, 10, &n.to_be_bytes()),
        V::I32(n) => {
            let b = n.to_be_bytes();
            let b: &[u8] = if *n < 0 { &b } else { minimal_be(&b) };
            control(out, 8, b.len());
            out.extend_from_slice(b);
        }
        V::Bool(b) => control(out, 14, usize::from(*b)),
        V::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(out, &V::Str(k));
                encode(out, v);
            }
        }
        V::Array(items) => {
            control(out, 11, items.len());
            for v in items {
                encode(out, v);
            }
        }
    }
}

fn uint(out: &mut Vec<u8>, ty: u8, be: &[u8]) {
    let b = minimal_be(be);
    control(out, ty, b.len());
    out.extend_from_slice(b);
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(usize),
}

/// Builds an IPv4-only database holding `records` as `(network, prefix length, value)`.
pub fn ipv4_db(database_type: &'static str, records: &[([u8; 4], u8, V)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
    for (net, len, value) in records {
        let offset = data.len();
        encode(&mut data, value);
        let bits = u32::from_be_bytes(*net);
        let mut node = 0usize;
        for depth in 0..*len {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *len {
                nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(n) => n as usize,
                    _ => {
                        nodes.push([Rec::Empty; 2]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(n as u32);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for rec in node {
            let value = match *rec {
                Rec::Empty => count,
                Rec::Node(n) => n as usize,
                Rec::Data(off) => count + 16 + off,
            };
            out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    encode(
        &mut out,
        &map(vec![
            ("binary_format_major_version", V::U16(2)),
            ("binary_format_minor_version", V::U16(0)),
            ("build_epoch", V::U64(1_700_000_000)),
            ("database_type", V::Str(database_type)),
            (
                "description",
                map(vec![("en", V::Str("wirelens synthetic test database"))]),
            ),
            ("ip_version", V::U16(4)),
            ("languages", V::Array(vec![V::Str("en")])),
            ("node_count", V::U32(count as u32)),
            ("record_size", V::U16(24)),
        ]),
    );
    out
}
