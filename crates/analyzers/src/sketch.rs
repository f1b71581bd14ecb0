//! Thin adapters between the `metrics` sketches and the export model: the one place that knows
//! both, so handlers stay short and a sketch API change touches one file.

use std::net::IpAddr;

use metrics::dense::DenseCounts;
use metrics::quantiles::Quantiles;
use metrics::rate::Rate;
use metrics::topn::TopN;

use crate::config::WindowConfig;
use crate::export::{HistogramValue, Num, QuantileValue, TopItem, Value};

/// Top-N over byte-string keys (DNS names); names are copied only when tracked.
#[derive(Clone, Default)]
pub struct TopNames(TopN<[u8]>);

impl TopNames {
    #[inline]
    pub fn insert(&mut self, name: &[u8], weight: u64) {
        self.0.insert(name, weight);
    }
    /// [`TopN::insert_repeating`]: for names that often repeat the previous one.
    #[inline]
    pub fn insert_repeating(&mut self, name: &[u8], weight: u64) {
        self.0.insert_repeating(name, weight);
    }
    pub fn merge(&mut self, other: &Self) {
        self.0.merge(&other.0);
    }
    pub fn export(&self, label: &'static str, w: &WindowConfig) -> Value {
        let items = self
            .0
            .top(w.topn_count)
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        top_value(label, items, w)
    }
}

/// Top-N of locations: keys are `location \0 lat \0 lon`, exported as pktvisor's items with
/// `lat`/`lon` fields when the database has coordinates.
#[derive(Clone, Default)]
pub struct TopLocations(TopNames);

impl TopLocations {
    /// Counts one location.
    pub fn insert(&mut self, loc: &geo::Location, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(loc.location.as_bytes());
        buf.push(0);
        buf.extend_from_slice(loc.lat.as_bytes());
        buf.push(0);
        buf.extend_from_slice(loc.lon.as_bytes());
        self.0.insert(buf, 1);
    }
    pub fn merge(&mut self, other: &Self) {
        self.0.merge(&other.0);
    }
    pub fn export(&self, label: &'static str, w: &WindowConfig) -> Value {
        let mut v = self.0.export(label, w);
        if let Value::Top { items, .. } = &mut v {
            for item in items {
                let mut parts = item.name.split('\0');
                let name = parts.next().unwrap_or_default().to_string();
                let (lat, lon) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                if !lat.is_empty() && !lon.is_empty() {
                    item.extra = vec![("lat", lat.to_string()), ("lon", lon.to_string())];
                }
                item.name = name;
            }
        }
        v
    }
}

/// Top-N over 16-bit keys (ports, qtypes, rcodes), rendered by `render`. Counted exactly
/// in a dense table: the key domain is small, so exact counts cost less than a sketch.
#[derive(Clone, Default)]
pub struct TopU16(DenseCounts);

impl TopU16 {
    #[inline]
    pub fn insert(&mut self, key: u16, weight: u64) {
        self.0.add(key, weight);
    }
    pub fn merge(&mut self, other: &Self) {
        self.0.merge(&other.0);
    }
    pub fn export(
        &self,
        label: &'static str,
        w: &WindowConfig,
        render: impl Fn(u16) -> String,
    ) -> Value {
        let items = self
            .0
            .top(w.topn_count)
            .into_iter()
            .map(|(k, v)| (render(k), v))
            .collect();
        top_value(label, items, w)
    }
}

/// Top-N over IP addresses.
#[derive(Clone, Default)]
pub struct TopIp(TopN<IpAddr>);

impl TopIp {
    #[inline]
    pub fn insert(&mut self, ip: IpAddr, weight: u64) {
        self.0.insert(&ip, weight);
    }
    pub fn merge(&mut self, other: &Self) {
        self.0.merge(&other.0);
    }
    pub fn export(&self, label: &'static str, w: &WindowConfig) -> Value {
        let items = self
            .0
            .top(w.topn_count)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        top_value(label, items, w)
    }
}

/// Applies pktvisor's percentile threshold: drop items whose estimate is below the given
/// percentile of the printed estimates.
pub(crate) fn top_value(
    label: &'static str,
    mut items: Vec<(String, u64)>,
    w: &WindowConfig,
) -> Value {
    if w.topn_percentile_threshold > 0 && !items.is_empty() {
        let mut est: Vec<u64> = items.iter().map(|(_, v)| *v).collect();
        est.sort_unstable();
        let rank = f64::from(w.topn_percentile_threshold) / 100.0;
        let idx = ((rank * est.len() as f64).ceil() as usize).clamp(1, est.len()) - 1;
        let cut = est[idx];
        if let Some(pos) = items.iter().position(|(_, v)| *v < cut) {
            items.truncate(pos);
        }
    }
    Value::Top {
        label,
        items: items
            .into_iter()
            .map(|(name, estimate)| TopItem {
                name,
                estimate,
                extra: Vec::new(),
            })
            .collect(),
    }
}

/// Quantiles of an integer distribution; `None` when empty (pktvisor omits empty sketches).
pub fn quantiles(q: &Quantiles) -> Option<Value> {
    let p = q.quantiles4()?;
    Some(Value::Quantiles(QuantileValue {
        p: p.map(Num::U),
        max: Num::U(q.max().unwrap_or(0)),
        count: q.count(),
        live: None,
    }))
}

/// Quantiles of a distribution recorded in thousandths (ratios), printed as floats.
pub fn quantiles_milli(q: &Quantiles) -> Option<Value> {
    let p = q.quantiles4()?;
    let f = |v: u64| Num::F(v as f64 / 1000.0);
    Some(Value::Quantiles(QuantileValue {
        p: p.map(f),
        max: f(q.max().unwrap_or(0)),
        count: q.count(),
        live: None,
    }))
}

/// pktvisor's histogram of a distribution; `None` when empty.
pub fn histogram(q: &Quantiles) -> Option<Value> {
    if q.count() == 0 {
        return None;
    }
    let buckets = q
        .pktvisor_histogram()
        .into_iter()
        .map(|(edge, cum)| (edge.to_string(), cum))
        .collect();
    Some(Value::Histogram(HistogramValue {
        buckets,
        count: q.count(),
    }))
}

/// Per-second rate quantiles; `None` when nothing was counted.
pub fn rate(r: &Rate) -> Option<Value> {
    let p = r.quantiles4()?;
    Some(Value::Quantiles(QuantileValue {
        p: p.map(Num::U),
        max: Num::U(p[3]),
        count: 0,
        live: None,
    }))
}

/// Seconds since the epoch of a nanosecond timestamp.
#[inline]
pub fn sec(ts_ns: u64) -> u64 {
    ts_ns / 1_000_000_000
}
