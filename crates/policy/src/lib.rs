//! pktvisor's YAML schema for taps and collection policies, resolved into handler specs.
//!
//! Parsing is strict: an unknown key or a wrong type is an error naming the key, with pktvisor's
//! messages where pktvisor has one. Nothing here starts anything; the engine builds handlers
//! from the resolved specs.

use analyzers::config::{ConfigMap, ConfigValue, WindowConfig};
use analyzers::pipeline::HandlerSpec;
use serde_json::{Map, Value};
use thiserror::Error;

/// A configuration document that cannot be used; the message is what the user sees.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(msg.into()))
}

/// A named input configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TapSpec {
    pub name: String,
    pub input_type: String,
    pub config: ConfigMap,
    pub tags: ConfigMap,
}

/// `input.tap_selector`: tag pairs a tap must carry, all of them or any one.
#[derive(Clone, Debug, PartialEq)]
pub enum TapSelector {
    All(Vec<(String, ConfigValue)>),
    Any(Vec<(String, ConfigValue)>),
}

/// One collection policy.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub name: String,
    /// `input.tap`, when given.
    pub tap: Option<String>,
    /// `input.tap_selector`, when given (never together with `tap`).
    pub tap_selector: Option<TapSelector>,
    pub input_type: Option<String>,
    /// `input.config` merged with `input.filter`.
    pub input_config: ConfigMap,
    /// `modules` was a sequence: handlers form a chain.
    pub chained: bool,
    pub merge_like_handlers: bool,
    pub handlers: Vec<HandlerSpec>,
}

/// A parsed `visor:` document.
#[derive(Clone, Debug, Default)]
pub struct Document {
    pub taps: Vec<TapSpec>,
    pub policies: Vec<PolicySpec>,
    /// `visor.config`: the agent's options, snake_case as on the command line.
    pub config: ConfigMap,
}

/// The keys `visor.config` accepts (pktvisord's options).
pub const AGENT_CONFIG_KEYS: [&str; 37] = [
    "verbose",
    "daemon",
    "syslog",
    "no_track",
    "prometheus",
    "log_file",
    "prom_instance",
    "geo_city",
    "geo_asn",
    "default_geo_city",
    "default_geo_asn",
    "geo_cache_size",
    "max_deep_sample",
    "periods",
    "tls",
    "admin_api",
    "port",
    "host",
    "tls_cert",
    "tls_key",
    "otel",
    "otel_tls",
    "otel_host",
    "otel_path",
    "otel_port",
    "otel_interval",
    "otel_tls_cert",
    "otel_tls_key",
    "module_list",
    "module_dir",
    "iana_service_port_registry",
    "default_service_registry",
    "cp_disable",
    "cp_token",
    "cp_url",
    "cp_custom",
    "cp_path",
];

impl TapSelector {
    /// Whether `tap`'s tags satisfy the selector; a tag whose type differs from the selector
    /// value's is an error naming the tap and the key.
    pub fn matches(&self, tap: &TapSpec) -> Result<bool, PolicyError> {
        let (pairs, all) = match self {
            TapSelector::All(p) => (p, true),
            TapSelector::Any(p) => (p, false),
        };
        let mut hits = 0;
        for (k, want) in pairs {
            let Some(have) = tap.tags.get(k) else {
                continue;
            };
            if std::mem::discriminant(have) != std::mem::discriminant(want) {
                return err(format!(
                    "Tap [{}]: tag and selector value types are different for key '{k}'",
                    tap.name
                ));
            }
            if have == want {
                hits += 1;
            }
        }
        Ok(if all {
            !pairs.is_empty() && hits == pairs.len()
        } else {
            hits > 0
        })
    }
}

impl PolicySpec {
    /// The taps this policy runs on, by `input.tap` or `input.tap_selector` (pktvisor's
    /// messages when none fits); a policy naming neither runs on tap `default`.
    pub fn select_taps<'a>(
        &self,
        taps: impl IntoIterator<Item = &'a TapSpec>,
    ) -> Result<Vec<&'a TapSpec>, PolicyError> {
        let taps: Vec<&TapSpec> = taps.into_iter().collect();
        let chosen: Vec<&TapSpec> = if let Some(sel) = &self.tap_selector {
            let mut out = Vec::new();
            for t in taps {
                if sel.matches(t)? {
                    out.push(t);
                }
            }
            if out.is_empty() {
                return err("no tap match found for specified 'input.tap_selector' tags");
            }
            out
        } else {
            let name = self.tap.as_deref().unwrap_or("default");
            match taps.into_iter().find(|t| t.name == name) {
                Some(t) => vec![t],
                None => return err(format!("tap '{name}' does not exist")),
            }
        };
        if let Some(want) = &self.input_type {
            for t in &chosen {
                if &t.input_type != want {
                    return err(format!(
                        "input_type for policy specified tap '{}' doesn't match tap's defined input type: {want}/{}",
                        t.name, t.input_type
                    ));
                }
            }
        }
        Ok(chosen)
    }
}

fn parse_selector(v: &Value) -> Result<TapSelector, PolicyError> {
    let Value::Object(m) = v else {
        return err("'input.tap_selector' is not a map");
    };
    check_keys(m, &["all", "any"], "input.tap_selector")?;
    if m.len() != 1 {
        return err("'input.tap_selector' must have exactly one key: 'all' or 'any'");
    }
    let (kind, list) = m.iter().next().expect("one key");
    let Value::Array(items) = list else {
        return err(format!("'input.tap_selector.{kind}' is not a sequence"));
    };
    let mut pairs = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(one) if one.len() == 1 => {
                let (k, v) = one.iter().next().expect("one pair");
                let v = config_value(v)?;
                if matches!(v, ConfigValue::List(_) | ConfigValue::Map(_)) {
                    return err(format!("tag key '{k}' must have scalar value"));
                }
                pairs.push((k.clone(), v));
            }
            _ => {
                return err("selector tag must contain only one key/value pair per sequence index");
            }
        }
    }
    Ok(if kind == "all" {
        TapSelector::All(pairs)
    } else {
        TapSelector::Any(pairs)
    })
}

/// pktvisor's rule for module names.
pub fn valid_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Converts a YAML/JSON value into a config value, typing scalars the pktvisor way.
pub fn config_value(v: &Value) -> Result<ConfigValue, PolicyError> {
    Ok(match v {
        Value::Bool(b) => ConfigValue::Bool(*b),
        Value::Number(n) => match n.as_u64() {
            Some(u) => ConfigValue::Int(u),
            None => ConfigValue::Str(n.to_string()),
        },
        Value::String(s) => ConfigValue::from_scalar(s),
        Value::Array(items) => {
            ConfigValue::List(items.iter().map(config_value).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => ConfigValue::Map(config_map(m)?),
        Value::Null => ConfigValue::Str(String::new()),
    })
}

fn config_map(m: &Map<String, Value>) -> Result<ConfigMap, PolicyError> {
    let mut out = ConfigMap::new();
    for (k, v) in m {
        out.set(k, config_value(v)?);
    }
    Ok(out)
}

fn opt_map<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a Map<String, Value>>, PolicyError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => err(format!("{what} is not a map")),
    }
}

fn check_keys(m: &Map<String, Value>, valid: &[&str], at: &str) -> Result<(), PolicyError> {
    for k in m.keys() {
        if !valid.contains(&k.as_str()) {
            return err(format!(
                "unknown key '{k}' at '{at}'; valid keys are: {}",
                valid.join(", ")
            ));
        }
    }
    Ok(())
}

/// Parses YAML (or JSON, which is YAML) text.
pub fn parse_text(text: &str) -> Result<Value, PolicyError> {
    if text.trim().is_empty() {
        return err("empty data");
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| PolicyError(format!("invalid YAML: {e}")))
}

/// Parses a whole `visor:` document. `defaults` is the window configuration from the command
/// line, used when a policy has no `handlers.window_config`.
pub fn parse_document(text: &str, defaults: WindowConfig) -> Result<Document, PolicyError> {
    let root = parse_text(text)?;
    let Value::Object(root) = root else {
        return err("invalid schema");
    };
    if let Some(v) = root.get("version")
        && v.as_str() != Some("1.0")
    {
        return err("unsupported version");
    }
    check_keys(&root, &["version", "visor"], "")?;
    let Some(Value::Object(visor)) = root.get("visor") else {
        return err("invalid schema");
    };
    check_keys(
        visor,
        &["config", "taps", "policies", "global_handler_config"],
        "visor",
    )?;
    let mut doc = Document::default();
    if let Some(c) = opt_map(visor, "config", "visor config")? {
        check_keys(c, &AGENT_CONFIG_KEYS, "visor.config")?;
        doc.config = config_map(c)?;
    }
    if let Some(taps) = opt_map(visor, "taps", "tap configuration")? {
        for (name, t) in taps {
            doc.taps.push(parse_tap(name, t)?);
        }
    }
    let global = opt_map(
        visor,
        "global_handler_config",
        "expecting global_handler_config configuration map",
    )
    .map_err(|_| PolicyError("expecting global_handler_config configuration map".into()))?;
    if let Some(policies) = visor.get("policies") {
        let Value::Object(policies) = policies else {
            return err("expecting policy configuration map");
        };
        for (name, p) in policies {
            doc.policies.push(parse_policy(name, p, defaults, global)?);
        }
    }
    Ok(doc)
}

fn parse_tap(name: &str, t: &Value) -> Result<TapSpec, PolicyError> {
    if !valid_module_name(name) {
        return err(format!("invalid module name: {name}"));
    }
    let Value::Object(t) = t else {
        return err("expecting tap configuration map");
    };
    check_keys(
        t,
        &["input_type", "config", "filter", "tags"],
        &format!("visor.taps.{name}"),
    )?;
    let Some(Value::String(input_type)) = t.get("input_type") else {
        return err(format!(
            "missing or invalid tap input_type at key 'input_type' for tap '{name}'"
        ));
    };
    let mut config = opt_map(t, "config", "tap configuration")?
        .map(config_map)
        .transpose()?
        .unwrap_or_default();
    if let Some(f) = opt_map(t, "filter", "tap filter")? {
        config.merge_from(&config_map(f)?);
    }
    let tags = opt_map(t, "tags", "tap tags")?
        .map(config_map)
        .transpose()?
        .unwrap_or_default();
    for (k, v) in tags.iter() {
        if matches!(v, ConfigValue::List(_) | ConfigValue::Map(_)) {
            return err(format!("tag key '{k}' must have scalar value"));
        }
    }
    Ok(TapSpec {
        name: name.to_string(),
        input_type: input_type.clone(),
        config,
        tags,
    })
}

fn parse_policy(
    name: &str,
    p: &Value,
    defaults: WindowConfig,
    global: Option<&Map<String, Value>>,
) -> Result<PolicySpec, PolicyError> {
    if !valid_module_name(name) {
        return err(format!("invalid module name: {name}"));
    }
    let Value::Object(p) = p else {
        return err("policy configuration is not a map");
    };
    check_keys(
        p,
        &["kind", "config", "input", "handlers"],
        &format!("visor.policies.{name}"),
    )?;
    match p.get("kind") {
        Some(Value::String(k)) if k == "collection" => {}
        Some(Value::String(k)) => return err(format!("unknown policy kind: {k}")),
        _ => return err("missing or invalid policy kind at key 'kind'"),
    }
    let mut merge_like_handlers = false;
    if let Some(c) = opt_map(p, "config", "policy configuration")? {
        check_keys(
            c,
            &["merge_like_handlers"],
            &format!("visor.policies.{name}.config"),
        )?;
        merge_like_handlers = c
            .get("merge_like_handlers")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    let mut tap = None;
    let mut tap_selector = None;
    let mut input_type = None;
    let mut input_config = ConfigMap::new();
    if let Some(input) = opt_map(p, "input", "input configuration")? {
        check_keys(
            input,
            &["tap", "tap_selector", "input_type", "config", "filter"],
            &format!("visor.policies.{name}.input"),
        )?;
        if input.contains_key("tap") && input.contains_key("tap_selector") {
            return err("input can have only key 'input.tap' or key 'input.tap_selector'");
        }
        tap = input.get("tap").and_then(Value::as_str).map(str::to_string);
        if let Some(sel) = input.get("tap_selector") {
            tap_selector = Some(parse_selector(sel)?);
        }
        input_type = input
            .get("input_type")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(c) = opt_map(input, "config", "input configuration")? {
            input_config.merge_from(&config_map(c)?);
        }
        if let Some(f) = opt_map(input, "filter", "input filter")? {
            input_config.merge_from(&config_map(f)?);
        }
    }
    let Some(Value::Object(handlers)) = p.get("handlers") else {
        return err("missing or invalid handler configuration at key 'handlers'");
    };
    check_keys(
        handlers,
        &["window_config", "modules"],
        &format!("visor.policies.{name}.handlers"),
    )?;
    let window = match opt_map(handlers, "window_config", "window configuration")? {
        Some(w) => {
            check_keys(
                w,
                &[
                    "num_periods",
                    "deep_sample_rate",
                    "topn_count",
                    "topn_percentile_threshold",
                ],
                &format!("visor.policies.{name}.handlers.window_config"),
            )?;
            WindowConfig::default()
                .apply(&config_map(w)?)
                .map_err(|e| PolicyError(e.0))?
        }
        None => defaults,
    };
    let (modules, chained): (Vec<(String, &Value)>, bool) = match handlers.get("modules") {
        Some(Value::Object(m)) => (m.iter().map(|(k, v)| (k.clone(), v)).collect(), false),
        Some(Value::Array(seq)) => {
            let mut out = Vec::new();
            for item in seq {
                let Value::Object(one) = item else {
                    return err("stream handler configuration is not a map");
                };
                for (k, v) in one {
                    out.push((k.clone(), v));
                }
            }
            (out, true)
        }
        _ => return err("missing or invalid handler configuration at key 'handlers'"),
    };
    let mut specs = Vec::new();
    for (mname, m) in modules {
        if !valid_module_name(&mname) {
            return err(format!("invalid module name: {mname}"));
        }
        let Value::Object(m) = m else {
            return err("stream handler configuration is not a map");
        };
        check_keys(
            m,
            &[
                "type",
                "require_version",
                "config",
                "filter",
                "metric_groups",
            ],
            &format!("visor.policies.{name}.handlers.modules.{mname}"),
        )?;
        let Some(Value::String(kind)) = m.get("type") else {
            return err("missing or invalid stream handler type at key 'type'");
        };
        let version = match m.get("require_version") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(format!("{:.1}", n.as_f64().unwrap_or(1.0))),
            Some(_) => return err("require_version must be a string"),
        };
        let mut config = ConfigMap::new();
        if let Some(g) = global.and_then(|g| g.get(kind.as_str()))
            && let Value::Object(g) = g
        {
            config.merge_from(&config_map(g)?);
        }
        if let Some(c) = opt_map(m, "config", "stream handler configuration")? {
            config.merge_from(&config_map(c)?);
        }
        if let Some(f) = opt_map(m, "filter", "stream handler filter")? {
            config.merge_from(&config_map(f)?);
        }
        let (mut enable, mut disable) = (Vec::new(), Vec::new());
        if let Some(g) = m.get("metric_groups") {
            let Value::Object(g) = g else {
                return err("stream handler metric groups is not a map");
            };
            if !g.contains_key("enable") && !g.contains_key("disable") {
                return err(
                    "stream handler metric groups should contain enable and/or disable tags",
                );
            }
            check_keys(
                g,
                &["enable", "disable"],
                &format!("visor.policies.{name}.handlers.modules.{mname}.metric_groups"),
            )?;
            let list = |v: Option<&Value>| -> Vec<String> {
                match v {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    Some(Value::String(s)) => vec![s.clone()],
                    _ => Vec::new(),
                }
            };
            enable = list(g.get("enable"));
            disable = list(g.get("disable"));
        }
        specs.push(HandlerSpec {
            name: mname,
            kind: kind.clone(),
            version,
            config,
            enable,
            disable,
            window,
        });
    }
    Ok(PolicySpec {
        name: name.to_string(),
        tap,
        tap_selector,
        input_type,
        input_config,
        chained,
        merge_like_handlers,
        handlers: specs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
version: "1.0"
visor:
  taps:
    anycast:
      input_type: pcap
      config:
        iface: eth0
  policies:
    default_view:
      kind: collection
      input:
        tap: anycast
        input_type: pcap
      handlers:
        window_config:
          num_periods: 1
        modules:
          default_net:
            type: net
          default_dns:
            type: dns
            require_version: "2.0"
            config:
              only_qname_suffix: [google.com]
            metric_groups:
              enable: [top_size]
"#;

    #[test]
    fn parses_a_pktvisor_policy() {
        let doc = parse_document(DOC, WindowConfig::default()).unwrap();
        assert_eq!(doc.taps[0].name, "anycast");
        let p = &doc.policies[0];
        assert_eq!(p.name, "default_view");
        assert_eq!(p.tap.as_deref(), Some("anycast"));
        assert!(!p.chained);
        assert_eq!(p.handlers.len(), 2);
        // Independent modules come out in name order.
        let dns = p.handlers.iter().find(|h| h.name == "default_dns").unwrap();
        let net = p.handlers.iter().find(|h| h.name == "default_net").unwrap();
        assert_eq!(dns.version.as_deref(), Some("2.0"));
        assert_eq!(dns.enable, vec!["top_size".to_string()]);
        assert_eq!(net.kind, "net");
        assert_eq!(net.window.num_periods, 1);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse_document(
            "visor:\n  policies:\n    p:\n      kind: foo\n",
            WindowConfig::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "unknown policy kind: foo");
        let e = parse_document(
            "visor:\n  policies:\n    p:\n      kind: collection\n",
            WindowConfig::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "missing or invalid handler configuration at key 'handlers'"
        );
        let e = parse_document("foo: 1\n", WindowConfig::default()).unwrap_err();
        assert!(e.0.contains("unknown key 'foo'"), "{}", e.0);
        let e =
            parse_document("version: \"2.0\"\nvisor: {}\n", WindowConfig::default()).unwrap_err();
        assert_eq!(e.0, "unsupported version");
        let e = parse_document("visor:\n  policies:\n    p:\n      kind: collection\n      handlers:\n        modules:\n          m:\n            type: dns\n            metric_groups: {}\n", WindowConfig::default()).unwrap_err();
        assert_eq!(
            e.0,
            "stream handler metric groups should contain enable and/or disable tags"
        );
        let e = parse_document(
            "visor:\n  policies:\n    1bad:\n      kind: collection\n",
            WindowConfig::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "invalid module name: 1bad");
        assert!(
            parse_document("", WindowConfig::default())
                .unwrap_err()
                .0
                .contains("empty data")
        );
    }

    fn tap(name: &str, tags: &[(&str, ConfigValue)]) -> TapSpec {
        let mut t = ConfigMap::new();
        for (k, v) in tags {
            t.set(k, v.clone());
        }
        TapSpec {
            name: name.into(),
            input_type: "pcap".into(),
            config: ConfigMap::new(),
            tags: t,
        }
    }

    fn policy_with_input(input: &str) -> Result<PolicySpec, PolicyError> {
        let text = format!(
            "visor:\n  policies:\n    p:\n      kind: collection\n      input:\n{input}      handlers:\n        modules:\n          n:\n            type: net\n"
        );
        parse_document(&text, WindowConfig::default()).map(|mut d| d.policies.remove(0))
    }

    #[test]
    fn tap_selectors_match_tags_by_type() {
        let taps = [
            tap(
                "a",
                &[
                    ("virtual", ConfigValue::Bool(true)),
                    ("vhost", ConfigValue::Int(1)),
                ],
            ),
            tap(
                "b",
                &[
                    ("virtual", ConfigValue::Bool(true)),
                    ("vhost", ConfigValue::Int(2)),
                ],
            ),
            tap("c", &[("virtual", ConfigValue::Str("yes".into()))]),
        ];
        let any = policy_with_input(
            "        tap_selector:\n          any:\n            - vhost: 1\n            - vhost: 2\n",
        )
        .unwrap();
        let names: Vec<&str> = any
            .select_taps(&taps)
            .unwrap()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let all = policy_with_input(
            "        tap_selector:\n          all:\n            - vhost: 2\n            - virtual: true\n",
        )
        .unwrap();
        let e = all.select_taps(&taps).unwrap_err();
        assert_eq!(
            e.0,
            "Tap [c]: tag and selector value types are different for key 'virtual'"
        );
        let names: Vec<&str> = all
            .select_taps(&taps[..2])
            .unwrap()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["b"]);
        let none =
            policy_with_input("        tap_selector:\n          all:\n            - vhost: 3\n")
                .unwrap();
        assert_eq!(
            none.select_taps(&taps[..2]).unwrap_err().0,
            "no tap match found for specified 'input.tap_selector' tags"
        );
        let e = policy_with_input("        tap_selector:\n          any: 1\n").unwrap_err();
        assert_eq!(e.0, "'input.tap_selector.any' is not a sequence");
        let e = policy_with_input(
            "        tap_selector:\n          any:\n            - {a: 1, b: 2}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "selector tag must contain only one key/value pair per sequence index"
        );
        let named = policy_with_input("        tap: nonexist\n").unwrap();
        assert_eq!(
            named.select_taps(&taps).unwrap_err().0,
            "tap 'nonexist' does not exist"
        );
        let typed = policy_with_input("        tap: a\n        input_type: dnstap\n").unwrap();
        assert_eq!(
            typed.select_taps(&taps).unwrap_err().0,
            "input_type for policy specified tap 'a' doesn't match tap's defined input type: dnstap/pcap"
        );
    }

    #[test]
    fn agent_config_keys_are_checked() {
        let d = parse_document(
            "visor:\n  config:\n    periods: 3\n    admin_api: true\n",
            WindowConfig::default(),
        )
        .unwrap();
        assert_eq!(d.config.uint("periods").unwrap(), Some(3));
        let e = parse_document("visor:\n  config:\n    portt: 1\n", WindowConfig::default())
            .unwrap_err();
        assert!(
            e.0.starts_with("unknown key 'portt' at 'visor.config'; valid keys are: verbose"),
            "{}",
            e.0
        );
    }

    #[test]
    fn sequence_of_modules_is_a_chain() {
        let text = "visor:\n  policies:\n    p:\n      kind: collection\n      handlers:\n        modules:\n          - a:\n              type: dns\n          - b:\n              type: net\n";
        let doc = parse_document(text, WindowConfig::default()).unwrap();
        assert!(doc.policies[0].chained);
        assert_eq!(doc.policies[0].handlers[0].name, "a");
        assert_eq!(doc.policies[0].handlers[1].kind, "net");
    }
}
