//! The runtime's error type: every variant says what went wrong and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("component `{component}` is not a valid WebAssembly component: {reason}")]
    InvalidComponent { component: String, reason: String },
    #[error(
        "component `{component}` does not implement the plasmoid:runtime/particle world: {reason} \
         (a particle imports plasmoid:runtime/process, WASI p2 and wasi:http, and exports `start: func(init: string) -> result<_, string>`; \
         a component that exports wasi:http/incoming-handler is served as an HTTP handler instead)"
    )]
    WrongWorld { component: String, reason: String },
    #[error(
        "component `{component}` exports wasi:http/incoming-handler but cannot be served as an HTTP handler: {reason} \
         (a handler imports only WASI p2 and wasi:http 0.2, as the wasi:http/proxy world does)"
    )]
    WrongHandler { component: String, reason: String },
    #[error("{file}:{line}:{column}: {message}")]
    Policy {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("policy set is invalid: {0}")]
    PolicySet(String),
    #[error("invalid node configuration: {0}")]
    Config(String),
    #[error(
        "the kernel allows {have} memory maps per process but {needed} are needed for {particles} particles; \
         run `sysctl -w vm.max_map_count={needed}` as root (or lower --max-particles)"
    )]
    MapCount {
        have: u64,
        needed: u64,
        particles: u32,
    },
    #[error("wasmtime: {0}")]
    Engine(String),
    #[error("no component named `{0}` is loaded")]
    UnknownComponent(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
