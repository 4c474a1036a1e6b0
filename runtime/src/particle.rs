//! A particle's life: one store, one tokio task, from instantiation to exit.
//!
//! The task races the guest's `start` against the process entry's exit
//! request. Dropping the wasm future cancels the guest wherever it is
//! suspended (in `recv`, or yielding at an epoch tick), so a kill lands
//! within one tick even in a loop that never calls the runtime.

use crate::components::LoadedComponent;
use crate::node::NodeInner;
use crate::outgoing::OutgoingHttp;
use crate::output::GuestOutput;
use crate::pid::Pid;
use crate::policy::Action;
use crate::process::Process;
use crate::reason::ExitReason;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The host side of one particle, kept in its `Store`.
pub struct ParticleState {
    pub(crate) wasi: WasiCtx,
    /// The guest's stderr, whose last lines go into a trap's exit reason.
    pub(crate) stderr: GuestOutput,
    pub(crate) table: ResourceTable,
    /// Outgoing `wasi:http`, each destination asked of Cedar.
    pub(crate) http: WasiHttpCtx,
    pub(crate) outgoing: OutgoingHttp,
    pub(crate) proc: Arc<Process>,
    pub(crate) node: Arc<NodeInner>,
    pub(crate) component: Arc<LoadedComponent>,
    pub(crate) memory: MemoryCap,
    pub(crate) cpu: CpuMeter,
    /// Set by the guest's `exit` or a broken limit, read when the call ends.
    pub(crate) exit_request: Option<ExitReason>,
    pub(crate) decisions: DecisionCache,
    /// Whether this particle has reached its first wait in `recv`.
    pub(crate) settled: bool,
    /// Who to tell when it does (see `SpawnOpts::ack`).
    pub(crate) ack: Option<(Pid, u64)>,
    /// Hot swap: the state the previous version handed over, for `take-handoff`.
    pub(crate) handoff_in: Option<Vec<u8>>,
    /// Hot swap: the state this instance hands to the next version.
    pub(crate) handoff_out: Option<Vec<u8>>,
}

impl WasiView for ParticleState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ParticleState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

/// Caps linear memory growth at the component's limit.
pub struct MemoryCap {
    limit: usize,
    exceeded: bool,
    /// The particle whose memory this counts for the observer.
    owner: Option<Arc<Process>>,
    /// Bytes counted for a growth wasmtime may still refuse.
    pending: usize,
}

impl MemoryCap {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryCap {
            limit,
            exceeded: false,
            owner: None,
            pending: 0,
        }
    }

    /// A cap that also keeps `owner`'s memory count (a new instance of
    /// it, after a swap, starts again from zero).
    pub(crate) fn counting(limit: usize, owner: Arc<Process>) -> Self {
        owner
            .counters
            .memory
            .store(0, std::sync::atomic::Ordering::Relaxed);
        MemoryCap {
            limit,
            exceeded: false,
            owner: Some(owner),
            pending: 0,
        }
    }

    /// Whether a growth past the cap was refused (the reason of a trap).
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        if let Some(p) = &self.owner {
            // Counted now; taken back in `memory_grow_failed` if wasmtime
            // refuses the growth after all (past the memory's own maximum).
            let grown = desired.saturating_sub(current);
            self.pending = grown;
            p.counters
                .memory
                .fetch_add(grown, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        if let Some(p) = &self.owner {
            p.counters
                .memory
                .fetch_sub(self.pending, std::sync::atomic::Ordering::Relaxed);
        }
        self.pending = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Counts epoch ticks a particle runs without waiting in `recv`.
pub struct CpuMeter {
    /// Set when the particle comes back from a wait; the next tick restarts the count.
    pub fresh: bool,
    ticks: u64,
    budget_ticks: u64,
    budget_ms: u64,
}

/// Per-particle memo of Cedar decisions for resources named by a shared
/// `Arc<str>` (component names), compared by pointer: no hashing, no lock.
#[derive(Default)]
pub struct DecisionCache {
    generation: u64,
    entries: Vec<(Action, Arc<str>, bool)>,
}

impl ParticleState {
    /// Whether this particle may do `action` to a particle/component named `resource`.
    pub(crate) fn allowed_on(&mut self, action: Action, resource: &Arc<str>) -> bool {
        let generation = self.node.policy.generation();
        if self.decisions.generation != generation {
            self.decisions.entries.clear();
            self.decisions.generation = generation;
        }
        let hit = self
            .decisions
            .entries
            .iter()
            .find(|(a, k, _)| *a == action && Arc::ptr_eq(k, resource));
        if let Some((_, _, d)) = hit {
            return *d;
        }
        let d = self
            .node
            .policy
            .allowed(&self.component.name, action, resource);
        if self.decisions.entries.len() < 32 {
            self.decisions.entries.push((action, resource.clone(), d));
        }
        d
    }

    /// Whether this particle may do `action` to a resource named by a plain string.
    pub(crate) fn allowed(&self, action: Action, resource: &str) -> bool {
        self.node
            .policy
            .allowed(&self.component.name, action, resource)
    }
}

fn on_epoch(mut cx: StoreContextMut<'_, ParticleState>) -> wasmtime::Result<UpdateDeadline> {
    let s = cx.data_mut();
    if s.proc.exit_pending() {
        return Err(wasmtime::Error::msg("exit signal"));
    }
    if s.cpu.fresh {
        s.cpu.fresh = false;
        s.cpu.ticks = 0;
        return Ok(UpdateDeadline::Continue(1));
    }
    s.cpu.ticks += 1;
    if s.node.config.metrics {
        crate::stats::bump(&s.proc.counters.ticks);
    }
    if s.cpu.budget_ticks > 0 && s.cpu.ticks > s.cpu.budget_ticks {
        s.exit_request = Some(ExitReason::Exception(format!(
            "cpu budget exceeded: ran {} ms without waiting in recv (limit {} ms)",
            s.cpu.ticks * s.node.config.tick.as_millis() as u64,
            s.cpu.budget_ms
        )));
        return Err(wasmtime::Error::msg("cpu budget exceeded"));
    }
    Ok(UpdateDeadline::YieldCustom(
        1,
        Box::pin(tokio::task::yield_now()),
    ))
}

pub(crate) async fn run(
    node: Arc<NodeInner>,
    proc: Arc<Process>,
    comp: Arc<LoadedComponent>,
    init: String,
    ack: Option<(Pid, u64)>,
    lease: crate::footprint::Lease,
) {
    let mut guard = ExitGuard {
        node: node.clone(),
        proc: proc.clone(),
        armed: true,
    };
    // Held while an instance lives; a new version may need more. Declared
    // after the guard, so an unwinding task gives it back before the guard
    // reports the exit.
    let mut lease = lease;
    let mut comp = comp;
    let mut start = Start { ack, handoff: None };
    // One instance per version: a handoff ends this instance normally and
    // the loop starts the next version under the same process entry.
    let reason = loop {
        proc.code.lock().running = Some(comp.clone());
        // Each version says for itself whether it can hand over.
        proc.set_upgradable(false);
        match instance(&node, &proc, &comp, &init, start).await {
            Ok(reason) => break reason,
            Err(handoff) => {
                tracing::info!(pid = %proc.pid, component = %comp.name, from = %comp.version, to = %handoff.next.version, "particle handed its state to the new version");
                if let Err(why) = lease.resize(handoff.next.footprint) {
                    // Not the new code's failure: the pool is full. The
                    // particle stops rather than rolling the version back.
                    break ExitReason::Shutdown(format!("cannot start the new version: {why}"));
                }
                comp = handoff.next;
                start = Start {
                    // A start not yet acknowledged is acknowledged by the next instance.
                    ack: handoff.ack,
                    handoff: Some(handoff.state),
                };
            }
        }
    };
    guard.armed = false;
    // Given back before the exit is seen, so a supervisor's restart finds it.
    drop(lease);
    if let ExitReason::Exception(msg) = &reason {
        tracing::warn!(pid = %proc.pid, component = %comp.name, "particle crashed: {msg}");
    }
    node.check_probation(&proc, &comp, &reason);
    node.process_exited(&proc, reason, true);
}

/// An instance handed over: the code to run next, the state, and a start
/// acknowledgement it did not get to send.
struct Handoff {
    next: Arc<LoadedComponent>,
    state: Vec<u8>,
    ack: Option<(Pid, u64)>,
}

/// How an instance starts: the first one may owe a start acknowledgement,
/// a later one may inherit state.
struct Start {
    ack: Option<(Pid, u64)>,
    handoff: Option<Vec<u8>>,
}

/// If a particle's task unwinds (a bug in the host, not the guest), its
/// links and monitors still fire and its slot is freed.
struct ExitGuard {
    node: Arc<NodeInner>,
    proc: Arc<Process>,
    armed: bool,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if self.armed {
            let reason =
                ExitReason::Exception("the runtime failed while running this particle".into());
            self.node.process_exited(&self.proc, reason, true);
        }
    }
}

/// Run one instance; `Err` carries a handoff to the next version.
async fn instance(
    node: &Arc<NodeInner>,
    proc: &Arc<Process>,
    comp: &Arc<LoadedComponent>,
    init: &str,
    start: Start,
) -> Result<ExitReason, Handoff> {
    let tick_ms = node.config.tick.as_millis().max(1) as u64;
    let budget_ms = comp.limits.cpu_ms;
    let (wasi, [stdout, stderr]) = wasi_ctx(node, &comp.name, proc.pid.to_string().into());
    // Whatever the guest left unfinished is logged however it ends.
    struct Flush(GuestOutput, GuestOutput);
    impl Drop for Flush {
        fn drop(&mut self) {
            self.0.flush();
            self.1.flush();
        }
    }
    let _flush = Flush(stdout, stderr.clone());
    let state = ParticleState {
        wasi,
        stderr,
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        outgoing: OutgoingHttp::new(node, comp.name.clone()),
        proc: proc.clone(),
        node: node.clone(),
        component: comp.clone(),
        memory: MemoryCap::counting(comp.limits.memory_bytes as usize, proc.clone()),
        cpu: CpuMeter {
            fresh: true,
            ticks: 0,
            budget_ticks: budget_ms.div_ceil(tick_ms),
            budget_ms,
        },
        exit_request: None,
        decisions: DecisionCache::default(),
        settled: false,
        ack: start.ack,
        handoff_in: start.handoff,
        handoff_out: None,
    };
    let mut store = Store::new(&comp.engine, state);
    store.limiter(|s| &mut s.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(on_epoch);

    let outcome = {
        let work = async {
            let pre = comp.particle().ok_or_else(|| {
                wasmtime::Error::msg(format!(
                    "component `{}` is a wasi:http handler, not a particle",
                    comp.name
                ))
            })?;
            let bindings = pre.instantiate_async(&mut store).await?;
            bindings.call_start(&mut store, init).await
        };
        tokio::select! {
            biased;
            reason = proc.exit_requested() => Err(reason),
            res = work => Ok(res),
        }
    };
    if store.data().settled {
        node.started
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
    let outcome = match outcome {
        Err(reason) => return Ok(reason),
        Ok(r) => r,
    };
    if let Ok(Ok(())) = outcome {
        let data = store.data_mut();
        let (handed, ack) = (data.handoff_out.take(), data.ack.take());
        // The code to move to is the component's current version, read now:
        // a request may be stale (a newer version, or a rollback, since).
        // If that is the code already running, it restarts with its state.
        proc.code.lock().upgrade_to = None;
        let next = node
            .components
            .get(&comp.name)
            .unwrap_or_else(|| comp.clone());
        if let Some(state) = handed
            && !proc.exit_pending()
        {
            return Err(Handoff { next, state, ack });
        }
        return Ok(ExitReason::Normal);
    }
    if let Some(reason) = proc.pending_exit() {
        return Ok(reason);
    }
    let data = store.data_mut();
    if let Some(reason) = data.exit_request.take() {
        return Ok(reason);
    }
    if data.memory.exceeded {
        return Ok(ExitReason::Exception(format!(
            "memory limit exceeded: the particle tried to grow its memory past {} MiB",
            comp.limits.memory_bytes >> 20
        )));
    }
    let said = data.stderr.tail();
    Ok(match outcome {
        Ok(Ok(())) => ExitReason::Normal,
        Ok(Err(msg)) => ExitReason::Exception(msg),
        // What the guest printed before it died is usually why (a Python
        // traceback, a Rust panic message).
        Err(e) => ExitReason::Exception(match said {
            Some(said) => format!("{}; stderr:\n{said}", trap_message(&e)),
            None => trap_message(&e),
        }),
    })
}

/// The trap's own words, without wasmtime's backtrace.
fn trap_message(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => one_trap_prefix(&trap.to_string(), true),
        None => {
            let text = format!("{e:#}");
            one_trap_prefix(text.lines().next().unwrap_or("trap"), false)
        }
    }
}

/// `wasm trap: …` exactly once, however many layers said it.
fn one_trap_prefix(text: &str, is_trap: bool) -> String {
    let mut rest = text.trim_start();
    let mut said = is_trap;
    while let Some(r) = rest.strip_prefix("wasm trap:") {
        rest = r.trim_start();
        said = true;
    }
    if said {
        format!("wasm trap: {rest}")
    } else {
        rest.to_string()
    }
}

/// The WASI context of a new instance: stdout and stderr, clocks, random,
/// the component's configured environment, arguments and preopened
/// folders, and outgoing TCP where Cedar permits it. No other files, no
/// listening sockets, UDP or stdin.
/// (`resolve` is decided when the instance starts; `connect` at each call.)
///
/// Output goes to the log under `who` (output.rs); the handles come back
/// (stdout, stderr) to flush at the end, stderr's last lines for a reason.
pub(crate) fn wasi_ctx(
    node: &Arc<NodeInner>,
    component: &Arc<str>,
    who: Arc<str>,
) -> (WasiCtx, [GuestOutput; 2]) {
    let mut b = WasiCtx::builder();
    let stderr = GuestOutput::stderr(who.clone(), component.clone());
    let stdout = GuestOutput::stdout(who, component.clone());
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .arg(&**component);
    if let Some(g) = node.guest_env.get(&**component) {
        b.envs(&g.env).args(&g.args);
        for f in &g.files {
            let perms = if f.read_only {
                wasmtime_wasi::FsPerms::ReadOnly
            } else {
                wasmtime_wasi::FsPerms::ReadWrite
            };
            if let Err(e) = b.preopened_dir(&f.host, &f.guest, perms) {
                tracing::warn!(component = %component, host = %f.host.display(), "cannot preopen {} for the guest: {e}", f.guest);
            }
        }
    }
    // Outgoing TCP only, each destination authorized by Cedar (`connect`
    // on `Host::"IP:PORT"`); no listening, no UDP. Name lookups only where
    // `resolve` is permitted.
    let resolve = node
        .policy
        .allowed(component, crate::policy::Action::Resolve, "local");
    b.allow_tcp(true)
        .allow_udp(false)
        .allow_ip_name_lookup(resolve);
    let (gate, principal) = (Arc::downgrade(node), component.clone());
    b.socket_addr_check(move |addr, used| {
        use wasmtime_wasi::sockets::SocketAddrUse;
        let ok = match used {
            // The implicit bind of a connect.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpConnect => gate.upgrade().is_some_and(|n| {
                let host = addr.to_string();
                let ok = n
                    .policy
                    .allowed(&principal, crate::policy::Action::Connect, &host);
                if !ok {
                    tracing::warn!(component = %principal, %host, "connect to {host} denied by policy");
                }
                ok
            }),
            _ => false,
        };
        Box::pin(async move { ok })
    });
    (b.build(), [stdout, stderr])
}

#[cfg(test)]
mod tests {
    use super::one_trap_prefix;

    #[test]
    fn a_trap_is_named_once() {
        let unreachable = "wasm `unreachable` instruction executed";
        let want = format!("wasm trap: {unreachable}");
        assert_eq!(one_trap_prefix(unreachable, true), want);
        assert_eq!(
            one_trap_prefix(&format!("wasm trap: {unreachable}"), true),
            want
        );
        assert_eq!(
            one_trap_prefix(&format!("wasm trap: wasm trap: {unreachable}"), false),
            want
        );
        assert_eq!(one_trap_prefix("out of fuel", false), "out of fuel");
    }
}
