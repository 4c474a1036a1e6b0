//! Shared test support: builds the guest apps once per test binary and
//! drives probe particles from a native controller process.
#![allow(dead_code)]

pub mod redis;
pub mod web;

use plasmoid_runtime::{Limits, Msg, NativeProcess, Node, NodeConfig, Pid, SpawnOpts};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Build every guest in `apps/` (once per test binary) and return the
/// path of the named component.
pub fn wasm(name: &str) -> PathBuf {
    static BUILD: OnceLock<Result<plasmoid_release::GuestBuild, String>> = OnceLock::new();
    let build = BUILD.get_or_init(|| {
        plasmoid_release::build_guest(&repo().join("apps")).map_err(|e| e.to_string())
    });
    match build {
        Ok(b) => b
            .get(name)
            .unwrap_or_else(|| panic!("apps/ built no component named {name}"))
            .to_path_buf(),
        Err(e) => panic!("building the guest apps failed: {e}"),
    }
}

pub fn wat_particle() -> PathBuf {
    repo().join("apps/wat/particle.wat")
}

/// A node with the test components loaded and a controller process.
pub struct Harness {
    pub node: Node,
    pub ctl: NativeProcess,
    stash: Mutex<VecDeque<Msg>>,
}

pub fn config() -> NodeConfig {
    NodeConfig {
        max_particles: 512,
        ..NodeConfig::default()
    }
}

/// The node's logs in the test's output (shown when it fails), at the
/// levels `RUST_LOG` names (errors only by default).
pub fn log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl Harness {
    pub fn new() -> Self {
        Self::with(config(), None)
    }

    pub fn with(cfg: NodeConfig, probe_limits: Option<Limits>) -> Self {
        log();
        let node = Node::new(cfg).expect("node starts");
        node.load_component("probe", &wasm("probe"), probe_limits)
            .unwrap();
        node.load_component("echo", &wasm("echo"), None).unwrap();
        node.load_component("counter", &wasm("counter"), None)
            .unwrap();
        let ctl = node.native("controller");
        Harness {
            node,
            ctl,
            stash: Mutex::new(VecDeque::new()),
        }
    }

    /// Spawn a probe and wait for its `ready`.
    pub async fn probe(&self) -> Pid {
        self.probe_opts(SpawnOpts::default()).await
    }

    pub async fn probe_opts(&self, opts: SpawnOpts) -> Pid {
        let init = json!({"controller": self.ctl.pid().to_string()}).to_string();
        let pid = self.node.spawn("probe", &init, opts).expect("probe spawns");
        let me = pid.to_string();
        self.next_json(|v| v["ready"] == me.as_str())
            .await
            .expect("probe reports ready");
        pid
    }

    /// Run a probe command and return its reply (`{"ok": ..}` or `{"err": ..}`).
    pub async fn cmd(&self, probe: Pid, cmd: Value) -> Value {
        self.ctl
            .send(probe, cmd.to_string().into_bytes())
            .expect("command sent");
        self.next_json(|v| v.get("ok").is_some() || v.get("err").is_some())
            .await
            .unwrap_or_else(|| panic!("no reply to {cmd}"))
    }

    /// The pid string of the next probe that reported ready.
    pub async fn next_ready(&self) -> String {
        let v = self
            .next_json(|v| v.get("ready").is_some())
            .await
            .expect("a ready probe");
        v["ready"].as_str().unwrap_or_default().to_string()
    }

    /// The next reply from any probe.
    pub async fn reply(&self) -> Value {
        self.next_json(|v| v.get("ok").is_some() || v.get("err").is_some())
            .await
            .expect("a reply")
    }

    /// Messages set aside while waiting for replies, oldest first.
    pub fn drain_stash(&self) -> Vec<Msg> {
        self.stash.lock().unwrap().drain(..).collect()
    }

    /// Send a command that does not answer (or whose answer comes later).
    pub fn fire(&self, probe: Pid, cmd: Value) {
        self.ctl
            .send(probe, cmd.to_string().into_bytes())
            .expect("command sent");
    }

    pub async fn ok(&self, probe: Pid, cmd: Value) -> Value {
        let r = self.cmd(probe, cmd.clone()).await;
        assert!(r.get("ok").is_some(), "{cmd} failed: {r}");
        r["ok"].clone()
    }

    /// The next event a probe reported (`{"event": ..}` payload).
    pub async fn event(&self, within: Duration) -> Option<Value> {
        self.next_json_within(|v| v.get("event").is_some(), within)
            .await
            .map(|v| v["event"].clone())
    }

    async fn next_json(&self, want: impl Fn(&Value) -> bool) -> Option<Value> {
        self.next_json_within(want, Duration::from_secs(20)).await
    }

    async fn next_json_within(
        &self,
        want: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Option<Value> {
        let matches = |m: &Msg| match m {
            Msg::Data(d) => serde_json::from_slice::<Value>(d)
                .map(|v| want(&v))
                .unwrap_or(false),
            _ => false,
        };
        let as_json = |m: Msg| match m {
            Msg::Data(d) => serde_json::from_slice::<Value>(&d).ok(),
            _ => None,
        };
        {
            let mut stash = self.stash.lock().unwrap();
            if let Some(i) = stash.iter().position(matches) {
                return stash.remove(i).and_then(as_json);
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.ctl.recv(Some(left)).await {
                Ok(Some(m)) if matches(&m) => return as_json(m),
                Ok(Some(m)) => self.stash.lock().unwrap().push_back(m),
                _ => return None,
            }
        }
    }

    /// The next non-JSON message for the controller itself (DOWN, EXIT, ...).
    pub async fn signal(&self, within: Duration) -> Option<Msg> {
        {
            let mut stash = self.stash.lock().unwrap();
            if let Some(i) = stash.iter().position(|m| !matches!(m, Msg::Data(_))) {
                return stash.remove(i);
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.ctl.recv(Some(left)).await {
                Ok(Some(Msg::Data(d))) => self.stash.lock().unwrap().push_back(Msg::Data(d)),
                Ok(Some(m)) => return Some(m),
                _ => return None,
            }
        }
    }

    /// The reason in the controller's DOWN for monitor `reference`.
    pub async fn down_reason(
        &self,
        reference: u64,
        within: Duration,
    ) -> Option<plasmoid_runtime::ExitReason> {
        {
            let mut stash = self.stash.lock().unwrap();
            let hit = stash
                .iter()
                .position(|m| matches!(m, Msg::Down { reference: r, .. } if *r == reference));
            if let Some(Msg::Down { reason, .. }) = hit.and_then(|i| stash.remove(i)) {
                return Some(reason);
            }
        }
        match self.ctl.recv_ref(reference, Some(within)).await {
            Ok(Some(Msg::Down { reason, .. })) => Some(reason),
            _ => None,
        }
    }
}

/// A node config whose policies are the built-in schema plus `policies`.
pub fn config_with_policies(policies: &str) -> NodeConfig {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "plasmoid-policy-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plasmoid.cedarschema"),
        plasmoid_runtime::DEFAULT_SCHEMA,
    )
    .unwrap();
    std::fs::write(dir.join("test.cedar"), policies).unwrap();
    NodeConfig {
        policy_dir: Some(dir),
        ..config()
    }
}

pub fn s(pid: Pid) -> String {
    pid.to_string()
}

pub const SEC: Duration = Duration::from_secs(1);

/// A running `plasmoid`, its stderr collected; `wait_for` blocks until a
/// line containing the text appears.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: String,
}

impl Running {
    pub fn start(c: &mut std::process::Command) -> Running {
        let mut child = c
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("plasmoid starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// `plasmoid release run RELEASE --node NAME`: one node of a release
    /// with `[nodes]`.
    pub fn release_node(release: &Path, name: &str) -> Running {
        Running::start(
            plasmoid()
                .args(["release", "run"])
                .arg(release)
                .args(["--node", name]),
        )
    }

    /// `plasmoid release run` of `release`, waited for until `<id> is up`.
    pub fn release_up(release: &Path, id: &str) -> Running {
        let mut running = Running::start(plasmoid().args(["release", "run"]).arg(release));
        let up = format!("release {id} is up");
        assert!(
            running.wait_for(&up, Duration::from_secs(300)),
            "{}",
            running.seen
        );
        running
    }

    pub fn wait_for(&mut self, text: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: the process gets no chance to say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code and the whole log.
    pub fn terminate(self) -> (Option<i32>, String) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.finish()
    }

    /// Wait up to `within` for the process to end by itself (then kill it).
    pub fn wait_exit(mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + within;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            self.seen.push_str("(still running: killed)\n");
            self.kill();
        }
        self.finish()
    }

    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        (status.code(), std::mem::take(&mut self.seen))
    }
}

/// A process a test left running (it failed half-way) must not outlive it.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `plasmoid` binary, run from the checkout.
pub fn plasmoid() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_plasmoid"));
    c.current_dir(repo());
    c
}

/// Exit code, stdout and stderr of a finished command.
pub fn run(c: &mut std::process::Command) -> (i32, String, String) {
    let out = c.output().expect("plasmoid runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A UDP port free on 127.0.0.1 right now (for a node's `listen`).
/// A TCP port free on 127.0.0.1 right now.
#[allow(dead_code)]
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An iroh endpoint of the test's own, offline, on 127.0.0.1: a peer or
/// client that speaks whatever the test writes.
pub async fn raw_endpoint(key: iroh::SecretKey) -> iroh::Endpoint {
    iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .secret_key(key)
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_address_lookup()
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap()
}

/// A built release named `name` of the echo component over the mesh nodes
/// `nodes` (each on a free 127.0.0.1 port), written into `dir`; `supervisor`
/// is the body of its `[supervisor]` table. Returns the release folder.
pub fn echo_mesh_release(dir: &Path, name: &str, nodes: &[&str], supervisor: &str) -> PathBuf {
    let nodes: String = nodes
        .iter()
        .map(|n| format!("{n} = {{ listen = \"127.0.0.1:{}\" }}\n", free_udp_port()))
        .collect();
    let manifest = dir.join("prod.toml");
    let text = format!(
        "[release]\nname = \"{name}\"\nversion = \"1\"\n[node]\nmax_particles = 64\n\
         [nodes]\n{nodes}[components.echo]\nwasm = \"{}\"\n[supervisor]\n{supervisor}\n",
        wasm("echo").display()
    );
    std::fs::write(&manifest, text).expect("write the manifest");
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    PathBuf::from(out.trim())
}
