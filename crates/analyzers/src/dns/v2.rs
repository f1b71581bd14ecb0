//! `dns` version 2 (JSON key `dns`, `require_version: "2.0"`): transaction-centric. Nearly every
//! metric is counted per completed query/reply pair, split by direction: `in` (host is the
//! server), `out` (host is the client) and `unknown`.

use std::collections::BTreeSet;

use flow::xact::{Finish, Pending, XactConfig, XactKey, XactTable};
use metrics::cardinality::Cardinality;
use metrics::quantiles::Quantiles;
use metrics::rate::Rate;

use super::{DnsFilters, Verdict, qtype_text, rcode_text};
use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::event::{Direction, DnsEvent, Geo, L3Kind, L4Kind};
use crate::export::{Export, Value};
use crate::net::DIR_NAMES;
use crate::sketch::{self, TopIp, TopLocations, TopNames, TopU16, sec};
use crate::window::{Bucket, Window};

const GROUPS: [&str; 10] = [
    "cardinality",
    "counters",
    "quantiles",
    "top_ecs",
    "top_ports",
    "top_qnames",
    "top_qtypes",
    "top_rcodes",
    "top_size",
    "xact_times",
];
const DEFAULT_GROUPS: [&str; 6] = [
    "cardinality",
    "counters",
    "quantiles",
    "top_qnames",
    "top_rcodes",
    "top_qtypes",
];

/// Bits of [`Pending::tag`]: the query had CD set; the query carried an ECS option.
const TAG_CD: u32 = 1;
const TAG_ECS: u32 = 2;

#[derive(Clone, Copy, Debug, Default)]
struct Groups {
    cardinality: bool,
    counters: bool,
    quantiles: bool,
    top_ecs: bool,
    top_ports: bool,
    top_qnames: bool,
    top_rcodes: bool,
    top_size: bool,
    xact_times: bool,
}

/// Per-direction metrics of dns v2.
#[derive(Clone, Default)]
pub struct V2Dir {
    seen: bool,
    xacts: u64,
    udp: u64,
    tcp: u64,
    ipv4: u64,
    ipv6: u64,
    nxdomain: u64,
    ecs: u64,
    refused: u64,
    srvfail: u64,
    noerror: u64,
    nodata: u64,
    authenticated_data: u64,
    authoritative_answer: u64,
    checking_disabled: u64,
    timeout: u64,
    orphan: u64,
    qname_card: Cardinality,
    top_ports: TopU16,
    top_ecs: TopIp,
    top_geo_loc_ecs: TopLocations,
    top_asn_ecs: TopNames,
    top_nxdomain: TopNames,
    top_refused: TopNames,
    top_srvfail: TopNames,
    top_nodata: TopNames,
    top_noerror: TopNames,
    top_rcode: TopU16,
    top_qname2: TopNames,
    top_qname3: TopNames,
    top_response_bytes: TopNames,
    ratio: Quantiles,
    top_qtype: TopU16,
    xact_time_us: Quantiles,
    top_slow: TopNames,
    rate: Rate,
}

impl V2Dir {
    fn merge(&mut self, o: &Self) {
        self.seen |= o.seen;
        self.xacts += o.xacts;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.ipv4 += o.ipv4;
        self.ipv6 += o.ipv6;
        self.nxdomain += o.nxdomain;
        self.ecs += o.ecs;
        self.refused += o.refused;
        self.srvfail += o.srvfail;
        self.noerror += o.noerror;
        self.nodata += o.nodata;
        self.authenticated_data += o.authenticated_data;
        self.authoritative_answer += o.authoritative_answer;
        self.checking_disabled += o.checking_disabled;
        self.timeout += o.timeout;
        self.orphan += o.orphan;
        self.qname_card.merge(&o.qname_card);
        self.top_ports.merge(&o.top_ports);
        self.top_ecs.merge(&o.top_ecs);
        self.top_geo_loc_ecs.merge(&o.top_geo_loc_ecs);
        self.top_asn_ecs.merge(&o.top_asn_ecs);
        self.top_nxdomain.merge(&o.top_nxdomain);
        self.top_refused.merge(&o.top_refused);
        self.top_srvfail.merge(&o.top_srvfail);
        self.top_nodata.merge(&o.top_nodata);
        self.top_noerror.merge(&o.top_noerror);
        self.top_rcode.merge(&o.top_rcode);
        self.top_qname2.merge(&o.top_qname2);
        self.top_qname3.merge(&o.top_qname3);
        self.top_response_bytes.merge(&o.top_response_bytes);
        self.ratio.merge(&o.ratio);
        self.top_qtype.merge(&o.top_qtype);
        self.xact_time_us.merge(&o.xact_time_us);
        self.top_slow.merge(&o.top_slow);
        self.rate.merge(&o.rate);
    }
}

/// One period of dns v2.
#[derive(Clone, Default)]
pub struct DnsV2Bucket {
    events: u64,
    deep_samples: u64,
    filtered: u64,
    rate_events: Rate,
    dirs: [V2Dir; 3],
}

impl Bucket for DnsV2Bucket {
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

/// The `dns` handler, version 2.
pub struct DnsV2 {
    filters: DnsFilters,
    g: Groups,
    group_set: BTreeSet<&'static str>,
    pub window_config: WindowConfig,
    pub window: Window<DnsV2Bucket>,
    /// One transaction table per transaction direction (in, out, unknown), as pktvisor keeps.
    xacts: [XactTable; 3],
    slow_us: [u64; 3],
}

impl DnsV2 {
    pub const SCHEMA: &'static str = "dns";

    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
        max_open_xacts: usize,
    ) -> Result<Self, ConfigError> {
        let filters = DnsFilters::resolve(cfg)?;
        let set = resolve_groups(&GROUPS, &DEFAULT_GROUPS, enable, disable)?;
        let g = Groups {
            cardinality: set.contains("cardinality"),
            counters: set.contains("counters"),
            quantiles: set.contains("quantiles"),
            top_ecs: set.contains("top_ecs"),
            top_ports: set.contains("top_ports"),
            top_qnames: set.contains("top_qnames"),
            top_rcodes: set.contains("top_rcodes"),
            top_size: set.contains("top_size"),
            xact_times: set.contains("xact_times"),
        };
        let cfg = XactConfig {
            max_open: max_open_xacts / 3 + 1,
            ttl_ns: filters.xact_ttl_ns,
            ..XactConfig::default()
        };
        Ok(Self {
            filters,
            g,
            group_set: set,
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            xacts: [
                XactTable::new(cfg),
                XactTable::new(cfg),
                XactTable::new(cfg),
            ],
            slow_us: [0; 3],
        })
    }

    pub fn open_transactions(&self) -> usize {
        self.xacts.iter().map(XactTable::open).sum()
    }

    /// After a rotation at `now_ns`: purge timed-out transactions per direction and take the
    /// slow thresholds (p90) from the period just closed.
    pub fn on_rotate(&mut self, now_ns: u64) {
        let purged = [
            self.xacts[0].purge(now_ns),
            self.xacts[1].purge(now_ns),
            self.xacts[2].purge(now_ns),
        ];
        if let Some(prev) = self.window.previous() {
            for i in 0..3 {
                self.slow_us[i] = prev.dirs[i].xact_time_us.quantile(0.90).unwrap_or(0);
            }
        }
        let live = self.window.live();
        for (d, n) in live.dirs.iter_mut().zip(purged) {
            if n > 0 {
                d.timeout += n;
                d.seen = true;
            }
        }
    }

    pub fn on_dns(&mut self, ev: &DnsEvent<'_>, geo: &mut Geo) -> bool {
        let g = self.g;
        let m = ev.msg;
        let s = sec(ev.ts_ns);
        let verdict = self.filters.apply_v2(ev, geo);
        let is_response = m.is_response();
        let key = XactKey {
            flow: ev.flow,
            id: m.id(),
        };
        // Transaction direction: a query arriving at the host means the host serves (in); a
        // reply arriving at the host means the host asked (out).
        let xd = match (is_response, ev.dir) {
            (false, Direction::ToHost) | (true, Direction::FromHost) => 0,
            (false, Direction::FromHost) | (true, Direction::ToHost) => 1,
            _ => 2,
        };
        {
            let b = self.window.live();
            b.events += 1;
            b.rate_events.add(s, 1);
            if ev.deep {
                b.deep_samples += 1;
            }
        }
        let Verdict::Keep { suffix_len } = verdict else {
            if is_response {
                let fin = self.xacts[xd].finish(key, ev.ts_ns);
                let b = self.window.live();
                b.dirs[xd].seen = true;
                if let Finish::Matched { pending, .. } = fin
                    && !pending.filtered
                    && g.counters
                {
                    b.filtered += 1;
                }
            } else {
                self.xacts[xd].start(
                    key,
                    Pending {
                        start_ns: ev.ts_ns,
                        query_size: 0,
                        filtered: true,
                        tag: 0,
                    },
                );
            }
            if g.counters {
                self.window.live().filtered += 1;
            }
            return false;
        };
        if !is_response {
            let mut tag = 0;
            if m.cd() {
                tag |= TAG_CD;
            }
            if g.top_ecs && m.arcount() > 0 && m.edns().and_then(|e| e.ecs).is_some() {
                tag |= TAG_ECS;
            }
            self.xacts[xd].start(
                key,
                Pending {
                    start_ns: ev.ts_ns,
                    query_size: m.len() as u32,
                    filtered: false,
                    tag,
                },
            );
            return true;
        }
        let fin = self.xacts[xd].finish(key, ev.ts_ns);
        let slow = self.slow_us[xd];
        let b = self.window.live();
        let d = &mut b.dirs[xd];
        d.seen = true;
        let (pending, elapsed_ns) = match fin {
            Finish::Matched {
                pending,
                elapsed_ns,
            } if !pending.filtered => (pending, elapsed_ns),
            Finish::Matched { .. } => {
                if g.counters {
                    b.filtered += 1;
                }
                return true;
            }
            Finish::TimedOut { .. } => {
                d.timeout += 1;
                return true;
            }
            Finish::Orphan => {
                d.orphan += 1;
                return true;
            }
        };
        let us = elapsed_ns / 1_000;
        let rcode = m.rcode();
        if g.counters {
            d.xacts += 1;
            match ev.l3 {
                L3Kind::Ipv6 => d.ipv6 += 1,
                L3Kind::Ipv4 => d.ipv4 += 1,
                L3Kind::Other => {}
            }
            match ev.l4 {
                L4Kind::Udp => d.udp += 1,
                L4Kind::Tcp => d.tcp += 1,
                L4Kind::Other => {}
            }
            if pending.tag & TAG_CD != 0 {
                d.checking_disabled += 1;
            }
            match rcode {
                0 => {
                    d.noerror += 1;
                    if m.ancount() == 0 {
                        d.nodata += 1;
                    }
                }
                2 => d.srvfail += 1,
                3 => d.nxdomain += 1,
                5 => d.refused += 1,
                _ => {}
            }
            if m.aa() {
                d.authoritative_answer += 1;
            }
            if m.ad() {
                d.authenticated_data += 1;
            }
        }
        if g.quantiles {
            d.rate.add(s, 1);
        }
        if !ev.deep {
            return true;
        }
        if pending.query_size > 0 && g.top_size {
            d.ratio
                .record(m.len() as u64 * 1000 / u64::from(pending.query_size));
        }
        if ev.metric_port != 0 && g.top_ports {
            d.top_ports.insert(ev.metric_port, 1);
        }
        if g.xact_times {
            d.xact_time_us.record(us);
        }
        d.top_rcode.insert(u16::from(rcode), 1);
        if let (Some(q), Some(name)) = (m.question(), ev.qname) {
            // DataSketches ignores empty strings, so pktvisor never counts the root name.
            if g.cardinality && !name.is_empty() {
                d.qname_card.insert_bytes(name);
            }
            d.top_qtype.insert(q.qtype, 1);
            if g.top_rcodes {
                match rcode {
                    2 => d.top_srvfail.insert(name, 1),
                    3 => d.top_nxdomain.insert(name, 1),
                    5 => d.top_refused.insert(name, 1),
                    0 => {
                        d.top_noerror.insert(name, 1);
                        if m.ancount() == 0 {
                            d.top_nodata.insert(name, 1);
                        }
                    }
                    _ => {}
                }
            }
            if g.top_size {
                d.top_response_bytes.insert(name, m.len() as u64);
            }
            if slow > 0 && us >= slow && g.xact_times {
                d.top_slow.insert(name, 1);
            }
            if g.top_qnames {
                let (q2, q3) = wire::dns::aggregate_qname(name, suffix_len);
                d.top_qname2.insert(q2, 1);
                if let Some(q3) = q3 {
                    d.top_qname3.insert(q3, 1);
                }
            }
        }
        // The query's ECS is not stored with the transaction; the reply echoes the option
        // (RFC 7871 §7.2.1), so its address is taken from there.
        if g.top_ecs
            && pending.tag & TAG_ECS != 0
            && let Some(ecs) = m.edns().and_then(|e| e.ecs)
        {
            if g.counters {
                d.ecs += 1;
            }
            d.top_ecs.insert(ecs.addr, 1);
            let mut buf = std::mem::take(&mut geo.buf);
            if let Some(loc) = geo.location(ecs.addr) {
                d.top_geo_loc_ecs.insert(loc, &mut buf);
            }
            geo.buf = buf;
            if let Some(asn) = geo.asn(ecs.addr) {
                d.top_asn_ecs.insert(asn.as_bytes(), 1);
            }
        }
        true
    }

    pub fn export(&self, b: &DnsV2Bucket) -> Export {
        let w = &self.window_config;
        let has = |g: &str| self.group_set.contains(g);
        let mut e = Export::default();
        if has("counters") {
            e.int(
                &["filtered_packets"],
                "Total DNS wire packets seen that did not match the configured filter(s) (if any)",
                b.filtered,
            );
        }
        e.int(
            &["observed_packets"],
            "Total DNS wire packets events",
            b.events,
        );
        e.int(
            &["deep_sampled_packets"],
            "Total DNS wire packets that were sampled for deep inspection",
            b.deep_samples,
        );
        if let Some(v) = sketch::rate(&b.rate_events) {
            e.push(
                &["rates", "observed_pps"],
                "Rate of all DNS wire packets before filtering per second",
                v,
            );
        }
        for (i, d) in b.dirs.iter().enumerate() {
            if !d.seen {
                continue;
            }
            let dir = DIR_NAMES[i];
            let mut int = |path: &'static str, help: &'static str, v: u64| {
                e.push_dir(dir, &[path], help, Value::Int(v));
            };
            if has("counters") {
                int(
                    "xacts",
                    "Total DNS transactions (query/reply pairs)",
                    d.xacts,
                );
                int(
                    "udp_xacts",
                    "Total DNS transactions (query/reply pairs) received over UDP",
                    d.udp,
                );
                int(
                    "tcp_xacts",
                    "Total DNS transactions (query/reply pairs) received over TCP",
                    d.tcp,
                );
                int(
                    "dot_xacts",
                    "Total DNS transactions (query/reply pairs) received over DNS over TLS",
                    0,
                );
                int(
                    "doh_xacts",
                    "Total DNS transactions (query/reply pairs) received over DNS over HTTPS",
                    0,
                );
                int(
                    "dnscrypt_udp_xacts",
                    "Total DNSCrypt transactions (query/reply pairs) received over UDP",
                    0,
                );
                int(
                    "dnscrypt_tcp_xacts",
                    "Total DNSCrypt transactions (query/reply pairs) received over TCP",
                    0,
                );
                int(
                    "doq_xacts",
                    "Total DNS transactions (query/reply pairs) received over DNS over QUIC",
                    0,
                );
                int(
                    "ipv4_xacts",
                    "Total DNS transactions (query/reply pairs) received over IPv4",
                    d.ipv4,
                );
                int(
                    "ipv6_xacts",
                    "Total DNS transactions (query/reply pairs) received over IPv6",
                    d.ipv6,
                );
                int(
                    "nxdomain_xacts",
                    "Total DNS transactions (query/reply pairs) flagged as reply with return code NXDOMAIN",
                    d.nxdomain,
                );
                if has("top_ecs") {
                    int(
                        "ecs_xacts",
                        "Total DNS transactions (query/reply pairs) with the EDNS Client Subnet option set",
                        d.ecs,
                    );
                }
                int(
                    "refused_xacts",
                    "Total DNS transactions (query/reply pairs) flagged as reply with return code REFUSED",
                    d.refused,
                );
                int(
                    "srvfail_xacts",
                    "Total DNS transactions (query/reply pairs) flagged as reply with return code SRVFAIL",
                    d.srvfail,
                );
                int(
                    "noerror_xacts",
                    "Total DNS transactions (query/reply pairs) flagged as reply with return code NOERROR",
                    d.noerror,
                );
                int(
                    "nodata_xacts",
                    "Total DNS transactions (query/reply pairs) flagged as reply with return code NOERROR but with an empty answers section",
                    d.nodata,
                );
                int(
                    "authenticated_data_xacts",
                    "Total DNS transactions (query/reply pairs) with the AD flag set in the response",
                    d.authenticated_data,
                );
                int(
                    "authoritative_answer_xacts",
                    "Total DNS transactions (query/reply pairs) with the AA flag set in the response",
                    d.authoritative_answer,
                );
                int(
                    "checking_disabled_xacts",
                    "Total DNS transactions (query/reply pairs) with the CD flag set in the query",
                    d.checking_disabled,
                );
                int(
                    "timeout_queries",
                    "Total number of DNS queries that timed out",
                    d.timeout,
                );
                int(
                    "orphan_responses",
                    "Total number of DNS responses that do not have a corresponding query",
                    d.orphan,
                );
            }
            if has("cardinality") {
                e.push_dir(
                    dir,
                    &["cardinality", "qname"],
                    "Cardinality of unique QNAMES",
                    Value::Int(d.qname_card.estimate()),
                );
            }
            if has("top_ports") {
                e.push_dir(
                    dir,
                    &["top_udp_ports_xacts"],
                    "Top UDP source port on the query side of a transaction",
                    d.top_ports.export("port", w, |p| p.to_string()),
                );
            }
            if has("top_ecs") {
                e.push_dir(
                    dir,
                    &["top_ecs_xacts"],
                    "Top EDNS Client Subnet (ECS) observed in DNS transactions",
                    d.top_ecs.export("ecs", w),
                );
                e.push_dir(
                    dir,
                    &["top_geo_loc_ecs_xacts"],
                    "Top GeoIP ECS locations in transactions",
                    d.top_geo_loc_ecs.export("geo_loc", w),
                );
                e.push_dir(
                    dir,
                    &["top_asn_ecs_xacts"],
                    "Top ASNs by ECS in transactions",
                    d.top_asn_ecs.export("asn", w),
                );
            }
            if has("top_rcodes") {
                e.push_dir(
                    dir,
                    &["top_nxdomain_xacts"],
                    "Top QNAMES with result code NXDOMAIN in transactions",
                    d.top_nxdomain.export("qname", w),
                );
                e.push_dir(
                    dir,
                    &["top_refused_xacts"],
                    "Top QNAMES with result code REFUSED in transactions",
                    d.top_refused.export("qname", w),
                );
                e.push_dir(
                    dir,
                    &["top_srvfail_xacts"],
                    "Top QNAMES with result code SRVFAIL in transactions",
                    d.top_srvfail.export("qname", w),
                );
                e.push_dir(
                    dir,
                    &["top_nodata_xacts"],
                    "Top QNAMES with result code NOERROR and no answers section in transactions",
                    d.top_nodata.export("qname", w),
                );
                e.push_dir(
                    dir,
                    &["top_noerror_xacts"],
                    "Top QNAMES with result code NOERROR in transactions",
                    d.top_noerror.export("qname", w),
                );
                e.push_dir(
                    dir,
                    &["top_rcode_xacts"],
                    "Top result codes in transactions",
                    d.top_rcode.export("rcode", w, rcode_text),
                );
            }
            if has("top_qnames") {
                e.push_dir(
                    dir,
                    &["top_qname2_xacts"],
                    "Top QNAMES, aggregated at a depth of two labels",
                    d.top_qname2.export("qname", w),
                );
                e.push_dir(
                    dir,
                    &["top_qname3_xacts"],
                    "Top QNAMES, aggregated at a depth of three labels",
                    d.top_qname3.export("qname", w),
                );
            }
            if has("top_size") {
                e.push_dir(
                    dir,
                    &["top_response_bytes"],
                    "Top QNAMES by response volume in bytes",
                    d.top_response_bytes.export("qname", w),
                );
                if let Some(v) = sketch::quantiles_milli(&d.ratio) {
                    e.push_dir(
                        dir,
                        &["response_query_size_ratio"],
                        "Quantiles of ratio of packet sizes in a DNS transaction (reply/query)",
                        v,
                    );
                }
            }
            if has("top_qtypes") {
                e.push_dir(
                    dir,
                    &["top_qtype_xacts"],
                    "Top query types in transactions",
                    d.top_qtype.export("qtype", w, qtype_text),
                );
            }
            if has("xact_times") {
                if let Some(v) = sketch::quantiles(&d.xact_time_us) {
                    e.push_dir(
                        dir,
                        &["xact_time_us"],
                        "Quantiles of transaction timing (query/reply pairs), in microseconds",
                        v,
                    );
                }
                if let Some(v) = sketch::histogram(&d.xact_time_us) {
                    e.push_dir(
                        dir,
                        &["xact_histogram_us"],
                        "Histogram of transaction timing (query/reply pairs), in microseconds",
                        v,
                    );
                }
                e.push_dir(
                    dir,
                    &["top_slow_xacts"],
                    "Top QNAMES in transactions slower than p90",
                    d.top_slow.export("qname", w),
                );
            }
            if has("quantiles")
                && let Some(v) = sketch::rate(&d.rate)
            {
                e.push_dir(
                    dir,
                    &["xact_rates"],
                    "Rate of DNS transactions per second",
                    v,
                );
            }
        }
        e
    }
}
