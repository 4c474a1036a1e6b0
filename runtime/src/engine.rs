//! The wasmtime engine of a node: configuration, pooling and the epoch ticker.
//!
//! One engine per node. The pooling allocator is sized from the node's
//! particle capacity so spawning does not mmap; memory reservations are
//! sized to the memory cap instead of wasmtime's 4 GiB default so that
//! 100,000 instances fit in the address space.

use crate::error::{Result, RuntimeError};
use crate::footprint::{Footprint, PoolBudget};
use crate::node::NodeConfig;
use crate::particle::ParticleState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Per-component limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per particle, in bytes. Default 64 MiB; a growth
    /// past it fails in the guest (a memory bomb ends that particle only).
    pub memory_bytes: u64,
    /// CPU time a particle may run without returning to `recv`, in
    /// milliseconds (measured in epoch ticks); 0 = no limit. Default 5,000.
    pub cpu_ms: u64,
    /// Mailbox bound, in data messages (signals always get through).
    /// Default 10,000; a send past it is `mailbox-full`.
    pub mailbox: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_ms: 5_000,
            mailbox: 10_000,
        }
    }
}

/// Memory maps one pooled particle needs at most (memory slot split in two,
/// copy-on-write image, stack and its guard, tables), plus slack.
pub const MAPS_PER_PARTICLE: u64 = 6;
/// Maps of the process itself (code, heap arenas, thread stacks, the pools).
const MAPS_BASE: u64 = 2_048;

/// Instance slots kept for wasi:http handlers beyond `particles` (a
/// quarter, from 1 to 256), so handlers never take a particle's slot.
pub fn handler_slots(particles: u32) -> u32 {
    (particles / 4).clamp(1, 256)
}

/// Pool slots of a node with room for `particles` (and its handlers).
fn slots(particles: u32) -> u32 {
    particles.max(1).saturating_add(handler_slots(particles))
}

/// Memory maps a node with room for `particles` needs at most.
pub fn maps_needed(particles: u32) -> u64 {
    MAPS_BASE + slots(particles) as u64 * MAPS_PER_PARTICLE
}

/// Pool resources budgeted per particle slot by default. Core instances
/// are only counted by wasmtime (no memory is reserved for them), so the
/// budget allows a CPython particle's 14; memories and tables reserve
/// address space, so they are budgeted at what Rust, Python and JS
/// particles use (1 memory; 2 tables, up to 4).
pub const DEFAULT_POOL_PER_PARTICLE: Footprint = Footprint {
    core_instances: 16,
    memories: 2,
    tables: 4,
};

/// The most one component may hold; a bigger one is refused at load.
pub const MAX_PER_COMPONENT: Footprint = Footprint {
    core_instances: 64,
    memories: 8,
    tables: 16,
};
pub const MAX_MEMORIES_PER_MODULE: u32 = 2;
pub const MAX_TABLES_PER_MODULE: u32 = 4;

const WASM_STACK: usize = 512 << 10;
const ASYNC_STACK: usize = 1 << 20;

pub struct EngineHandle {
    /// The lean engine: the component-model async ABI off, so no host call
    /// pays for concurrency bookkeeping. Every component that does not need
    /// the async ABI (all Rust, Python and StarlingMonkey ones) runs here.
    pub engine: Engine,
    pub linker: Linker<ParticleState>,
    pub(crate) handler_linker: Linker<crate::handler::HandlerState>,
    /// The engine for components built for the async ABI (QuickJS's
    /// default, WASI p3 toolchains), made when the first one loads. It
    /// allocates instances on demand rather than from a second pool, so it
    /// reserves nothing until used.
    async_engine: std::sync::OnceLock<std::result::Result<Linking, String>>,
    config: NodeConfig,
    /// What live instances hold of the pool: a spawn that would go past it
    /// is refused before it has a pid (footprint.rs).
    pub budget: Arc<PoolBudget>,
    /// The footprint a component is budgeted at when it does not say.
    pub per_particle: Footprint,
    pub(crate) compile_cache: Option<std::path::PathBuf>,
    stop: Arc<AtomicBool>,
}

/// An engine with its linkers: what a component is compiled and
/// instantiated with.
pub(crate) struct Linking {
    pub engine: Engine,
    pub linker: Linker<ParticleState>,
    pub handler_linker: Linker<crate::handler::HandlerState>,
}

/// An engine and its linkers, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct LinkRef<'a> {
    pub engine: &'a Engine,
    pub linker: &'a Linker<ParticleState>,
    pub handler_linker: &'a Linker<crate::handler::HandlerState>,
}

impl Linking {
    fn refs(&self) -> LinkRef<'_> {
        LinkRef {
            engine: &self.engine,
            linker: &self.linker,
            handler_linker: &self.handler_linker,
        }
    }

    fn new(engine: Engine) -> Result<Self> {
        let err = |e: wasmtime::Error| RuntimeError::Engine(e.to_string());
        Ok(Linking {
            linker: crate::host::linker(&engine).map_err(err)?,
            handler_linker: crate::handler::linker(&engine).map_err(err)?,
            engine,
        })
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The kernel's limit on memory maps per process, if it can be read.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many particles fit under the kernel's map limit.
pub fn particles_within_map_limit() -> Option<u32> {
    let have = max_map_count()?;
    let fit = (have.saturating_sub(MAPS_BASE) / MAPS_PER_PARTICLE).min(u32::MAX as u64) as u32;
    // `fit` slots hold the particles and their handlers' slots.
    Some(fit.saturating_sub(handler_slots(fit)))
}

impl EngineHandle {
    pub fn new(cfg: &NodeConfig) -> Result<Self> {
        let particles = cfg.max_particles.max(1);
        let n = slots(particles);
        if let Some(have) = max_map_count() {
            let needed = maps_needed(particles);
            if needed > have {
                return Err(RuntimeError::MapCount {
                    have,
                    needed,
                    particles,
                });
            }
        }
        if cfg.default_limits.memory_bytes > cfg.max_memory_bytes {
            return Err(RuntimeError::Config(format!(
                "default memory cap {} MiB is above the node's maximum {} MiB",
                cfg.default_limits.memory_bytes >> 20,
                cfg.max_memory_bytes >> 20
            )));
        }
        let per = cfg.pool_per_particle;
        let total = Footprint {
            core_instances: n.saturating_mul(per.core_instances.max(1)),
            memories: n.saturating_mul(per.memories.max(1)),
            tables: n.saturating_mul(per.tables.max(1)),
        };
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(total.core_instances)
            .total_memories(total.memories)
            .total_tables(total.tables)
            .total_stacks(n)
            .max_core_instances_per_component(MAX_PER_COMPONENT.core_instances)
            .max_memories_per_component(MAX_PER_COMPONENT.memories)
            .max_tables_per_component(MAX_PER_COMPONENT.tables)
            .max_memories_per_module(MAX_MEMORIES_PER_MODULE)
            .max_tables_per_module(MAX_TABLES_PER_MODULE)
            .table_elements(20_000)
            .max_memory_size(cfg.max_memory_bytes as usize)
            // Keep a little of each slot resident on reuse: cheaper respawns.
            .linear_memory_keep_resident(64 << 10)
            .async_stack_keep_resident(16 << 10)
            .table_keep_resident(16 << 10)
            // Freed slots are decommitted in batches: one TLB shootdown
            // per batch, not per instance (a wasi:http handler frees one
            // per request).
            .decommit_batch_size(32)
            // Reset only the pages an instance dirtied (Linux 6.7+).
            .pagemap_scan(wasmtime::Enabled::Auto)
            .max_unused_warm_slots(256);

        let mut config = compile_config(cfg);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let Linking {
            linker,
            handler_linker,
            ..
        } = Linking::new(engine.clone())?;

        let stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), cfg.tick, stop.clone());
        Ok(EngineHandle {
            engine,
            linker,
            handler_linker,
            budget: PoolBudget::new(total),
            per_particle: per,
            compile_cache: cfg.compile_cache.clone(),
            async_engine: std::sync::OnceLock::new(),
            config: cfg.clone(),
            stop,
        })
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The lean engine and its linkers.
    pub(crate) fn lean(&self) -> LinkRef<'_> {
        LinkRef {
            engine: &self.engine,
            linker: &self.linker,
            handler_linker: &self.handler_linker,
        }
    }

    /// The engine for async-ABI components, made (and its epoch ticked) on
    /// first use.
    pub(crate) fn for_async(&self) -> Result<LinkRef<'_>> {
        let made = self.async_engine.get_or_init(|| {
            let config = async_config(&self.config);
            let engine = Engine::new(&config).map_err(|e| e.to_string())?;
            let linking = Linking::new(engine.clone()).map_err(|e| e.to_string())?;
            spawn_ticker(engine, self.config.tick, self.stop.clone());
            Ok(linking)
        });
        made.as_ref().map(Linking::refs).map_err(|e| {
            RuntimeError::Engine(format!("cannot make the engine for async components: {e}"))
        })
    }
}

/// The settings of the engine for async-ABI components: the lean ones plus
/// the component-model async features, instances allocated on demand.
pub(crate) fn async_config(cfg: &NodeConfig) -> Config {
    let mut config = compile_config(cfg);
    config
        .concurrency_support(true)
        .wasm_component_model_async(true)
        .wasm_component_model_more_async_builtins(true)
        .wasm_component_model_async_stackful(true)
        .wasm_component_model_error_context(true);
    config
}

/// The settings that shape compiled code. `plasmoid release build`
/// precompiles with exactly these, so its `.cwasm` files load into a node
/// with the same memory cap; the allocation strategy is left out because it
/// does not change the code.
pub(crate) fn compile_config(cfg: &NodeConfig) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        // The async ABI and the bookkeeping it needs in every store and
        // host call stay off here; `async_config` turns them on for the
        // components that need them.
        .wasm_component_model_async(false)
        .concurrency_support(false)
        .epoch_interruption(true)
        // Exit reasons keep only the trap's message; capturing a wasm
        // backtrace on every crash and kill would slow restarts.
        .wasm_backtrace_max_frames(None)
        .max_wasm_stack(WASM_STACK)
        .async_stack_size(ASYNC_STACK)
        .memory_reservation(cfg.max_memory_bytes)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0)
        .memory_init_cow(true);
    config
}

/// Ticks the epoch from an OS thread: a tokio task would itself be starved by
/// the busy guest it is meant to preempt.
fn spawn_ticker(engine: Engine, tick: std::time::Duration, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("plasmoid-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, particles will not be preempted: {e}");
    }
}
