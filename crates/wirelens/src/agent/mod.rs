//! `wirelens agent`: the daemon (pktvisord's command line). It starts the live runtime, loads
//! taps and policies from the command line or `--config`, serves the REST API and Prometheus,
//! and reacts to signals: SIGTERM/SIGINT stop it cleanly, SIGHUP re-reads `--config` and
//! applies what changed.

pub mod http;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use analyzers::config::{ConfigValue, WindowConfig};
use anyhow::{Context, Result, bail};
use clap::Args;
use engine::live::{Runtime, RuntimeConfig};

use state::{Agent, Options, Origin};

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Interfaces to capture on (tap `default`, policy `default` with net, dns and pcap stats).
    ifaces: Vec<String>,
    /// Address to serve the REST API on.
    #[arg(short = 'l', long = "host")]
    host: Option<String>,
    /// Port to serve the REST API on (0 picks a free one, printed on stderr).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Enable the admin REST API (adding and removing taps and policies).
    #[arg(long = "admin-api")]
    admin_api: bool,
    /// YAML configuration: `visor: {config, taps, policies}`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Packet filter (tcpdump syntax) of the default policy.
    #[arg(short = 'b', long = "bpf")]
    bpf: Option<String>,
    /// Host address blocks (CIDR, comma separated) that decide in/out direction.
    #[arg(short = 'H', long = "host-spec")]
    host_spec: Option<String>,
    /// Number of 60-second periods kept per handler.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=10))]
    periods: Option<u8>,
    /// Deep-sampling percentage (1-100).
    #[arg(long = "max-deep-sample", value_parser = clap::value_parser!(u8).range(1..=100))]
    max_deep_sample: Option<u8>,
    /// Value of the static Prometheus label `instance`.
    #[arg(long = "prom-instance")]
    prom_instance: Option<String>,
    /// Serve HTTPS (needs --tls-cert and --tls-key).
    #[arg(long)]
    tls: bool,
    /// PEM certificate chain for --tls.
    #[arg(long = "tls-cert")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls.
    #[arg(long = "tls-key")]
    tls_key: Option<PathBuf>,
    /// File holding a bearer token every admin call must present.
    #[arg(long = "api-token-file")]
    api_token_file: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    workers: Option<usize>,
    /// MaxMind city database (GeoIP2/GeoLite2 City).
    #[arg(long = "geo-city")]
    geo_city: Option<PathBuf>,
    /// MaxMind ASN database.
    #[arg(long = "geo-asn")]
    geo_asn: Option<PathBuf>,
    /// Addresses cached per worker for GeoIP/ASN lookups.
    #[arg(long = "geo-cache-size", default_value_t = geo::DEFAULT_CAPACITY)]
    geo_cache_size: usize,
    /// Period length in milliseconds (pktvisor: 60 s); for tests of period rotation.
    #[arg(long = "period-ms", hide = true, default_value_t = 60_000)]
    period_ms: u64,
}

/// The server settings after merging the command line over `visor.config`.
struct Serve {
    addr: String,
    port: u16,
    admin: bool,
    tls: Option<(PathBuf, PathBuf)>,
    token: Option<String>,
}

/// The pktvisord built-in policy for interfaces given on the command line.
fn default_document(args: &AgentArgs) -> String {
    // A JSON string is a YAML double-quoted scalar: quotes and backslashes stay intact.
    let quote = |v: &str| serde_json::Value::from(v).to_string();
    let mut tap_cfg = format!("        iface: {}\n", quote(&args.ifaces.join(",")));
    if let Some(h) = &args.host_spec {
        tap_cfg.push_str(&format!("        host_spec: {}\n", quote(h)));
    }
    let mut input = "        tap: default\n        input_type: pcap\n".to_string();
    if let Some(b) = &args.bpf {
        input.push_str(&format!("        filter:\n          bpf: {}\n", quote(b)));
    }
    format!(
        "visor:\n  taps:\n    default:\n      input_type: pcap\n      config:\n{tap_cfg}  policies:\n    default:\n      kind: collection\n      input:\n{input}      handlers:\n        window_config:\n          num_periods: {}\n          deep_sample_rate: {}\n        modules:\n          net:\n            type: net\n          dns:\n            type: dns\n          pcap_stats:\n            type: pcap\n",
        args.periods.unwrap_or(5),
        args.max_deep_sample.unwrap_or(100),
    )
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(args: AgentArgs) -> Result<()> {
    // `visor.config` from the file; the command line wins (booleans are OR-ed).
    let file_doc = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Some(
                policy::parse_document(&text, WindowConfig::default())
                    .with_context(|| format!("config file {}", path.display()))?,
            )
        }
        None => None,
    };
    let fc = file_doc
        .as_ref()
        .map(|d| d.config.clone())
        .unwrap_or_default();
    let fstr = |k: &str| fc.get(k).and_then(ConfigValue::scalar_string);
    let fbool = |k: &str| matches!(fc.get(k), Some(ConfigValue::Bool(true)));
    let fnum = |k: &str| fc.uint(k).ok().flatten();
    let periods = args
        .periods
        .or(fnum("periods").map(|n| n.clamp(1, 10) as u8))
        .unwrap_or(5);
    let deep = args
        .max_deep_sample
        .or(fnum("max_deep_sample").map(|n| n.clamp(1, 100) as u8))
        .unwrap_or(100);
    let serve = Serve {
        addr: args
            .host
            .clone()
            .or(fstr("host"))
            .unwrap_or_else(|| "localhost".into()),
        port: args
            .port
            .or(fnum("port").map(|p| p as u16))
            .unwrap_or(10853),
        admin: args.admin_api || fbool("admin_api"),
        tls: if args.tls || fbool("tls") {
            let cert = args
                .tls_cert
                .clone()
                .or(fstr("tls_cert").map(PathBuf::from));
            let key = args.tls_key.clone().or(fstr("tls_key").map(PathBuf::from));
            match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => bail!("--tls requires --tls-cert and --tls-key"),
            }
        } else {
            None
        },
        token: match &args.api_token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read token file {}", p.display()))?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    bail!("token file {} is empty", p.display());
                }
                Some(t)
            }
            None => None,
        },
    };
    if args.ifaces.is_empty() && args.config.is_none() && !serve.admin {
        bail!("Nothing to do: specify --admin-api or IFACE.");
    }
    let geo_city = args
        .geo_city
        .clone()
        .or(fstr("geo_city").map(PathBuf::from));
    let geo_asn = args.geo_asn.clone().or(fstr("geo_asn").map(PathBuf::from));
    let geo = if geo_city.is_some() || geo_asn.is_some() {
        Some(Arc::new(geo::GeoDb::open(
            geo_city.as_deref(),
            geo_asn.as_deref(),
        )?))
    } else {
        None
    };
    let opts = Options {
        defaults: WindowConfig {
            num_periods: periods,
            deep_sample_rate: deep,
            ..WindowConfig::default()
        },
        limits: analyzers::pipeline::Limits::default(),
        host_spec: args.host_spec.clone(),
        geo,
        geo_cache_size: args.geo_cache_size,
        prom_instance: args.prom_instance.clone().or(fstr("prom_instance")),
    };
    let rt = Runtime::start(&RuntimeConfig {
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        period: Duration::from_millis(args.period_ms.max(1)),
    });
    let mut agent = Agent::new(rt, opts);
    if !args.ifaces.is_empty() {
        let doc = agent.parse(&default_document(&args))?;
        agent.apply_config(doc, Origin::CommandLine)?;
    }
    if let Some(path) = &args.config {
        // Re-parsed with the final window defaults.
        let text = std::fs::read_to_string(path)?;
        let doc = agent
            .parse(&text)
            .with_context(|| format!("config file {}", path.display()))?;
        agent
            .apply_config(doc, Origin::Config)
            .with_context(|| format!("config file {}", path.display()))?;
    }
    let shared = Arc::new(http::Shared::new(agent, serve.admin, serve.token.clone()));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = tokio.block_on(serve_until_signal(
        shared.clone(),
        &serve,
        args.config.clone(),
    ));
    // Final flush: workers finish their batch and stop.
    if let Some(agent) = shared.agent.lock().ok().and_then(|mut a| a.take()) {
        agent.shutdown();
    }
    result
}

async fn serve_until_signal(
    shared: Arc<http::Shared>,
    serve: &Serve,
    config: Option<PathBuf>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let addr: SocketAddr = tokio::net::lookup_host((serve.addr.as_str(), serve.port))
        .await
        .with_context(|| format!("cannot resolve {}", serve.addr))?
        .next()
        .with_context(|| format!("no address for {}", serve.addr))?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = http::router(shared.clone());
    let handle = axum_server::Handle::new();
    let scheme = if serve.tls.is_some() { "https" } else { "http" };
    let server = match &serve.tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .context("cannot load the TLS certificate or key")?;
            let h = handle.clone();
            tokio::spawn(async move {
                axum_server::from_tcp_rustls(listener, tls)?
                    .handle(h)
                    .serve(app.into_make_service())
                    .await
            })
        }
        None => {
            let h = handle.clone();
            tokio::spawn(async move {
                axum_server::from_tcp(listener)?
                    .handle(h)
                    .serve(app.into_make_service())
                    .await
            })
        }
    };
    eprintln!("wirelens: serving on {scheme}://{bound}");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = shutdown.notified() => break,
            _ = hup.recv() => {
                let Some(path) = config.clone() else {
                    eprintln!("wirelens: SIGHUP without --config: nothing to reload");
                    continue;
                };
                let shared = shared.clone();
                let outcome = tokio::task::spawn_blocking(move || reload(&shared, &path)).await;
                match outcome {
                    Ok(Ok(log)) => eprintln!("wirelens: reloaded configuration: {}", if log.is_empty() { "no change".to_string() } else { log.join(", ") }),
                    Ok(Err(e)) => eprintln!("wirelens: reload failed, nothing changed: {e:#}"),
                    Err(e) => eprintln!("wirelens: reload failed: {e}"),
                }
            }
        }
    }
    handle.graceful_shutdown(Some(Duration::from_secs(2)));
    let _ = server.await;
    Ok(())
}

/// SIGHUP: re-reads the configuration file and applies the difference.
fn reload(shared: &http::Shared, path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut guard = shared
        .agent
        .lock()
        .map_err(|_| anyhow::anyhow!("agent state poisoned"))?;
    let agent = guard.as_mut().context("agent stopped")?;
    let doc = agent.parse(&text)?;
    agent.check_config(&doc)?;
    Ok(agent.apply_config(doc, Origin::Config)?)
}

impl AgentArgs {
    /// The configuration file, if any.
    pub fn config(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct W {
        #[command(flatten)]
        a: AgentArgs,
    }

    #[test]
    fn default_policy_for_interfaces_parses() {
        let w = W::parse_from([
            "x",
            "eth0",
            "-b",
            "udp port 53 and not host \"x\"",
            "-H",
            "10.0.0.0/8",
            "--periods",
            "3",
        ]);
        let doc = policy::parse_document(&default_document(&w.a), WindowConfig::default()).unwrap();
        assert_eq!(doc.taps[0].name, "default");
        assert_eq!(
            doc.taps[0].config.get("iface"),
            Some(&ConfigValue::Str("eth0".into()))
        );
        let p = &doc.policies[0];
        assert_eq!(p.name, "default");
        assert_eq!(
            p.input_config.get("bpf"),
            Some(&ConfigValue::Str("udp port 53 and not host \"x\"".into()))
        );
        let kinds: Vec<&str> = p.handlers.iter().map(|h| h.kind.as_str()).collect();
        assert_eq!(kinds, ["dns", "net", "pcap"]);
        assert_eq!(p.handlers[0].window.num_periods, 3);
    }
}
