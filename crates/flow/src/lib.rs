//! Pure, bounded per-connection state: IP defragmentation, TCP stream reassembly for
//! length-prefixed protocols (DNS over TCP), stream heads (the first bytes of each direction,
//! for TLS handshakes and HTTP), request/response transaction matching, the connection table,
//! and the NetFlow v9 / IPFIX template cache.
//!
//! All time comes in as an argument (`now_ns`, packet time); every table has a configured cap
//! and counts what it refuses instead of growing. Nothing here does I/O, reads a clock or keeps
//! globals; tables are keyed with a seeded `foldhash` so attacker-chosen keys cannot be aimed at
//! one bucket without knowing the seed.

pub mod conn;
pub mod defrag;
mod slab;
pub mod stream;
pub mod tcp;
pub mod templates;
pub mod xact;

/// An address as 128 bits (IPv4 as its IPv4-mapped IPv6 form), for hashing and comparing keys
/// in a few wide operations instead of walking the `IpAddr` enum.
fn addr_from_bits(bits: u128, v6: bool) -> core::net::IpAddr {
    if v6 {
        core::net::IpAddr::V6(core::net::Ipv6Addr::from_bits(bits))
    } else {
        core::net::IpAddr::V4(core::net::Ipv4Addr::from_bits(bits as u32))
    }
}

fn addr_bits(a: core::net::IpAddr) -> u128 {
    match a {
        core::net::IpAddr::V4(v4) => 0xffff_0000_0000 | u128::from(v4.to_bits()),
        core::net::IpAddr::V6(v6) => v6.to_bits(),
    }
}
