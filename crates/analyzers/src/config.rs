//! Handler configuration as it arrives from a policy: a small typed value tree, key validation
//! with pktvisor's error messages, and metric-group selection.
//!
//! The policy loader (YAML) builds [`ConfigMap`]s; handlers resolve them into their own typed
//! settings once, at construction, so the data plane never sees unresolved configuration.

use std::collections::BTreeSet;

use thiserror::Error;

/// A configuration value, typed the way pktvisor types YAML scalars: digit strings are unsigned
/// integers, `true`/`false` are booleans, sequences are lists, maps stay maps.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Bool(bool),
    Int(u64),
    Str(String),
    List(Vec<ConfigValue>),
    Map(ConfigMap),
}

/// An ordered key → value map (keys keep their file order for error messages).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigMap {
    entries: Vec<(String, ConfigValue)>,
}

/// A configuration that cannot be applied; the message is what the user sees.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces `key` (a later layer wins, as in pktvisor's config merge).
    pub fn set(&mut self, key: &str, value: ConfigValue) {
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.entries.push((key.to_string(), value));
        }
    }

    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ConfigValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Copies every entry of `other` over this map.
    pub fn merge_from(&mut self, other: &ConfigMap) {
        for (k, v) in other.iter() {
            self.set(k, v.clone());
        }
    }

    /// Rejects keys outside `valid` (plus the window keys every handler accepts) with pktvisor's
    /// message: `<key> is an invalid/unsupported config or filter. The valid configs/filters are: ...`.
    pub fn validate_keys(&self, valid: &[&str]) -> Result<(), ConfigError> {
        for (key, _) in self.iter() {
            if valid.contains(&key) || WINDOW_KEYS.contains(&key) || ALWAYS_ALLOWED.contains(&key) {
                continue;
            }
            let mut list: Vec<&str> = valid.to_vec();
            list.extend_from_slice(&WINDOW_KEYS);
            return Err(ConfigError(format!(
                "{key} is an invalid/unsupported config or filter. The valid configs/filters are: {}",
                list.join(", ")
            )));
        }
        Ok(())
    }

    pub fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(false),
            Some(ConfigValue::Bool(b)) => Ok(*b),
            Some(_) => Err(ConfigError(format!("{key} must be a boolean"))),
        }
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Int(n)) => Ok(Some(*n)),
            Some(_) => Err(ConfigError(format!("{key} must be an unsigned integer"))),
        }
    }

    /// A list of scalars rendered as strings (`[nxdomain, 5]` → `["nxdomain", "5"]`).
    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::List(items)) => items
                .iter()
                .map(|v| {
                    v.scalar_string()
                        .ok_or_else(|| ConfigError(format!("{key} must be a list of scalars")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ConfigError(format!("{key} must be a list"))),
        }
    }
}

impl ConfigValue {
    /// The value of a scalar as text, `None` for lists and maps.
    pub fn scalar_string(&self) -> Option<String> {
        match self {
            ConfigValue::Bool(b) => Some(b.to_string()),
            ConfigValue::Int(n) => Some(n.to_string()),
            ConfigValue::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Types a YAML/CLI scalar the pktvisor way.
    pub fn from_scalar(s: &str) -> Self {
        if !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = s.parse()
        {
            return ConfigValue::Int(n);
        }
        if s.eq_ignore_ascii_case("true") {
            return ConfigValue::Bool(true);
        }
        if s.eq_ignore_ascii_case("false") {
            return ConfigValue::Bool(false);
        }
        ConfigValue::Str(s.to_string())
    }
}

/// Window keys accepted by every handler.
pub const WINDOW_KEYS: [&str; 4] = [
    "deep_sample_rate",
    "num_periods",
    "topn_count",
    "topn_percentile_threshold",
];
const ALWAYS_ALLOWED: [&str; 3] = ["enable", "disable", "_internal_tap_name"];

/// Window settings of one handler (pktvisor's `window_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Number of 60-second periods kept, clamped to 1..=10.
    pub num_periods: u8,
    /// Deep-sampling percentage, clamped to 1..=100.
    pub deep_sample_rate: u8,
    /// Items printed per top-N list.
    pub topn_count: usize,
    /// Drop top-N items below this percentile of the printed estimates (0 = keep all).
    pub topn_percentile_threshold: u8,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            num_periods: 5,
            deep_sample_rate: 100,
            topn_count: 10,
            topn_percentile_threshold: 0,
        }
    }
}

impl WindowConfig {
    /// Applies the window keys found in `map` over `self`.
    pub fn apply(mut self, map: &ConfigMap) -> Result<Self, ConfigError> {
        if let Some(n) = map.uint("num_periods")? {
            self.num_periods = n.clamp(1, 10) as u8;
        }
        if let Some(n) = map.uint("deep_sample_rate")? {
            self.deep_sample_rate = n.clamp(1, 100) as u8;
        }
        if let Some(n) = map.uint("topn_count")? {
            self.topn_count = n.min(100_000) as usize;
        }
        if let Some(n) = map.uint("topn_percentile_threshold")? {
            if n > 100 {
                return Err(ConfigError(
                    "threshold must be between 0 and 100 (percentile)".to_string(),
                ));
            }
            self.topn_percentile_threshold = n as u8;
        }
        Ok(self)
    }
}

/// Resolves `metric_groups: {enable: [...], disable: [...]}` against a handler's group list,
/// starting from its defaults. `disable` is applied first, then `enable`; `all` means every group.
pub fn resolve_groups(
    all_groups: &[&'static str],
    defaults: &[&'static str],
    enable: &[String],
    disable: &[String],
) -> Result<BTreeSet<&'static str>, ConfigError> {
    let lookup = |g: &str| -> Result<Option<&'static str>, ConfigError> {
        if g == "all" {
            return Ok(None);
        }
        all_groups
            .iter()
            .copied()
            .find(|x| *x == g)
            .map(Some)
            .ok_or_else(|| {
                let mut sorted: Vec<&str> = all_groups.to_vec();
                sorted.sort_unstable();
                ConfigError(format!(
                    "{g} is an invalid/unsupported metric group. The valid groups are: all, {}",
                    sorted.join(", ")
                ))
            })
    };
    let mut set: BTreeSet<&'static str> = defaults.iter().copied().collect();
    for g in disable {
        match lookup(g)? {
            None => set.clear(),
            Some(g) => {
                set.remove(g);
            }
        }
    }
    for g in enable {
        match lookup(g)? {
            None => set.extend(all_groups.iter().copied()),
            Some(g) => {
                set.insert(g);
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_message_lists_valid_keys() {
        let mut m = ConfigMap::new();
        m.set("bogus", ConfigValue::Bool(true));
        let err = m
            .validate_keys(&[
                "geoloc_notfound",
                "asn_notfound",
                "only_geoloc_prefix",
                "only_asn_number",
                "recorded_stream",
            ])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bogus is an invalid/unsupported config or filter. The valid configs/filters are: geoloc_notfound, asn_notfound, only_geoloc_prefix, only_asn_number, recorded_stream, deep_sample_rate, num_periods, topn_count, topn_percentile_threshold"
        );
    }

    #[test]
    fn groups_disable_then_enable() {
        let all = ["cardinality", "counters", "top_geo", "top_ips"];
        let set =
            resolve_groups(&all, &all, &[], &["cardinality".into(), "counters".into()]).unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            vec!["top_geo", "top_ips"]
        );
        let set = resolve_groups(&all, &all, &["counters".into()], &["all".into()]).unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec!["counters"]);
        let err = resolve_groups(&all, &all, &[], &["rates".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rates is an invalid/unsupported metric group. The valid groups are: all, cardinality, counters, top_geo, top_ips"
        );
    }

    #[test]
    fn scalars_are_typed_like_pktvisor() {
        assert_eq!(ConfigValue::from_scalar("42"), ConfigValue::Int(42));
        assert_eq!(ConfigValue::from_scalar("TRUE"), ConfigValue::Bool(true));
        assert_eq!(
            ConfigValue::from_scalar("nxdomain"),
            ConfigValue::Str("nxdomain".into())
        );
    }

    #[test]
    fn window_config_clamps() {
        let mut m = ConfigMap::new();
        m.set("num_periods", ConfigValue::Int(50));
        m.set("deep_sample_rate", ConfigValue::Int(0));
        let w = WindowConfig::default().apply(&m).unwrap();
        assert_eq!(w.num_periods, 10);
        assert_eq!(w.deep_sample_rate, 1);
        m.set("topn_percentile_threshold", ConfigValue::Int(101));
        assert!(WindowConfig::default().apply(&m).is_err());
    }
}
