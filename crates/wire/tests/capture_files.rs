//! File-level capture tests: hand-built pcapng with mixed interfaces, gzip, truncation and
//! non-capture inputs, read through `inputs::file::CaptureFile` from real files on disk.

use std::io::Write;
use std::path::PathBuf;

use inputs::file::{CaptureFile, InputError};
use wire::capture::LinkType;
use wire::packet::{L3, decode};

/// A temporary file removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("wirelens-capture-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn block(ty: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let len = (12 + padded) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(body);
    v.resize(8 + padded, 0);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

fn shb() -> Vec<u8> {
    let mut b = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &b)
}

fn idb(link: u16, tsresol: u8) -> Vec<u8> {
    let mut b = link.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&262_144u32.to_le_bytes());
    b.extend_from_slice(&9u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&[tsresol, 0, 0, 0]);
    b.extend_from_slice(&[0, 0, 0, 0]);
    block(1, &b)
}

fn epb(iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut b = iface.to_le_bytes().to_vec();
    b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(ts as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    block(6, &b)
}

/// IPv4/UDP datagram 10.0.0.1:1000 -> 10.0.0.2:53 with a 4-byte payload.
fn ipv4_udp() -> Vec<u8> {
    let mut v = vec![
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    v.extend_from_slice(&[0x03, 0xe8, 0, 53, 0, 12, 0, 0]);
    v.extend_from_slice(b"ping");
    v
}

/// Two interfaces (Ethernet in nanoseconds, BSD NULL in 2^-20 s units), interleaved.
fn mixed_pcapng() -> Vec<u8> {
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x08, 0x00]);
    eth.extend_from_slice(&ipv4_udp());
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&ipv4_udp());
    let mut f = shb();
    f.extend(idb(1, 9));
    f.extend(idb(0, 0x80 | 20));
    f.extend(epb(0, 1_700_000_000_123_456_789, &eth));
    f.extend(epb(1, (1_700_000_001u64 << 20) | (1 << 19), &null));
    f.extend(block(5, &[0; 16])); // interface statistics: skipped
    f.extend(epb(0, 1_700_000_002_000_000_001, &eth));
    f
}

/// (timestamp, link type, interface, data) of one record.
type Owned = (u64, LinkType, u32, Vec<u8>);

fn read_all(f: &mut CaptureFile) -> Result<Vec<Owned>, InputError> {
    let mut out = Vec::new();
    while let Some(r) = f.next_record()? {
        out.push((r.ts_ns, r.link, r.interface, r.data.to_vec()));
    }
    Ok(out)
}

#[test]
fn pcapng_two_interfaces_with_nanosecond_and_power_of_two_resolution() {
    let t = Temp::new("mixed.pcapng", &mixed_pcapng());
    let mut f = CaptureFile::open(&t.0).unwrap();
    let recs = read_all(&mut f).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs.iter().map(|r| (r.0, r.1, r.2)).collect::<Vec<_>>(),
        vec![
            (1_700_000_000_123_456_789, LinkType::Ethernet, 0),
            (1_700_000_001_500_000_000, LinkType::Null, 1),
            (1_700_000_002_000_000_001, LinkType::Ethernet, 0),
        ]
    );
    for (_, link, _, data) in &recs {
        let p = decode(*link, data).unwrap();
        assert_eq!(p.l3, L3::Ipv4);
        assert_eq!(
            (p.src_port, p.dst_port, p.payload),
            (1000, 53, &b"ping"[..])
        );
    }
    assert_eq!(f.truncated_at(), None);
    assert_eq!(f.bytes_read(), mixed_pcapng().len() as u64);
}

#[test]
fn gzip_file_is_detected_by_content() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&mixed_pcapng()).unwrap();
    // Named .pcap on purpose: detection must not rely on the name.
    let t = Temp::new("compressed.pcap", &gz.finish().unwrap());
    let mut f = CaptureFile::open(&t.0).unwrap();
    assert_eq!(read_all(&mut f).unwrap().len(), 3);
}

#[test]
fn truncated_file_reports_offset_of_partial_block() {
    let full = mixed_pcapng();
    let last = epb(0, 1_700_000_002_000_000_001, &[0u8; 46]).len();
    let cut = full.len() - 10;
    let t = Temp::new("cut.pcapng", &full[..cut]);
    let mut f = CaptureFile::open(&t.0).unwrap();
    assert_eq!(read_all(&mut f).unwrap().len(), 2);
    assert_eq!(f.truncated_at(), Some((full.len() - last) as u64));
    assert_eq!(f.bytes_read(), cut as u64);
}

#[test]
fn non_capture_file_is_named() {
    let t = Temp::new("notes.txt", b"this is not a packet capture\n");
    // Rejected when opened, before any record is requested.
    let e = CaptureFile::open(&t.0).unwrap_err();
    let InputError::NotACapture { name } = &e else {
        panic!("unexpected {e:?}");
    };
    assert!(name.ends_with("notes.txt"));
    assert!(e.to_string().contains("not a pcap or pcapng capture"));
}

#[test]
fn corrupt_block_in_the_middle_has_offset() {
    let mut f = mixed_pcapng();
    let first_epb = shb().len() + 2 * idb(1, 9).len();
    // Make the second packet block's length not a multiple of 4.
    let second = first_epb + epb(0, 0, &[0u8; 46]).len();
    f[second + 4] = f[second + 4].wrapping_add(1);
    let t = Temp::new("corrupt.pcapng", &f);
    let mut file = CaptureFile::open(&t.0).unwrap();
    assert!(file.next_record().unwrap().is_some());
    match file.next_record() {
        Err(InputError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, second as u64);
            assert_eq!(reason, "block length not a multiple of 4");
        }
        other => panic!("unexpected {other:?}"),
    }
}
