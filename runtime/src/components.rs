//! Loaded components: compiled, checked against the `particle` world (or,
//! for a component that exports `wasi:http/incoming-handler`, the handler
//! imports), and pre-linked once so each spawn or request only instantiates.

use crate::engine::{EngineHandle, Limits, LinkRef};
use crate::error::{Result, RuntimeError};
use crate::footprint::Footprint;
use crate::handler::HandlerState;
use crate::host::ParticlePre;
use crate::particle::ParticleState;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub struct LoadedComponent {
    /// Shared by every particle of this component: the Cedar principal, and
    /// a pointer identity for per-particle decision caches.
    pub name: Arc<str>,
    pub(crate) code: Code,
    pub limits: Limits,
    /// The version's identity (a release uses the blake3 hash of the .wasm).
    pub version: Arc<str>,
    /// What one instance holds of the node's pool (footprint.rs).
    pub footprint: Footprint,
    /// The engine it was compiled for (the lean one, or the async one):
    /// its stores are made on it.
    pub(crate) engine: wasmtime::Engine,
    /// Hot swap: the version this one replaced, and until when a crash of a
    /// particle running this one puts that version back.
    pub(crate) probation: parking_lot::Mutex<Option<Probation>>,
}

/// What a component is, pre-linked for its kind.
pub(crate) enum Code {
    /// A particle: spawned, one long-lived instance per process.
    Particle(ParticlePre<ParticleState>),
    /// A stock `wasi:http` handler: one instance per request.
    Handler(ProxyPre<HandlerState>),
}

pub(crate) struct Probation {
    pub previous: Arc<LoadedComponent>,
    pub until: std::time::Instant,
}

impl LoadedComponent {
    pub(crate) fn particle(&self) -> Option<&ParticlePre<ParticleState>> {
        match &self.code {
            Code::Particle(p) => Some(p),
            Code::Handler(_) => None,
        }
    }

    pub(crate) fn handler(&self) -> Option<&ProxyPre<HandlerState>> {
        match &self.code {
            Code::Handler(p) => Some(p),
            Code::Particle(_) => None,
        }
    }

    pub fn load(
        engine: &EngineHandle,
        name: &str,
        path: &Path,
        limits: Limits,
        version: &str,
    ) -> Result<Arc<Self>> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "cwasm") {
            // SAFETY: wasmtime requires that precompiled bytes come from a
            // trusted `Engine::precompile_component` of a compatible engine;
            // wasmtime checks the header and the release layer checks the
            // hash recorded in release.lock before it gets here.
            // A .cwasm made for the async engine is refused by the lean
            // one (its header names the async features): try that next.
            let lean = engine.lean();
            let (component, with) = match unsafe { Component::deserialize(lean.engine, &bytes) } {
                Ok(c) => (c, lean),
                Err(e) => {
                    let with = engine.for_async()?;
                    let c =
                        unsafe { Component::deserialize(with.engine, &bytes) }.map_err(|_| {
                            RuntimeError::InvalidComponent {
                                component: name.to_string(),
                                reason: format!("{e:#}"),
                            }
                        })?;
                    (c, with)
                }
            };
            // A compiled component no longer says how many core instances
            // it makes: the .wasm a release keeps beside it does; without
            // one, it is budgeted a whole particle slot's. Its memories and
            // tables wasmtime tells (in `link`).
            let core_instances = std::fs::read(path.with_extension("wasm"))
                .ok()
                .and_then(|w| crate::footprint::shape(&w).ok())
                .map_or(engine.per_particle.core_instances, |s| {
                    s.footprint.core_instances
                });
            let footprint = Footprint {
                core_instances,
                memories: 0,
                tables: 0,
            };
            return Self::link(with, name, component, footprint, limits, version);
        }
        Self::from_bytes(engine, name, &bytes, limits, version)
    }

    pub fn from_bytes(
        engine: &EngineHandle,
        name: &str,
        bytes: &[u8],
        limits: Limits,
        version: &str,
    ) -> Result<Arc<Self>> {
        let binary = binary(name, bytes)?;
        let (footprint, needs_async) = checked_shape(name, &binary)?;
        let with = if needs_async || engine.config().all_on_async_engine {
            tracing::debug!(
                component = name,
                "uses the component-model async ABI: the async engine runs it"
            );
            engine.for_async()?
        } else {
            engine.lean()
        };
        let cache = engine.compile_cache.as_deref();
        let key = crate::cache::key(with.engine, &binary);
        if let Some((component, footprint)) =
            cache.and_then(|dir| crate::cache::load(dir, &key, with.engine))
        {
            tracing::debug!(component = name, "compiled code from the compile cache");
            return Self::link(with, name, component, footprint, limits, version);
        }
        let component =
            Component::new(with.engine, &*binary).map_err(|e| RuntimeError::InvalidComponent {
                component: name.to_string(),
                reason: first_line(&e),
            })?;
        let loaded = Self::link(with, name, component, footprint, limits, version)?;
        // Only what linked is worth keeping.
        if let (Some(dir), Some(component)) = (cache, loaded.component()) {
            crate::cache::store(dir, &key, component, footprint);
        }
        Ok(loaded)
    }

    fn component(&self) -> Option<&Component> {
        match &self.code {
            Code::Particle(p) => Some(p.instance_pre().component()),
            Code::Handler(p) => Some(p.instance_pre().component()),
        }
    }

    fn link(
        with: LinkRef<'_>,
        name: &str,
        component: Component,
        footprint: Footprint,
        limits: Limits,
        version: &str,
    ) -> Result<Arc<Self>> {
        let code = prelink(
            with.engine,
            with.linker,
            with.handler_linker,
            name,
            &component,
        )?;
        // What wasmtime will allocate per instance, counted by wasmtime:
        // never budget less.
        let mut footprint = footprint;
        if let Some(needs) = component.resources_required() {
            footprint.memories = footprint.memories.max(needs.num_memories);
            footprint.tables = footprint.tables.max(needs.num_tables);
        }
        Ok(Arc::new(LoadedComponent {
            engine: with.engine.clone(),
            name: name.into(),
            code,
            limits,
            version: version.into(),
            footprint,
            probation: parking_lot::Mutex::new(None),
        }))
    }
}

/// Compile `bytes` (a component, or WAT text) for nodes configured like
/// `cfg`, check it against the `particle` world and the imports the runtime
/// offers, and return the precompiled `.cwasm` bytes.
///
/// This is the build-time half of loading: a release ships the result so
/// that booting deserializes instead of compiling.
pub fn precompile(cfg: &crate::NodeConfig, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let bytes = binary(name, bytes)?;
    let (footprint, needs_async) = checked_shape(name, &bytes)?;
    let config = if needs_async {
        crate::engine::async_config(cfg)
    } else {
        crate::engine::compile_config(cfg)
    };
    let engine = wasmtime::Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
    let engine_err = |e: wasmtime::Error| RuntimeError::Engine(e.to_string());
    let linker = crate::host::linker(&engine).map_err(engine_err)?;
    let handler_linker = crate::handler::linker(&engine).map_err(engine_err)?;
    // A release's native code is compiled here, not taken from the compile
    // cache: release.lock and the node's MAC vouch for what this process
    // compiled, and a cache folder is only as trustworthy as its owner. The
    // result goes into the cache for `start` and later loads.
    let cache = cfg.compile_cache.as_deref();
    let key = crate::cache::key(&engine, &bytes);
    let component =
        Component::new(&engine, &*bytes).map_err(|e| RuntimeError::InvalidComponent {
            component: name.to_string(),
            reason: first_line(&e),
        })?;
    prelink(&engine, &linker, &handler_linker, name, &component)?;
    let payload = component.serialize().map_err(engine_err)?;
    if let Some(dir) = cache {
        crate::cache::store_serialized(dir, &key, &payload, footprint);
    }
    Ok(payload)
}

/// Pre-link `component` as what it is: a handler when it exports
/// `wasi:http/incoming-handler`, a particle otherwise.
fn prelink(
    engine: &wasmtime::Engine,
    linker: &Linker<ParticleState>,
    handler_linker: &Linker<HandlerState>,
    name: &str,
    component: &Component,
) -> Result<Code> {
    let wrong = |e: wasmtime::Error| RuntimeError::WrongWorld {
        component: name.to_string(),
        reason: format!("{e:#}"),
    };
    let is_handler = component
        .component_type()
        .exports(engine)
        .any(|(export, _)| export.starts_with("wasi:http/incoming-handler@"));
    if is_handler {
        let pre =
            handler_linker
                .instantiate_pre(component)
                .map_err(|e| RuntimeError::WrongHandler {
                    component: name.to_string(),
                    reason: format!("{e:#}"),
                })?;
        let pre = ProxyPre::new(pre).map_err(|e| RuntimeError::WrongHandler {
            component: name.to_string(),
            reason: format!("{e:#}"),
        })?;
        return Ok(Code::Handler(pre));
    }
    let pre = linker.instantiate_pre(component).map_err(wrong)?;
    Ok(Code::Particle(ParticlePre::new(pre).map_err(wrong)?))
}

/// The component as a binary: WAT text is parsed; what is neither is
/// refused in those words (wasmtime would say only that the bytes are not
/// UTF-8 text).
fn binary<'a>(name: &str, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    let invalid = |reason: String| RuntimeError::InvalidComponent {
        component: name.to_string(),
        reason,
    };
    if bytes.starts_with(b"\0asm") {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err(invalid("not a WebAssembly binary: the file does not start with the \\0asm header (nor is it WAT text); build a component for wasm32-wasip2".into()));
    }
    wat::parse_bytes(bytes)
        .map(|b| std::borrow::Cow::Owned(b.into_owned()))
        .map_err(|e| invalid(format!("{e}")))
}

/// Read what the component imports and holds of the pool, before paying
/// for a compile: an import the runtime does not offer, or more pool
/// resources than one component may hold, is refused in words.
fn checked_shape(name: &str, bytes: &[u8]) -> Result<(Footprint, bool)> {
    let invalid = |reason: String| RuntimeError::InvalidComponent {
        component: name.to_string(),
        reason,
    };
    let shape = crate::footprint::shape(bytes).map_err(invalid)?;
    if let Some(import) = crate::footprint::unoffered(&shape.imports) {
        return Err(RuntimeError::WrongWorld {
            component: name.to_string(),
            reason: format!(
                "it imports `{import}`, which this runtime does not offer; a component may import \
                 plasmoid:runtime, plasmoid:keyvalue, wasi:keyvalue and WASI 0.2 (cli, io, clocks, random, \
                 filesystem, sockets, http)"
            ),
        });
    }
    let (fp, max) = (shape.footprint, crate::engine::MAX_PER_COMPONENT);
    let over = [
        (fp.core_instances, max.core_instances, "core instances"),
        (fp.memories, max.memories, "linear memories"),
        (fp.tables, max.tables, "tables"),
        (
            shape.memories_per_module,
            crate::engine::MAX_MEMORIES_PER_MODULE,
            "memories in one module",
        ),
        (
            shape.tables_per_module,
            crate::engine::MAX_TABLES_PER_MODULE,
            "tables in one module",
        ),
    ];
    for (has, most, what) in over {
        if has > most {
            return Err(invalid(format!(
                "it has {has} {what}; a node's instance pool holds at most {most} per component"
            )));
        }
    }
    Ok((fp, shape.needs_async))
}

fn first_line(e: &wasmtime::Error) -> String {
    format!("{e:#}")
}

/// The node's component table; replaced entries keep running particles alive
/// (they hold their own `Arc`).
#[derive(Default)]
pub struct Components {
    map: RwLock<HashMap<String, Arc<LoadedComponent>>>,
}

impl Components {
    pub fn insert(&self, c: Arc<LoadedComponent>) {
        self.map.write().insert(c.name.to_string(), c);
    }

    /// Put `c` back in place of `current`, unless something else replaced
    /// `current` meanwhile.
    pub fn restore(&self, current: &Arc<LoadedComponent>, c: Arc<LoadedComponent>) -> bool {
        let mut map = self.map.write();
        match map.get(&*c.name) {
            Some(now) if Arc::ptr_eq(now, current) => {
                map.insert(c.name.to_string(), c);
                true
            }
            _ => false,
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedComponent>> {
        self.map.read().get(name).cloned()
    }

    pub fn remove(&self, name: &str) -> Option<Arc<LoadedComponent>> {
        self.map.write().remove(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.read().keys().cloned().collect();
        v.sort();
        v
    }
}
