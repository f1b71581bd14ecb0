//! The neutral metric model: what a handler's bucket says about itself, independent of any
//! output format. `outputs` renders it as pktvisor-compatible JSON or Prometheus text.
//!
//! Building an export allocates; it happens once per output, never per packet.

use std::borrow::Cow;

/// A JSON path component or label value: static for fixed names, owned for names that come
/// from the traffic (device addresses, interface numbers), so nothing is kept once the export
/// is dropped.
pub type Name = Cow<'static, str>;

/// A number as pktvisor prints it: integers for integer sketches, floats for ratios.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    U(u64),
    F(f64),
}

/// The four quantiles pktvisor reports (ranks 0.50, 0.90, 0.95, 0.99), the sketch maximum
/// (pktvisor's Prometheus `_sum` carries it) and the sample count.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileValue {
    pub p: [Num; 4],
    pub max: Num,
    pub count: u64,
    /// Last complete second, only for live rates.
    pub live: Option<u64>,
}

/// A pktvisor histogram: cumulative counts at each non-empty bucket edge, plus `+Inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramValue {
    pub buckets: Vec<(String, u64)>,
    pub count: u64,
}

/// One top-N entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TopItem {
    pub name: String,
    pub estimate: u64,
    /// Extra fields of the item (pktvisor's `lat`/`lon` on locations): JSON keys beside
    /// `name`, Prometheus labels beside the item label.
    pub extra: Vec<(&'static str, String)>,
}

/// The value of one metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Counters and cardinalities (Prometheus gauges, JSON integers).
    Int(u64),
    /// Quantile summaries and rates.
    Quantiles(QuantileValue),
    Histogram(HistogramValue),
    /// Top-N list; `label` is the Prometheus label that carries each item.
    Top {
        label: &'static str,
        items: Vec<TopItem>,
    },
}

/// One metric of a bucket: where it goes in JSON, what it is called in Prometheus.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// JSON object path below the handler's schema key, e.g. `["wire_packets", "queries"]`.
    pub json_path: Vec<Name>,
    /// Prometheus family name without the schema prefix, e.g. `wire_packets_queries`.
    pub prom_name: String,
    pub help: &'static str,
    /// Extra Prometheus labels (e.g. `direction`).
    pub labels: Vec<(&'static str, Name)>,
    /// Prometheus schema prefix when it differs from the handler's (pktvisor names net v1 byte
    /// rates `payload_rates_*`).
    pub schema_override: Option<&'static str>,
    pub value: Value,
}

/// Everything one handler bucket exports, in output order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Export {
    pub metrics: Vec<Metric>,
}

impl Export {
    /// Adds a metric whose Prometheus name is its JSON path joined by `_`.
    pub fn push(&mut self, json_path: &[&'static str], help: &'static str, value: Value) {
        self.metrics.push(Metric {
            json_path: json_path.iter().map(|s| Name::Borrowed(s)).collect(),
            prom_name: json_path.join("_"),
            help,
            labels: Vec::new(),
            schema_override: None,
            value,
        });
    }

    /// Adds a metric nested under a direction object in JSON (`in`, `out`, `unknown`) that
    /// carries the direction as a Prometheus label instead.
    pub fn push_dir(
        &mut self,
        dir: &'static str,
        json_path: &[&'static str],
        help: &'static str,
        value: Value,
    ) {
        let mut path = Vec::with_capacity(json_path.len() + 1);
        path.push(Name::Borrowed(dir));
        path.extend(json_path.iter().map(|s| Name::Borrowed(s)));
        self.metrics.push(Metric {
            json_path: path,
            prom_name: json_path.join("_"),
            help,
            labels: vec![("direction", Name::Borrowed(dir))],
            schema_override: None,
            value,
        });
    }

    pub fn int(&mut self, json_path: &[&'static str], help: &'static str, v: u64) {
        self.push(json_path, help, Value::Int(v));
    }
}
