//! `wirelens read`: the offline front end (pktvisor-reader's options where they exist).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use analyzers::config::WindowConfig;
use analyzers::event::HostSpec;
use analyzers::pipeline::{Handler, HandlerSpec, Limits, Pipeline, PolicyPlan};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use engine::offline::{self, Progress, ReadConfig, ReadResult};
use flow::defrag::DefragConfig;
use outputs::prometheus::PromWriter;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Json,
    Prometheus,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum InputKind {
    Pcap,
    Dnstap,
    /// sFlow v5 export traffic (captures of it, or raw datagram files).
    Sflow,
    /// NetFlow v1/v5/v7/v9 and IPFIX export traffic (captures of it, or raw datagram files).
    Netflow,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files (pcap or pcapng, optionally gzip-compressed); `-` reads stdin.
    #[arg(required_unless_present = "listen")]
    files: Vec<PathBuf>,
    /// With `-i dnstap`: serve DNS servers' dnstap live instead of reading files, on
    /// `unix:PATH` or `tcp:HOST:PORT`.
    #[arg(long)]
    listen: Option<String>,
    /// With --listen: stop and print the summary after this many seconds (default: at SIGINT).
    #[arg(long, requires = "listen")]
    duration: Option<u64>,
    /// Input type of the files.
    #[arg(short = 'i', long = "input", value_enum, default_value = "pcap")]
    input: InputKind,
    /// Number of 60-second periods to keep and merge (1 = the whole input as one period).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=10))]
    periods: u8,
    /// Deep-sampling percentage (1-100).
    #[arg(long = "max-deep-sample", default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    max_deep_sample: u8,
    /// Packet filter in tcpdump syntax.
    #[arg(short = 'b', long = "bpf")]
    bpf: Option<String>,
    /// Host address blocks (CIDR, comma separated) that decide in/out direction.
    #[arg(short = 'H', long = "host-spec")]
    host_spec: Option<String>,
    /// Policy file (pktvisor YAML schema) choosing handlers, versions, config and metric groups.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Worker threads (default: all cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Show a progress bar on stderr (default: when stderr is a terminal).
    #[arg(long, overrides_with = "no_progress")]
    progress: bool,
    /// Never show a progress bar.
    #[arg(long = "no-progress")]
    no_progress: bool,
    /// MaxMind city database (GeoIP2/GeoLite2 City) for location top lists and filters.
    #[arg(long = "geo-city")]
    geo_city: Option<PathBuf>,
    /// MaxMind ASN or ISP database for ASN top lists and filters.
    #[arg(long = "geo-asn")]
    geo_asn: Option<PathBuf>,
    /// Addresses cached per worker for GeoIP/ASN lookups (0 disables the cache).
    #[arg(long = "geo-cache-size", default_value_t = geo::DEFAULT_CAPACITY)]
    geo_cache_size: usize,
    /// Additional DNS port (repeatable), besides 53, 5353, 5355 and 53000.
    #[arg(long = "dns-port")]
    dns_ports: Vec<u16>,
    /// Most TCP connections tracked for stream reassembly, per worker.
    #[arg(long, default_value_t = 100_000)]
    max_tcp_connections: usize,
    /// Most bytes buffered for one direction of one TCP stream (one DNS message is at most
    /// 65,535 bytes plus its 2-byte length).
    #[arg(long, default_value_t = 65_537)]
    max_tcp_stream_bytes: usize,
    /// Most bytes buffered for TCP reassembly, per worker.
    #[arg(long, default_value_t = 64 << 20)]
    max_tcp_bytes: usize,
    /// Most open DNS transactions, per handler and worker.
    #[arg(long, default_value_t = 917_504)]
    max_open_xacts: usize,
    /// Most IP datagrams being reassembled from fragments at once.
    #[arg(long, default_value_t = 1024)]
    max_fragments: usize,
    /// Write one JSON object per flow (finished, evicted or still open at the end) to FILE.
    #[arg(long = "flow-log", value_name = "FILE")]
    flow_log: Option<PathBuf>,
}

/// Flow records queued between the workers and the flow log writer; a worker that finds the
/// queue full counts the record as dropped instead of waiting.
const FLOW_LOG_QUEUE: usize = 1 << 16;

/// A policy as the reader runs it (the handlers themselves live in each worker's pipeline).
struct PlannedPolicy {
    name: String,
    tap: String,
    /// Periods merged in the output.
    periods: u8,
}

/// The policy definitions a run is built from: either the built-in default or a policy file.
enum PolicySource {
    Default(WindowConfig, &'static [&'static str]),
    File(Vec<policy::PolicySpec>),
}

impl PolicySource {
    fn load(
        args: &ReadArgs,
        defaults: WindowConfig,
        kinds: &'static [&'static str],
    ) -> Result<Self> {
        let Some(path) = &args.policy else {
            return Ok(PolicySource::Default(defaults, kinds));
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))?;
        let doc = policy::parse_document(&text, defaults)
            .with_context(|| format!("policy file {}", path.display()))?;
        if doc.policies.is_empty() {
            bail!(
                "policy file {}: no policies found in schema",
                path.display()
            );
        }
        Ok(PolicySource::File(doc.policies))
    }

    /// What the output needs to know of each policy.
    fn planned(&self) -> Vec<PlannedPolicy> {
        match self {
            PolicySource::Default(w, _) => vec![PlannedPolicy {
                name: "default".into(),
                tap: "default".into(),
                periods: w.num_periods,
            }],
            PolicySource::File(specs) => specs
                .iter()
                .map(|p| PlannedPolicy {
                    name: p.name.clone(),
                    tap: p.tap.clone().unwrap_or_else(|| "default".into()),
                    periods: p
                        .handlers
                        .iter()
                        .map(|h| h.window.num_periods)
                        .max()
                        .unwrap_or(1),
                })
                .collect(),
        }
    }

    /// Builds one worker's handlers; configuration errors surface on the first call.
    fn build(&self, limits: &Limits) -> Result<Vec<PolicyPlan>> {
        match self {
            PolicySource::Default(window, kinds) => {
                let mut handlers = Vec::new();
                for &kind in kinds.iter() {
                    let spec = HandlerSpec {
                        name: kind.to_string(),
                        kind: kind.to_string(),
                        window: *window,
                        ..Default::default()
                    };
                    let h = Handler::build(&spec, format!("default-default-{kind}"), limits)
                        .map_err(|e| anyhow::anyhow!(e.0))?;
                    handlers.push(h);
                }
                Ok(vec![PolicyPlan {
                    name: "default".into(),
                    chained: false,
                    handlers,
                }])
            }
            PolicySource::File(specs) => specs
                .iter()
                .map(|p| {
                    let tap = p.tap.as_deref().unwrap_or("default");
                    build_policy_plan(p, tap, limits).map_err(|e| anyhow::anyhow!(e))
                })
                .collect(),
        }
    }
}

/// Builds one worker's handlers of a policy running on `tap` (instances are named
/// `<policy>-<tap>-<module>`, as pktvisor names them); the error names the policy and module.
pub fn build_policy_plan(
    p: &policy::PolicySpec,
    tap: &str,
    limits: &Limits,
) -> Result<PolicyPlan, String> {
    let mut handlers = Vec::with_capacity(p.handlers.len());
    for spec in &p.handlers {
        let instance = format!("{}-{}-{}", p.name, tap, spec.name);
        let h = Handler::build(spec, instance, limits)
            .map_err(|e| format!("policy '{}' handler '{}': {}", p.name, spec.name, e.0))?;
        handlers.push(h);
    }
    Ok(PolicyPlan {
        name: p.name.clone(),
        chained: p.chained,
        handlers,
    })
}

/// Parses `read` arguments as the command line would (`argv` without the program name).
pub fn parse_args<I, T>(argv: I) -> Result<ReadArgs>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ReadArgs,
    }
    let all =
        std::iter::once(std::ffi::OsString::from("read")).chain(argv.into_iter().map(Into::into));
    Ok(<Wrapper as clap::Parser>::try_parse_from(all)?.args)
}

/// Runs `read` and prints the document on stdout (warnings on stderr).
pub fn run(args: ReadArgs) -> Result<()> {
    let out = summarize(&args)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.write_all(b"\n")?;
    Ok(())
}

/// Runs `read` and returns the rendered document.
pub fn summarize(args: &ReadArgs) -> Result<String> {
    let input = match args.input {
        InputKind::Pcap => offline::InputKind::Pcap,
        InputKind::Dnstap => offline::InputKind::Dnstap,
        InputKind::Sflow => offline::InputKind::Sflow,
        InputKind::Netflow => offline::InputKind::Netflow,
    };
    let host = match &args.host_spec {
        Some(s) => HostSpec::parse(s).context("bad --host-spec")?,
        None => HostSpec::default(),
    };
    let defaults = WindowConfig {
        num_periods: args.periods,
        deep_sample_rate: args.max_deep_sample,
        ..WindowConfig::default()
    };
    let limits = Limits {
        tcp: flow::tcp::TcpConfig {
            max_connections: args.max_tcp_connections,
            max_total_bytes: args.max_tcp_bytes,
            max_buffer_per_direction: args.max_tcp_stream_bytes,
            ..Default::default()
        },
        max_open_xacts: args.max_open_xacts,
    };
    // pktvisor-reader runs net and dns on every input, and dhcp and the pcap statistics on
    // captures; captures also get the connection table, TLS handshakes, HTTP messages and QUIC
    // Initials (dnstap carries no TCP streams or UDP payloads). Flow exports are summarized by
    // the flow handler alone.
    let defaults_kinds: &'static [&'static str] = match args.input {
        InputKind::Pcap => &["net", "dns", "pcap", "dhcp", "flows", "tls", "http", "quic"],
        InputKind::Dnstap => &["net", "dns"],
        InputKind::Sflow | InputKind::Netflow => &["flow"],
    };
    let source = PolicySource::load(args, defaults, defaults_kinds)?;
    let policies = source.planned();
    let num_periods = policies.iter().map(|p| p.periods).max().unwrap_or(1);
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256);
    let geo_db = if args.geo_city.is_some() || args.geo_asn.is_some() {
        Some(std::sync::Arc::new(geo::GeoDb::open(
            args.geo_city.as_deref(),
            args.geo_asn.as_deref(),
        )?))
    } else {
        None
    };
    let mut pipelines = Vec::with_capacity(workers);
    for _ in 0..workers {
        let geo = geo_db
            .as_ref()
            .map_or_else(analyzers::event::Geo::default, |db| {
                analyzers::event::Geo::new(db.clone(), args.geo_cache_size)
            });
        pipelines.push(Pipeline::new(
            source.build(&limits)?,
            host.clone(),
            args.dns_ports.clone(),
            &limits,
            geo,
        ));
    }
    if let Some(listen) = &args.listen {
        if args.input != InputKind::Dnstap || !args.files.is_empty() || args.bpf.is_some() {
            bail!("--listen serves live dnstap: use it with -i dnstap, no files and no filter");
        }
        let progress = args.progress && !args.no_progress;
        let result = crate::dnstap_live::serve_read(
            listen,
            args.duration,
            progress,
            pipelines,
            num_periods,
        )?;
        if let Some(note) = skipped_note(&result) {
            eprintln!("wirelens: note: {note}");
        }
        return render(args, &policies, &result);
    }
    let flow_log = match &args.flow_log {
        Some(path) => Some(FlowLog::start(path, &mut pipelines)?),
        None => None,
    };
    let show_progress = (args.progress || std::io::stderr().is_terminal()) && !args.no_progress;
    let cfg = ReadConfig {
        files: args.files.clone(),
        input,
        bpf: args.bpf.clone(),
        pipelines,
        defrag: DefragConfig {
            max_datagrams: args.max_fragments,
            ..DefragConfig::default()
        },
        num_periods,
    };
    let started = std::time::Instant::now();
    let mut last_report = started;
    let mut report = |p: &Progress| {
        if !show_progress {
            return;
        }
        let now = std::time::Instant::now();
        if now.duration_since(last_report).as_millis() < 200 {
            return;
        }
        last_report = now;
        let secs = now.duration_since(started).as_secs_f64().max(1e-9);
        let pct = p
            .file_size
            .filter(|s| *s > 0)
            .map(|s| format!("{:5.1}%", 100.0 * p.bytes as f64 / s as f64))
            .unwrap_or_default();
        eprint!(
            "\r{} {pct} {} packets ({:.0} packets/s)   ",
            p.file,
            p.records,
            p.records as f64 / secs
        );
    };
    let mut result = offline::run(cfg, &mut report)?;
    if show_progress {
        eprintln!();
    }
    if let Some(log) = flow_log {
        log.finish(&mut result.pipeline)?;
    }
    for (name, off) in &result.stats.truncated {
        eprintln!(
            "wirelens: warning: {name} is truncated: the last record is incomplete at byte offset {off}; summarized what was read"
        );
    }
    if let Some(note) = skipped_note(&result) {
        eprintln!("wirelens: note: {note}");
    }
    render(args, &policies, &result)
}

/// What the run could not decode, by reason, or `None` when everything decoded. Undecodable
/// frames still count as packets of unknown layers; malformed DNS messages are skipped.
fn skipped_note(result: &ReadResult) -> Option<String> {
    let mut parts: Vec<String> = result
        .stats
        .decode_errors
        .iter()
        .map(|(reason, n)| format!("{n} frames: {reason}"))
        .collect();
    let p = &result.pipeline.stats;
    if p.dns_malformed > 0 {
        parts.push(format!("{} DNS messages: malformed", p.dns_malformed));
    }
    if p.dhcp_malformed > 0 {
        parts.push(format!("{} DHCP messages: malformed", p.dhcp_malformed));
    }
    if p.dnstap_skipped > 0 {
        parts.push(format!(
            "{} dnstap payloads: not a usable message",
            p.dnstap_skipped
        ));
    }
    (!parts.is_empty()).then(|| format!("not decoded: {}", parts.join(", ")))
}

/// The period sequence numbers merged for output: the `n` most recent.
fn recent(result: &ReadResult, n: u8) -> Vec<u32> {
    // An input without events still has its (empty) first period: handlers report zeros.
    let total = (result.periods.len() as u32).max(1);
    let first = total.saturating_sub(u32::from(n));
    (first..total).rev().collect()
}

fn render(args: &ReadArgs, policies: &[PlannedPolicy], result: &ReadResult) -> Result<String> {
    match args.format {
        Format::Json => {
            let mut root = Map::new();
            for (i, p) in policies.iter().enumerate() {
                let seqs = recent(result, p.periods);
                let periods: Vec<_> = seqs
                    .iter()
                    .filter_map(|s| result.periods.get(*s as usize).copied())
                    .collect();
                let period = outputs::json::merged_period(&periods);
                let plan = &result.pipeline.policies[i];
                if args.policy.is_none() {
                    let mut obj = Map::new();
                    for h in &plan.handlers {
                        if let Some(e) = h.export(&seqs) {
                            obj.insert(
                                h.schema().to_string(),
                                outputs::json::handler_object(&e, period),
                            );
                        }
                    }
                    root.insert(format!("{}m", p.periods), Value::Object(obj));
                } else {
                    let mut obj = Map::new();
                    for h in &plan.handlers {
                        if let Some(e) = h.export(&seqs) {
                            let mut inner = Map::new();
                            inner.insert(
                                h.schema().to_string(),
                                outputs::json::handler_object(&e, period),
                            );
                            obj.insert(h.name.clone(), Value::Object(inner));
                        }
                    }
                    root.insert(p.name.clone(), Value::Object(obj));
                }
            }
            Ok(serde_json::to_string(&Value::Object(root))?)
        }
        Format::Prometheus => {
            let mut w = PromWriter::default();
            for (i, p) in policies.iter().enumerate() {
                let seqs = recent(result, p.periods);
                let plan = &result.pipeline.policies[i];
                for h in &plan.handlers {
                    if let Some(e) = h.export(&seqs) {
                        let labels = if args.policy.is_some() {
                            vec![
                                ("handler".to_string(), h.name.clone()),
                                ("policy".to_string(), p.name.clone()),
                                ("tap".to_string(), p.tap.clone()),
                            ]
                        } else {
                            Vec::new()
                        };
                        w.add(h.schema(), &e, &labels);
                    }
                }
            }
            Ok(w.render().trim_end().to_string())
        }
    }
}

/// The flow log writer: a thread that renders queued flow records as JSON lines.
struct FlowLog {
    path: PathBuf,
    writer: std::thread::JoinHandle<std::io::Result<u64>>,
}

impl FlowLog {
    /// Opens `path` and hands the queue to every flows handler of every worker.
    fn start(path: &std::path::Path, pipelines: &mut [Pipeline]) -> Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create flow log {}", path.display()))?;
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<analyzers::flows::FlowRecord>(FLOW_LOG_QUEUE);
        let mut handed = false;
        for p in pipelines.iter_mut() {
            for_each_flows(p, |f| {
                f.set_log(Some(tx.clone()));
                handed = true;
            });
        }
        if !handed {
            bail!("--flow-log needs a flows handler (in the default set, or in the policy)");
        }
        drop(tx);
        let writer = std::thread::Builder::new()
            .name("flow-log".into())
            .spawn(move || -> std::io::Result<u64> {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                let mut n = 0u64;
                for rec in rx {
                    rec.write_json(&mut out)?;
                    out.write_all(b"\n")?;
                    n += 1;
                }
                out.flush()?;
                Ok(n)
            })
            .context("cannot start the flow log writer")?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Lets go of the last queue handle (kept by the merged pipeline) and waits for the writer.
    fn finish(self, merged: &mut Pipeline) -> Result<()> {
        for_each_flows(merged, |f| drop(f.take_log()));
        match self.writer.join() {
            Ok(r) => {
                r.with_context(|| format!("cannot write flow log {}", self.path.display()))?;
                Ok(())
            }
            Err(_) => bail!("the flow log writer failed"),
        }
    }
}

fn for_each_flows(p: &mut Pipeline, mut f: impl FnMut(&mut analyzers::flows::Flows)) {
    for plan in &mut p.policies {
        for h in &mut plan.handlers {
            if let analyzers::pipeline::HandlerKind::Flows(x) = &mut h.kind {
                f(x);
            }
        }
    }
}
