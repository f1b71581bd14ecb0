//! pktvisor's `dns` handler, versions 1 (message-centric) and 2 (transaction-centric), and the
//! filters both share.

pub mod v1;
pub mod v2;

use crate::config::{ConfigError, ConfigMap, ConfigValue};
use crate::event::{DnsEvent, Geo, L4Kind};

/// Config and filter keys of the dns handlers, in pktvisor's order.
pub const DNS_KEYS: [&str; 16] = [
    "exclude_noerror",
    "only_rcode",
    "only_dnssec_response",
    "answer_count",
    "only_qtype",
    "only_qname",
    "only_qname_suffix",
    "geoloc_notfound",
    "asn_notfound",
    "dnstap_msg_type",
    "public_suffix_list",
    "only_queries",
    "only_responses",
    "recorded_stream",
    "xact_ttl_secs",
    "xact_ttl_ms",
];

const DNSTAP_TYPES: [&str; 7] = [
    "auth",
    "client",
    "forwarder",
    "resolver",
    "stub",
    "tool",
    "update",
];
const NOERROR: u8 = 0;

/// The resolved filters of a dns handler, applied in pktvisor's order.
#[derive(Clone, Debug, Default)]
pub struct DnsFilters {
    exclude_rcodes: Vec<u8>,
    only_rcodes: Vec<u8>,
    answer_count: Option<u16>,
    only_queries: bool,
    only_responses: bool,
    only_dnssec_response: bool,
    only_qtypes: Vec<u16>,
    only_qnames: Vec<Vec<u8>>,
    only_qname_suffixes: Vec<Vec<u8>>,
    /// geoloc_notfound / asn_notfound: keep only queries whose ECS subnet has no known location
    /// / ASN; without the database every message is filtered, as in pktvisor.
    geoloc_notfound: bool,
    asn_notfound: bool,
    /// `dnstap_msg_type`: only dnstap messages of this role pair (pcap events are unaffected).
    dnstap_family: Option<wire::dnstap::Family>,
    /// Public-suffix aggregation of qname2/qname3.
    pub public_suffix_list: bool,
    /// Transaction timeout.
    pub xact_ttl_ns: u64,
    /// No filter at all is configured (the usual case): every message is kept with no static
    /// suffix, decided with one test instead of a dozen.
    none: bool,
}

/// Outcome of the filters for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Process it; `suffix_len` is the static suffix for qname aggregation (0 = none).
    Keep { suffix_len: usize },
    /// Count it as filtered.
    Filter,
}

fn rcode_known(code: u64) -> bool {
    code <= 11
}

impl DnsFilters {
    pub fn resolve(cfg: &ConfigMap) -> Result<Self, ConfigError> {
        cfg.validate_keys(&DNS_KEYS)?;
        let mut f = DnsFilters {
            xact_ttl_ns: 5_000_000_000,
            ..Default::default()
        };
        if cfg.bool("exclude_noerror")? {
            f.exclude_rcodes.push(NOERROR);
        } else if let Some(v) = cfg.get("only_rcode") {
            match v {
                ConfigValue::Int(code) => {
                    if !rcode_known(*code) {
                        return Err(ConfigError(
                            "DnsStreamHandler: only_rcode filter contained an invalid/unsupported rcode".into(),
                        ));
                    }
                    f.only_rcodes.push(*code as u8);
                }
                ConfigValue::List(_) => {
                    for rcode in cfg.string_list("only_rcode")?.unwrap_or_default() {
                        if !rcode.is_empty() && rcode.bytes().all(|b| b.is_ascii_digit()) {
                            let value: u64 = rcode.parse().unwrap_or(u64::MAX);
                            if !rcode_known(value) {
                                return Err(ConfigError(format!(
                                    "DnsStreamHandler: only_rcode filter contained an invalid/unsupported rcode: {value}"
                                )));
                            }
                            f.only_rcodes.push(value as u8);
                        } else {
                            match wire::dns::rcode_from_name(&rcode) {
                                Some(v) if v <= 11 => f.only_rcodes.push(v as u8),
                                _ => {
                                    return Err(ConfigError(format!(
                                        "DnsStreamHandler: only_rcode filter contained an invalid/unsupported rcode: {rcode}"
                                    )))
                                }
                            }
                        }
                    }
                }
                _ => {
                    return Err(ConfigError(
                        "DnsStreamHandler: wrong value type for only_rcode filter. It should be an integer or an array".into(),
                    ))
                }
            }
        }
        f.only_queries = cfg.bool("only_queries")?;
        f.only_responses = cfg.bool("only_responses")?;
        f.only_dnssec_response = cfg.bool("only_dnssec_response")?;
        if let Some(v) = cfg.get("answer_count") {
            match v {
                ConfigValue::Int(n) => f.answer_count = Some((*n).min(u64::from(u16::MAX)) as u16),
                _ => {
                    return Err(ConfigError(
                        "DnsStreamHandler: wrong value type for answer_count filter. It should be an integer".into(),
                    ))
                }
            }
        }
        if let Some(list) = cfg.string_list("only_qtype")? {
            for qtype in list {
                if !qtype.is_empty() && qtype.bytes().all(|b| b.is_ascii_digit()) {
                    let value: u64 = qtype.parse().unwrap_or(u64::MAX);
                    match u16::try_from(value)
                        .ok()
                        .filter(|v| wire::dns::qtype_name(*v).is_some())
                    {
                        Some(v) => f.only_qtypes.push(v),
                        None => {
                            return Err(ConfigError(format!(
                                "DnsStreamHandler: only_qtype filter contained an invalid/unsupported qtype: {value}"
                            )));
                        }
                    }
                } else {
                    match wire::dns::qtype_from_name(&qtype) {
                        Some(v) => f.only_qtypes.push(v),
                        None => {
                            return Err(ConfigError(format!(
                                "DnsStreamHandler: only_qtype filter contained an invalid/unsupported qtype: {qtype}"
                            )));
                        }
                    }
                }
            }
        }
        if let Some(list) = cfg.string_list("only_qname")? {
            f.only_qnames = list.iter().map(|s| normalise_name(s)).collect();
        }
        if let Some(list) = cfg.string_list("only_qname_suffix")? {
            f.only_qname_suffixes = list
                .iter()
                .map(|s| s.to_ascii_lowercase().into_bytes())
                .collect();
        }
        f.geoloc_notfound = cfg.bool("geoloc_notfound")?;
        f.asn_notfound = cfg.bool("asn_notfound")?;
        if let Some(v) = cfg.get("dnstap_msg_type") {
            let t = v.scalar_string().unwrap_or_default();
            match wire::dnstap::Family::from_name(&t) {
                Some(family) if DNSTAP_TYPES.contains(&t.as_str()) => {
                    f.dnstap_family = Some(family);
                }
                _ => {
                    return Err(ConfigError(format!(
                        "DnsStreamHandler: dnstap_msg_type contained an invalid/unsupported type. Valid types: {}",
                        DNSTAP_TYPES.join(", ")
                    )));
                }
            }
        }
        f.public_suffix_list = cfg.bool("public_suffix_list")?;
        if let Some(ms) = cfg.uint("xact_ttl_ms")? {
            f.xact_ttl_ns = ms.saturating_mul(1_000_000);
        } else if let Some(s) = cfg.uint("xact_ttl_secs")? {
            f.xact_ttl_ns = s.saturating_mul(1_000_000_000);
        }
        f.none = f.exclude_rcodes.is_empty()
            && f.only_rcodes.is_empty()
            && f.answer_count.is_none()
            && !f.only_queries
            && !f.only_responses
            && !f.only_dnssec_response
            && f.only_qtypes.is_empty()
            && f.only_qnames.is_empty()
            && f.only_qname_suffixes.is_empty()
            && !f.geoloc_notfound
            && !f.asn_notfound
            && f.dnstap_family.is_none()
            && !f.public_suffix_list;
        Ok(f)
    }

    /// `geoloc_notfound` / `asn_notfound`: only queries carrying ECS whose subnet is not in the
    /// database pass (`queries_only`: v1 also rejects replies here; v2 calls this for queries).
    fn rejects_geo(&self, ev: &DnsEvent<'_>, geo: &mut Geo, queries_only: bool) -> bool {
        if !self.geoloc_notfound && !self.asn_notfound {
            return false;
        }
        let m = ev.msg;
        if (queries_only && m.is_response()) || m.arcount() == 0 {
            return true;
        }
        let Some(ecs) = m.edns().and_then(|e| e.ecs) else {
            return true;
        };
        if self.geoloc_notfound
            && geo
                .location(ecs.addr)
                .is_none_or(|l| l.location != geo::UNKNOWN)
        {
            return true;
        }
        if self.asn_notfound && geo.asn(ecs.addr) != Some(geo::UNKNOWN) {
            return true;
        }
        false
    }

    /// `dnstap_msg_type`: a dnstap message of another role pair is filtered.
    fn rejects_dnstap_type(&self, ev: &DnsEvent<'_>) -> bool {
        match (self.dnstap_family, ev.dnstap) {
            (Some(want), Some(got)) => want != got,
            _ => false,
        }
    }

    /// pktvisor v1 delivers UDP messages to an `only_rcode` / `only_qname` handler through a
    /// predicate: non-matching UDP messages never reach the handler (no event, no `filtered`).
    pub fn predicate_rejects(&self, ev: &DnsEvent<'_>) -> bool {
        if self.none || ev.l4 != L4Kind::Udp {
            return false;
        }
        if !self.only_rcodes.is_empty() {
            return !ev.msg.is_response() || !self.only_rcodes.contains(&ev.msg.rcode());
        }
        if !self.only_qnames.is_empty() {
            return match ev.qname {
                Some(q) => !self.only_qnames.iter().any(|n| n == q),
                None => true,
            };
        }
        false
    }

    /// Applies the filters in pktvisor's order. `skip_predicates` is set when the predicate path
    /// already applied `only_rcode`/`only_qname`.
    pub fn apply(&self, ev: &DnsEvent<'_>, skip_predicates: bool, geo: &mut Geo) -> Verdict {
        // Every test below passes when nothing is configured.
        if self.none {
            return Verdict::Keep { suffix_len: 0 };
        }
        if self.rejects_dnstap_type(ev) {
            return Verdict::Filter;
        }
        let m = ev.msg;
        if !self.exclude_rcodes.is_empty() && self.exclude_rcodes.contains(&m.rcode()) {
            return Verdict::Filter;
        }
        if !skip_predicates
            && !self.only_rcodes.is_empty()
            && !self.only_rcodes.contains(&m.rcode())
        {
            return Verdict::Filter;
        }
        if let Some(n) = self.answer_count
            && m.ancount() != n
        {
            return Verdict::Filter;
        }
        if self.only_queries && m.is_response() {
            return Verdict::Filter;
        }
        if self.only_responses && !m.is_response() {
            return Verdict::Filter;
        }
        if self.only_dnssec_response
            && (!m.is_response() || m.ancount() == 0 || !m.has_rrsig_answer())
        {
            return Verdict::Filter;
        }
        if !self.only_qtypes.is_empty() {
            match m.question() {
                Some(q) if self.only_qtypes.contains(&q.qtype) => {}
                _ => return Verdict::Filter,
            }
        }
        if !skip_predicates && !self.only_qnames.is_empty() {
            match ev.qname {
                Some(q) if self.only_qnames.iter().any(|n| n == q) => {}
                _ => return Verdict::Filter,
            }
        }
        let mut suffix_len = 0;
        if !self.only_qname_suffixes.is_empty() {
            let Some(q) = ev.qname else {
                return Verdict::Filter;
            };
            match self.only_qname_suffixes.iter().find(|s| q.ends_with(s)) {
                Some(s) => suffix_len = s.len(),
                None => return Verdict::Filter,
            }
        }
        if self.rejects_geo(ev, geo, true) {
            return Verdict::Filter;
        }
        if self.public_suffix_list
            && self.only_qname_suffixes.is_empty()
            && let Some(q) = ev.qname
        {
            suffix_len = wire::dns::PublicSuffixList::builtin().suffix_len(q);
        }
        Verdict::Keep { suffix_len }
    }
}

impl DnsFilters {
    /// dns v2 applies response-side filters (rcode, answer count, DNSSEC, qtype) to replies and
    /// query-side filters (qname, qname suffix, geo) to queries; a reply whose query was
    /// filtered is filtered through its transaction instead.
    pub fn apply_v2(&self, ev: &DnsEvent<'_>, geo: &mut Geo) -> Verdict {
        if self.rejects_dnstap_type(ev) {
            return Verdict::Filter;
        }
        let m = ev.msg;
        if m.is_response() {
            if !self.exclude_rcodes.is_empty() && self.exclude_rcodes.contains(&m.rcode()) {
                return Verdict::Filter;
            }
            if !self.only_rcodes.is_empty() && !self.only_rcodes.contains(&m.rcode()) {
                return Verdict::Filter;
            }
            if let Some(n) = self.answer_count
                && m.ancount() != n
            {
                return Verdict::Filter;
            }
            if self.only_dnssec_response && (m.ancount() == 0 || !m.has_rrsig_answer()) {
                return Verdict::Filter;
            }
            if !self.only_qtypes.is_empty() {
                match m.question() {
                    Some(q) if self.only_qtypes.contains(&q.qtype) => {}
                    _ => return Verdict::Filter,
                }
            }
            let mut suffix_len = 0;
            if self.public_suffix_list
                && self.only_qname_suffixes.is_empty()
                && let Some(q) = ev.qname
            {
                suffix_len = wire::dns::PublicSuffixList::builtin().suffix_len(q);
            }
            return Verdict::Keep { suffix_len };
        }
        if self.rejects_geo(ev, geo, false) {
            return Verdict::Filter;
        }
        if !self.only_qnames.is_empty() {
            match ev.qname {
                Some(q) if self.only_qnames.iter().any(|n| n == q) => {}
                _ => return Verdict::Filter,
            }
        }
        if !self.only_qname_suffixes.is_empty() {
            match ev.qname {
                Some(q) if self.only_qname_suffixes.iter().any(|s| q.ends_with(s)) => {}
                _ => return Verdict::Filter,
            }
        }
        Verdict::Keep { suffix_len: 0 }
    }
}

/// Lower-cases a configured name and drops a trailing dot, matching the decoder's text form.
fn normalise_name(s: &str) -> Vec<u8> {
    let s = s.strip_suffix('.').unwrap_or(s);
    s.to_ascii_lowercase().into_bytes()
}

/// pktvisor's rcode names, or the number.
pub fn rcode_text(code: u16) -> String {
    wire::dns::rcode_name(code).map_or_else(|| code.to_string(), str::to_string)
}

/// IANA qtype mnemonics, or the number.
pub fn qtype_text(code: u16) -> String {
    wire::dns::qtype_name(code).map_or_else(|| code.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::DnsFilters;
    use crate::config::{ConfigMap, ConfigValue};

    /// The no-filter shortcut is taken only when nothing is configured: every filter key
    /// turns it off, so no configured filter is ever skipped.
    #[test]
    fn shortcut_only_without_filters() {
        let none = DnsFilters::resolve(&ConfigMap::new()).expect("resolves");
        assert!(none.none);
        let list = |items: &[&str]| {
            ConfigValue::List(items.iter().map(|s| ConfigValue::from_scalar(s)).collect())
        };
        let cases: Vec<(&str, ConfigValue)> = vec![
            ("exclude_noerror", ConfigValue::Bool(true)),
            ("only_rcode", ConfigValue::Int(3)),
            ("only_queries", ConfigValue::Bool(true)),
            ("only_responses", ConfigValue::Bool(true)),
            ("only_dnssec_response", ConfigValue::Bool(true)),
            ("answer_count", ConfigValue::Int(0)),
            ("only_qtype", list(&["A"])),
            ("only_qname", list(&["example.com"])),
            ("only_qname_suffix", list(&[".com"])),
            ("geoloc_notfound", ConfigValue::Bool(true)),
            ("asn_notfound", ConfigValue::Bool(true)),
            ("dnstap_msg_type", ConfigValue::from_scalar("client")),
            ("public_suffix_list", ConfigValue::Bool(true)),
        ];
        for (key, value) in cases {
            let mut cfg = ConfigMap::new();
            cfg.set(key, value);
            let f = DnsFilters::resolve(&cfg).expect("resolves");
            assert!(!f.none, "{key} must disable the shortcut");
        }
        // Settings that are not filters keep it.
        let mut cfg = ConfigMap::new();
        cfg.set("xact_ttl_secs", ConfigValue::Int(3));
        assert!(DnsFilters::resolve(&cfg).expect("resolves").none);
    }
}
