//! pktvisor's `flow` handler: flow records from sFlow and NetFlow/IPFIX exports summarized per
//! exporting device and interface (pktvisor's JSON layout: `flow.devices.<device>.interfaces.
//! <ifIndex>...`), plus exporter health (templates, data sets without a template, sequence
//! gaps, undecodable datagrams).
//!
//! The handler decodes the export datagrams itself ([`decode`]), keeping the template cache of
//! its worker; it never sees captured packets. Pure: no I/O, no clock. Devices and interfaces
//! per device are capped; what does not fit is counted, not kept.

pub mod decode;
pub mod top;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use metrics::cardinality::Cardinality;
use metrics::hash::{hash_bytes, hash_u64};
use wire::netflow::{FlowL3, FlowRecord};

use crate::config::{ConfigError, ConfigMap, WindowConfig, resolve_groups};
use crate::event::{Cidr, parse_cidr};
use crate::export::{Export, Metric, Name, TopItem, Value};
use crate::window::{Bucket, Window};

pub use decode::{FlowDecoder, FlowInput};
use top::DualTop;

/// pktvisor's flow metric groups.
pub const GROUPS: [&str; 11] = [
    "by_bytes",
    "by_packets",
    "cardinality",
    "conversations",
    "counters",
    "top_geo",
    "top_interfaces",
    "top_ips",
    "top_ips_ports",
    "top_ports",
    "top_tos",
];

const DEFAULT_GROUPS: [&str; 7] = [
    "counters",
    "cardinality",
    "top_ips",
    "top_ports",
    "top_ips_ports",
    "by_bytes",
    "by_packets",
];

/// pktvisor's flow configuration keys, then wirelens' bounds.
const KEYS: [&str; 18] = [
    "device_map",
    "enrichment",
    "only_device_interfaces",
    "only_ips",
    "only_ports",
    "only_directions",
    "geoloc_notfound",
    "asn_notfound",
    "summarize_ips_by_asn",
    "subnets_for_summarization",
    "exclude_asns_from_summarization",
    "exclude_unknown_asns_from_summarization",
    "exclude_ips_from_summarization",
    "sample_rate_scaling",
    "recorded_stream",
    "max_devices",
    "max_interfaces",
    "max_templates",
];

/// Keys pktvisor accepts that this handler does not implement yet: refused with a clear
/// message rather than silently ignored.
const UNSUPPORTED: [&str; 9] = [
    "device_map",
    "only_device_interfaces",
    "geoloc_notfound",
    "asn_notfound",
    "summarize_ips_by_asn",
    "subnets_for_summarization",
    "exclude_asns_from_summarization",
    "exclude_unknown_asns_from_summarization",
    "exclude_ips_from_summarization",
];

/// Which groups are on, as plain flags for the record path.
#[derive(Clone, Copy, Debug, Default)]
struct Groups {
    bytes: bool,
    packets: bool,
    cardinality: bool,
    conversations: bool,
    counters: bool,
    top_interfaces: bool,
    top_ips: bool,
    top_ips_ports: bool,
    top_ports: bool,
    top_tos: bool,
}

/// Record filters (pktvisor's `only_*`).
#[derive(Clone, Debug, Default)]
struct Filters {
    ips: Vec<Cidr>,
    ports: Vec<(u16, u16)>,
    /// Count the input side / the output side.
    dir_in: bool,
    dir_out: bool,
}

impl Filters {
    fn rejects(&self, r: &FlowRecord) -> bool {
        if !self.ips.is_empty()
            && !self
                .ips
                .iter()
                .any(|c| c.contains(r.src) || c.contains(r.dst))
        {
            return true;
        }
        if !self.ports.is_empty()
            && !self.ports.iter().any(|(lo, hi)| {
                (*lo..=*hi).contains(&r.src_port) || (*lo..=*hi).contains(&r.dst_port)
            })
        {
            return true;
        }
        false
    }
}

const IN: usize = 0;
const OUT: usize = 1;
const BYTES: usize = 0;
const PACKETS: usize = 1;

/// Counter slots per direction and measure.
const C_UDP: usize = 0;
const C_TCP: usize = 1;
const C_OTHER: usize = 2;
const C_V4: usize = 3;
const C_V6: usize = 4;
const C_ALL: usize = 5;

/// An address and port as one fixed key (IPv4 as its mapped IPv6 form).
type IpPort = [u8; 18];
/// Two `IpPort`s, lexicographically ordered (one conversation whichever way it is seen).
type Conversation = [u8; 36];

fn ip_port(ip: IpAddr, port: u16) -> IpPort {
    let mut k = [0u8; 18];
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    k[..16].copy_from_slice(&v6.octets());
    k[16..].copy_from_slice(&port.to_be_bytes());
    k
}

/// `a <= b` as byte strings, without the `memcmp` call the array comparison makes: the
/// address and the port are big-endian, so as numbers they compare as their bytes do.
#[inline]
fn ip_port_le(a: &IpPort, b: &IpPort) -> bool {
    let n = |k: &IpPort| {
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&k[..16]);
        (
            u128::from_be_bytes(addr),
            u16::from_be_bytes([k[16], k[17]]),
        )
    };
    n(a) <= n(b)
}

fn render_ip_port(k: &IpPort) -> String {
    let mut a = [0u8; 16];
    a.copy_from_slice(&k[..16]);
    let v6 = std::net::Ipv6Addr::from(a);
    let port = u16::from_be_bytes([k[16], k[17]]);
    match v6.to_ipv4_mapped() {
        Some(v4) => format!("{v4}:{port}"),
        None => format!("{v6}:{port}"),
    }
}

/// Keys tracked by each per-interface top-N sketch. Smaller than the sketch default: a record
/// updates two dozen of these, and small tables stay in cache (estimates are within
/// W/(TOP_CAPACITY/4) of the truth, W the sketch's total weight: 0.8 %; see [`top`]).
const TOP_CAPACITY: usize = 512;

/// A fast, fixed-seed hasher for the device and interface tables (keys are addresses and
/// interface numbers; the tables are capped, so collisions cannot grow them).
type Fixed = foldhash::fast::FixedState;

/// Sketches of one interface side, by bytes and by packets at once.
#[derive(Clone)]
struct SideTops {
    src_ips: DualTop<IpAddr>,
    dst_ips: DualTop<IpAddr>,
    src_ports: DualTop<u16>,
    dst_ports: DualTop<u16>,
    src_ip_ports: DualTop<IpPort>,
    dst_ip_ports: DualTop<IpPort>,
    /// `[measure]`: DSCP (64 values) and ECN (4 values), counted exactly.
    dscp: [Vec<u64>; 2],
    ecn: [[u64; 4]; 2],
}

impl Default for SideTops {
    fn default() -> Self {
        Self {
            src_ips: DualTop::with_capacity(TOP_CAPACITY),
            dst_ips: DualTop::with_capacity(TOP_CAPACITY),
            src_ports: DualTop::with_capacity(TOP_CAPACITY),
            dst_ports: DualTop::with_capacity(TOP_CAPACITY),
            src_ip_ports: DualTop::with_capacity(TOP_CAPACITY),
            dst_ip_ports: DualTop::with_capacity(TOP_CAPACITY),
            dscp: [Vec::new(), Vec::new()],
            ecn: [[0; 4]; 2],
        }
    }
}

impl SideTops {
    fn merge(&mut self, o: &Self) {
        self.src_ips.merge(&o.src_ips);
        self.dst_ips.merge(&o.dst_ips);
        self.src_ports.merge(&o.src_ports);
        self.dst_ports.merge(&o.dst_ports);
        self.src_ip_ports.merge(&o.src_ip_ports);
        self.dst_ip_ports.merge(&o.dst_ip_ports);
        for m in 0..2 {
            let (a, b) = (&mut self.dscp[m], &o.dscp[m]);
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x = x.saturating_add(*y);
            }
            for (x, y) in self.ecn[m].iter_mut().zip(&o.ecn[m]) {
                *x = x.saturating_add(*y);
            }
        }
    }
}

/// One interface of one device.
#[derive(Clone)]
struct Interface {
    /// `[direction][measure][slot]`.
    counts: [[[u64; 6]; 2]; 2],
    conversations: Cardinality,
    src_ips_in: Cardinality,
    dst_ips_out: Cardinality,
    src_ports_in: Cardinality,
    dst_ports_out: Cardinality,
    /// `[direction]`.
    tops: [SideTops; 2],
    top_conversations: DualTop<Conversation>,
}

impl Default for Interface {
    fn default() -> Self {
        Self {
            counts: [[[0; 6]; 2]; 2],
            conversations: Cardinality::default(),
            src_ips_in: Cardinality::default(),
            dst_ips_out: Cardinality::default(),
            src_ports_in: Cardinality::default(),
            dst_ports_out: Cardinality::default(),
            tops: Default::default(),
            top_conversations: DualTop::with_capacity(TOP_CAPACITY),
        }
    }
}

impl Interface {
    /// Asks for what a record with keys `k` will touch on side `dir` (see [`Lookahead`]):
    /// the table words and append places of the top-N sketches, and the cardinality
    /// registers.
    fn prefetch_slots(&self, dir: usize, k: &Keys) {
        if let Some(t) = self.tops.get(dir) {
            t.src_ips.prefetch_slot(k.src_h);
            t.dst_ips.prefetch_slot(k.dst_h);
            t.src_ports.prefetch_slot(k.src_port_h);
            t.dst_ports.prefetch_slot(k.dst_port_h);
            t.src_ip_ports.prefetch_slot(k.src_ip_port_h);
            t.dst_ip_ports.prefetch_slot(k.dst_ip_port_h);
        }
        self.src_ips_in.prefetch(k.src_h);
        self.dst_ips_out.prefetch(k.dst_h);
        self.src_ports_in.prefetch(k.src_port_h);
        self.dst_ports_out.prefetch(k.dst_port_h);
        if let Some((_, h)) = &k.conv {
            self.top_conversations.prefetch_slot(*h);
            self.conversations.prefetch(*h);
        }
    }

    fn merge(&mut self, o: &Self) {
        for d in 0..2 {
            for m in 0..2 {
                for s in 0..6 {
                    self.counts[d][m][s] = self.counts[d][m][s].saturating_add(o.counts[d][m][s]);
                }
            }
            self.tops[d].merge(&o.tops[d]);
        }
        self.conversations.merge(&o.conversations);
        self.src_ips_in.merge(&o.src_ips_in);
        self.dst_ips_out.merge(&o.dst_ips_out);
        self.src_ports_in.merge(&o.src_ports_in);
        self.dst_ports_out.merge(&o.dst_ports_out);
        self.top_conversations.merge(&o.top_conversations);
    }
}

/// One exporting device (NetFlow: the exporter address; sFlow: the agent address).
#[derive(Clone)]
struct Device {
    records_flows: u64,
    records_filtered: u64,
    /// Export datagrams decoded from this device.
    datagrams: u64,
    /// Templates the device had defined when last seen (a gauge; merged as the maximum).
    templates: u64,
    /// Data sets skipped because their template was not (yet) known.
    missing_templates: u64,
    /// Templates the device withdrew (IPFIX).
    template_withdrawals: u64,
    /// Export units lost, from sequence numbers: datagrams (sFlow, NetFlow v9) or flow
    /// records (NetFlow v5/v7, IPFIX).
    sequence_lost: u64,
    /// Templates, records or samples that could not be decoded.
    malformed: u64,
    /// `[direction]`: interfaces by traffic.
    top_interfaces: [DualTop<u32>; 2],
    /// Interfaces in the order they were first seen, with their ifIndex.
    interfaces: Vec<(u32, Box<Interface>)>,
    /// Position + 1 in `interfaces` of ifIndex `i` for `i < DIRECT_IFINDEX` (0: not seen):
    /// the usual small ifIndex values found without hashing.
    direct: Vec<u32>,
    /// Position in `interfaces` of the larger ifIndex values.
    far: HashMap<u32, u32, Fixed>,
}

/// ifIndex values below this are looked up in a plain array (4 bytes each, grown to the
/// largest seen); larger ones in a hash map.
const DIRECT_IFINDEX: u32 = 4096;

impl Device {
    /// Position in `interfaces` of ifIndex `idx`.
    #[inline]
    fn slot(&self, idx: u32) -> Option<usize> {
        if idx < DIRECT_IFINDEX {
            match self.direct.get(idx as usize) {
                Some(&p) if p != 0 => Some(p as usize - 1),
                _ => None,
            }
        } else {
            self.far.get(&idx).map(|&p| p as usize)
        }
    }

    /// Adds interface `idx` (not present yet); returns its position.
    fn add_interface(&mut self, idx: u32, i: Box<Interface>) -> usize {
        let pos = self.interfaces.len();
        if idx < DIRECT_IFINDEX {
            let at = idx as usize;
            if self.direct.len() <= at {
                self.direct.resize(at + 1, 0);
            }
            if let Some(p) = self.direct.get_mut(at) {
                *p = pos as u32 + 1;
            }
        } else {
            self.far.insert(idx, pos as u32);
        }
        self.interfaces.push((idx, i));
        pos
    }
}

impl Default for Device {
    fn default() -> Self {
        Self {
            records_flows: 0,
            records_filtered: 0,
            datagrams: 0,
            templates: 0,
            missing_templates: 0,
            template_withdrawals: 0,
            sequence_lost: 0,
            malformed: 0,
            // Interfaces are few: the sketch default is plenty and exact in practice.
            top_interfaces: [
                DualTop::with_capacity(metrics::topn::DEFAULT_CAPACITY),
                DualTop::with_capacity(metrics::topn::DEFAULT_CAPACITY),
            ],
            interfaces: Vec::new(),
            direct: Vec::new(),
            far: HashMap::default(),
        }
    }
}

/// One period of flow summaries.
#[derive(Clone, Default)]
pub struct FlowBucket {
    /// Devices in the order they were first seen, with their address.
    devices: Vec<(IpAddr, Box<Device>)>,
    /// Position in `devices` of each address.
    device_index: HashMap<IpAddr, u32, Fixed>,
    /// The device of the last record and its position: a datagram's records all come from
    /// one device, so most records skip the hash lookup.
    last_device: Option<(IpAddr, u32)>,
    /// Datagrams that were not a decodable export at all (pktvisor's `packet_errors`).
    pub packet_errors: u64,
    /// Datagrams a live tap dropped before decoding: its socket's receive queue or a worker
    /// queue was full (the `pcap` handler's `os_drops`, for flow taps).
    pub os_drops: u64,
    /// Records of devices beyond `max_devices`.
    pub devices_refused: u64,
    /// Records of interfaces beyond `max_interfaces` on their device.
    pub interfaces_refused: u64,
}

impl Bucket for FlowBucket {
    fn merge(&mut self, o: &Self) {
        self.packet_errors += o.packet_errors;
        self.os_drops += o.os_drops;
        self.devices_refused += o.devices_refused;
        self.interfaces_refused += o.interfaces_refused;
        for (ip, od) in &o.devices {
            let d = self.device_or_default(*ip);
            d.records_flows += od.records_flows;
            d.records_filtered += od.records_filtered;
            d.datagrams += od.datagrams;
            d.templates = d.templates.max(od.templates);
            d.missing_templates += od.missing_templates;
            d.template_withdrawals += od.template_withdrawals;
            d.sequence_lost = d.sequence_lost.saturating_add(od.sequence_lost);
            d.malformed += od.malformed;
            for dir in 0..2 {
                d.top_interfaces[dir].merge(&od.top_interfaces[dir]);
            }
            for (idx, oi) in &od.interfaces {
                match d.slot(*idx) {
                    Some(p) => d.interfaces[p].1.merge(oi),
                    None => {
                        d.add_interface(*idx, oi.clone());
                    }
                }
            }
        }
    }
}

impl FlowBucket {
    /// Position of device `ip` in `devices`.
    #[inline]
    fn device_pos(&self, ip: IpAddr) -> Option<usize> {
        match self.last_device {
            Some((last, p)) if last == ip => Some(p as usize),
            _ => self.device_index.get(&ip).map(|&p| p as usize),
        }
    }

    /// Adds device `ip` (not present yet); returns its position.
    fn add_device(&mut self, ip: IpAddr) -> usize {
        let pos = self.devices.len();
        self.devices.push((ip, Box::default()));
        self.device_index.insert(ip, pos as u32);
        pos
    }

    /// Device `ip`, created (whatever the cap) if absent.
    fn device_or_default(&mut self, ip: IpAddr) -> &mut Device {
        let pos = match self.device_pos(ip) {
            Some(p) => p,
            None => self.add_device(ip),
        };
        &mut self.devices[pos].1
    }
}

/// Bounds of the handler's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLimits {
    pub max_devices: usize,
    pub max_interfaces: usize,
    pub max_templates: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        Self {
            max_devices: 1024,
            max_interfaces: 1024,
            max_templates: 65_536,
        }
    }
}

/// The `flow` handler.
pub struct FlowHandler {
    groups: Groups,
    filters: Filters,
    scaling: bool,
    limits: FlowLimits,
    pub window_config: WindowConfig,
    pub window: Window<FlowBucket>,
    decoder: FlowDecoder,
    /// Decoded records not yet counted (empty between datagrams).
    lookahead: Lookahead,
}

impl FlowHandler {
    pub const SCHEMA: &'static str = "flow";

    /// Builds the handler from its configuration, with pktvisor's messages.
    pub fn new(
        cfg: &ConfigMap,
        window_config: WindowConfig,
        enable: &[String],
        disable: &[String],
    ) -> Result<Self, ConfigError> {
        cfg.validate_keys(&KEYS)?;
        for k in UNSUPPORTED {
            if cfg.contains(k) {
                return Err(ConfigError(format!(
                    "FlowHandler: '{k}' is not supported by this version"
                )));
            }
        }
        let set: BTreeSet<&'static str> =
            resolve_groups(&GROUPS, &DEFAULT_GROUPS, enable, disable)?;
        if set.contains("top_geo") {
            return Err(ConfigError(
                "FlowHandler: metric group 'top_geo' is not supported by this version".into(),
            ));
        }
        let groups = Groups {
            bytes: set.contains("by_bytes"),
            packets: set.contains("by_packets"),
            cardinality: set.contains("cardinality"),
            conversations: set.contains("conversations"),
            counters: set.contains("counters"),
            top_interfaces: set.contains("top_interfaces"),
            top_ips: set.contains("top_ips"),
            top_ips_ports: set.contains("top_ips_ports"),
            top_ports: set.contains("top_ports"),
            top_tos: set.contains("top_tos"),
        };
        let mut filters = Filters {
            dir_in: true,
            dir_out: true,
            ..Filters::default()
        };
        if let Some(list) = cfg.string_list("only_ips")? {
            for s in list {
                filters.ips.push(
                    parse_cidr(&s)
                        .map_err(|e| ConfigError(format!("FlowHandler: only_ips: {e}")))?,
                );
            }
        }
        if let Some(list) = cfg.string_list("only_ports")? {
            for s in list {
                filters.ports.push(parse_port_range(&s)?);
            }
        }
        if let Some(list) = cfg.string_list("only_directions")? {
            filters.dir_in = false;
            filters.dir_out = false;
            for s in list {
                match s.as_str() {
                    "in" => filters.dir_in = true,
                    "out" => filters.dir_out = true,
                    other => {
                        return Err(ConfigError(format!(
                            "FlowHandler: only_directions: invalid direction '{other}' (in or out)"
                        )));
                    }
                }
            }
        }
        let scaling = match cfg.get("sample_rate_scaling") {
            None => true,
            Some(_) => cfg.bool("sample_rate_scaling")?,
        };
        let defaults = FlowLimits::default();
        let limit = |k: &str, d: usize| -> Result<usize, ConfigError> {
            Ok(cfg.uint(k)?.map_or(d, |n| n.clamp(1, 1 << 24) as usize))
        };
        let limits = FlowLimits {
            max_devices: limit("max_devices", defaults.max_devices)?,
            max_interfaces: limit("max_interfaces", defaults.max_interfaces)?,
            max_templates: limit("max_templates", defaults.max_templates)?,
        };
        Ok(Self {
            groups,
            filters,
            scaling,
            limits,
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
            decoder: FlowDecoder::new(limits.max_templates),
            lookahead: Lookahead::default(),
        })
    }

    /// Decodes one export datagram sent by `exporter` and counts its records.
    pub fn on_datagram(&mut self, input: FlowInput, exporter: IpAddr, payload: &[u8]) {
        let Self {
            decoder,
            window,
            groups,
            filters,
            scaling,
            limits,
            lookahead,
            ..
        } = self;
        let bucket = window.live();
        let c = Counting {
            g: *groups,
            filters,
            scaling: *scaling,
            limits: *limits,
        };
        decoder.decode(input, exporter, payload, &mut |ev| match ev {
            decode::Event::Record(device, r) => lookahead.push(bucket, c, device, r),
            decode::Event::Health(device, h) => {
                lookahead.drain(bucket, c);
                if let Some(d) = device_mut(bucket, limits.max_devices, device) {
                    d.datagrams += h.datagrams;
                    d.missing_templates += h.missing_templates;
                    d.template_withdrawals += h.template_withdrawals;
                    d.sequence_lost = d.sequence_lost.saturating_add(h.sequence_lost);
                    d.malformed += h.malformed;
                    if let Some(t) = h.templates {
                        d.templates = t;
                    }
                }
            }
            decode::Event::Undecodable => bucket.packet_errors += 1,
        });
        lookahead.drain(bucket, c);
    }

    /// Exports one (merged) bucket in pktvisor's layout.
    pub fn export(&self, b: &FlowBucket) -> Export {
        let g = self.groups;
        let w = &self.window_config;
        let mut e = Export::default();
        let measures: Vec<usize> = [(BYTES, g.bytes), (PACKETS, g.packets)]
            .into_iter()
            .filter_map(|(m, on)| on.then_some(m))
            .collect();
        let dirs: Vec<usize> = [(IN, self.filters.dir_in), (OUT, self.filters.dir_out)]
            .into_iter()
            .filter_map(|(d, on)| on.then_some(d))
            .collect();
        e.int(
            &["packet_errors"],
            "Export datagrams that could not be decoded",
            b.packet_errors,
        );
        e.int(
            &["os_drops"],
            "Export datagrams dropped before decoding (socket receive queue or worker queue full)",
            b.os_drops,
        );
        if b.devices_refused > 0 || b.interfaces_refused > 0 {
            e.int(
                &["devices_refused"],
                "Flow records of devices beyond max_devices",
                b.devices_refused,
            );
            e.int(
                &["interfaces_refused"],
                "Flow records of interfaces beyond max_interfaces",
                b.interfaces_refused,
            );
        }
        let mut devices: Vec<&(IpAddr, Box<Device>)> = b.devices.iter().collect();
        devices.sort_by_key(|(ip, _)| *ip);
        for (ip, d) in devices {
            // Names from the traffic are owned by the export: nothing outlives it.
            let dev = Name::Owned(ip.to_string());
            let dev_labels = vec![("device", dev.clone())];
            let dev_metric = |e: &mut Export, name: &'static str, help, value| {
                e.metrics.push(Metric {
                    json_path: vec![Name::Borrowed("devices"), dev.clone(), Name::Borrowed(name)],
                    prom_name: name.to_string(),
                    help,
                    labels: dev_labels.clone(),
                    schema_override: None,
                    value,
                });
            };
            if g.counters {
                dev_metric(
                    &mut e,
                    "records_flows",
                    "Total flow records",
                    Value::Int(d.records_flows),
                );
                dev_metric(
                    &mut e,
                    "records_filtered",
                    "Flow records that did not pass the filters",
                    Value::Int(d.records_filtered),
                );
                for (name, help, v) in [
                    (
                        "exporter_datagrams",
                        "Export datagrams decoded from the device",
                        d.datagrams,
                    ),
                    (
                        "exporter_templates",
                        "Templates the device has defined",
                        d.templates,
                    ),
                    (
                        "exporter_missing_templates",
                        "Data sets skipped because their template was unknown",
                        d.missing_templates,
                    ),
                    (
                        "exporter_template_withdrawals",
                        "Templates the device withdrew (IPFIX)",
                        d.template_withdrawals,
                    ),
                    (
                        "exporter_sequence_lost",
                        "Export units lost by sequence number (datagrams for sFlow and NetFlow v9, records for NetFlow v5/v7 and IPFIX)",
                        d.sequence_lost,
                    ),
                    (
                        "exporter_malformed",
                        "Templates, records or samples that could not be decoded",
                        d.malformed,
                    ),
                ] {
                    dev_metric(&mut e, name, help, Value::Int(v));
                }
            }
            if g.top_interfaces {
                for &dir in &dirs {
                    for &m in &measures {
                        let name = TOP_IF_NAMES[dir][m];
                        let items = top_items(&d.top_interfaces[dir], m, w, |k| k.to_string());
                        dev_metric(
                            &mut e,
                            name,
                            "Top interfaces",
                            Value::Top {
                                label: "interface",
                                items,
                            },
                        );
                    }
                }
            }
            let mut ifaces: Vec<&(u32, Box<Interface>)> = d.interfaces.iter().collect();
            ifaces.sort_by_key(|(k, _)| *k);
            for (idx, i) in ifaces {
                let ifname = Name::Owned(idx.to_string());
                let labels = vec![("device_interface", Name::Owned(format!("{dev}|{ifname}")))];
                let put = |e: &mut Export, path: &[&'static str], help, value| {
                    let mut json_path = vec![
                        Name::Borrowed("devices"),
                        dev.clone(),
                        Name::Borrowed("interfaces"),
                        ifname.clone(),
                    ];
                    json_path.extend(path.iter().map(|s| Name::Borrowed(s)));
                    e.metrics.push(Metric {
                        json_path,
                        prom_name: path.join("_"),
                        help,
                        labels: labels.clone(),
                        schema_override: None,
                        value,
                    });
                };
                if g.cardinality {
                    for (name, c, help) in [
                        ("conversations", &i.conversations, "Distinct conversations"),
                        ("src_ips_in", &i.src_ips_in, "Distinct source addresses in"),
                        (
                            "dst_ips_out",
                            &i.dst_ips_out,
                            "Distinct destination addresses out",
                        ),
                        ("src_ports_in", &i.src_ports_in, "Distinct source ports in"),
                        (
                            "dst_ports_out",
                            &i.dst_ports_out,
                            "Distinct destination ports out",
                        ),
                    ] {
                        put(
                            &mut e,
                            &["cardinality", name],
                            help,
                            Value::Int(c.estimate()),
                        );
                    }
                }
                for &dir in &dirs {
                    for &m in &measures {
                        if g.counters {
                            for (slot, name) in COUNTER_NAMES[dir][m].iter().enumerate() {
                                put(
                                    &mut e,
                                    &[name],
                                    "Flow traffic by interface side",
                                    Value::Int(i.counts[dir][m][slot]),
                                );
                            }
                        }
                        let t = &i.tops[dir];
                        let n = &TOP_NAMES[dir][m];
                        if g.top_ips {
                            put(
                                &mut e,
                                &[n[0]],
                                "Top source addresses",
                                top_value("ip", &t.src_ips, m, w, IpAddr::to_string),
                            );
                            put(
                                &mut e,
                                &[n[1]],
                                "Top destination addresses",
                                top_value("ip", &t.dst_ips, m, w, IpAddr::to_string),
                            );
                        }
                        if g.top_ports {
                            put(
                                &mut e,
                                &[n[2]],
                                "Top source ports",
                                top_value("port", &t.src_ports, m, w, |p| p.to_string()),
                            );
                            put(
                                &mut e,
                                &[n[3]],
                                "Top destination ports",
                                top_value("port", &t.dst_ports, m, w, |p| p.to_string()),
                            );
                        }
                        if g.top_ips_ports {
                            put(
                                &mut e,
                                &[n[4]],
                                "Top source address and port",
                                top_value("ip_port", &t.src_ip_ports, m, w, render_ip_port),
                            );
                            put(
                                &mut e,
                                &[n[5]],
                                "Top destination address and port",
                                top_value("ip_port", &t.dst_ip_ports, m, w, render_ip_port),
                            );
                        }
                        if g.top_tos {
                            put(
                                &mut e,
                                &[n[6]],
                                "Top DSCP",
                                small_top("dscp", &t.dscp[m], w, dscp_name),
                            );
                            put(
                                &mut e,
                                &[n[7]],
                                "Top ECN",
                                small_top("ecn", &t.ecn[m], w, ecn_name),
                            );
                        }
                    }
                }
                if g.conversations {
                    for &m in &measures {
                        put(
                            &mut e,
                            &[CONVERSATION_NAMES[m]],
                            "Top conversations",
                            top_value("conversation", &i.top_conversations, m, w, |k| {
                                let mut a = [0u8; 18];
                                let mut b = [0u8; 18];
                                a.copy_from_slice(&k[..18]);
                                b.copy_from_slice(&k[18..]);
                                format!("{}/{}", render_ip_port(&a), render_ip_port(&b))
                            }),
                        );
                    }
                }
            }
        }
        e
    }
}

const TOP_IF_NAMES: [[&str; 2]; 2] = [
    ["top_in_interfaces_bytes", "top_in_interfaces_packets"],
    ["top_out_interfaces_bytes", "top_out_interfaces_packets"],
];

const CONVERSATION_NAMES: [&str; 2] = ["top_conversations_bytes", "top_conversations_packets"];

/// `<dir>_udp_<m>`, `<dir>_tcp_<m>`, `<dir>_other_l4_<m>`, `<dir>_ipv4_<m>`, `<dir>_ipv6_<m>`,
/// `<dir>_<m>`, in counter-slot order.
const COUNTER_NAMES: [[[&str; 6]; 2]; 2] = [
    [
        [
            "in_udp_bytes",
            "in_tcp_bytes",
            "in_other_l4_bytes",
            "in_ipv4_bytes",
            "in_ipv6_bytes",
            "in_bytes",
        ],
        [
            "in_udp_packets",
            "in_tcp_packets",
            "in_other_l4_packets",
            "in_ipv4_packets",
            "in_ipv6_packets",
            "in_packets",
        ],
    ],
    [
        [
            "out_udp_bytes",
            "out_tcp_bytes",
            "out_other_l4_bytes",
            "out_ipv4_bytes",
            "out_ipv6_bytes",
            "out_bytes",
        ],
        [
            "out_udp_packets",
            "out_tcp_packets",
            "out_other_l4_packets",
            "out_ipv4_packets",
            "out_ipv6_packets",
            "out_packets",
        ],
    ],
];

/// Top-N names per direction and measure: src ips, dst ips, src ports, dst ports, src ip:port,
/// dst ip:port, dscp, ecn.
const TOP_NAMES: [[[&str; 8]; 2]; 2] = [
    [
        [
            "top_in_src_ips_bytes",
            "top_in_dst_ips_bytes",
            "top_in_src_ports_bytes",
            "top_in_dst_ports_bytes",
            "top_in_src_ip_ports_bytes",
            "top_in_dst_ip_ports_bytes",
            "top_in_dscp_bytes",
            "top_in_ecn_bytes",
        ],
        [
            "top_in_src_ips_packets",
            "top_in_dst_ips_packets",
            "top_in_src_ports_packets",
            "top_in_dst_ports_packets",
            "top_in_src_ip_ports_packets",
            "top_in_dst_ip_ports_packets",
            "top_in_dscp_packets",
            "top_in_ecn_packets",
        ],
    ],
    [
        [
            "top_out_src_ips_bytes",
            "top_out_dst_ips_bytes",
            "top_out_src_ports_bytes",
            "top_out_dst_ports_bytes",
            "top_out_src_ip_ports_bytes",
            "top_out_dst_ip_ports_bytes",
            "top_out_dscp_bytes",
            "top_out_ecn_bytes",
        ],
        [
            "top_out_src_ips_packets",
            "top_out_dst_ips_packets",
            "top_out_src_ports_packets",
            "top_out_dst_ports_packets",
            "top_out_src_ip_ports_packets",
            "top_out_dst_ip_ports_packets",
            "top_out_dscp_packets",
            "top_out_ecn_packets",
        ],
    ],
];

fn parse_port_range(s: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || {
        ConfigError(format!(
            "FlowHandler: only_ports: invalid port or range '{s}'"
        ))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        ),
        None => {
            let p: u16 = s.trim().parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The device's state, created if the cap allows.
fn device_mut(b: &mut FlowBucket, max: usize, ip: IpAddr) -> Option<&mut Device> {
    let pos = match b.device_pos(ip) {
        Some(p) => p,
        None if b.devices.len() >= max => {
            b.devices_refused += 1;
            return None;
        }
        None => b.add_device(ip),
    };
    b.last_device = Some((ip, pos as u32));
    b.devices.get_mut(pos).map(|(_, d)| &mut **d)
}

/// A record's keys and their hashes, computed once per record for every sketch keyed on
/// them (both interface sides, both measures, top-N and cardinality alike). The hashes are
/// the sketches' own (`hash_bytes` of the address bytes, `hash_u64` of a port), so
/// cardinalities are what per-sketch hashing gave.
#[derive(Clone, Copy, Default)]
struct Keys {
    /// Address keys are set when the record has a layer 3.
    src_h: u64,
    dst_h: u64,
    src_port_h: u64,
    dst_port_h: u64,
    src_ip_port: IpPort,
    dst_ip_port: IpPort,
    src_ip_port_h: u64,
    dst_ip_port_h: u64,
    conv: Option<(Conversation, u64)>,
}

impl Keys {
    // Inlined, and built from locals at the end, so the keys are not copied out of a frame.
    #[inline(always)]
    fn of(r: &FlowRecord, g: Groups) -> Self {
        let l3 = r.l3 != FlowL3::None;
        let tops = g.bytes || g.packets;
        let has_ports = r.src_port != 0 || r.dst_port != 0;
        let (mut src_h, mut dst_h, mut src_ip_port_h, mut dst_ip_port_h) = (0, 0, 0, 0);
        let (mut src_ip_port, mut dst_ip_port) = (IpPort::default(), IpPort::default());
        let mut conv = None;
        if l3 && (g.cardinality || g.top_ips_ports || g.conversations || (g.top_ips && tops)) {
            src_ip_port = ip_port(r.src, r.src_port);
            dst_ip_port = ip_port(r.dst, r.dst_port);
            if g.cardinality || (tops && (g.top_ips || g.top_ips_ports)) {
                src_h = hash_bytes(src_ip_port.get(..16).unwrap_or_default());
                dst_h = hash_bytes(dst_ip_port.get(..16).unwrap_or_default());
            }
            if g.top_ips_ports && tops {
                // Only the top-N tables use these (their layout, never their results):
                // the address hash and the port, mixed, instead of hashing 18 bytes again.
                src_ip_port_h = mix_port(src_h, r.src_port);
                dst_ip_port_h = mix_port(dst_h, r.dst_port);
            }
            if g.cardinality || g.conversations {
                let (lo, hi) = if ip_port_le(&src_ip_port, &dst_ip_port) {
                    (&src_ip_port, &dst_ip_port)
                } else {
                    (&dst_ip_port, &src_ip_port)
                };
                let mut c = [0u8; 36];
                c[..18].copy_from_slice(lo);
                c[18..].copy_from_slice(hi);
                conv = Some((c, hash_bytes(&c)));
            }
        }
        let (src_port_h, dst_port_h) = if g.cardinality || (g.top_ports && tops && has_ports) {
            (
                hash_u64(u64::from(r.src_port)),
                hash_u64(u64::from(r.dst_port)),
            )
        } else {
            (0, 0)
        };
        Keys {
            src_h,
            dst_h,
            src_port_h,
            dst_port_h,
            src_ip_port,
            dst_ip_port,
            src_ip_port_h,
            dst_ip_port_h,
            conv,
        }
    }
}

/// A well-mixed hash of (address, port) from the address's hash: one folded multiply.
#[inline]
fn mix_port(ip_h: u64, port: u16) -> u64 {
    let x = ip_h ^ u64::from(port).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let m = u128::from(x) * u128::from(0xD6E8_FEB8_6659_FD93u64);
    (m as u64) ^ ((m >> 64) as u64)
}

/// The interface sides of record `r`: `(direction, counted, ifIndex)`.
#[inline]
fn sides(r: &FlowRecord, filters: &Filters) -> [(usize, bool, u32); 2] {
    [
        (IN, filters.dir_in, r.in_if),
        (OUT, filters.dir_out, r.out_if),
    ]
}

/// A record between its decoding and its counting. A record updates two dozen sketches
/// spread over tens of megabytes (with many interfaces), a cache miss or two each: done one
/// after another, the misses cost about as much as the counting. So a decoded record waits
/// until the next one is decoded, and meanwhile asks for what it will touch: the top-N
/// table words and append places and the cardinality registers
/// ([`Interface::prefetch_slots`]). Its misses then overlap with the counting of the record
/// before it. (A second step a record later, the top-N entries the cached table words
/// point to, measured no faster: most keys of a busy interface are new to it.)
///
/// Only the timing changes: records are counted by the same code, in the order they were
/// decoded, and the waiting record is counted before anything else the decoder reports and
/// at the end of every datagram, so the state after a datagram is exactly what counting
/// each record at once gives. Prefetches are hints: a sketch that changed in between (a
/// purge, a new interface) at worst makes one useless.
#[derive(Default)]
struct Lookahead {
    /// The record being taken and the one waiting (in place: a record with its keys is a
    /// few hundred bytes, and each copy of it was a `memcpy` call per record).
    slots: [Pending; 2],
    /// The slot the next record is written to; the other holds the waiting record if any.
    next: usize,
    waiting: bool,
}

/// A decoded record waiting to be counted, with its keys.
#[derive(Clone, Copy)]
struct Pending {
    device: IpAddr,
    record: FlowRecord,
    keys: Keys,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            device: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            record: FlowRecord::default(),
            keys: Keys::default(),
        }
    }
}

/// What [`on_record`] needs besides the bucket and the record.
#[derive(Clone, Copy)]
struct Counting<'a> {
    g: Groups,
    filters: &'a Filters,
    scaling: bool,
    limits: FlowLimits,
}

impl Lookahead {
    /// Takes a decoded record: asks for what it will touch, counts the waiting one, and
    /// leaves this one waiting.
    #[inline]
    fn push(&mut self, b: &mut FlowBucket, c: Counting<'_>, device: IpAddr, r: &FlowRecord) {
        let (this, other) = (self.next & 1, !self.next & 1);
        if let Some(p) = self.slots.get_mut(this) {
            p.device = device;
            p.record = *r;
            p.keys = Keys::of(r, c.g);
        }
        if let Some(p) = self.slots.get(this) {
            prefetch_slots(b, c.filters, p);
        }
        if self.waiting
            && let Some(p) = self.slots.get(other)
        {
            on_record(b, c, p.device, &p.record, &p.keys);
        }
        self.waiting = true;
        self.next = other;
    }

    /// Counts the waiting record, if any.
    #[inline]
    fn drain(&mut self, b: &mut FlowBucket, c: Counting<'_>) {
        if self.waiting
            && let Some(p) = self.slots.get(!self.next & 1)
        {
            on_record(b, c, p.device, &p.record, &p.keys);
        }
        self.waiting = false;
    }
}

/// Asks for what a waiting record will touch on both interface sides (nothing where its
/// device or an interface does not exist yet).
#[inline]
fn prefetch_slots(b: &FlowBucket, filters: &Filters, p: &Pending) {
    let Some((_, d)) = b.device_pos(p.device).and_then(|i| b.devices.get(i)) else {
        return;
    };
    for (dir, on, idx) in sides(&p.record, filters) {
        if on && let Some((_, i)) = d.slot(idx).and_then(|s| d.interfaces.get(s)) {
            i.prefetch_slots(dir, &p.keys);
        }
    }
}

/// Counts one flow record of `device`.
fn on_record(b: &mut FlowBucket, c: Counting<'_>, device: IpAddr, r: &FlowRecord, keys: &Keys) {
    let Counting {
        g,
        filters,
        scaling,
        limits,
    } = c;
    let Some(d) = device_mut(b, limits.max_devices, device) else {
        return;
    };
    if filters.rejects(r) {
        d.records_filtered += 1;
        return;
    }
    d.records_flows += 1;
    let scale = if scaling {
        u64::from(r.sampling_rate.max(1))
    } else {
        1
    };
    let weights = [
        r.bytes.saturating_mul(scale),
        r.packets.saturating_mul(scale),
    ];
    let mut refused = 0;
    for (dir, on, idx) in sides(r, filters) {
        if !on {
            continue;
        }
        if g.top_interfaces {
            d.top_interfaces[dir].insert(&idx, hash_u64(u64::from(idx)), weights);
        }
        let pos = match d.slot(idx) {
            Some(p) => p,
            None if d.interfaces.len() >= limits.max_interfaces => {
                refused += 1;
                continue;
            }
            None => d.add_interface(idx, Box::default()),
        };
        let Some((_, iface)) = d.interfaces.get_mut(pos) else {
            continue;
        };
        // Cardinalities once per interface: a record whose input and output interface are
        // the same touches it once.
        let first = dir == IN || !filters.dir_in || r.in_if != r.out_if;
        account(iface, g, dir, r, weights, first, keys);
    }
    b.interfaces_refused += refused;
}

/// Counts a record on one side of one interface.
// Measure indices address the weights, the flags and the tables at once.
#[allow(clippy::needless_range_loop)]
fn account(
    i: &mut Interface,
    g: Groups,
    dir: usize,
    r: &FlowRecord,
    w: [u64; 2],
    dir_first: bool,
    k: &Keys,
) {
    let l4 = match r.proto {
        17 => C_UDP,
        6 => C_TCP,
        _ => C_OTHER,
    };
    let l3 = match r.l3 {
        FlowL3::Ipv4 => Some(C_V4),
        FlowL3::Ipv6 => Some(C_V6),
        FlowL3::None => None,
    };
    let has_ports = r.src_port != 0 || r.dst_port != 0;
    for (c, w) in i.counts[dir].iter_mut().zip(w) {
        // Exporters can send any 64-bit count: totals saturate instead of wrapping.
        c[C_ALL] = c[C_ALL].saturating_add(w);
        c[l4] = c[l4].saturating_add(w);
        if let Some(l3) = l3 {
            c[l3] = c[l3].saturating_add(w);
        }
    }
    // pktvisor counts every address and port of a record on each interface it touches,
    // whichever side (so an input interface also knows the destinations it led to).
    if g.cardinality && dir_first {
        if r.l3 != FlowL3::None {
            i.src_ips_in.insert_hash(k.src_h);
            i.dst_ips_out.insert_hash(k.dst_h);
        }
        if r.src_port != 0 {
            i.src_ports_in.insert_hash(k.src_port_h);
        }
        if r.dst_port != 0 {
            i.dst_ports_out.insert_hash(k.dst_port_h);
        }
        if let Some((_, h)) = &k.conv {
            i.conversations.insert_hash(*h);
        }
    }
    // Disabled measures get no weight, so their sketches stay empty.
    let wt = [
        if g.bytes { w[BYTES] } else { 0 },
        if g.packets { w[PACKETS] } else { 0 },
    ];
    if wt == [0, 0] {
        return;
    }
    let t = &mut i.tops[dir];
    if r.l3 != FlowL3::None {
        if g.top_ips {
            t.src_ips.insert(&r.src, k.src_h, wt);
            t.dst_ips.insert(&r.dst, k.dst_h, wt);
        }
        if g.top_ips_ports {
            t.src_ip_ports.insert(&k.src_ip_port, k.src_ip_port_h, wt);
            t.dst_ip_ports.insert(&k.dst_ip_port, k.dst_ip_port_h, wt);
        }
    }
    if g.top_ports && has_ports {
        t.src_ports.insert(&r.src_port, k.src_port_h, wt);
        t.dst_ports.insert(&r.dst_port, k.dst_port_h, wt);
    }
    if g.top_tos {
        for m in 0..2 {
            let on = if m == BYTES { g.bytes } else { g.packets };
            if !on {
                continue;
            }
            let dscp = &mut t.dscp[m];
            if dscp.is_empty() {
                dscp.resize(64, 0);
            }
            if let Some(x) = dscp.get_mut(usize::from(r.tos >> 2)) {
                *x = x.saturating_add(w[m]);
            }
            let e = &mut t.ecn[m][usize::from(r.tos & 3)];
            *e = e.saturating_add(w[m]);
        }
    }
    if g.conversations
        && let Some((c, h)) = &k.conv
    {
        i.top_conversations.insert(c, *h, wt);
    }
}

/// A top-N list of measure `m` of a sketch, names rendered by `render`, pktvisor's
/// percentile cut applied.
fn top_value<K: Copy + Eq + Ord>(
    label: &'static str,
    t: &DualTop<K>,
    m: usize,
    w: &WindowConfig,
    render: impl Fn(&K) -> String,
) -> Value {
    Value::Top {
        label,
        items: top_items(t, m, w, render),
    }
}

fn top_items<K: Copy + Eq + Ord>(
    t: &DualTop<K>,
    m: usize,
    w: &WindowConfig,
    render: impl Fn(&K) -> String,
) -> Vec<TopItem> {
    let items: Vec<(String, u64)> = t
        .top(m, w.topn_count)
        .into_iter()
        .map(|(k, v)| (render(&k), v))
        .collect();
    cut(items, w)
}

/// A top-N list of a small exact table.
fn small_top(
    label: &'static str,
    counts: &[u64],
    w: &WindowConfig,
    name: fn(usize) -> String,
) -> Value {
    let mut items: Vec<(usize, u64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(k, c)| (k, *c))
        .collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    items.truncate(w.topn_count);
    Value::Top {
        label,
        items: cut(items.into_iter().map(|(k, v)| (name(k), v)).collect(), w),
    }
}

/// pktvisor's percentile threshold over printed estimates.
fn cut(mut items: Vec<(String, u64)>, w: &WindowConfig) -> Vec<TopItem> {
    if w.topn_percentile_threshold > 0 && !items.is_empty() {
        let mut est: Vec<u64> = items.iter().map(|(_, v)| *v).collect();
        est.sort_unstable();
        let rank = f64::from(w.topn_percentile_threshold) / 100.0;
        let idx = ((rank * est.len() as f64).ceil() as usize).clamp(1, est.len()) - 1;
        let cutoff = est[idx];
        if let Some(pos) = items.iter().position(|(_, v)| *v < cutoff) {
            items.truncate(pos);
        }
    }
    items
        .into_iter()
        .map(|(name, estimate)| TopItem {
            name,
            estimate,
            extra: Vec::new(),
        })
        .collect()
}

/// pktvisor's DSCP names (RFC 2474 / 4594 code points), numbers otherwise.
fn dscp_name(v: usize) -> String {
    let n = match v {
        0 => "CS0",
        8 => "CS1",
        16 => "CS2",
        24 => "CS3",
        32 => "CS4",
        40 => "CS5",
        48 => "CS6",
        56 => "CS7",
        10 => "AF11",
        12 => "AF12",
        14 => "AF13",
        18 => "AF21",
        20 => "AF22",
        22 => "AF23",
        26 => "AF31",
        28 => "AF32",
        30 => "AF33",
        34 => "AF41",
        36 => "AF42",
        38 => "AF43",
        44 => "VOICE-ADMIT",
        46 => "EF",
        1 => "LE",
        _ => return v.to_string(),
    };
    n.to_string()
}

/// pktvisor's ECN names (RFC 3168).
fn ecn_name(v: usize) -> String {
    match v {
        0 => "Not-ECT",
        1 => "ECT(1)",
        2 => "ECT(0)",
        _ => "CE",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Value;

    fn handler(cfg: &ConfigMap, enable: &[&str]) -> FlowHandler {
        let enable: Vec<String> = enable.iter().map(|s| s.to_string()).collect();
        FlowHandler::new(cfg, WindowConfig::default(), &enable, &[]).unwrap()
    }

    fn get<'e>(e: &'e Export, path: &[&str]) -> Option<&'e Value> {
        e.metrics
            .iter()
            .find(|m| m.json_path.as_slice() == path)
            .map(|m| &m.value)
    }

    fn int(e: &Export, path: &[&str]) -> u64 {
        match get(e, path) {
            Some(Value::Int(n)) => *n,
            other => panic!("{path:?}: {other:?}"),
        }
    }

    /// A v5 datagram from the decoder tests' shape: `n` TCP records 10.0.0.1:1234 ->
    /// 10.0.0.2:80, in 3 / out 4, record i has i+1 packets and 100(i+1) bytes.
    fn v5(n: u16, seq: u32, sampling: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&5u16.to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&sampling.to_be_bytes());
        for i in 0..n {
            let mut r = [0u8; 48];
            r[0..4].copy_from_slice(&[10, 0, 0, 1]);
            r[4..8].copy_from_slice(&[10, 0, 0, 2]);
            r[12..14].copy_from_slice(&3u16.to_be_bytes());
            r[14..16].copy_from_slice(&4u16.to_be_bytes());
            r[16..20].copy_from_slice(&(u32::from(i) + 1).to_be_bytes());
            r[20..24].copy_from_slice(&(100 * (u32::from(i) + 1)).to_be_bytes());
            r[32..34].copy_from_slice(&1234u16.to_be_bytes());
            r[34..36].copy_from_slice(&80u16.to_be_bytes());
            r[38] = 6;
            r[39] = 48 << 2;
            b.extend_from_slice(&r);
        }
        b
    }

    proptest::proptest! {
        #[test]
        fn ip_port_order_is_the_byte_order(
            a in proptest::array::uniform18(proptest::prelude::any::<u8>()),
            b in proptest::array::uniform18(proptest::prelude::any::<u8>()),
            same_addr in proptest::prelude::any::<bool>(),
        ) {
            // Equal addresses (ports decide) are rare in random arrays: make them half the cases.
            let mut b = b;
            if same_addr {
                b[..16].copy_from_slice(&a[..16]);
            }
            proptest::prop_assert_eq!(ip_port_le(&a, &b), a <= b);
            proptest::prop_assert_eq!(ip_port_le(&b, &a), b <= a);
            proptest::prop_assert!(ip_port_le(&a, &a));
        }
    }

    #[test]
    fn counts_both_interface_sides_and_scales_by_sampling() {
        let mut h = handler(&ConfigMap::new(), &["top_tos", "conversations"]);
        let exp: IpAddr = "192.0.2.9".parse().unwrap();
        h.on_datagram(FlowInput::Netflow, exp, &v5(2, 0, 0));
        // Sequence 5 instead of 2: three records lost. Sampling 1 in 10.
        h.on_datagram(FlowInput::Netflow, exp, &v5(1, 5, 10));
        h.on_datagram(FlowInput::Netflow, exp, b"junk");
        let e = h.export(h.window.get(0).unwrap());
        let d = "192.0.2.9";
        assert_eq!(int(&e, &["devices", d, "records_flows"]), 3);
        assert_eq!(int(&e, &["devices", d, "exporter_sequence_lost"]), 3);
        assert_eq!(int(&e, &["devices", d, "exporter_datagrams"]), 2);
        assert_eq!(int(&e, &["packet_errors"]), 1);
        // 1 + 2 packets unsampled, then 1 packet at 1:10.
        assert_eq!(
            int(&e, &["devices", d, "interfaces", "3", "in_packets"]),
            13
        );
        assert_eq!(
            int(&e, &["devices", d, "interfaces", "3", "in_tcp_bytes"]),
            1300
        );
        assert_eq!(
            int(&e, &["devices", d, "interfaces", "4", "out_ipv4_packets"]),
            13
        );
        assert_eq!(
            int(
                &e,
                &["devices", d, "interfaces", "3", "cardinality", "src_ips_in"]
            ),
            1
        );
        assert_eq!(
            int(
                &e,
                &[
                    "devices",
                    d,
                    "interfaces",
                    "3",
                    "cardinality",
                    "conversations"
                ]
            ),
            1
        );
        let Some(Value::Top { items, .. }) =
            get(&e, &["devices", d, "interfaces", "3", "top_in_dscp_bytes"])
        else {
            panic!("dscp top missing");
        };
        assert_eq!((items[0].name.as_str(), items[0].estimate), ("CS6", 1300));
        let Some(Value::Top { items, .. }) = get(
            &e,
            &[
                "devices",
                d,
                "interfaces",
                "4",
                "top_out_dst_ip_ports_packets",
            ],
        ) else {
            panic!("ip:port top missing");
        };
        assert_eq!(
            (items[0].name.as_str(), items[0].estimate),
            ("10.0.0.2:80", 13)
        );
        let Some(Value::Top { items, .. }) = get(
            &e,
            &["devices", d, "interfaces", "3", "top_conversations_bytes"],
        ) else {
            panic!("conversations missing");
        };
        assert_eq!(items[0].name, "10.0.0.1:1234/10.0.0.2:80");
    }

    #[test]
    fn filters_caps_and_config_errors() {
        let mut cfg = ConfigMap::new();
        cfg.set(
            "only_ports",
            crate::config::ConfigValue::List(vec![crate::config::ConfigValue::Str(
                "8000-9000".into(),
            )]),
        );
        cfg.set("max_devices", crate::config::ConfigValue::Int(1));
        let mut h = handler(&cfg, &[]);
        h.on_datagram(
            FlowInput::Netflow,
            "192.0.2.1".parse().unwrap(),
            &v5(2, 0, 0),
        );
        h.on_datagram(
            FlowInput::Netflow,
            "192.0.2.2".parse().unwrap(),
            &v5(2, 0, 0),
        );
        let b = h.window.get(0).unwrap();
        let e = h.export(b);
        assert_eq!(int(&e, &["devices", "192.0.2.1", "records_filtered"]), 2);
        assert_eq!(int(&e, &["devices", "192.0.2.1", "records_flows"]), 0);
        assert!(b.devices_refused > 0);
        assert!(get(&e, &["devices", "192.0.2.2", "records_flows"]).is_none());

        let mut bad = ConfigMap::new();
        bad.set("device_map", crate::config::ConfigValue::Bool(true));
        let err = FlowHandler::new(&bad, WindowConfig::default(), &[], &[])
            .err()
            .unwrap();
        assert_eq!(
            err.0,
            "FlowHandler: 'device_map' is not supported by this version"
        );
        let mut bad = ConfigMap::new();
        bad.set("bogus", crate::config::ConfigValue::Bool(true));
        assert!(FlowHandler::new(&bad, WindowConfig::default(), &[], &[]).is_err());
    }

    /// Device and interface names come from the traffic: the export owns them (they are freed
    /// with it), so a long-running agent seeing ever new exporters keeps no name forever.
    #[test]
    fn traffic_names_are_owned_by_the_export() {
        let mut h = handler(&ConfigMap::new(), &[]);
        for i in 0..50u8 {
            let exp = IpAddr::from([198, 51, 100, i]);
            h.on_datagram(FlowInput::Netflow, exp, &v5(1, 0, 0));
        }
        let e = h.export(h.window.get(0).unwrap());
        let mut devices = BTreeSet::new();
        for m in e.metrics.iter().filter(|m| m.json_path[0] == "devices") {
            assert!(
                matches!(m.json_path[1], Name::Owned(_)),
                "{:?}",
                m.json_path
            );
            devices.insert(m.json_path[1].to_string());
            if m.json_path.get(2).is_some_and(|p| p == "interfaces") {
                assert!(matches!(m.json_path[3], Name::Owned(_)));
                let (k, v) = &m.labels[0];
                assert_eq!(*k, "device_interface");
                assert!(matches!(v, Name::Owned(_)));
                assert_eq!(v.as_ref(), format!("{}|{}", m.json_path[1], m.json_path[3]));
            } else {
                assert!(matches!(&m.labels[0], ("device", Name::Owned(_))));
            }
        }
        assert_eq!(devices.len(), 50);
        assert!(devices.contains("198.51.100.49"));
    }

    #[test]
    fn merge_adds_workers() {
        let mut a = handler(&ConfigMap::new(), &[]);
        let mut b = handler(&ConfigMap::new(), &[]);
        a.on_datagram(
            FlowInput::Netflow,
            "192.0.2.1".parse().unwrap(),
            &v5(1, 0, 0),
        );
        b.on_datagram(
            FlowInput::Netflow,
            "192.0.2.1".parse().unwrap(),
            &v5(2, 0, 0),
        );
        a.window.merge(&b.window);
        let e = a.export(a.window.get(0).unwrap());
        assert_eq!(int(&e, &["devices", "192.0.2.1", "records_flows"]), 3);
        assert_eq!(
            int(&e, &["devices", "192.0.2.1", "interfaces", "3", "in_bytes"]),
            400
        );
    }
}
