//! `plasmoid bench nodedown`: how fast a lost node is noticed and its work
//! moves. This process is node `a` of a three-node release; it starts `b`
//! and `c` as real `plasmoid release run --node` processes on 127.0.0.1.
//! The supervisor on `a` places a child on `b` (else `c`); then `b` gets
//! `kill -9` and later `c` gets `kill -STOP` (a hung node).

use super::common::median;
use anyhow::{Context, Result, anyhow, bail};
use plasmoid_runtime::{ExitReason, Msg, NativeProcess, Pid};
use plasmoid_supervisor::SupervisorRef;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Peer processes die with the bench, whatever happens.
struct Peers(Vec<Child>);

impl Drop for Peers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Each run starts fresh peers; the figures are medians over `runs`.
pub fn run(
    threads: Option<usize>,
    runs: usize,
    emit: impl Fn(&str, f64, &str, Value),
) -> Result<()> {
    let echo = super::common::app_wasm(None, "echo", "--echo")?;
    let work = std::env::temp_dir().join(format!("plasmoid-bench-nodedown-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut all = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = None;
    for _ in 0..runs {
        match measure_in(&work, &echo, threads) {
            Ok((k, r, s)) => {
                all.0.push(k);
                all.1.push(r);
                all.2.push(s);
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if let Some(e) = failed {
        return Err(e);
    }
    let (kill9, running, stop) = (median(all.0), median(all.1), median(all.2));
    let params = json!({"nodes": 3, "heartbeat_ms": 100, "peer_timeout_ms": 600, "runs": runs});
    emit("nodedown.kill9_noconnection", kill9, "ms", params.clone());
    emit(
        "nodedown.child_running_again",
        running,
        "ms",
        params.clone(),
    );
    emit("nodedown.stop_noconnection", stop, "ms", params);
    Ok(())
}

fn measure_in(work: &Path, echo: &Path, threads: Option<usize>) -> Result<(f64, f64, f64)> {
    let [pa, pb, pc] = [free_port()?, free_port()?, free_port()?];
    let manifest = work.join("prod.toml");
    std::fs::write(
        &manifest,
        format!(
            "[release]\nname = \"nodedown\"\nversion = \"1\"\n[node]\nmax_particles = 64\n\
             [nodes]\na = {{ listen = \"127.0.0.1:{pa}\" }}\nb = {{ listen = \"127.0.0.1:{pb}\" }}\n\
             c = {{ listen = \"127.0.0.1:{pc}\" }}\n[components.echo]\nwasm = {:?}\n\
             [supervisor]\nstrategy = \"one-for-one\"\nmax_restarts = 5\nmax_seconds = 10\n\
             children = [{{ id = \"far\", component = \"echo\", node = [\"b\", \"c\"] }}]\n",
            echo.display().to_string()
        ),
    )?;
    let m = plasmoid_release::load_manifest(&manifest)?;
    let built = plasmoid_release::build(&m, &Default::default(), &mut |_| {})?;
    let exe = std::env::current_exe().context("cannot find the plasmoid binary")?;
    let start = |name: &str| {
        Command::new(&exe)
            .args(["release", "run"])
            .arg(&built.dir)
            .args(["--node", name, "--no-watch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    let peers = Peers(vec![start("b")?, start("c")?]);
    let rt = crate::start::scheduler(threads)?;
    let dir = built.dir.clone();
    // The measuring code runs on the scheduler's workers, like the rest.
    let (result, peers) = rt.block_on(async move {
        tokio::spawn(async move {
            let mut peers = peers;
            (measure(&dir, &mut peers).await, peers)
        })
        .await
    })?;
    drop(peers);
    result
}

async fn measure(dir: &Path, peers: &mut Peers) -> Result<(f64, f64, f64)> {
    let opts = plasmoid_release::RunOptions {
        node: Some("a".into()),
        swap: None,
        ..Default::default()
    };
    let node = plasmoid_release::ReleaseNode::start(dir, opts).await?;
    let ids = plasmoid_release::node_ids(dir, node.manifest())?;
    let (b, c) = (ids["b"], ids["c"]);
    let me = node.node().native("bench");
    me.trap_exit(true);
    let sup = node
        .up()
        .await
        .ok_or_else(|| anyhow!("the release did not start"))?;
    let on_b = far(&sup).await?;
    if on_b.node != b {
        bail!("the child did not start on node b");
    }
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;

    // kill -9 of the node holding the child.
    let watch = me.monitor(on_b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = Instant::now();
    peers.0[0].kill()?;
    noconnection(&me, watch).await?;
    let kill9 = ms(killed);
    let on_c = loop {
        if let Ok(p) = far(&sup).await
            && p.node == c
        {
            break p;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("the child did not move to node c within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let running = ms(killed);

    // kill -STOP: the node hangs; only the missing heartbeats tell.
    let watch = me.monitor(on_c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = Instant::now();
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(peers.0[1].id() as i32, libc::SIGSTOP) };
    noconnection(&me, watch).await?;
    let stop = ms(stopped);
    node.stop();
    node.wait().await?;
    Ok((kill9, running, stop))
}

async fn far(sup: &SupervisorRef) -> Result<Pid> {
    sup.which_children()
        .await
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .find_map(|c| c.pid)
        .ok_or_else(|| anyhow!("the child is not running"))
}

async fn noconnection(me: &NativeProcess, reference: u64) -> Result<()> {
    match me.recv_ref(reference, Some(Duration::from_secs(30))).await {
        Ok(Some(Msg::Down {
            reason: ExitReason::Noconnection,
            ..
        })) => Ok(()),
        other => bail!("expected DOWN noconnection, got {other:?}"),
    }
}
