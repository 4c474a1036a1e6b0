//! The release crate's one error type: each message says what to change.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "the wasm32-wasip2 target is not installed and `rustup target add wasm32-wasip2` failed ({0}); \
         run `rustup target add wasm32-wasip2` and try again"
    )]
    MissingTarget(String),
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "building the guest crate in {dir} failed (cargo exited with {status}); see the compiler output above"
    )]
    BuildFailed { dir: String, status: String },
    /// A language toolchain is missing or could not be provisioned.
    #[error("{0}")]
    Toolchain(String),
    #[error("{0} is not a guest crate: it has no Cargo.toml")]
    NotACrate(String),
    #[error("building {0} produced no .wasm component (is it a `cdylib` or `bin` crate?)")]
    NoArtifact(String),
    /// A manifest error, positioned like a compiler error.
    #[error("{file}:{line}:{column}: {message}")]
    Manifest {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("component `{component}` is not valid: {reason}")]
    Component { component: String, reason: String },
    #[error("the release's Cedar policies are invalid: {0}")]
    Policies(String),
    #[error(
        "{path} does not match release.lock ({found}, the lock says {expected}): \
         the release was changed after `plasmoid release build`; rebuild it"
    )]
    Tampered {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{0} is not a built release: {1}; build one with `plasmoid release build`")]
    NotARelease(PathBuf, String),
    #[error("cannot start the release: {0}")]
    Boot(String),
    #[error("{0}")]
    Mesh(#[from] plasmoid_mesh::MeshError),
    #[error("{0}")]
    Node(String),
    #[error("cannot upgrade: {0}")]
    Upgrade(String),
}
