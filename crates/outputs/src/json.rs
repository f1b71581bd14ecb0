//! pktvisor's JSON layout: one object per handler, metrics nested by name path, keys sorted,
//! counters as integers, quantiles as `{p50, p90, p95, p99}`, top-N as `[{name, estimate}]`,
//! histograms as `{buckets: {<edge>: <cumulative float>, "+Inf": n}}`, plus `period`.

use analyzers::export::{Export, Num, Value};
use analyzers::window::Period;
use serde_json::{Map, Value as Json, json};

fn num(n: Num) -> Json {
    match n {
        Num::U(v) => Json::from(v),
        Num::F(v) => json!(v),
    }
}

fn render(v: &Value) -> Json {
    match v {
        Value::Int(n) => Json::from(*n),
        Value::Quantiles(q) => {
            let mut m = Map::new();
            for (label, p) in ["p50", "p90", "p95", "p99"].iter().zip(q.p.iter()) {
                m.insert((*label).to_string(), num(*p));
            }
            if let Some(live) = q.live {
                m.insert("live".into(), Json::from(live));
            }
            Json::Object(m)
        }
        Value::Histogram(h) => {
            let mut b = Map::new();
            for (edge, cum) in &h.buckets {
                b.insert(edge.clone(), json!(*cum as f64));
            }
            b.insert("+Inf".into(), json!(h.count as f64));
            json!({ "buckets": Json::Object(b) })
        }
        Value::Top { items, .. } => Json::Array(
            items
                .iter()
                .map(|i| {
                    let mut o = Map::new();
                    o.insert("name".into(), Json::from(i.name.clone()));
                    o.insert("estimate".into(), Json::from(i.estimate));
                    for (k, v) in &i.extra {
                        o.insert((*k).to_string(), Json::from(v.clone()));
                    }
                    Json::Object(o)
                })
                .collect(),
        ),
    }
}

/// Inserts `value` at `path` inside `root`, creating intermediate objects.
fn insert_path(root: &mut Map<String, Json>, path: &[impl AsRef<str>], value: Json) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for p in parents {
        let entry = cur
            .entry(p.as_ref().to_string())
            .or_insert_with(|| Json::Object(Map::new()));
        if !entry.is_object() {
            *entry = Json::Object(Map::new());
        }
        let Json::Object(next) = entry else {
            return;
        };
        cur = next;
    }
    cur.insert(last.as_ref().to_string(), value);
}

/// The JSON object of one handler's (merged) bucket, with its `period`.
pub fn handler_object(export: &Export, period: Period) -> Json {
    let mut root = Map::new();
    for m in &export.metrics {
        insert_path(&mut root, &m.json_path, render(&m.value));
    }
    root.insert(
        "period".into(),
        json!({
            "start_ts": period.start_ns / 1_000_000_000,
            "length": period.length_sec(),
        }),
    );
    Json::Object(root)
}

/// The period of a merged window: earliest start, summed lengths (pktvisor's window merge).
pub fn merged_period(periods: &[Period]) -> Period {
    let start = periods.iter().map(|p| p.start_ns).min().unwrap_or(0);
    let len: u64 = periods.iter().map(Period::length_sec).sum();
    Period {
        start_ns: start,
        end_ns: (start / 1_000_000_000 + len) * 1_000_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzers::export::{HistogramValue, QuantileValue, TopItem};

    #[test]
    fn shapes_follow_pktvisor() {
        let mut e = Export::default();
        e.int(&["wire_packets", "queries"], "q", 70);
        e.push(
            &["payload_size"],
            "p",
            Value::Quantiles(QuantileValue {
                p: [Num::U(1), Num::U(2), Num::U(3), Num::U(4)],
                max: Num::U(4),
                count: 4,
                live: None,
            }),
        );
        e.push(
            &["top_qname2"],
            "t",
            Value::Top {
                label: "qname",
                items: vec![TopItem {
                    name: ".test.com".into(),
                    estimate: 140,
                    extra: Vec::new(),
                }],
            },
        );
        e.push(
            &["h"],
            "h",
            Value::Histogram(HistogramValue {
                buckets: vec![("8".into(), 1), ("12".into(), 4)],
                count: 4,
            }),
        );
        let p = Period {
            start_ns: 1_567_706_414_599_964_000,
            end_ns: 1_567_706_420_602_866_000,
        };
        let j = handler_object(&e, p);
        assert_eq!(
            j.to_string(),
            r#"{"h":{"buckets":{"+Inf":4.0,"12":4.0,"8":1.0}},"payload_size":{"p50":1,"p90":2,"p95":3,"p99":4},"period":{"length":6,"start_ts":1567706414},"top_qname2":[{"estimate":140,"name":".test.com"}],"wire_packets":{"queries":70}}"#
        );
    }
}
