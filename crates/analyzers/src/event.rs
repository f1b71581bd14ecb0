//! The events handlers consume, and the host specification that gives packets a direction.
//!
//! Events borrow from the worker's decoded packet; nothing here owns packet bytes.

use std::net::IpAddr;

use thiserror::Error;

/// Packet direction relative to the monitored host (pktvisor's `PacketDirection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Destination address is inside the host specification.
    ToHost,
    /// Source address is inside the host specification (and the destination is not).
    FromHost,
    /// Neither address is a host address, or no host specification was given.
    Unknown,
}

/// Network layer of an event, as the counters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3Kind {
    Ipv4,
    Ipv6,
    Other,
}

/// Transport layer of an event, as the counters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Kind {
    Udp,
    Tcp,
    Other,
}

/// One captured packet, after decoding, as the `net` handlers see it.
#[derive(Clone, Copy, Debug)]
pub struct PacketEvent {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub dir: Direction,
    pub l3: L3Kind,
    pub l4: L4Kind,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP SYN flag set.
    pub syn: bool,
    /// Whole captured frame length, link header included (pktvisor's payload size).
    pub frame_len: u32,
    /// Symmetric flow hash (both directions equal).
    pub flow: u64,
    /// Whether this event is deep-sampled (decided once per event, shared by all handlers).
    pub deep: bool,
    /// A dnstap event: `src` is the query address and `dst` the response address, and both
    /// are recorded whatever the direction (pktvisor's dnstap rule).
    pub both_ends: bool,
}

/// A DNS message with its transport context, as the `dns` handlers see it.
#[derive(Clone, Copy)]
pub struct DnsEvent<'a> {
    pub ts_ns: u64,
    pub dir: Direction,
    pub l3: L3Kind,
    pub l4: L4Kind,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The port that is not the DNS port (pktvisor's "metric port"), or 0.
    pub metric_port: u16,
    /// Symmetric flow hash: transactions are keyed by (flow, DNS id).
    pub flow: u64,
    pub deep: bool,
    pub msg: &'a wire::dns::DnsMessage<'a>,
    /// The first question name, lower-cased and without trailing dot, if it parsed.
    pub qname: Option<&'a [u8]>,
    /// For a dnstap event, the role pair of its message type (for `dnstap_msg_type`).
    pub dnstap: Option<wire::dnstap::Family>,
}

/// A worker's GeoIP/ASN lookups (through a bounded per-worker cache), or none when no
/// database was given.
#[derive(Default)]
pub struct Geo {
    cache: Option<geo::GeoCache>,
    /// Scratch buffer for building top-N keys.
    pub buf: Vec<u8>,
}

impl Geo {
    /// Lookups through a cache of `capacity` addresses over a shared database.
    pub fn new(db: std::sync::Arc<geo::GeoDb>, capacity: usize) -> Self {
        Self {
            cache: Some(geo::GeoCache::new(db, capacity)),
            buf: Vec::new(),
        }
    }

    pub fn city_enabled(&self) -> bool {
        self.cache.as_ref().is_some_and(|c| c.db().city_enabled())
    }

    pub fn asn_enabled(&self) -> bool {
        self.cache.as_ref().is_some_and(|c| c.db().asn_enabled())
    }

    /// The location of `ip` (`None` without a city database).
    pub fn location(&mut self, ip: IpAddr) -> Option<&geo::Location> {
        if !self.city_enabled() {
            return None;
        }
        self.cache.as_mut().map(|c| c.location(ip))
    }

    /// The `number/organization` of `ip` (`None` without an ASN database).
    pub fn asn(&mut self, ip: IpAddr) -> Option<&str> {
        if !self.asn_enabled() {
            return None;
        }
        self.cache.as_mut().map(|c| c.asn(ip))
    }
}

/// The ports pktvisor treats as DNS on either side.
pub const DNS_PORTS: [u16; 4] = [53, 5353, 5355, 53000];

/// Returns the port that is not the DNS port, or `None` when neither port is a DNS port.
#[inline]
pub fn dns_metric_port(src_port: u16, dst_port: u16, extra: &[u16]) -> Option<u16> {
    let is_dns = |p: u16| is_dns_port(p, extra);
    if is_dns(dst_port) {
        Some(src_port)
    } else if is_dns(src_port) {
        Some(dst_port)
    } else {
        None
    }
}

/// Whether `port` is a DNS port (pktvisor's four, or one configured).
///
/// The four fixed ports are compared inline and the configured list (usually empty) is
/// searched only when there is one: this runs twice per packet.
#[inline]
pub fn is_dns_port(port: u16, extra: &[u16]) -> bool {
    matches!(port, 53 | 5353 | 5355 | 53000) || (!extra.is_empty() && extra.contains(&port))
}

/// One CIDR block of the host specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies inside this block (an IPv4 block never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let shift = 32 - u32::from(self.prefix);
                let mask = if shift >= 32 { 0 } else { u32::MAX << shift };
                (u32::from(net) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let shift = 128 - u32::from(self.prefix);
                let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
                (u128::from(net) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// Errors in a host specification, with pktvisor's messages.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("invalid CIDR: {0}")]
    InvalidCidr(String),
    #[error("invalid IPv4 address: {0}")]
    InvalidIpv4(String),
    #[error("invalid IPv6 address: {0}")]
    InvalidIpv6(String),
}

/// Parses one `ADDR/PREFIX` block; the prefix is mandatory, as in pktvisor.
pub fn parse_cidr(s: &str) -> Result<Cidr, CidrError> {
    let s = s.trim();
    let mut parts = s.split('/');
    let (Some(addr), Some(prefix), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CidrError::InvalidCidr(s.to_string()));
    };
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| CidrError::InvalidCidr(s.to_string()))?;
    if addr.contains(':') {
        let a: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| CidrError::InvalidIpv6(addr.to_string()))?;
        if prefix > 128 {
            return Err(CidrError::InvalidCidr(s.to_string()));
        }
        Ok(Cidr {
            addr: IpAddr::V6(a),
            prefix,
        })
    } else {
        let a: std::net::Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::InvalidIpv4(addr.to_string()))?;
        if prefix > 32 {
            return Err(CidrError::InvalidCidr(s.to_string()));
        }
        Ok(Cidr {
            addr: IpAddr::V4(a),
            prefix,
        })
    }
}

/// The "host" address blocks: they decide whether a packet goes to or comes from the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSpec {
    blocks: Vec<Cidr>,
}

impl HostSpec {
    /// Parses a comma-separated CIDR list (`-H 192.168.0.0/24,2001:db8::/32`).
    pub fn parse(list: &str) -> Result<Self, CidrError> {
        let blocks = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(parse_cidr)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { blocks })
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|c| c.contains(ip))
    }

    /// pktvisor's rule: to host if the destination is a host address, else from host if the
    /// source is, else unknown.
    pub fn direction(&self, src: IpAddr, dst: IpAddr) -> Direction {
        if self.contains(dst) {
            Direction::ToHost
        } else if self.contains(src) {
            Direction::FromHost
        } else {
            Direction::Unknown
        }
    }
}

/// Deterministic deep-sampling decision: a hash of the event, so that offline runs give the same
/// answer whatever the number of workers. `rate` is a percentage in 1..=100.
pub fn deep_sample(rate: u8, flow: u64, ts_ns: u64) -> bool {
    if rate >= 100 {
        return true;
    }
    let mut x = flow ^ ts_ns.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    // SplitMix64 finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % 100) < u64::from(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_errors_match_pktvisor_messages() {
        assert_eq!(
            parse_cidr("192.168.0.0/24/12ac").unwrap_err().to_string(),
            "invalid CIDR: 192.168.0.0/24/12ac"
        );
        assert_eq!(
            parse_cidr("192.168.0.0/64").unwrap_err().to_string(),
            "invalid CIDR: 192.168.0.0/64"
        );
        assert_eq!(
            parse_cidr("192.168.AE.0/24").unwrap_err().to_string(),
            "invalid IPv4 address: 192.168.AE.0"
        );
        assert_eq!(
            parse_cidr("2001:db8::/256").unwrap_err().to_string(),
            "invalid CIDR: 2001:db8::/256"
        );
        assert_eq!(
            parse_cidr("fe80:2030:31:24/64").unwrap_err().to_string(),
            "invalid IPv6 address: fe80:2030:31:24"
        );
        assert_eq!(
            parse_cidr("10.0.0.1").unwrap_err().to_string(),
            "invalid CIDR: 10.0.0.1"
        );
    }

    #[test]
    fn direction_follows_host_spec() {
        let spec = HostSpec::parse("192.168.0.0/24,::1/128").unwrap();
        let host: IpAddr = "192.168.0.7".parse().unwrap();
        let other: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(spec.direction(other, host), Direction::ToHost);
        assert_eq!(spec.direction(host, other), Direction::FromHost);
        assert_eq!(spec.direction(other, other), Direction::Unknown);
        assert_eq!(spec.direction(host, host), Direction::ToHost);
        assert!(spec.contains("::1".parse().unwrap()));
        assert!(!spec.contains("::2".parse().unwrap()));
        let all = HostSpec::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(other));
    }

    #[test]
    fn dns_ports_are_the_listed_four() {
        for p in 0..=u16::MAX {
            assert_eq!(is_dns_port(p, &[]), DNS_PORTS.contains(&p), "port {p}");
        }
        assert!(is_dns_port(8053, &[8053]));
        assert!(!is_dns_port(8054, &[8053]));
    }

    #[test]
    fn metric_port_is_the_non_dns_side() {
        assert_eq!(dns_metric_port(33000, 53, &[]), Some(33000));
        assert_eq!(dns_metric_port(53, 40000, &[]), Some(40000));
        assert_eq!(dns_metric_port(1, 2, &[]), None);
        assert_eq!(dns_metric_port(1, 8053, &[8053]), Some(1));
    }

    #[test]
    fn deep_sampling_rate_is_roughly_honoured() {
        let n = (0..100_000u64)
            .filter(|i| deep_sample(30, i.wrapping_mul(0x1234_5678_9abc), *i))
            .count();
        assert!((28_000..32_000).contains(&n), "{n}");
        assert!(deep_sample(100, 1, 2));
    }
}
