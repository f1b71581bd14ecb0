//! Prometheus text exposition in pktvisor's shape: one `# HELP`/`# TYPE` per family, all series
//! of a family together, families in first-write order, static labels (`instance`) first and
//! then per-series labels sorted by key; counters and cardinalities are gauges, quantiles are
//! summaries (`_sum` carries the maximum, as pktvisor does), histograms carry `le` buckets.

use std::collections::HashMap;
use std::fmt::Write;

use analyzers::export::{Export, Num, Value};

struct Family {
    name: String,
    help: String,
    kind: &'static str,
    lines: Vec<String>,
}

/// Collects series from any number of handler exports, then renders them.
#[derive(Default)]
pub struct PromWriter {
    static_labels: Vec<(String, String)>,
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn num(n: Num) -> String {
    match n {
        Num::U(v) => v.to_string(),
        Num::F(v) => format!("{v}"),
    }
}

impl PromWriter {
    /// A writer whose every series carries `static_labels` first (e.g. `instance`).
    pub fn new(static_labels: Vec<(String, String)>) -> Self {
        Self {
            static_labels,
            ..Default::default()
        }
    }

    fn labels(&self, call: &[(String, String)], extra: &[(&str, &str)]) -> String {
        // A per-call label overrides a static one of the same key.
        let mut per_call: Vec<(String, String)> = call.to_vec();
        for (k, v) in extra {
            per_call.retain(|(ck, _)| ck != k);
            per_call.push(((*k).to_string(), (*v).to_string()));
        }
        per_call.sort();
        let mut out = String::from("{");
        let mut first = true;
        for (k, v) in self
            .static_labels
            .iter()
            .filter(|(k, _)| !per_call.iter().any(|(ck, _)| ck == k))
        {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        for (k, v) in &per_call {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
        out
    }

    fn family(&mut self, name: &str, help: &str, kind: &'static str) -> &mut Family {
        let idx = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    lines: Vec::new(),
                });
                let i = self.families.len() - 1;
                self.index.insert(name.to_string(), i);
                i
            }
        };
        &mut self.families[idx]
    }

    /// Adds every metric of one handler export under `<schema>_<name>` with `labels`.
    pub fn add(&mut self, schema: &str, export: &Export, labels: &[(String, String)]) {
        for m in &export.metrics {
            let name = format!("{}_{}", m.schema_override.unwrap_or(schema), m.prom_name);
            let base: Vec<(&str, &str)> = m.labels.iter().map(|(k, v)| (*k, v.as_ref())).collect();
            match &m.value {
                Value::Int(v) => {
                    let l = self.labels(labels, &base);
                    let line = format!("{name}{l} {v}");
                    self.family(&name, m.help, "gauge").lines.push(line);
                }
                Value::Quantiles(q) => {
                    let mut lines = Vec::with_capacity(6);
                    for (ql, p) in ["0.5", "0.9", "0.95", "0.99"].iter().zip(q.p.iter()) {
                        let mut b = base.clone();
                        b.push(("quantile", ql));
                        lines.push(format!("{name}{} {}", self.labels(labels, &b), num(*p)));
                    }
                    let l = self.labels(labels, &base);
                    lines.push(format!("{name}_sum{l} {}", num(q.max)));
                    lines.push(format!("{name}_count{l} {}", q.count));
                    self.family(&name, m.help, "summary").lines.extend(lines);
                }
                Value::Histogram(h) => {
                    let mut lines = Vec::with_capacity(h.buckets.len() + 2);
                    for (edge, cum) in &h.buckets {
                        let mut b = base.clone();
                        b.push(("le", edge));
                        lines.push(format!("{name}_bucket{} {cum}", self.labels(labels, &b)));
                    }
                    let mut b = base.clone();
                    b.push(("le", "+Inf"));
                    lines.push(format!(
                        "{name}_bucket{} {}",
                        self.labels(labels, &b),
                        h.count
                    ));
                    lines.push(format!(
                        "{name}_count{} {}",
                        self.labels(labels, &base),
                        h.count
                    ));
                    self.family(&name, m.help, "histogram").lines.extend(lines);
                }
                Value::Top { label, items } => {
                    let mut lines = Vec::with_capacity(items.len());
                    for i in items {
                        let mut b = base.clone();
                        b.push((label, &i.name));
                        for (k, v) in &i.extra {
                            b.push((k, v));
                        }
                        lines.push(format!("{name}{} {}", self.labels(labels, &b), i.estimate));
                    }
                    self.family(&name, m.help, "gauge").lines.extend(lines);
                }
            }
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for l in &f.lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzers::export::{HistogramValue, QuantileValue, TopItem};

    #[test]
    fn families_are_contiguous_and_labels_ordered() {
        let mut e = Export::default();
        e.int(&["udp"], "Count of UDP packets", 140);
        e.push_dir("in", &["xacts"], "Total", Value::Int(3));
        e.push(
            &["top_qtype"],
            "Top query types",
            Value::Top {
                label: "qtype",
                items: vec![
                    TopItem {
                        name: "A".into(),
                        estimate: 2,
                        extra: Vec::new(),
                    },
                    TopItem {
                        name: "AAAA".into(),
                        estimate: 1,
                        extra: Vec::new(),
                    },
                ],
            },
        );
        let mut w = PromWriter::new(vec![("instance".into(), "test instance".into())]);
        w.add("packets", &e, &[("policy".into(), "default".into())]);
        let mut e2 = Export::default();
        e2.int(&["udp"], "Count of UDP packets", 1);
        w.add("packets", &e2, &[("policy".into(), "other".into())]);
        let text = w.render();
        assert_eq!(
            text,
            "# HELP packets_udp Count of UDP packets\n# TYPE packets_udp gauge\n\
             packets_udp{instance=\"test instance\",policy=\"default\"} 140\n\
             packets_udp{instance=\"test instance\",policy=\"other\"} 1\n\
             # HELP packets_xacts Total\n# TYPE packets_xacts gauge\n\
             packets_xacts{instance=\"test instance\",direction=\"in\",policy=\"default\"} 3\n\
             # HELP packets_top_qtype Top query types\n# TYPE packets_top_qtype gauge\n\
             packets_top_qtype{instance=\"test instance\",policy=\"default\",qtype=\"A\"} 2\n\
             packets_top_qtype{instance=\"test instance\",policy=\"default\",qtype=\"AAAA\"} 1\n"
        );
    }

    #[test]
    fn summary_and_histogram_lines() {
        let mut e = Export::default();
        e.push(
            &["q"],
            "quantiles",
            Value::Quantiles(QuantileValue {
                p: [Num::U(12); 4],
                max: Num::U(12),
                count: 1,
                live: None,
            }),
        );
        e.push(
            &["h"],
            "hist",
            Value::Histogram(HistogramValue {
                buckets: vec![("1".into(), 1), ("8".into(), 2), ("12".into(), 5)],
                count: 5,
            }),
        );
        let mut w = PromWriter::default();
        w.add("root", &e, &[]);
        let text = w.render();
        assert!(text.contains("root_q{quantile=\"0.5\"} 12\n"));
        assert!(text.contains("root_q{quantile=\"0.99\"} 12\n"));
        assert!(text.contains("root_q_sum{} 12\nroot_q_count{} 1\n"));
        assert!(text.contains("# TYPE root_h histogram\n"));
        assert!(text.contains("root_h_bucket{le=\"1\"} 1\nroot_h_bucket{le=\"8\"} 2\nroot_h_bucket{le=\"12\"} 5\nroot_h_bucket{le=\"+Inf\"} 5\nroot_h_count{} 5\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
