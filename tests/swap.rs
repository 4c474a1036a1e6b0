//! Hot swap on a booted release: real files dropped into the release's
//! components folder, real notify events, real wasmtime instances.

mod common;
use plasmoid_release::{SwapOptions, SwapOutcome, Swapper};
use plasmoid_runtime::{NativeProcess, Node, Pid};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const GET: u8 = 0;
const VERSION: u8 = 3;
const INCREMENT_CAST: u8 = 0;

/// A built and booted release, its tree started and its folder watched.
struct Live {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    node: Node,
    me: NativeProcess,
    _swapper: Swapper,
}

async fn boot(manifest: &str) -> Live {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = manifest.to_string();
    for name in ["counter", "echo"] {
        text = text.replace(
            &format!("{{{name}}}"),
            &common::wasm(name).display().to_string(),
        );
    }
    let path = tmp.path().join("prod.toml");
    std::fs::write(&path, text).unwrap();
    let m = plasmoid_release::load_manifest(&path).unwrap();
    let built = plasmoid_release::build(&m, &Default::default(), &mut |_| {}).unwrap();
    let (m, lock) = plasmoid_release::open_release(&built.dir).unwrap();
    let booted = plasmoid_release::boot(&built.dir, &m, &lock).unwrap();
    let me = booted.node.native("test");
    me.trap_exit(true);
    plasmoid_supervisor::start_link(booted.node.clone(), booted.spec, Some(me.pid()))
        .await
        .unwrap();
    let opts = SwapOptions {
        probation: Duration::from_secs(10),
        ..Default::default()
    };
    let swapper = plasmoid_release::watch(booted.node.clone(), &built.dir, m, opts).unwrap();
    Live {
        _tmp: tmp,
        dir: built.dir,
        node: booted.node,
        me,
        _swapper: swapper,
    }
}

impl Live {
    /// Drop a file the way an editor or `cp` + `mv` would: written aside,
    /// renamed into place.
    fn drop_file(&self, component: &str, bytes: &[u8]) {
        let live = self
            .dir
            .join("components")
            .join(format!("{component}.wasm"));
        let tmp = live.with_extension("wasm.part");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &live).unwrap();
    }

    fn only(&self, component: &str) -> Pid {
        let ps = self.node.particles_of(component);
        assert_eq!(ps.len(), 1, "{ps:?}");
        ps[0].pid
    }

    async fn ask(&self, pid: Pid, request: u8) -> Result<u64, String> {
        // A mailbox the load just filled takes the call once it drains.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self
                .me
                .call(pid, vec![request], Duration::from_secs(5))
                .await
            {
                Ok(reply) => return Ok(varint(&reply)),
                Err(plasmoid_runtime::CallError::Send(
                    plasmoid_runtime::SendError::MailboxFull,
                )) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(format!("{e:?}")),
            }
        }
    }

    /// Poll until the counter `component` answers `Version` with `want`.
    async fn wait_version(&self, component: &str, want: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(p) = self.node.particles_of(component).first()
                && self.ask(p.pid, VERSION).await == Ok(want)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    fn history(&self) -> Vec<plasmoid_release::SwapRecord> {
        plasmoid_release::Lock::read(&self.dir).unwrap().history
    }

    async fn wait_history(
        &self,
        len: usize,
        within: Duration,
    ) -> Vec<plasmoid_release::SwapRecord> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let h = self.history();
            if h.len() >= len {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.history()
    }
}

fn varint(bytes: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(common::wasm(name)).unwrap()
}

const COUNTER: &str = r#"
[release]
name = "swap"
version = "1"
[node]
max_particles = 64
[components.counter]
wasm = "{counter}"
[components.counter2]
wasm = "{counter}"
[components.echo]
wasm = "{echo}"
upgrade = "restart"
[supervisor]
strategy = "one-for-one"
max_restarts = 1
children = ["counter", "counter2", "echoes"]
[supervisors.echoes]
strategy = "one-for-one"
max_restarts = 0
children = ["echo", { id = "echo-2", component = "echo" }, { id = "echo-3", component = "echo" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_under_load_keeps_every_message_and_its_pid_across_a_swap() {
    let live = boot(COUNTER).await;
    let counter = live.only("counter");
    assert_eq!(live.ask(counter, VERSION).await, Ok(1));
    // A sender casting as fast as the mailbox takes it, before, during and
    // after the swap.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let node = live.node.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let me = node.native("load");
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match me.send(counter, vec![INCREMENT_CAST]) {
                    Ok(()) => sent += 1,
                    Err(_) => tokio::task::yield_now().await,
                }
                if sent.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    live.drop_file("counter", &wasm("counter_v2"));
    assert!(
        live.wait_version("counter", 2, Duration::from_secs(10))
            .await,
        "v2 answers"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.await.unwrap();
    assert!(sent > 1000, "the load was real: {sent}");
    assert_eq!(live.ask(counter, GET).await, Ok(sent), "every cast counted");
    assert_eq!(live.only("counter"), counter, "same pid");
    let h = live.history();
    assert_eq!(h.last().unwrap().outcome, SwapOutcome::Upgraded, "{h:?}");
    assert!(h.last().unwrap().detail.contains("1 handed over"), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_and_the_old_version_keeps_answering() {
    let live = boot(COUNTER).await;
    let counter = live.only("counter");
    let good = wasm("counter");
    let wat_particle = std::fs::read_to_string(common::wat_particle()).unwrap();
    let unknown_import = wat_particle.replacen(
        "(component",
        "(component\n  (import \"acme:missing/thing@1.0.0\" (instance (export \"ping\" (func))))",
        1,
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"this is not wasm".to_vec(), "\\0asm header"),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "wrong world",
            wat::parse_str("(component)").unwrap(),
            "does not implement the plasmoid:runtime/particle world",
        ),
        (
            "unknown import",
            wat::parse_str(&unknown_import).unwrap(),
            "acme:missing/thing",
        ),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        live.drop_file("counter", &bytes);
        let h = live.wait_history(i + 1, Duration::from_secs(10)).await;
        let last = h.last().unwrap_or_else(|| panic!("{what}: no record"));
        assert_eq!(last.outcome, SwapOutcome::Rejected, "{what}: {last:?}");
        assert!(last.detail.contains(reason), "{what}: {last:?}");
        assert_eq!(
            live.ask(counter, VERSION).await,
            Ok(1),
            "{what}: v1 still answers"
        );
        // The folder is consistent again: the good file is back in place.
        let now = std::fs::read(live.dir.join("components/counter.wasm")).unwrap();
        assert_eq!(now, good, "{what}: the running version's file is restored");
        assert!(
            live.dir.join("rejected").read_dir().unwrap().count() > i,
            "{what}: set aside"
        );
    }
    assert_eq!(live.only("counter"), counter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_traps_is_rolled_back() {
    let live = boot(COUNTER).await;
    live.drop_file("counter", &wasm("counter_trap"));
    let h = live.wait_history(1, Duration::from_secs(10)).await;
    assert_eq!(h[0].outcome, SwapOutcome::Upgraded, "{h:?}");
    // The first call reaches the broken build, which traps.
    let counter = live.only("counter");
    assert!(live.ask(counter, VERSION).await.is_err());
    let h = live.wait_history(2, Duration::from_secs(10)).await;
    assert_eq!(h[1].outcome, SwapOutcome::RolledBack, "{h:?}");
    assert!(
        live.wait_version("counter", 1, Duration::from_secs(10))
            .await,
        "v1 answers again"
    );
    let bad = &h[0].to;
    assert!(
        live.dir
            .join("rejected")
            .join(format!("counter-{bad}.wasm"))
            .is_file()
    );
    assert_eq!(
        std::fs::read(live.dir.join("components/counter.wasm")).unwrap(),
        wasm("counter")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mode_restarts_every_particle_without_tripping_intensity() {
    // The echoes' supervisor allows no restarts at all (max_restarts = 0).
    let live = boot(COUNTER).await;
    let before: Vec<Pid> = live
        .node
        .particles_of("echo")
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(before.len(), 3);
    live.drop_file("echo", &wasm("counter"));
    let h = live.wait_history(1, Duration::from_secs(10)).await;
    assert_eq!(h[0].outcome, SwapOutcome::Upgraded, "{h:?}");
    assert!(h[0].detail.contains("3 restarted"), "{h:?}");
    let after = live.node.particles_of("echo");
    assert_eq!(after.len(), 3, "{after:?}");
    for p in &after {
        assert!(!before.contains(&p.pid), "restarted: new pids");
        assert_eq!(&*p.version, h[0].to.as_str());
        assert_eq!(
            live.ask(p.pid, VERSION).await,
            Ok(1),
            "the new code (a counter) answers"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_files_dropped_at_once_are_all_swapped() {
    let live = boot(COUNTER).await;
    let v2 = wasm("counter_v2");
    live.drop_file("counter", &v2);
    live.drop_file("counter2", &v2);
    assert!(
        live.wait_version("counter", 2, Duration::from_secs(10))
            .await
    );
    assert!(
        live.wait_version("counter2", 2, Duration::from_secs(10))
            .await
    );
    let h = live.wait_history(2, Duration::from_secs(10)).await;
    assert!(
        h.iter()
            .all(|r| matches!(r.outcome, SwapOutcome::Upgraded | SwapOutcome::Confirmed)),
        "{h:?}"
    );
}

/// The hand-written WAT particle with its `exit` call replaced by `instead`.
fn wat_particle_without_exit(instead: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(common::wat_particle()).unwrap();
    let exit = "      (call $exit (i32.const 3) (i32.const 64) (i32.const 8))\n";
    assert!(text.contains(exit));
    wat::parse_str(text.replace(exit, instead)).unwrap()
}

/// Its `start` logs and then traps.
fn trapping_particle() -> Vec<u8> {
    wat_particle_without_exit("")
}

/// Its `start` never reaches `recv`: an endless loop.
fn hanging_particle() -> Vec<u8> {
    wat_particle_without_exit("      (loop $spin (br $spin))\n")
}

/// Every child of the echoes' supervisor runs again, on version `good`,
/// and its supervisor knows it by its pid.
async fn every_echo_runs(live: &Live, good: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running = live.node.particles_of("echo");
        if running.len() == 3 && running.iter().all(|p| &*p.version == good) {
            break;
        }
        assert!(Instant::now() < deadline, "{running:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for p in live.node.particles_of("echo") {
        let (sup, id) = plasmoid_supervisor::find_child(&live.node, p.pid).expect("supervised");
        let row = sup
            .which_children()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap();
        assert_eq!(row.pid, Some(p.pid), "{row:?}");
    }
    assert_eq!(&*live.node.component_version("echo").unwrap(), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mode_version_that_traps_at_start_leaves_every_child_running_the_old_one() {
    let live = boot(COUNTER).await;
    let good = live.node.component_version("echo").unwrap();
    assert_eq!(live.node.particles_of("echo").len(), 3);
    live.drop_file("echo", &trapping_particle());
    let h = live.wait_history(2, Duration::from_secs(10)).await;
    assert_eq!(h[0].outcome, SwapOutcome::Upgraded, "{h:?}");
    assert_eq!(h[1].outcome, SwapOutcome::RolledBack, "{h:?}");
    assert_eq!(
        h[1].from, h[0].to,
        "a rollback names the bad version: {h:?}"
    );
    every_echo_runs(&live, &good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mode_version_that_hangs_at_start_is_rolled_back_and_no_child_is_left_stopped() {
    // No CPU budget for the echoes: only the start timeout (5 s) ends the
    // hanging start, as it would end one blocked for any other reason.
    let manifest = COUNTER.replace(
        "upgrade = \"restart\"\n",
        "upgrade = \"restart\"\nlimits = { cpu_ms = 0 }\n",
    );
    let live = boot(&manifest).await;
    let good = live.node.component_version("echo").unwrap();
    live.drop_file("echo", &hanging_particle());
    let h = live.wait_history(2, Duration::from_secs(30)).await;
    assert_eq!(h[0].outcome, SwapOutcome::Upgraded, "{h:?}");
    assert_eq!(h[1].outcome, SwapOutcome::RolledBack, "{h:?}");
    assert!(h[1].detail.contains("did not initialise"), "{h:?}");
    every_echo_runs(&live, &good).await;
}

/// The WAT particle with `n` more functions in its core module, each a
/// chain of arithmetic: a component that takes cranelift seconds to compile.
fn large_particle(n: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(common::wat_particle()).unwrap();
    let anchor = "    ;; cabi_realloc(old_ptr, old_size, align, new_size) -> new_ptr\n";
    assert!(text.contains(anchor));
    let mut pad = String::new();
    for i in 0..n {
        pad.push_str(&format!(
            "    (func $pad{i} (param i64) (result i64) (local i64)\n"
        ));
        pad.push_str(&format!(
            "      (local.set 1 (i64.mul (local.get 0) (i64.const {i})))\n"
        ));
        for k in 0..12 {
            pad.push_str(&format!(
                "      (local.set 1 (i64.add (i64.rotl (local.get 1) (i64.const {k})) (i64.xor (local.get 1) (i64.const {}))))\n",
                i * 31 + k
            ));
        }
        pad.push_str("      (local.get 1))\n");
    }
    wat::parse_str(text.replace(anchor, &format!("{pad}{anchor}"))).unwrap()
}

/// Compiling a new version runs on a blocking thread: particles keep being
/// scheduled while it compiles. A native process calls the counter in a
/// loop throughout the swap of a large component; no round trip (two hops)
/// may take more than 10 epoch ticks (50 ms), against a compile of more
/// than a second that would stall them all if it ran on the particles'
/// threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_swap_compiles_off_the_scheduler_and_no_hop_waits_for_it() {
    let extra = tempfile::tempdir().unwrap();
    let small = extra.path().join("big.wasm");
    std::fs::write(&small, wat_particle_without_exit("")).unwrap();
    let manifest = COUNTER.replace(
        "[supervisor]\n",
        &format!(
            "[components.big]\nwasm = \"{}\"\n[supervisor]\n",
            small.display()
        ),
    );
    let live = boot(&manifest).await;
    let counter = live.only("counter");
    let large = large_particle(20_000);
    let compile = {
        let started = Instant::now();
        plasmoid_runtime::precompile(&Default::default(), "big", &large).unwrap();
        started.elapsed()
    };
    // Warm: the first calls are not part of the figure.
    for _ in 0..100 {
        live.ask(counter, GET).await.unwrap();
    }
    let before = live.history().len();
    live.drop_file("big", &large);
    let (mut worst, mut calls) = (Duration::ZERO, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while live.history().len() == before {
        assert!(Instant::now() < deadline, "the swap of `big` never landed");
        let t = Instant::now();
        live.ask(counter, GET).await.unwrap();
        worst = worst.max(t.elapsed());
        calls += 1;
    }
    let h = live.history();
    assert_eq!(h.last().unwrap().outcome, SwapOutcome::Upgraded, "{h:?}");
    eprintln!(
        "large swap: compile alone {} ms; {calls} calls during the swap, slowest {} µs",
        compile.as_millis(),
        worst.as_micros()
    );
    assert!(
        compile > Duration::from_secs(1),
        "the component is large enough to matter: {compile:?}"
    );
    assert!(
        worst <= Duration::from_millis(50),
        "a call waited {worst:?} during a swap that compiled for about {compile:?}"
    );
}
