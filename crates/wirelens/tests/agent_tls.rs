//! `--tls`: the agent serves HTTPS with a certificate made by openssl, curl reads the API
//! through it (admin calls still need the bearer token), and plain HTTP gets no answer.

mod agent_common;
mod support;

use std::process::Command;
use std::time::Duration;

use agent_common::{Agent, TempDir, request};

fn runs(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn https_with_a_bearer_token() {
    if !runs("openssl", "version") {
        return support::missing("openssl");
    }
    if !support::tool_runs("curl") {
        return support::missing("curl");
    }
    let dir = TempDir::new("agent-tls");
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let tok = dir.write("token", "t0ken");
    let mut agent = Agent::start(&[
        "--admin-api",
        "--tls",
        "--tls-cert",
        &cert.display().to_string(),
        "--tls-key",
        &key.display().to_string(),
        "--api-token-file",
        &tok.display().to_string(),
    ]);
    let base = format!("https://127.0.0.1:{}", agent.port);
    let (status, body) = curl(&[&format!("{base}/api/v1/metrics/app")]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["app"]["version"], env!("CARGO_PKG_VERSION"));
    let tap = "visor:\n  taps:\n    t:\n      input_type: pcap\n      config:\n        iface: wl-absent0\n";
    let post = |token: Option<&str>| {
        let mut args = vec![
            "-X".to_string(),
            "POST".into(),
            "-H".into(),
            "Content-Type: application/x-yaml".into(),
            "--data-binary".into(),
            tap.into(),
        ];
        if let Some(t) = token {
            args.push("-H".into());
            args.push(format!("Authorization: Bearer {t}"));
        }
        args.push(format!("{base}/api/v1/taps"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&refs)
    };
    assert_eq!(post(None).0, 401);
    assert_eq!(post(Some("wrong")).0, 401);
    let (status, body) = post(Some("t0ken"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(curl(&[&format!("{base}/api/v1/taps/t")]).0, 200);
    // A policy on an interface that does not exist fails clearly, naming the interface.
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/x-yaml",
        "-H",
        "Authorization: Bearer t0ken",
        "--data-binary",
        "visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        tap: t\n      handlers:\n        modules:\n          n:\n            type: net\n",
        &format!("{base}/api/v1/policies"),
    ]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("wl-absent0"), "{body}");
    assert_eq!(curl(&[&format!("{base}/api/v1/policies")]).1, "{}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let (status, _) = request(agent.port, "GET", "/api/v1/metrics/app", &[], "");
    assert_ne!(status, 200);

    agent.signal("INT");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}
