//! Shared by the integration tests that drive the binary as a child process.

use std::process::{Command, Stdio};

#[allow(dead_code)]
/// The binary, to run in the background: no user config, output discarded (callers may
/// override stderr).
pub fn background() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("llm-inf-bench"));
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("LLM_INF_BENCH_STATE_DIR", test_state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Where the tests' watchdog markers go: never the user's own state directory.
pub fn test_state_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("llm-inf-bench-test-state-{}", std::process::id()))
}

/// The binary for one command, no user config, bounded in time.
#[allow(dead_code)]
pub fn bin(timeout_s: u64) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("llm-inf-bench").unwrap();
    // Never the developer's own config or environment overrides.
    for (k, _) in std::env::vars() {
        if k.starts_with("LLM_INF_BENCH_") {
            c.env_remove(k);
        }
    }
    let state =
        std::env::temp_dir().join(format!("llm-inf-bench-test-state-{}", std::process::id()));
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("LLM_INF_BENCH_STATE_DIR", state)
        .timeout(std::time::Duration::from_secs(timeout_s));
    c
}

/// Writes `yaml` as `dir/NAME` and returns its path.
#[allow(dead_code)]
pub fn write(dir: &std::path::Path, name: &str, yaml: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// The one result file a run left in `dir/out`.
#[allow(dead_code)]
pub fn result(dir: &std::path::Path) -> serde_json::Value {
    let f = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".sweep.json")
        })
        .unwrap();
    serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
}

/// A TLS front on 127.0.0.1 for `backend` (the certificate in `tests/fixtures/tls`, signed by
/// `ca.pem` there), spawned on the current runtime; returns its `https://` URL.
#[allow(dead_code)]
pub async fn tls_proxy(backend: std::net::SocketAddr) -> String {
    use rustls_pki_types::pem::PemObject;
    use std::sync::Arc;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut back) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
            });
        }
    });
    url
}

/// The CA that signed the TLS front's certificate.
#[allow(dead_code)]
pub fn test_ca() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem")
}

/// A simulator on its own runtime thread, alive as long as this value.
#[allow(dead_code)]
pub struct Sim {
    pub url: String,
    pub _rt: tokio::runtime::Runtime,
    pub _h: llm_inf_bench::sim::SimHandle,
}

/// A simulator with `profile` (`instant`, `fixed-50ms-10ms`, …), healthy at once.
#[allow(dead_code)]
pub fn sim_server(profile: &str) -> Sim {
    use llm_inf_bench::config::Personality;
    let cfg = llm_inf_bench::sim::SimConfig::new(profile.parse().unwrap(), Personality::Vllm, "m");
    sim_with(cfg)
}

/// A simulator with `cfg` (its start-up delay set to zero).
#[allow(dead_code)]
pub fn sim_with(mut cfg: llm_inf_bench::sim::SimConfig) -> Sim {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    cfg.startup_delay = Some(std::time::Duration::ZERO);
    let h = rt
        .block_on(llm_inf_bench::sim::start(cfg, "127.0.0.1:0"))
        .unwrap();
    Sim {
        url: h.base_url(),
        _rt: rt,
        _h: h,
    }
}

/// The one result file (not an index, not a log) a run left in `dir/out`.
#[allow(dead_code)]
pub fn result_path(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".json") && !n.ends_with(".sweep.json")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The checked-in JSON Schema of result files (`schemas/result.schema.json`).
#[allow(dead_code)]
pub fn result_schema() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/result.schema.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `path` is a result file the checked-in schema accepts (every error listed if not).
#[allow(dead_code)]
pub fn assert_valid_result(path: &std::path::Path) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_valid(&result_schema(), &v, path);
}

/// `v` passes `schema`; the failure lists every error, with `what` it was.
#[allow(dead_code)]
pub fn assert_valid(schema: &serde_json::Value, v: &serde_json::Value, what: &std::path::Path) {
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}", what.display());
}

/// The checked-in JSON Schema of sweep index files (`schemas/sweep-index.schema.json`).
#[allow(dead_code)]
pub fn index_schema() -> serde_json::Value {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/sweep-index.schema.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Runs the tool with `args`, which must succeed; its stdout.
#[allow(dead_code)]
pub fn succeeds<I, S>(timeout_s: u64, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    stdout_of(bin(timeout_s).args(args).output().unwrap())
}

/// A finished command that must have succeeded (else its stderr is the failure); its stdout.
#[allow(dead_code)]
pub fn stdout_of(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run EXP --no-tui --yes` must succeed; its result file (checked against the schema) and
/// the file's JSON.
#[allow(dead_code)]
pub fn run_ok(exp: &std::path::Path, timeout_s: u64) -> (std::path::PathBuf, serde_json::Value) {
    let out = bin(timeout_s)
        .arg("run")
        .arg(exp)
        .args(["--no-tui", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = result_path(exp.parent().unwrap());
    assert_valid_result(&path);
    let r = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, r)
}

/// Requests the vLLM-named server on `port` has answered (`vllm:request_success_total` of its
/// `/metrics`, which needs no key); 0 when it does not answer. Bounded in time.
#[allow(dead_code)]
pub fn served(port: u16) -> f64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(std::time::Duration::from_secs(2)));
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .lines()
        .filter(|l| l.starts_with("vllm:request_success_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The files in `dir/out` whose name ends with `suffix`, sorted.
#[allow(dead_code)]
pub fn files(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("out")) else {
        return Vec::new();
    };
    let mut v: Vec<std::path::PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// Sends `signal` (`INT`, `TERM`) to `child` and waits at most `secs` for it to exit: its exit
/// code, or `None` when it did not exit (it is killed then, and reaped either way).
#[allow(dead_code)]
pub fn signal_and_wait(child: &mut std::process::Child, signal: &str, secs: u64) -> Option<i32> {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(sent, "could not send SIG{signal}");
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.wait();
    code
}

/// A result's ideal prefix-cache hit rate (the workload's) and the server's measured one.
#[allow(dead_code)]
pub fn hit_rates(r: &serde_json::Value) -> (f64, f64) {
    let ideal = r["summary"]["ideal_prefix_cache_hit_rate"].as_f64();
    let measured = r["server_metrics"]["summary"]["prefix_cache_hit_rate"].as_f64();
    match (ideal, measured) {
        (Some(i), Some(m)) => (i, m),
        _ => panic!("no ideal or measured hit rate in {}", r["summary"]),
    }
}

/// Stoplight Prism (`LLMIB_PRISM_BIN`, from `scripts/prism.sh env`) in proxy mode with
/// `--errors` in front of `origin`, checking every request and answer against the document
/// `spec`; its output goes to `log`. The process and its port, once it accepts connections.
#[allow(dead_code)]
pub fn prism_proxy(
    spec: &std::path::Path,
    origin: &str,
    log: &std::path::Path,
) -> (std::process::Child, u16) {
    let prism = std::env::var("LLMIB_PRISM_BIN")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("LLMIB_PRISM_BIN is not set: `eval $(scripts/prism.sh env)` first (scripts/test.sh does this)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut proxy = Command::new(&prism)
        .args([
            "proxy",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--errors",
        ])
        .arg(spec)
        .arg(origin)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = (0..150).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if !up {
        let _ = proxy.kill();
        let _ = proxy.wait();
        panic!(
            "prism proxy did not come up:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    (proxy, port)
}

/// The lines of a Prism log that report a request or an answer off the document.
#[allow(dead_code)]
pub fn prism_violations(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("✖") || l.contains("Violation"))
        .map(String::from)
        .collect()
}
