//! Loaded components: compiled, checked against the `particle` world (or,
//! for a component that exports `wasi:http/incoming-handler`, the handler
//! imports), and pre-linked once so each spawn or request only instantiates.

use crate::engine::{EngineHandle, Limits};
use crate::error::{Result, RuntimeError};
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
            let component =
                unsafe { Component::deserialize(&engine.engine, &bytes) }.map_err(|e| {
                    RuntimeError::InvalidComponent {
                        component: name.to_string(),
                        reason: format!("{e:#}"),
                    }
                })?;
            return Self::link(engine, name, component, limits, version);
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
        check_bytes(name, bytes)?;
        let component =
            Component::new(&engine.engine, bytes).map_err(|e| RuntimeError::InvalidComponent {
                component: name.to_string(),
                reason: first_line(&e),
            })?;
        Self::link(engine, name, component, limits, version)
    }

    fn link(
        engine: &EngineHandle,
        name: &str,
        component: Component,
        limits: Limits,
        version: &str,
    ) -> Result<Arc<Self>> {
        let code = prelink(
            &engine.engine,
            &engine.linker,
            &engine.handler_linker,
            name,
            &component,
        )?;
        Ok(Arc::new(LoadedComponent {
            name: name.into(),
            code,
            limits,
            version: version.into(),
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
    check_bytes(name, bytes)?;
    let engine = wasmtime::Engine::new(&crate::engine::compile_config(cfg))
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
    let component = Component::new(&engine, bytes).map_err(|e| RuntimeError::InvalidComponent {
        component: name.to_string(),
        reason: first_line(&e),
    })?;
    let engine_err = |e: wasmtime::Error| RuntimeError::Engine(e.to_string());
    let linker = crate::host::linker(&engine).map_err(engine_err)?;
    let handler_linker = crate::handler::linker(&engine).map_err(engine_err)?;
    prelink(&engine, &linker, &handler_linker, name, &component)?;
    component
        .serialize()
        .map_err(|e| RuntimeError::Engine(e.to_string()))
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

/// Refuse what is neither a WebAssembly binary nor WAT text, in those
/// words (wasmtime would say only that the bytes are not UTF-8 text).
fn check_bytes(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(b"\0asm") || std::str::from_utf8(bytes).is_ok() {
        return Ok(());
    }
    Err(RuntimeError::InvalidComponent {
        component: name.to_string(),
        reason: "not a WebAssembly binary: the file does not start with the \\0asm header (nor is it WAT text); build a component for wasm32-wasip2".into(),
    })
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

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.read().keys().cloned().collect();
        v.sort();
        v
    }
}
