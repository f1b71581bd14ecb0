//! `dns` version 1 (JSON key `dns`): every DNS message counts as a wire packet; transactions
//! (query → reply matched by flow and DNS id) give latency quantiles, timeouts and slow names.

use std::collections::BTreeSet;

use flow::xact::{Finish, Pending, XactConfig, XactKey, XactTable};
use metrics::cardinality::Cardinality;
use metrics::quantiles::Quantiles;
use metrics::rate::Rate;

use super::{DnsFilters, Verdict, qtype_text, rcode_text};
use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::event::{Direction, DnsEvent, Geo, L3Kind, L4Kind};
use crate::export::Export;
use crate::sketch::{self, TopIp, TopLocations, TopNames, TopU16, sec};
use crate::window::{Bucket, Window};

const GROUPS: [&str; 9] = [
    "cardinality",
    "counters",
    "dns_transaction",
    "histograms",
    "quantiles",
    "top_ecs",
    "top_ports",
    "top_qnames",
    "top_qnames_details",
];
const DEFAULT_GROUPS: [&str; 6] = [
    "cardinality",
    "counters",
    "quantiles",
    "dns_transaction",
    "top_qnames",
    "top_ports",
];

#[derive(Clone, Copy, Debug, Default)]
struct Groups {
    cardinality: bool,
    counters: bool,
    xact: bool,
    histograms: bool,
    quantiles: bool,
    top_ecs: bool,
    top_ports: bool,
    top_qnames: bool,
    details: bool,
}

/// One period of dns v1.
#[derive(Clone, Default)]
pub struct DnsV1Bucket {
    events: u64,
    deep_samples: u64,
    rate_events: Rate,
    rate_total: Rate,
    queries: u64,
    replies: u64,
    tcp: u64,
    udp: u64,
    ipv4: u64,
    ipv6: u64,
    nxdomain: u64,
    refused: u64,
    srvfail: u64,
    noerror: u64,
    nodata: u64,
    total: u64,
    filtered: u64,
    query_ecs: u64,
    qname_card: Cardinality,
    xact_total: u64,
    xact_timed_out: u64,
    xact_in: u64,
    xact_out: u64,
    /// Host was the server (reply leaving the host), µs.
    xact_in_us: Quantiles,
    /// Host was the client (reply arriving at the host), µs.
    xact_out_us: Quantiles,
    /// Reply size / query size, in thousandths.
    xact_ratio: Quantiles,
    slow_in: TopNames,
    slow_out: TopNames,
    top_udp_ports: TopU16,
    top_query_ecs: TopIp,
    top_geo_loc_ecs: TopLocations,
    top_asn_ecs: TopNames,
    top_qname2: TopNames,
    top_qname3: TopNames,
    top_nxdomain: TopNames,
    top_refused: TopNames,
    top_srvfail: TopNames,
    top_nodata: TopNames,
    top_noerror: TopNames,
    top_by_resp_bytes: TopNames,
    top_rcode: TopU16,
    top_qtype: TopU16,
}

impl Bucket for DnsV1Bucket {
    fn merge(&mut self, o: &Self) {
        self.events += o.events;
        self.deep_samples += o.deep_samples;
        self.rate_events.merge(&o.rate_events);
        self.rate_total.merge(&o.rate_total);
        self.queries += o.queries;
        self.replies += o.replies;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.ipv4 += o.ipv4;
        self.ipv6 += o.ipv6;
        self.nxdomain += o.nxdomain;
        self.refused += o.refused;
        self.srvfail += o.srvfail;
        self.noerror += o.noerror;
        self.nodata += o.nodata;
        self.total += o.total;
        self.filtered += o.filtered;
        self.query_ecs += o.query_ecs;
        self.qname_card.merge(&o.qname_card);
        self.xact_total += o.xact_total;
        self.xact_timed_out += o.xact_timed_out;
        self.xact_in += o.xact_in;
        self.xact_out += o.xact_out;
        self.xact_in_us.merge(&o.xact_in_us);
        self.xact_out_us.merge(&o.xact_out_us);
        self.xact_ratio.merge(&o.xact_ratio);
        self.slow_in.merge(&o.slow_in);
        self.slow_out.merge(&o.slow_out);
        self.top_udp_ports.merge(&o.top_udp_ports);
        self.top_query_ecs.merge(&o.top_query_ecs);
        self.top_geo_loc_ecs.merge(&o.top_geo_loc_ecs);
        self.top_asn_ecs.merge(&o.top_asn_ecs);
        self.top_qname2.merge(&o.top_qname2);
        self.top_qname3.merge(&o.top_qname3);
        self.top_nxdomain.merge(&o.top_nxdomain);
        self.top_refused.merge(&o.top_refused);
        self.top_srvfail.merge(&o.top_srvfail);
        self.top_nodata.merge(&o.top_nodata);
        self.top_noerror.merge(&o.top_noerror);
        self.top_by_resp_bytes.merge(&o.top_by_resp_bytes);
        self.top_rcode.merge(&o.top_rcode);
        self.top_qtype.merge(&o.top_qtype);
    }
}

/// The `dns` handler, version 1.
pub struct DnsV1 {
    filters: DnsFilters,
    g: Groups,
    group_set: BTreeSet<&'static str>,
    pub window_config: WindowConfig,
    pub window: Window<DnsV1Bucket>,
    xacts: XactTable,
    /// Slow thresholds (p90 of the previous period), µs; 0 = none yet.
    slow_in_us: u64,
    slow_out_us: u64,
}

impl DnsV1 {
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
            xact: set.contains("dns_transaction"),
            histograms: set.contains("histograms"),
            quantiles: set.contains("quantiles"),
            top_ecs: set.contains("top_ecs"),
            top_ports: set.contains("top_ports"),
            top_qnames: set.contains("top_qnames"),
            details: set.contains("top_qnames_details"),
        };
        let xacts = XactTable::new(XactConfig {
            max_open: max_open_xacts,
            ttl_ns: filters.xact_ttl_ns,
            ..XactConfig::default()
        });
        Ok(Self {
            filters,
            g,
            group_set: set,
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            xacts,
            slow_in_us: 0,
            slow_out_us: 0,
        })
    }

    /// Open transactions (pktvisor's `dns.xact.open`).
    pub fn open_transactions(&self) -> usize {
        self.xacts.open()
    }

    /// Called after the window rotated to a new period at `now_ns`: purges timed-out
    /// transactions into the new period and takes the slow thresholds from the closed one.
    pub fn on_rotate(&mut self, now_ns: u64) {
        let timed_out = self.xacts.purge(now_ns);
        if let Some(prev) = self.window.previous() {
            self.slow_in_us = prev.xact_in_us.quantile(0.90).unwrap_or(0);
            self.slow_out_us = prev.xact_out_us.quantile(0.90).unwrap_or(0);
        }
        self.window.live().xact_timed_out += timed_out;
    }

    /// Processes one DNS message; returns whether it was accepted (for chained handlers).
    pub fn on_dns(&mut self, ev: &DnsEvent<'_>, geo: &mut Geo) -> bool {
        let predicate = self.filters.predicate_rejects(ev);
        if predicate {
            return false;
        }
        let skip_predicates = ev.l4 == L4Kind::Udp;
        // By reference: copying the nine flags costs more than reading the few used.
        let g = &self.g;
        let s = sec(ev.ts_ns);
        let verdict = self.filters.apply(ev, skip_predicates, geo);
        let b = self.window.live();
        b.events += 1;
        b.rate_events.add(s, 1);
        if ev.deep {
            b.deep_samples += 1;
        }
        let Verdict::Keep { suffix_len } = verdict else {
            if g.counters {
                b.filtered += 1;
            }
            return false;
        };
        let m = ev.msg;
        let is_response = m.is_response();
        let rcode = m.rcode();
        b.rate_total.add(s, 1);
        if g.counters {
            b.total += 1;
            match ev.l3 {
                L3Kind::Ipv6 => b.ipv6 += 1,
                L3Kind::Ipv4 => b.ipv4 += 1,
                L3Kind::Other => {}
            }
            match ev.l4 {
                L4Kind::Udp => b.udp += 1,
                L4Kind::Tcp => b.tcp += 1,
                L4Kind::Other => {}
            }
            if is_response {
                b.replies += 1;
                match rcode {
                    0 => {
                        b.noerror += 1;
                        if m.ancount() == 0 {
                            b.nodata += 1;
                        }
                    }
                    2 => b.srvfail += 1,
                    3 => b.nxdomain += 1,
                    5 => b.refused += 1,
                    _ => {}
                }
            } else {
                b.queries += 1;
            }
        }
        if ev.deep {
            if ev.metric_port != 0 && g.top_ports {
                b.top_udp_ports.insert(ev.metric_port, 1);
            }
            if is_response {
                b.top_rcode.insert(u16::from(rcode), 1);
            }
            if let (Some(q), Some(name)) = (m.question(), ev.qname) {
                // DataSketches ignores empty strings, so pktvisor never counts the root name.
                if g.cardinality && !name.is_empty() {
                    b.qname_card.insert_bytes(name);
                }
                b.top_qtype.insert(q.qtype, 1);
                if g.top_qnames {
                    if is_response {
                        match rcode {
                            2 => b.top_srvfail.insert(name, 1),
                            3 => b.top_nxdomain.insert(name, 1),
                            5 => b.top_refused.insert(name, 1),
                            0 => {
                                if g.details {
                                    b.top_noerror.insert(name, 1);
                                }
                                if m.ancount() == 0 {
                                    b.top_nodata.insert(name, 1);
                                }
                            }
                            _ => {}
                        }
                        if g.details {
                            b.top_by_resp_bytes.insert(name, m.len() as u64);
                        }
                    }
                    let (q2, q3) = wire::dns::aggregate_qname(name, suffix_len);
                    b.top_qname2.insert(q2, 1);
                    if let Some(q3) = q3 {
                        b.top_qname3.insert(q3, 1);
                    }
                }
            }
            if g.top_ecs
                && !is_response
                && m.arcount() > 0
                && let Some(ecs) = m.edns().and_then(|e| e.ecs)
            {
                if g.counters {
                    b.query_ecs += 1;
                }
                b.top_query_ecs.insert(ecs.addr, 1);
                let mut buf = std::mem::take(&mut geo.buf);
                if let Some(loc) = geo.location(ecs.addr) {
                    b.top_geo_loc_ecs.insert(loc, &mut buf);
                }
                geo.buf = buf;
                if let Some(asn) = geo.asn(ecs.addr) {
                    b.top_asn_ecs.insert(asn.as_bytes(), 1);
                }
            }
        }
        if g.xact {
            let key = XactKey {
                flow: ev.flow,
                id: m.id(),
            };
            if is_response {
                match self.xacts.finish(key, ev.ts_ns) {
                    Finish::Matched {
                        pending,
                        elapsed_ns,
                    } => {
                        let b = self.window.live();
                        let us = elapsed_ns / 1_000;
                        b.xact_total += 1;
                        let record = g.quantiles || g.histograms;
                        match ev.dir {
                            Direction::ToHost => {
                                b.xact_out += 1;
                                if ev.deep && record {
                                    b.xact_out_us.record(us);
                                }
                            }
                            Direction::FromHost => {
                                b.xact_in += 1;
                                if ev.deep && record {
                                    b.xact_in_us.record(us);
                                }
                            }
                            Direction::Unknown => {}
                        }
                        if ev.deep {
                            if pending.query_size > 0 {
                                b.xact_ratio
                                    .record(m.len() as u64 * 1000 / u64::from(pending.query_size));
                            }
                            if let Some(name) = ev.qname {
                                if ev.dir == Direction::ToHost
                                    && self.slow_out_us > 0
                                    && us >= self.slow_out_us
                                {
                                    b.slow_out.insert(name, 1);
                                } else if ev.dir == Direction::FromHost
                                    && self.slow_in_us > 0
                                    && us >= self.slow_in_us
                                {
                                    b.slow_in.insert(name, 1);
                                }
                            }
                        }
                    }
                    Finish::TimedOut { .. } => self.window.live().xact_timed_out += 1,
                    Finish::Orphan => {}
                }
            } else {
                self.xacts.start(
                    key,
                    Pending {
                        start_ns: ev.ts_ns,
                        query_size: m.len() as u32,
                        filtered: false,
                        tag: 0,
                    },
                );
            }
        }
        true
    }

    pub fn export(&self, b: &DnsV1Bucket) -> Export {
        let w = &self.window_config;
        let has = |g: &str| self.group_set.contains(g);
        let mut e = Export::default();
        if let Some(v) = sketch::rate(&b.rate_total) {
            e.push(
                &["rates", "total"],
                "Rate of all DNS wire packets (combined ingress and egress) in packets per second",
                v,
            );
        }
        if let Some(v) = sketch::rate(&b.rate_events) {
            e.push(
                &["rates", "events"],
                "Rate of all DNS wire events (before filtering) per second",
                v,
            );
        }
        e.int(
            &["wire_packets", "events"],
            "Total DNS wire events (before filtering)",
            b.events,
        );
        e.int(
            &["wire_packets", "deep_samples"],
            "Total DNS wire packets that were sampled for deep inspection",
            b.deep_samples,
        );
        if has("counters") {
            e.int(
                &["wire_packets", "queries"],
                "Total DNS wire packets flagged as query (ingress and egress)",
                b.queries,
            );
            e.int(
                &["wire_packets", "replies"],
                "Total DNS wire packets flagged as reply (ingress and egress)",
                b.replies,
            );
            e.int(
                &["wire_packets", "tcp"],
                "Total DNS wire packets received over TCP (ingress and egress)",
                b.tcp,
            );
            e.int(
                &["wire_packets", "udp"],
                "Total DNS wire packets received over UDP (ingress and egress)",
                b.udp,
            );
            e.int(
                &["wire_packets", "ipv4"],
                "Total DNS wire packets received over IPv4 (ingress and egress)",
                b.ipv4,
            );
            e.int(
                &["wire_packets", "ipv6"],
                "Total DNS wire packets received over IPv6 (ingress and egress)",
                b.ipv6,
            );
            e.int(&["wire_packets", "nxdomain"], "Total DNS wire packets flagged as reply with return code NXDOMAIN (ingress and egress)", b.nxdomain);
            e.int(&["wire_packets", "refused"], "Total DNS wire packets flagged as reply with return code REFUSED (ingress and egress)", b.refused);
            e.int(&["wire_packets", "srvfail"], "Total DNS wire packets flagged as reply with return code SRVFAIL (ingress and egress)", b.srvfail);
            e.int(&["wire_packets", "noerror"], "Total DNS wire packets flagged as reply with return code NOERROR (ingress and egress)", b.noerror);
            e.int(&["wire_packets", "nodata"], "Total DNS wire packets flagged as reply with return code NOERROR but with an empty answers section (ingress and egress)", b.nodata);
            e.int(
                &["wire_packets", "total"],
                "Total DNS wire packets matching the configured filter(s)",
                b.total,
            );
            e.int(
                &["wire_packets", "filtered"],
                "Total DNS wire packets seen that did not match the configured filter(s) (if any)",
                b.filtered,
            );
        }
        if has("cardinality") {
            e.int(
                &["cardinality", "qname"],
                "Cardinality of unique QNAMES, both ingress and egress",
                b.qname_card.estimate(),
            );
        }
        if has("dns_transaction") {
            e.int(
                &["xact", "counts", "total"],
                "Total DNS transactions (query/reply pairs)",
                b.xact_total,
            );
            e.int(
                &["xact", "counts", "timed_out"],
                "Total number of DNS transactions that timed out",
                b.xact_timed_out,
            );
            e.int(
                &["xact", "in", "total"],
                "Total ingress DNS transactions (host is server)",
                b.xact_in,
            );
            e.push(&["xact", "in", "top_slow"], "Top QNAMES in transactions where host is the server and transaction speed is slower than p90", b.slow_in.export("qname", w));
            if has("quantiles") {
                if let Some(v) = sketch::quantiles(&b.xact_in_us) {
                    e.push(&["xact", "in", "quantiles_us"], "Quantiles of transaction timing (query/reply pairs) when host is server, in microseconds", v);
                }
                if let Some(v) = sketch::quantiles(&b.xact_out_us) {
                    e.push(&["xact", "out", "quantiles_us"], "Quantiles of transaction timing (query/reply pairs) when host is client, in microseconds", v);
                }
                if let Some(v) = sketch::quantiles_milli(&b.xact_ratio) {
                    e.push(
                        &["xact", "ratio", "quantiles"],
                        "Quantiles of ratio of packet sizes in a DNS transaction (reply/query)",
                        v,
                    );
                }
            }
            if has("histograms") {
                if let Some(v) = sketch::histogram(&b.xact_in_us) {
                    e.push(&["xact", "in", "histogram_us"], "Histogram of transaction timing (query/reply pairs) when host is server, in microseconds", v);
                }
                if let Some(v) = sketch::histogram(&b.xact_out_us) {
                    e.push(&["xact", "out", "histogram_us"], "Histogram of transaction timing (query/reply pairs) when host is client, in microseconds", v);
                }
            }
            e.int(
                &["xact", "out", "total"],
                "Total egress DNS transactions (host is client)",
                b.xact_out,
            );
            e.push(&["xact", "out", "top_slow"], "Top QNAMES in transactions where host is the client and transaction speed is slower than p90", b.slow_out.export("qname", w));
        }
        if has("top_ports") {
            e.push(
                &["top_udp_ports"],
                "Top UDP source port on the query side of a transaction",
                b.top_udp_ports.export("port", w, |p| p.to_string()),
            );
        }
        if has("top_ecs") {
            if has("counters") {
                e.int(
                    &["wire_packets", "query_ecs"],
                    "Total queries that have EDNS Client Subnet (ECS) field set",
                    b.query_ecs,
                );
            }
            e.push(
                &["top_query_ecs"],
                "Top EDNS Client Subnet (ECS) observed in DNS queries",
                b.top_query_ecs.export("ecs", w),
            );
            e.push(
                &["top_geoLoc_ecs"],
                "Top GeoIP ECS locations",
                b.top_geo_loc_ecs.export("geo_loc", w),
            );
            e.push(
                &["top_asn_ecs"],
                "Top ASNs by ECS",
                b.top_asn_ecs.export("asn", w),
            );
        }
        if has("top_qnames") {
            e.push(
                &["top_qname2"],
                "Top QNAMES, aggregated at a depth of two labels",
                b.top_qname2.export("qname", w),
            );
            e.push(
                &["top_qname3"],
                "Top QNAMES, aggregated at a depth of three labels",
                b.top_qname3.export("qname", w),
            );
            e.push(
                &["top_nxdomain"],
                "Top QNAMES with result code NXDOMAIN",
                b.top_nxdomain.export("qname", w),
            );
            e.push(
                &["top_refused"],
                "Top QNAMES with result code REFUSED",
                b.top_refused.export("qname", w),
            );
            e.push(
                &["top_srvfail"],
                "Top QNAMES with result code SRVFAIL",
                b.top_srvfail.export("qname", w),
            );
            e.push(
                &["top_nodata"],
                "Top QNAMES with result code NOERROR and no answers section",
                b.top_nodata.export("qname", w),
            );
            if has("top_qnames_details") {
                e.push(
                    &["top_qname_by_resp_bytes"],
                    "Top QNAMES by response volume in bytes",
                    b.top_by_resp_bytes.export("qname", w),
                );
                e.push(
                    &["top_noerror"],
                    "Top QNAMES with result code NOERROR",
                    b.top_noerror.export("qname", w),
                );
            }
        }
        e.push(
            &["top_rcode"],
            "Top result codes",
            b.top_rcode.export("rcode", w, rcode_text),
        );
        e.push(
            &["top_qtype"],
            "Top query types",
            b.top_qtype.export("qtype", w, qtype_text),
        );
        e
    }
}
