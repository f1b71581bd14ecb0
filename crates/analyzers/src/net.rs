//! pktvisor's `net` handler, versions 1 (JSON key `packets`) and 2 (JSON key `net`): packet
//! counters by layer and direction, remote-address cardinality and top-N, frame-size
//! quantiles and per-second rates.

use std::collections::BTreeSet;

use metrics::cardinality::Cardinality;
use metrics::quantiles::Quantiles;
use metrics::rate::Rate;

use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::event::{Direction, Geo, L3Kind, L4Kind, PacketEvent};
use crate::export::{Export, Value};
use crate::sketch::{self, TopIp, TopLocations, TopNames, sec};
use crate::window::{Bucket, Window};

/// Config and filter keys of both versions (pktvisor's list, in its order).
pub const NET_KEYS: [&str; 5] = [
    "geoloc_notfound",
    "asn_notfound",
    "only_geoloc_prefix",
    "only_asn_number",
    "recorded_stream",
];

/// Filters shared by both versions: keep only packets whose remote address (the source of
/// inbound, the destination of outbound packets) has a location or ASN with one of the given
/// prefixes. As in pktvisor, a packet of unknown direction, or any packet when the database is
/// not loaded, is filtered.
#[derive(Clone, Debug, Default)]
struct NetFilters {
    location_prefixes: Vec<String>,
    asn_prefixes: Vec<String>,
}

impl NetFilters {
    fn resolve(cfg: &ConfigMap) -> Result<Self, ConfigError> {
        cfg.validate_keys(&NET_KEYS)?;
        if let Some(list) = cfg.string_list("only_asn_number")? {
            for n in &list {
                if !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ConfigError(format!(
                        "NetStreamHandler: only_asn_number filter contained an invalid/unsupported value: {n}"
                    )));
                }
            }
        }
        let mut f = Self::default();
        if cfg.bool("geoloc_notfound")? {
            f.location_prefixes.push(geo::UNKNOWN.to_string());
        }
        if cfg.bool("asn_notfound")? {
            f.asn_prefixes.push(geo::UNKNOWN.to_string());
        }
        f.location_prefixes
            .extend(cfg.string_list("only_geoloc_prefix")?.unwrap_or_default());
        for n in cfg.string_list("only_asn_number")?.unwrap_or_default() {
            f.asn_prefixes.push(format!("{n}/"));
        }
        Ok(f)
    }

    #[inline]
    fn filters(&self, ev: &PacketEvent, geo: &mut Geo) -> bool {
        if self.location_prefixes.is_empty() && self.asn_prefixes.is_empty() {
            return false;
        }
        self.geo_filters(ev, geo)
    }

    /// The geo part of [`Self::filters`], out of line so the common no-filter check inlines.
    #[inline(never)]
    fn geo_filters(&self, ev: &PacketEvent, geo: &mut Geo) -> bool {
        let remote = match ev.dir {
            Direction::ToHost => ev.src,
            Direction::FromHost => ev.dst,
            Direction::Unknown => return true,
        };
        if ev.l3 == L3Kind::Other {
            return false;
        }
        if !self.location_prefixes.is_empty() {
            match geo.location(remote) {
                Some(loc)
                    if self
                        .location_prefixes
                        .iter()
                        .any(|p| loc.location.starts_with(p.as_str())) => {}
                _ => return true,
            }
        }
        if !self.asn_prefixes.is_empty() {
            match geo.asn(remote) {
                Some(asn)
                    if self
                        .asn_prefixes
                        .iter()
                        .any(|p| asn.starts_with(p.as_str())) => {}
                _ => return true,
            }
        }
        false
    }
}

/// Counts an address's location and ASN into the geo top lists (when the databases are loaded).
#[inline]
fn record_geo(ip: std::net::IpAddr, geo: &mut Geo, locs: &mut TopLocations, asns: &mut TopNames) {
    let mut buf = std::mem::take(&mut geo.buf);
    if let Some(loc) = geo.location(ip) {
        locs.insert(loc, &mut buf);
    }
    geo.buf = buf;
    if let Some(asn) = geo.asn(ip) {
        asns.insert(asn.as_bytes(), 1);
    }
}

fn groups(
    cfg: &ConfigMap,
    all: &[&'static str],
    enable: &[String],
    disable: &[String],
) -> Result<BTreeSet<&'static str>, ConfigError> {
    let _ = cfg;
    resolve_groups(all, all, enable, disable)
}

// ---------------------------------------------------------------------------------------------
// version 1

const V1_GROUPS: [&str; 4] = ["cardinality", "counters", "top_geo", "top_ips"];

/// Group switches of net v1, resolved once.
#[derive(Clone, Copy, Debug)]
struct V1Groups {
    counters: bool,
    cardinality: bool,
    top_ips: bool,
    top_geo: bool,
}

/// One period of net v1.
#[derive(Clone, Default)]
pub struct NetV1Bucket {
    events: u64,
    deep_samples: u64,
    udp: u64,
    tcp: u64,
    syn: u64,
    other_l4: u64,
    ipv4: u64,
    ipv6: u64,
    dir_in: u64,
    dir_out: u64,
    dir_unknown: u64,
    total: u64,
    filtered: u64,
    src_ips_in: Cardinality,
    dst_ips_out: Cardinality,
    top_ipv4: TopIp,
    top_ipv6: TopIp,
    top_geo_loc: TopLocations,
    top_asn: TopNames,
    payload_size: Quantiles,
    rate_in: Rate,
    rate_out: Rate,
    rate_total: Rate,
    bytes_in: Rate,
    bytes_out: Rate,
    bytes_total: Rate,
    rate_events: Rate,
    /// The rate counts of the second being counted, not yet in the `Rate`s above (see
    /// [`SecondCounts`]).
    pending: SecondCounts,
}

/// Per-second rate counts of one second, kept apart while packets of that second keep coming
/// and added to the bucket's seven `Rate`s at once when a packet of another second arrives or
/// the bucket is read (merged or exported): seven additions per second instead of up to five
/// per packet. The `Rate`s end up with the same per-second sums and the same seconds seen (a
/// `Rate` is added to only if a packet of the second went to it, as per packet), so every
/// exported rate is unchanged.
#[derive(Clone, Copy, Debug, Default)]
struct SecondCounts {
    /// Whether the counts below hold anything.
    live: bool,
    second: u64,
    /// `[second, end_ns)` in packet time: the test per packet, without a division.
    start_ns: u64,
    end_ns: u64,
    events: u64,
    packets_in: u64,
    packets_out: u64,
    packets_total: u64,
    bytes_in: u64,
    bytes_out: u64,
    bytes_total: u64,
}

impl NetV1Bucket {
    /// Adds the pending second's counts to the `Rate`s and clears them.
    fn flush_second(&mut self) {
        let p = std::mem::take(&mut self.pending);
        self.add_second(&p);
    }

    fn add_second(&mut self, p: &SecondCounts) {
        if !p.live {
            return;
        }
        let s = p.second;
        self.rate_events.add(s, p.events);
        if p.packets_out > 0 {
            self.rate_out.add(s, p.packets_out);
            self.bytes_out.add(s, p.bytes_out);
        }
        if p.packets_in > 0 {
            self.rate_in.add(s, p.packets_in);
            self.bytes_in.add(s, p.bytes_in);
        }
        if p.packets_total > 0 {
            self.rate_total.add(s, p.packets_total);
            self.bytes_total.add(s, p.bytes_total);
        }
    }

    /// The pending counts of the second of `ts_ns`, starting that second if another one is
    /// pending.
    #[inline]
    fn second_of(&mut self, ts_ns: u64) -> &mut SecondCounts {
        let p = &self.pending;
        if !(p.live && ts_ns >= p.start_ns && ts_ns < p.end_ns) {
            self.start_second(ts_ns);
        }
        &mut self.pending
    }

    #[inline(never)]
    fn start_second(&mut self, ts_ns: u64) {
        self.flush_second();
        let s = sec(ts_ns);
        let start_ns = s * 1_000_000_000;
        self.pending = SecondCounts {
            live: true,
            second: s,
            start_ns,
            end_ns: start_ns.saturating_add(1_000_000_000),
            ..SecondCounts::default()
        };
    }
}

impl Bucket for NetV1Bucket {
    fn merge(&mut self, o: &Self) {
        self.flush_second();
        self.add_second(&o.pending);
        self.events += o.events;
        self.deep_samples += o.deep_samples;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.syn += o.syn;
        self.other_l4 += o.other_l4;
        self.ipv4 += o.ipv4;
        self.ipv6 += o.ipv6;
        self.dir_in += o.dir_in;
        self.dir_out += o.dir_out;
        self.dir_unknown += o.dir_unknown;
        self.total += o.total;
        self.filtered += o.filtered;
        self.src_ips_in.merge(&o.src_ips_in);
        self.dst_ips_out.merge(&o.dst_ips_out);
        self.top_ipv4.merge(&o.top_ipv4);
        self.top_ipv6.merge(&o.top_ipv6);
        self.top_geo_loc.merge(&o.top_geo_loc);
        self.top_asn.merge(&o.top_asn);
        self.payload_size.merge(&o.payload_size);
        self.rate_in.merge(&o.rate_in);
        self.rate_out.merge(&o.rate_out);
        self.rate_total.merge(&o.rate_total);
        self.bytes_in.merge(&o.bytes_in);
        self.bytes_out.merge(&o.bytes_out);
        self.bytes_total.merge(&o.bytes_total);
        self.rate_events.merge(&o.rate_events);
    }
}

/// The `net` handler, version 1.
#[derive(Clone)]
pub struct NetV1 {
    filters: NetFilters,
    groups: V1Groups,
    group_set: BTreeSet<&'static str>,
    pub window_config: WindowConfig,
    pub window: Window<NetV1Bucket>,
}

impl NetV1 {
    pub const SCHEMA: &'static str = "packets";

    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
    ) -> Result<Self, ConfigError> {
        let filters = NetFilters::resolve(cfg)?;
        let set = groups(cfg, &V1_GROUPS, enable, disable)?;
        Ok(Self {
            filters,
            groups: V1Groups {
                counters: set.contains("counters"),
                cardinality: set.contains("cardinality"),
                top_ips: set.contains("top_ips"),
                top_geo: set.contains("top_geo"),
            },
            group_set: set,
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
        })
    }

    /// Processes one packet; returns whether it passed the filters (for chained handlers).
    // Every packet comes here: inlined, the call's register saves and restores go.
    #[inline(always)]
    pub fn on_packet(&mut self, ev: &PacketEvent, geo: &mut Geo) -> bool {
        let g = self.groups;
        let filtered = self.filters.filters(ev, geo);
        let b = self.window.live();
        b.events += 1;
        let p = b.second_of(ev.ts_ns);
        p.events += 1;
        if filtered {
            if ev.deep {
                b.deep_samples += 1;
            }
            if g.counters {
                b.filtered += 1;
            }
            return false;
        }
        let len = u64::from(ev.frame_len);
        match ev.dir {
            Direction::FromHost => {
                p.packets_out += 1;
                p.bytes_out += len;
            }
            Direction::ToHost => {
                p.packets_in += 1;
                p.bytes_in += len;
            }
            Direction::Unknown => {}
        }
        p.packets_total += 1;
        p.bytes_total += len;
        if ev.deep {
            b.deep_samples += 1;
        }
        if g.counters {
            b.total += 1;
            match ev.dir {
                Direction::FromHost => b.dir_out += 1,
                Direction::ToHost => b.dir_in += 1,
                Direction::Unknown => b.dir_unknown += 1,
            }
            match ev.l3 {
                L3Kind::Ipv4 => b.ipv4 += 1,
                L3Kind::Ipv6 => b.ipv6 += 1,
                L3Kind::Other => {}
            }
            match ev.l4 {
                L4Kind::Udp => b.udp += 1,
                L4Kind::Tcp => {
                    b.tcp += 1;
                    // pktvisor counts SYNs only for deep-sampled packets.
                    if ev.deep && ev.syn {
                        b.syn += 1;
                    }
                }
                L4Kind::Other => b.other_l4 += 1,
            }
        }
        b.payload_size.record(len);
        if ev.deep && ev.l3 != L3Kind::Other && ev.both_ends {
            // dnstap: the query address counts as inbound, the response address as outbound.
            for (ip, inbound) in [(ev.src, true), (ev.dst, false)] {
                if ip.is_unspecified() {
                    continue;
                }
                if g.cardinality {
                    let card = if inbound {
                        &mut b.src_ips_in
                    } else {
                        &mut b.dst_ips_out
                    };
                    insert_ip(card, ip);
                }
                if g.top_ips {
                    if ip.is_ipv4() {
                        b.top_ipv4.insert(ip, 1);
                    } else {
                        b.top_ipv6.insert(ip, 1);
                    }
                }
                if g.top_geo {
                    record_geo(ip, geo, &mut b.top_geo_loc, &mut b.top_asn);
                }
            }
        } else if ev.deep && ev.l3 != L3Kind::Other {
            // Only the remote address: the source of inbound, the destination of outbound.
            let (remote, inbound) = match ev.dir {
                Direction::ToHost => (ev.src, true),
                Direction::FromHost => (ev.dst, false),
                Direction::Unknown => return true,
            };
            if !remote.is_unspecified() {
                if g.cardinality {
                    let card = if inbound {
                        &mut b.src_ips_in
                    } else {
                        &mut b.dst_ips_out
                    };
                    insert_ip(card, remote);
                }
                if g.top_ips {
                    if remote.is_ipv4() {
                        b.top_ipv4.insert(remote, 1);
                    } else {
                        b.top_ipv6.insert(remote, 1);
                    }
                }
                if g.top_geo {
                    record_geo(remote, geo, &mut b.top_geo_loc, &mut b.top_asn);
                }
            }
        }
        true
    }

    /// Exports one (possibly merged) bucket.
    pub fn export(&self, b: &NetV1Bucket) -> Export {
        if b.pending.live {
            // The second still being counted joins its rates in a copy (output time only).
            let mut b = b.clone();
            b.flush_second();
            return self.export_flushed(&b);
        }
        self.export_flushed(b)
    }

    fn export_flushed(&self, b: &NetV1Bucket) -> Export {
        let w = &self.window_config;
        let mut e = Export::default();
        let has = |g: &str| self.group_set.contains(g);
        push_rate(
            &mut e,
            &["rates", "pps_in"],
            "Rate of ingress packets per second",
            &b.rate_in,
        );
        push_rate(
            &mut e,
            &["rates", "pps_out"],
            "Rate of egress packets per second",
            &b.rate_out,
        );
        push_rate(
            &mut e,
            &["rates", "pps_total"],
            "Rate of all packets per second",
            &b.rate_total,
        );
        for (name, help, r) in [
            ("bytes_in", "Rate of ingress bytes per second", &b.bytes_in),
            ("bytes_out", "Rate of egress bytes per second", &b.bytes_out),
            (
                "bytes_total",
                "Rate of all bytes per second",
                &b.bytes_total,
            ),
        ] {
            if let Some(v) = sketch::rate(r) {
                e.push(&["rates", name], help, v);
                if let Some(m) = e.metrics.last_mut() {
                    m.prom_name = format!("rates_{name}");
                    m.schema_override = Some("payload");
                }
            }
        }
        push_rate(
            &mut e,
            &["rates", "pps_events"],
            "Rate of events per second",
            &b.rate_events,
        );
        e.int(&["events"], "Total number of events", b.events);
        e.int(
            &["deep_samples"],
            "Total number of deep samples",
            b.deep_samples,
        );
        if has("counters") {
            e.int(&["udp"], "Count of UDP packets", b.udp);
            e.int(&["tcp"], "Count of TCP packets", b.tcp);
            e.int(
                &["protocol", "tcp", "syn"],
                "Count of TCP SYN packets",
                b.syn,
            );
            e.int(
                &["other_l4"],
                "Count of packets which are not UDP or TCP",
                b.other_l4,
            );
            e.int(&["ipv4"], "Count of IPv4 packets", b.ipv4);
            e.int(&["ipv6"], "Count of IPv6 packets", b.ipv6);
            e.int(&["in"], "Count of total ingress packets", b.dir_in);
            e.int(&["out"], "Count of total egress packets", b.dir_out);
            e.int(
                &["unknown_dir"],
                "Count of total unknown direction packets",
                b.dir_unknown,
            );
            e.int(
                &["total"],
                "Count of total packets matching the configured filter(s)",
                b.total,
            );
            e.int(
                &["filtered"],
                "Count of total packets that did not match the configured filter(s) (if any)",
                b.filtered,
            );
        }
        if has("cardinality") {
            e.int(
                &["cardinality", "src_ips_in"],
                "Source IP cardinality",
                b.src_ips_in.estimate(),
            );
            e.int(
                &["cardinality", "dst_ips_out"],
                "Destination IP cardinality",
                b.dst_ips_out.estimate(),
            );
        }
        if has("top_ips") {
            e.push(
                &["top_ipv4"],
                "Top IPv4 IP addresses",
                b.top_ipv4.export("ipv4", w),
            );
            e.push(
                &["top_ipv6"],
                "Top IPv6 IP addresses",
                b.top_ipv6.export("ipv6", w),
            );
        }
        if has("top_geo") {
            e.push(
                &["top_geoLoc"],
                "Top GeoIP locations",
                b.top_geo_loc.export("geo_loc", w),
            );
            e.push(&["top_ASN"], "Top ASNs by IP", b.top_asn.export("asn", w));
        }
        if let Some(v) = sketch::quantiles(&b.payload_size) {
            e.push(&["payload_size"], "Quantiles of payload sizes, in bytes", v);
        }
        e
    }
}

fn push_rate(e: &mut Export, path: &[&'static str], help: &'static str, r: &Rate) {
    if let Some(v) = sketch::rate(r) {
        e.push(path, help, v);
    }
}

#[inline]
fn insert_ip(card: &mut Cardinality, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(a) => card.insert_u64(u64::from(u32::from(a))),
        std::net::IpAddr::V6(a) => card.insert_bytes(&a.octets()),
    }
}

// ---------------------------------------------------------------------------------------------
// version 2

const V2_GROUPS: [&str; 5] = ["cardinality", "counters", "quantiles", "top_geo", "top_ips"];

/// Per-direction metrics of net v2.
#[derive(Clone, Default)]
pub struct NetV2Dir {
    seen: bool,
    udp: u64,
    tcp: u64,
    other_l4: u64,
    ipv4: u64,
    ipv6: u64,
    syn: u64,
    total: u64,
    ips: Cardinality,
    top_ipv4: TopIp,
    top_ipv6: TopIp,
    top_geo_loc: TopLocations,
    top_asn: TopNames,
    payload_size: Quantiles,
    pps: Rate,
    bps: Rate,
}

impl NetV2Dir {
    fn merge(&mut self, o: &Self) {
        self.seen |= o.seen;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.other_l4 += o.other_l4;
        self.ipv4 += o.ipv4;
        self.ipv6 += o.ipv6;
        self.syn += o.syn;
        self.total += o.total;
        self.ips.merge(&o.ips);
        self.top_ipv4.merge(&o.top_ipv4);
        self.top_ipv6.merge(&o.top_ipv6);
        self.top_geo_loc.merge(&o.top_geo_loc);
        self.top_asn.merge(&o.top_asn);
        self.payload_size.merge(&o.payload_size);
        self.pps.merge(&o.pps);
        self.bps.merge(&o.bps);
    }
}

/// One period of net v2.
#[derive(Clone, Default)]
pub struct NetV2Bucket {
    events: u64,
    deep_samples: u64,
    filtered: u64,
    rate_events: Rate,
    /// in, out, unknown.
    dirs: [NetV2Dir; 3],
}

impl Bucket for NetV2Bucket {
    fn merge(&mut self, o: &Self) {
        self.events += o.events;
        self.deep_samples += o.deep_samples;
        self.filtered += o.filtered;
        self.rate_events.merge(&o.rate_events);
        for (a, b) in self.dirs.iter_mut().zip(o.dirs.iter()) {
            a.merge(b);
        }
    }
}

/// JSON keys of the direction objects, indexed like [`NetV2Bucket::dirs`].
pub const DIR_NAMES: [&str; 3] = ["in", "out", "unknown"];

/// The `net` handler, version 2.
#[derive(Clone)]
pub struct NetV2 {
    filters: NetFilters,
    group_set: BTreeSet<&'static str>,
    counters: bool,
    cardinality: bool,
    quantiles: bool,
    top_ips: bool,
    top_geo: bool,
    pub window_config: WindowConfig,
    pub window: Window<NetV2Bucket>,
}

impl NetV2 {
    pub const SCHEMA: &'static str = "net";

    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
    ) -> Result<Self, ConfigError> {
        let filters = NetFilters::resolve(cfg)?;
        let set = groups(cfg, &V2_GROUPS, enable, disable)?;
        Ok(Self {
            filters,
            counters: set.contains("counters"),
            cardinality: set.contains("cardinality"),
            quantiles: set.contains("quantiles"),
            top_ips: set.contains("top_ips"),
            top_geo: set.contains("top_geo"),
            group_set: set,
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
        })
    }

    #[inline]
    pub fn on_packet(&mut self, ev: &PacketEvent, geo: &mut Geo) -> bool {
        let filtered = self.filters.filters(ev, geo);
        let top_geo = self.top_geo;
        let (counters, cardinality, quantiles, top_ips) = (
            self.counters,
            self.cardinality,
            self.quantiles,
            self.top_ips,
        );
        let b = self.window.live();
        let s = sec(ev.ts_ns);
        b.events += 1;
        b.rate_events.add(s, 1);
        if ev.deep {
            b.deep_samples += 1;
        }
        if filtered {
            if counters {
                b.filtered += 1;
            }
            return false;
        }
        let d = &mut b.dirs[match ev.dir {
            Direction::ToHost => 0,
            Direction::FromHost => 1,
            Direction::Unknown => 2,
        }];
        d.seen = true;
        if counters {
            d.total += 1;
            match ev.l3 {
                L3Kind::Ipv4 => d.ipv4 += 1,
                L3Kind::Ipv6 => d.ipv6 += 1,
                L3Kind::Other => {}
            }
            match ev.l4 {
                L4Kind::Udp => d.udp += 1,
                L4Kind::Tcp => {
                    d.tcp += 1;
                    if ev.deep && ev.syn {
                        d.syn += 1;
                    }
                }
                L4Kind::Other => d.other_l4 += 1,
            }
        }
        if quantiles {
            d.pps.add(s, 1);
            d.bps.add(s, u64::from(ev.frame_len));
            d.payload_size.record(u64::from(ev.frame_len));
        }
        if ev.deep && ev.l3 != L3Kind::Other {
            let mut record = |ip: std::net::IpAddr| {
                if ip.is_unspecified() {
                    return;
                }
                if cardinality {
                    insert_ip(&mut d.ips, ip);
                }
                if top_ips {
                    if ip.is_ipv4() {
                        d.top_ipv4.insert(ip, 1);
                    } else {
                        d.top_ipv6.insert(ip, 1);
                    }
                }
                if top_geo {
                    record_geo(ip, geo, &mut d.top_geo_loc, &mut d.top_asn);
                }
            };
            match ev.dir {
                _ if ev.both_ends => {
                    record(ev.src);
                    record(ev.dst);
                }
                Direction::ToHost => record(ev.src),
                Direction::FromHost => record(ev.dst),
                Direction::Unknown => {
                    record(ev.src);
                    record(ev.dst);
                }
            }
        }
        true
    }

    pub fn export(&self, b: &NetV2Bucket) -> Export {
        let w = &self.window_config;
        let mut e = Export::default();
        let has = |g: &str| self.group_set.contains(g);
        if has("counters") {
            e.int(
                &["filtered_packets"],
                "Total packets that did not match the configured filter(s) (if any)",
                b.filtered,
            );
        }
        e.int(
            &["observed_packets"],
            "Total packets events generated",
            b.events,
        );
        e.int(
            &["deep_sampled_packets"],
            "Total packets that were sampled for deep inspection",
            b.deep_samples,
        );
        if let Some(v) = sketch::rate(&b.rate_events) {
            e.push(
                &["rates", "observed_pps"],
                "Rate of all packets before filtering per second",
                v,
            );
        }
        for (i, d) in b.dirs.iter().enumerate() {
            if !d.seen {
                continue;
            }
            let dir = DIR_NAMES[i];
            if has("counters") {
                e.push_dir(
                    dir,
                    &["udp_packets"],
                    "Total UDP packets",
                    Value::Int(d.udp),
                );
                e.push_dir(
                    dir,
                    &["tcp_packets"],
                    "Total TCP packets",
                    Value::Int(d.tcp),
                );
                e.push_dir(
                    dir,
                    &["other_l4_packets"],
                    "Total packets that are not UDP or TCP",
                    Value::Int(d.other_l4),
                );
                e.push_dir(
                    dir,
                    &["ipv4_packets"],
                    "Total IPv4 packets",
                    Value::Int(d.ipv4),
                );
                e.push_dir(
                    dir,
                    &["ipv6_packets"],
                    "Total IPv6 packets",
                    Value::Int(d.ipv6),
                );
                e.push_dir(
                    dir,
                    &["tcp", "syn_packets"],
                    "Total TCP packets with SYN flag",
                    Value::Int(d.syn),
                );
                e.push_dir(
                    dir,
                    &["total_packets"],
                    "Total packets",
                    Value::Int(d.total),
                );
            }
            if has("cardinality") {
                e.push_dir(
                    dir,
                    &["cardinality", "ips"],
                    "IP cardinality",
                    Value::Int(d.ips.estimate()),
                );
            }
            if has("top_ips") {
                e.push_dir(
                    dir,
                    &["top_ipv4_packets"],
                    "Top IPv4 addresses by packet count",
                    d.top_ipv4.export("ipv4", w),
                );
                e.push_dir(
                    dir,
                    &["top_ipv6_packets"],
                    "Top IPv6 addresses by packet count",
                    d.top_ipv6.export("ipv6", w),
                );
            }
            if has("top_geo") {
                e.push_dir(
                    dir,
                    &["top_geo_loc_packets"],
                    "Top GeoIP locations by packet count",
                    d.top_geo_loc.export("geo_loc", w),
                );
                e.push_dir(
                    dir,
                    &["top_asn_packets"],
                    "Top ASNs by packet count",
                    d.top_asn.export("asn", w),
                );
            }
            if has("quantiles") {
                if let Some(v) = sketch::quantiles(&d.payload_size) {
                    e.push_dir(
                        dir,
                        &["payload_size_bytes"],
                        "Quantiles of packet payload sizes, in bytes",
                        v,
                    );
                }
                if let Some(v) = sketch::rate(&d.pps) {
                    e.push_dir(dir, &["rates", "pps"], "Rate of packets per second", v);
                }
                if let Some(v) = sketch::rate(&d.bps) {
                    e.push_dir(dir, &["rates", "bps"], "Rate of bytes per second", v);
                }
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(ts_ns: u64, dir: u8, frame_len: u32) -> PacketEvent {
        PacketEvent {
            ts_ns,
            dir: match dir {
                0 => Direction::ToHost,
                1 => Direction::FromHost,
                _ => Direction::Unknown,
            },
            l3: L3Kind::Ipv4,
            l4: L4Kind::Udp,
            src: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
            dst: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)),
            src_port: 1,
            dst_port: 2,
            syn: false,
            frame_len,
            flow: 0,
            deep: true,
            both_ends: false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Rates counted a second at a time equal rates counted per packet (the way they were
        /// before), with packet times that jump back and forth, seconds of one direction only,
        /// zero-length frames, and the bucket merged into another at any point.
        #[test]
        fn rates_batched_per_second_equal_rates_added_per_packet(
            pkts in proptest::collection::vec((0u64..5, 0u64..1_000_000_000, 0u8..3, 0u32..3), 0..200),
            split in 0usize..200,
        ) {
            let cfg = ConfigMap::default();
            let mut a = NetV1::new(&cfg, WindowConfig::default(), &[], &[]).expect("builds");
            let mut b = a.clone();
            let mut geo = Geo::default();
            let mut reference = NetV1Bucket::default();
            for (i, &(s, ns, dir, len)) in pkts.iter().enumerate() {
                let ev = event(1_700_000_000_000_000_000 + s * 1_000_000_000 + ns, dir, len * 700);
                let h = if i < split { &mut a } else { &mut b };
                prop_assert!(h.on_packet(&ev, &mut geo));
                let r = &mut reference;
                let sec = sec(ev.ts_ns);
                let len = u64::from(ev.frame_len);
                r.rate_events.add(sec, 1);
                match ev.dir {
                    Direction::FromHost => {
                        r.rate_out.add(sec, 1);
                        r.bytes_out.add(sec, len);
                    }
                    Direction::ToHost => {
                        r.rate_in.add(sec, 1);
                        r.bytes_in.add(sec, len);
                    }
                    Direction::Unknown => {}
                }
                r.rate_total.add(sec, 1);
                r.bytes_total.add(sec, len);
            }
            let mut merged = a.window.live().clone();
            merged.merge(b.window.live());
            let exported = a.export(&merged);
            let want = a.export(&reference);
            let rates = |e: &Export| -> Vec<String> {
                e.metrics
                    .iter()
                    .filter(|m| m.json_path.first().is_some_and(|p| p == "rates"))
                    .map(|m| format!("{:?} {:?}", m.json_path, m.value))
                    .collect()
            };
            prop_assert_eq!(rates(&exported), rates(&want));
            prop_assert_eq!(rates(&exported).len(), if pkts.is_empty() { 0 } else { rates(&want).len() });
            // The per-packet rates are all there (flushed), and the live bucket still counts.
            for (x, y) in [
                (&merged.rate_events, &reference.rate_events),
                (&merged.rate_in, &reference.rate_in),
                (&merged.rate_out, &reference.rate_out),
                (&merged.rate_total, &reference.rate_total),
                (&merged.bytes_in, &reference.bytes_in),
                (&merged.bytes_out, &reference.bytes_out),
                (&merged.bytes_total, &reference.bytes_total),
            ] {
                prop_assert_eq!(x, y);
            }
        }
    }
}
