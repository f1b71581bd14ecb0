//! The agent's registry of taps, policies and running inputs, and the operations the REST API
//! and the configuration file perform on it: add or remove a tap or a policy, read a policy's
//! buckets or windows as JSON or Prometheus text. Not the HTTP layer (`http`) and not the
//! packet path (`engine::live`), which this drives through control messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use analyzers::config::{ConfigMap, ConfigValue, WindowConfig};
use analyzers::event::{Geo, HostSpec};
use analyzers::pipeline::{Handler, Limits, Pipeline};
use engine::live::{Runtime, RuntimeError, SourceError, SourceStats};
use outputs::prometheus::PromWriter;
use policy::{Document, PolicySpec, TapSpec};
use serde_json::{Map, Value, json};

use crate::read::build_policy_plan;

/// How a request failed, as an HTTP status and pktvisor's `{"error": ...}` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// 400: the body cannot be used (bad YAML, unknown key, bad handler config).
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such tap or policy.
    #[error("{0}")]
    NotFound(String),
    /// 409: the name is taken.
    #[error("{0}")]
    Conflict(String),
    /// 422: no tap matches the policy's input.
    #[error("{0}")]
    NoTap(String),
    /// 425: the requested period is out of range or not accumulated yet.
    #[error("{0}")]
    TooEarly(String),
    /// 500: the runtime failed.
    #[error("{0}")]
    Internal(String),
}

impl From<RuntimeError> for AgentError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Filter(_) => AgentError::BadRequest(e.to_string()),
            other => AgentError::Internal(other.to_string()),
        }
    }
}

impl From<SourceError> for AgentError {
    fn from(e: SourceError) -> Self {
        AgentError::BadRequest(e.to_string())
    }
}

/// Settings every tap and policy of the agent starts from (the command line).
#[derive(Clone, Default)]
pub struct Options {
    /// Window configuration of policies without `handlers.window_config`.
    pub defaults: WindowConfig,
    pub limits: Limits,
    /// `-H`: host addresses, for taps without `host_spec`.
    pub host_spec: Option<String>,
    pub geo: Option<Arc<geo::GeoDb>>,
    pub geo_cache_size: usize,
    /// `--prom-instance`: the static `instance` label.
    pub prom_instance: Option<String>,
}

/// Where a tap or policy came from: the configuration file is re-read on SIGHUP; what the API
/// added stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--config`.
    Config,
    /// Interfaces on the command line (the built-in `default` tap and policy).
    CommandLine,
    /// The admin API.
    Api,
}

struct TapEntry {
    spec: TapSpec,
    origin: Origin,
}

struct Instance {
    tap: String,
    input: String,
}

struct PolicyEntry {
    spec: PolicySpec,
    origin: Origin,
    instances: Vec<Instance>,
    /// The period in which the policy started: older buckets are not its own.
    created_seq: u32,
    /// Periods kept (the largest `num_periods` of its handlers).
    periods: u8,
}

struct InputEntry {
    tap: String,
    input_type: String,
    config: ConfigMap,
    policies: BTreeSet<String>,
}

/// Which periods a metrics request merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// `bucket/{n}`: one period, 0 = live.
    Bucket(u32),
    /// `window/{n}`: the n most recent periods, the live one included.
    Window(u32),
}

/// The agent: runtime plus registry. Callers serialize access (one lock).
pub struct Agent {
    rt: Runtime,
    opts: Options,
    taps: BTreeMap<String, TapEntry>,
    policies: BTreeMap<String, PolicyEntry>,
    inputs: BTreeMap<String, InputEntry>,
    started: Instant,
}

/// The input a policy instance runs on: pktvisor's `<tap>-<hash of the merged config>`.
fn input_key(tap: &str, config: &ConfigMap) -> String {
    // FNV-1a over the configuration's debug text: stable within a process, which is all a
    // key needs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{config:?}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{tap}-{h:016x}")
}

/// A configuration map as JSON (scalars keep their type).
pub fn config_json(c: &ConfigMap) -> Value {
    fn one(v: &ConfigValue) -> Value {
        match v {
            ConfigValue::Bool(b) => Value::Bool(*b),
            ConfigValue::Int(n) => Value::from(*n),
            ConfigValue::Str(s) => Value::from(s.clone()),
            ConfigValue::List(l) => Value::Array(l.iter().map(one).collect()),
            ConfigValue::Map(m) => config_json(m),
        }
    }
    Value::Object(c.iter().map(|(k, v)| (k.to_string(), one(v))).collect())
}

/// pktvisor's `merge_like_handlers`: handlers of one schema become one, `<schema>_merged`
/// (sketches merge as across workers; handlers of one schema but another version stay apart).
fn merge_like(handlers: Vec<Handler>) -> Vec<Handler> {
    let mut out: Vec<Handler> = Vec::new();
    for h in handlers {
        let same = |o: &&mut Handler| {
            o.schema() == h.schema()
                && std::mem::discriminant(&o.kind) == std::mem::discriminant(&h.kind)
        };
        if let Some(o) = out.iter_mut().find(|o| same(o)) {
            o.merge(&h);
        } else {
            let mut h = h;
            h.name = format!("{}_merged", h.schema());
            out.push(h);
        }
    }
    out
}

fn text(c: &ConfigMap, key: &str) -> Option<String> {
    c.get(key).and_then(ConfigValue::scalar_string)
}

impl Agent {
    pub fn new(rt: Runtime, opts: Options) -> Self {
        Self {
            rt,
            opts,
            taps: BTreeMap::new(),
            policies: BTreeMap::new(),
            inputs: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Stops the workers (after their current batch).
    pub fn shutdown(self) {
        self.rt.shutdown();
    }

    /// Parses a YAML or JSON document with the agent's window defaults.
    pub fn parse(&self, text: &str) -> Result<Document, AgentError> {
        policy::parse_document(text, self.opts.defaults).map_err(|e| AgentError::BadRequest(e.0))
    }

    /// Registers a tap (nothing runs until a policy uses it).
    pub fn add_tap(&mut self, spec: TapSpec, origin: Origin) -> Result<Value, AgentError> {
        if self.taps.contains_key(&spec.name) {
            return Err(AgentError::Conflict(format!(
                "tap with name '{}' already defined",
                spec.name
            )));
        }
        if !engine::live::INPUT_TYPES.contains(&spec.input_type.as_str()) {
            return Err(AgentError::BadRequest(format!(
                "Tap '{}' requires input stream type '{}' which is not available",
                spec.name, spec.input_type
            )));
        }
        spec.config
            .validate_keys(engine::live::tap_keys(&spec.input_type))
            .map_err(|e| AgentError::BadRequest(e.0))?;
        let name = spec.name.clone();
        self.taps.insert(name.clone(), TapEntry { spec, origin });
        Ok(self.tap_json(&name).unwrap_or(Value::Null))
    }

    /// Removes a tap and every policy instance running on it (a policy left without taps
    /// goes too).
    pub fn remove_tap(&mut self, name: &str) -> Result<(), AgentError> {
        if self.taps.remove(name).is_none() {
            return Err(AgentError::NotFound("tap does not exists".into()));
        }
        let keys: Vec<String> = self
            .inputs
            .iter()
            .filter(|(_, i)| i.tap == name)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.rt.remove_input(&key)?;
            self.inputs.remove(&key);
        }
        for p in self.policies.values_mut() {
            p.instances.retain(|i| i.tap != name);
        }
        self.policies.retain(|_, p| !p.instances.is_empty());
        Ok(())
    }

    /// Starts policies; all or nothing. Policies that share a new input start together, so
    /// each sees it from its first frame.
    pub fn add_policies(
        &mut self,
        specs: Vec<PolicySpec>,
        origin: Origin,
    ) -> Result<Value, AgentError> {
        let mut seen = BTreeSet::new();
        for s in &specs {
            if self.policies.contains_key(&s.name) || !seen.insert(s.name.clone()) {
                return Err(AgentError::Conflict(format!(
                    "policy with name '{}' already defined",
                    s.name
                )));
            }
        }
        // Resolve every instance and check every handler before starting anything.
        let mut plan: Vec<(usize, String, String, ConfigMap, String)> = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let taps = s
                .select_taps(self.taps.values().map(|t| &t.spec))
                .map_err(|e| AgentError::NoTap(e.0))?;
            for t in taps {
                build_policy_plan(s, &t.name, &self.opts.limits).map_err(AgentError::BadRequest)?;
                let mut config = t.config.clone();
                config.merge_from(&s.input_config);
                let key = input_key(&t.name, &config);
                plan.push((i, t.name.clone(), key, config, t.input_type.clone()));
            }
        }
        let mut done: Vec<(String, String)> = Vec::new();
        let mut created: Vec<String> = Vec::new();
        let result = self.start_instances(&specs, &plan, &mut done, &mut created);
        if let Err(e) = result {
            // Roll back what started.
            for (key, name) in done {
                let _ = self.rt.remove_policy(&key, &name);
            }
            for key in created {
                let _ = self.rt.remove_input(&key);
                self.inputs.remove(&key);
            }
            for inp in self.inputs.values_mut() {
                for s in &specs {
                    inp.policies.remove(&s.name);
                }
            }
            return Err(e);
        }
        let seq = self.rt.current_seq();
        let mut out = Map::new();
        for (i, s) in specs.into_iter().enumerate() {
            let instances = plan
                .iter()
                .filter(|p| p.0 == i)
                .map(|p| Instance {
                    tap: p.1.clone(),
                    input: p.2.clone(),
                })
                .collect();
            let periods = s
                .handlers
                .iter()
                .map(|h| h.window.num_periods)
                .max()
                .unwrap_or(1);
            let name = s.name.clone();
            self.policies.insert(
                name.clone(),
                PolicyEntry {
                    spec: s,
                    origin,
                    instances,
                    created_seq: seq,
                    periods,
                },
            );
            if let Some(v) = self.policy_json(&name) {
                out.insert(name, v);
            }
        }
        Ok(Value::Object(out))
    }

    fn start_instances(
        &mut self,
        specs: &[PolicySpec],
        plan: &[(usize, String, String, ConfigMap, String)],
        done: &mut Vec<(String, String)>,
        created: &mut Vec<String>,
    ) -> Result<(), AgentError> {
        let limits = self.opts.limits.clone();
        let keys: BTreeSet<&String> = plan.iter().map(|p| &p.2).collect();
        for key in keys {
            let here: Vec<&(usize, String, String, ConfigMap, String)> =
                plan.iter().filter(|p| &p.2 == key).collect();
            let (_, tap, _, config, input_type) = here[0];
            if self.inputs.contains_key(key) {
                for (i, tap, ..) in &here {
                    let s = &specs[*i];
                    self.rt.add_policy::<AgentError>(key, &mut || {
                        build_policy_plan(s, tap, &limits).map_err(AgentError::BadRequest)
                    })?;
                    done.push((key.clone(), s.name.clone()));
                    if let Some(inp) = self.inputs.get_mut(key) {
                        inp.policies.insert(s.name.clone());
                    }
                }
                continue;
            }
            let sources = engine::live::build_sources(input_type, config, self.rt.workers())?;
            let host = match text(config, "host_spec").or_else(|| self.opts.host_spec.clone()) {
                Some(h) => {
                    HostSpec::parse(&h).map_err(|e| AgentError::BadRequest(e.to_string()))?
                }
                None => HostSpec::default(),
            };
            let geo = self.opts.geo.clone();
            let cache = self.opts.geo_cache_size;
            let mut build = || -> Result<Pipeline, AgentError> {
                let mut plans = Vec::with_capacity(here.len());
                for (i, tap, ..) in &here {
                    plans.push(
                        build_policy_plan(&specs[*i], tap, &limits)
                            .map_err(AgentError::BadRequest)?,
                    );
                }
                let geo = geo
                    .as_ref()
                    .map_or_else(Geo::default, |db| Geo::new(db.clone(), cache));
                Ok(Pipeline::new(plans, host.clone(), Vec::new(), &limits, geo))
            };
            self.rt
                .add_input(key, sources, &mut build, text(config, "bpf"))?;
            created.push(key.clone());
            self.inputs.insert(
                key.clone(),
                InputEntry {
                    tap: tap.clone(),
                    input_type: input_type.clone(),
                    config: config.clone(),
                    policies: here.iter().map(|p| specs[p.0].name.clone()).collect(),
                },
            );
        }
        Ok(())
    }

    /// Stops a policy; an input left without policies stops too.
    pub fn remove_policy(&mut self, name: &str) -> Result<(), AgentError> {
        let Some(p) = self.policies.remove(name) else {
            return Err(AgentError::NotFound("policy does not exists".into()));
        };
        for inst in &p.instances {
            let Some(inp) = self.inputs.get_mut(&inst.input) else {
                continue;
            };
            inp.policies.remove(name);
            if inp.policies.is_empty() {
                self.rt.remove_input(&inst.input)?;
                self.inputs.remove(&inst.input);
            } else {
                self.rt.remove_policy(&inst.input, name)?;
            }
        }
        Ok(())
    }

    /// Applies a configuration document read at start or on SIGHUP: taps and policies that
    /// came from the previous file and changed or vanished are removed, new and changed ones
    /// added; unchanged ones and those the API added are left alone.
    pub fn apply_config(
        &mut self,
        doc: Document,
        origin: Origin,
    ) -> Result<Vec<String>, AgentError> {
        let mut log = Vec::new();
        let new_taps: BTreeMap<String, TapSpec> =
            doc.taps.into_iter().map(|t| (t.name.clone(), t)).collect();
        let new_policies: BTreeMap<String, PolicySpec> = doc
            .policies
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        let stale_taps: Vec<String> = self
            .taps
            .iter()
            .filter(|(n, t)| t.origin == origin && new_taps.get(*n).is_none_or(|s| *s != t.spec))
            .map(|(n, _)| n.clone())
            .collect();
        let stale_policies: Vec<String> = self
            .policies
            .iter()
            .filter(|(n, p)| {
                p.origin == origin
                    && (new_policies
                        .get(*n)
                        .is_none_or(|s| format!("{s:?}") != format!("{:?}", p.spec))
                        || p.instances.iter().any(|i| stale_taps.contains(&i.tap)))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in &stale_policies {
            self.remove_policy(n)?;
            log.push(format!("removed policy {n}"));
        }
        for n in &stale_taps {
            self.remove_tap(n)?;
            log.push(format!("removed tap {n}"));
        }
        for (n, t) in new_taps {
            if !self.taps.contains_key(&n) {
                self.add_tap(t, origin)?;
                log.push(format!("added tap {n}"));
            }
        }
        let fresh: Vec<PolicySpec> = new_policies
            .into_values()
            .filter(|p| !self.policies.contains_key(&p.name))
            .collect();
        for p in &fresh {
            log.push(format!("added policy {}", p.name));
        }
        if !fresh.is_empty() {
            self.add_policies(fresh, origin)?;
        }
        Ok(log)
    }

    /// Checks a configuration document against the taps it would leave, without changing
    /// anything: tap types and keys, each policy's taps and handlers.
    pub fn check_config(&self, doc: &Document) -> Result<(), AgentError> {
        for t in &doc.taps {
            if !engine::live::INPUT_TYPES.contains(&t.input_type.as_str()) {
                return Err(AgentError::BadRequest(format!(
                    "Tap '{}' requires input stream type '{}' which is not available",
                    t.name, t.input_type
                )));
            }
            t.config
                .validate_keys(engine::live::tap_keys(&t.input_type))
                .map_err(|e| AgentError::BadRequest(e.0))?;
        }
        let api_taps = self
            .taps
            .values()
            .filter(|t| t.origin != Origin::Config)
            .map(|t| &t.spec);
        let taps: Vec<&TapSpec> = doc.taps.iter().chain(api_taps).collect();
        for p in &doc.policies {
            for t in p
                .select_taps(taps.iter().copied())
                .map_err(|e| AgentError::NoTap(e.0))?
            {
                build_policy_plan(p, &t.name, &self.opts.limits).map_err(AgentError::BadRequest)?;
            }
        }
        Ok(())
    }

    /// pktvisor's tap info.
    pub fn tap_json(&self, name: &str) -> Option<Value> {
        let t = &self.taps.get(name)?.spec;
        let policies = self
            .policies
            .values()
            .filter(|p| p.instances.iter().any(|i| i.tap == name))
            .count();
        let mut v = json!({
            "input_type": t.input_type,
            "interface": "visor.module.input/1.0",
            "config": config_json(&t.config),
            "tags": config_json(&t.tags),
            "policies": policies,
        });
        // A tap only describes an input (as in pktvisord): say why nothing is collected.
        if policies == 0 {
            v["warning"] = json!(
                "no policy uses this tap: its input is not started and nothing is collected until a policy selects it"
            );
        }
        Some(v)
    }

    pub fn taps_json(&self) -> Value {
        Value::Object(
            self.taps
                .keys()
                .filter_map(|n| Some((n.clone(), self.tap_json(n)?)))
                .collect(),
        )
    }

    fn input_json(&self, key: &str) -> Value {
        let Some(inp) = self.inputs.get(key) else {
            return Value::Null;
        };
        let stats = self.rt.source_stats(key).ok().flatten().unwrap_or_default();
        // A stream tap's own counters (listener connections, frames, errors).
        let listener: Map<String, Value> = stats
            .extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        json!({
            "input": {
                "listener": listener,
                "running": stats.error.is_none(),
                "consumers": inp.policies.len(),
                "packets": stats.received,
                "kernel_drops": stats.kernel_drops,
                "if_drops": stats.if_drops,
                "finished": stats.finished,
                "error": stats.error,
            },
            "module": {
                "name": key,
                "type": inp.input_type,
                "running": stats.error.is_none(),
                "config": config_json(&inp.config),
            },
        })
    }

    /// pktvisor's policy info: its taps, inputs and handler modules.
    pub fn policy_json(&self, name: &str) -> Option<Value> {
        let p = self.policies.get(name)?;
        let mut taps = Map::new();
        let mut input = Map::new();
        let mut modules = Map::new();
        for inst in &p.instances {
            if let Some(t) = self.tap_json(&inst.tap) {
                taps.insert(inst.tap.clone(), t);
            }
            input.insert(inst.input.clone(), self.input_json(&inst.input));
            for h in &p.spec.handlers {
                modules.insert(
                    format!("{}-{}-{}", p.spec.name, inst.tap, h.name),
                    json!({
                        "module": {
                            "name": h.name,
                            "type": h.kind,
                            "version": h.version.as_deref().unwrap_or("1.0"),
                            "running": true,
                            "config": config_json(&h.config),
                        },
                        "metrics": {
                            "deep_sample_rate": h.window.deep_sample_rate,
                            "periods_configured": h.window.num_periods,
                        },
                    }),
                );
            }
        }
        Some(json!({
            "kind": "collection",
            "taps": taps,
            "input": input,
            "modules": modules,
        }))
    }

    pub fn policies_json(&self) -> Value {
        Value::Object(
            self.policies
                .keys()
                .filter_map(|n| Some((n.clone(), self.policy_json(n)?)))
                .collect(),
        )
    }

    pub fn has_policy(&self, name: &str) -> bool {
        self.policies.contains_key(name)
    }

    pub fn policy_names(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }

    /// Source counters of every input of a policy, summed.
    pub fn policy_source_stats(&self, name: &str) -> Option<SourceStats> {
        let p = self.policies.get(name)?;
        let mut out = SourceStats {
            finished: true,
            ..Default::default()
        };
        for i in &p.instances {
            if let Ok(Some(s)) = self.rt.source_stats(&i.input) {
                out.received += s.received;
                out.finished &= s.finished;
            }
        }
        Some(out)
    }

    /// `{"app": {"version", "up_time_min"}}`.
    pub fn app_json(&self) -> Value {
        json!({"app": {
            "version": env!("CARGO_PKG_VERSION"),
            "up_time_min": self.started.elapsed().as_secs_f64() / 60.0,
        }})
    }

    /// The period sequence numbers a request covers (newest first), with pktvisor's range
    /// messages.
    fn seqs(&self, p: &PolicyEntry, span: Span) -> Result<Vec<u32>, AgentError> {
        let current = self.rt.current_seq();
        let accumulated = (current - p.created_seq.min(current) + 1).min(u32::from(p.periods));
        match span {
            Span::Bucket(n) => {
                if n >= u32::from(p.periods) {
                    return Err(AgentError::TooEarly(format!(
                        "invalid metrics period, specify [0, {}]",
                        p.periods - 1
                    )));
                }
                if n >= accumulated {
                    return Err(AgentError::TooEarly(format!(
                        "requested metrics period has not yet accumulated, current range is [0, {}]",
                        accumulated - 1
                    )));
                }
                Ok(vec![current - n])
            }
            Span::Window(n) => {
                if n < 2 || n > u32::from(p.periods) {
                    return Err(AgentError::TooEarly(format!(
                        "invalid metrics period, specify [2, {}]",
                        p.periods
                    )));
                }
                Ok((0..n.min(accumulated)).map(|k| current - k).collect())
            }
        }
    }

    /// Every worker's handlers of one policy instance, merged.
    fn merged(&self, p: &PolicyEntry, inst: &Instance) -> Result<Vec<Handler>, AgentError> {
        // Accumulators only hold merged buckets: no transaction table worth reserving.
        let limits = Limits {
            max_open_xacts: 1,
            ..self.opts.limits.clone()
        };
        let mut empty = || {
            build_policy_plan(&p.spec, &inst.tap, &limits)
                .map(|pl| pl.handlers)
                .unwrap_or_default()
        };
        let handlers = self
            .rt
            .snapshot(&inst.input, &p.spec.name, &mut empty)?
            .unwrap_or_default();
        Ok(if p.spec.merge_like_handlers {
            merge_like(handlers)
        } else {
            handlers
        })
    }

    fn span_period(&self, seqs: &[u32]) -> analyzers::window::Period {
        let periods: Vec<_> = seqs.iter().map(|s| self.rt.period(*s)).collect();
        outputs::json::merged_period(&periods)
    }

    /// `{<handler instance>: {<schema>: {...}}}` of one policy.
    fn policy_metrics(&self, p: &PolicyEntry, span: Span) -> Result<Value, AgentError> {
        let seqs = self.seqs(p, span)?;
        let period = self.span_period(&seqs);
        let mut out = Map::new();
        for inst in &p.instances {
            for h in self.merged(p, inst)? {
                if let Some(e) = h.export(&seqs) {
                    out.insert(
                        h.name.clone(),
                        json!({ h.schema(): outputs::json::handler_object(&e, period) }),
                    );
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// `/api/v1/policies/{name}/metrics/...`: `name` may be `__all` (policies whose range
    /// does not fit are skipped).
    pub fn metrics_json(&self, name: &str, span: Span) -> Result<Value, AgentError> {
        let mut out = Map::new();
        if name == "__all" {
            for (n, p) in &self.policies {
                if let Ok(v) = self.policy_metrics(p, span) {
                    out.insert(n.clone(), v);
                }
            }
        } else {
            let p = self
                .policies
                .get(name)
                .ok_or_else(|| AgentError::NotFound("policy does not exist".into()))?;
            out.insert(name.to_string(), self.policy_metrics(p, span)?);
        }
        Ok(Value::Object(out))
    }

    /// pktvisor 3.0's view of policy `default`: `{"1m"|"<n>m": {<schema>: {...}}}`.
    pub fn legacy_json(&self, span: Span) -> Result<Value, AgentError> {
        let p = self
            .policies
            .get("default")
            .ok_or_else(|| AgentError::NotFound("no \"default\" policy exists".into()))?;
        let seqs = self
            .seqs(p, span)
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        let period = self.span_period(&seqs);
        let mut obj = Map::new();
        for inst in &p.instances {
            for h in self.merged(p, inst)? {
                if let Some(e) = h.export(&seqs) {
                    let v = outputs::json::handler_object(&e, period);
                    if !obj.contains_key("period")
                        && let Some(per) = v.get("period")
                    {
                        obj.insert("period".into(), per.clone());
                    }
                    obj.insert(h.schema().to_string(), v);
                }
            }
        }
        let key = match span {
            Span::Bucket(_) => "1m".to_string(),
            Span::Window(n) => format!("{n}m"),
        };
        Ok(json!({ key: obj }))
    }

    /// Prometheus text of policies (`__all` for every one): the last complete bucket when
    /// there is one, else the live bucket; labels `handler`, `policy`, `tap` (and `instance`).
    pub fn prometheus(&self, name: &str) -> Result<String, AgentError> {
        let names: Vec<&String> = if name == "__all" {
            self.policies.keys().collect()
        } else {
            let (n, _) = self
                .policies
                .get_key_value(name)
                .ok_or_else(|| AgentError::NotFound("policy does not exist".into()))?;
            vec![n]
        };
        let statics = self
            .opts
            .prom_instance
            .iter()
            .map(|i| ("instance".to_string(), i.clone()))
            .collect();
        let mut w = PromWriter::new(statics);
        for n in names {
            let Some(p) = self.policies.get(n) else {
                continue;
            };
            let bucket = if self.seqs(p, Span::Bucket(1)).is_ok() {
                1
            } else {
                0
            };
            let seqs = self.seqs(p, Span::Bucket(bucket))?;
            for inst in &p.instances {
                for h in self.merged(p, inst)? {
                    if let Some(e) = h.export(&seqs) {
                        let labels = vec![
                            ("handler".to_string(), h.name.clone()),
                            ("policy".to_string(), n.clone()),
                            ("tap".to_string(), inst.tap.clone()),
                        ];
                        w.add(h.schema(), &e, &labels);
                    }
                }
            }
        }
        Ok(w.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::live::RuntimeConfig;

    fn agent() -> Agent {
        let rt = Runtime::start(&RuntimeConfig {
            workers: 2,
            period: std::time::Duration::from_secs(3600),
        });
        Agent::new(rt, Options::default())
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/../../../shared/fixtures/pktvisor/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn a_failing_instance_rolls_back_the_whole_policy() {
        let mut a = agent();
        let doc = a
            .parse(&format!(
                "visor:\n  taps:\n    a_good:\n      input_type: pcap\n      tags: {{role: x}}\n      config: {{pcap_file: \"{}\"}}\n    z_bad:\n      input_type: pcap\n      tags: {{role: x}}\n      config: {{pcap_file: /nonexistent.pcap}}\n",
                fixture("dns_ipv4_udp.pcap")
            ))
            .unwrap();
        for t in doc.taps {
            a.add_tap(t, Origin::Api).unwrap();
        }
        let p = a
            .parse("visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        tap_selector:\n          any:\n            - role: x\n      handlers:\n        modules:\n          n:\n            type: net\n")
            .unwrap();
        let e = a.add_policies(p.policies, Origin::Api).unwrap_err();
        assert!(matches!(e, AgentError::BadRequest(_)), "{e:?}");
        assert!(e.to_string().contains("/nonexistent.pcap"), "{e}");
        assert_eq!(a.policies_json(), json!({}));
        assert!(a.inputs.is_empty(), "an input was left running");
        a.shutdown();
    }

    #[test]
    fn inputs_are_shared_by_tap_and_config() {
        let c1 = ConfigMap::new();
        let mut c2 = ConfigMap::new();
        c2.set("bpf", ConfigValue::Str("udp".into()));
        assert_eq!(input_key("t", &c1), input_key("t", &c1));
        assert_ne!(input_key("t", &c1), input_key("t", &c2));
        assert!(input_key("t", &c2).starts_with("t-"));
        let mut a = agent();
        let doc = a
            .parse(&format!(
                "visor:\n  taps:\n    t:\n      input_type: pcap\n      config: {{pcap_file: \"{}\"}}\n  policies:\n    p1:\n      kind: collection\n      input: {{tap: t}}\n      handlers: {{modules: {{n: {{type: net}}}}}}\n    p2:\n      kind: collection\n      input: {{tap: t}}\n      handlers: {{modules: {{n: {{type: net}}}}}}\n    p3:\n      kind: collection\n      input: {{tap: t, filter: {{bpf: udp}}}}\n      handlers: {{modules: {{n: {{type: net}}}}}}\n",
                fixture("dns_ipv4_udp.pcap")
            ))
            .unwrap();
        a.apply_config(doc, Origin::Config).unwrap();
        assert_eq!(a.inputs.len(), 2);
        a.remove_policy("p1").unwrap();
        assert_eq!(a.inputs.len(), 2);
        a.remove_policy("p2").unwrap();
        assert_eq!(a.inputs.len(), 1);
        assert_eq!(
            a.remove_policy("p2").unwrap_err(),
            AgentError::NotFound("policy does not exists".into())
        );
        a.remove_tap("t").unwrap();
        assert!(a.inputs.is_empty());
        assert_eq!(a.policies_json(), json!({}));
        a.shutdown();
    }
}
