//! plasmoid-release: from sources to runnable components.
//!
//! Today it owns building guest crates for `wasm32-wasip2` with the stock
//! toolchain; manifests, dependency resolution and release folders grow here.
//! It does not run anything: running belongs to plasmoid-runtime.

mod guest;

pub use guest::{GuestBuild, build_guest, ensure_wasm_target};

/// Everything that can go wrong between a source tree and a component.
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
    #[error("{0} is not a guest crate: it has no Cargo.toml")]
    NotACrate(String),
    #[error("building {0} produced no .wasm component (is it a `cdylib` or `bin` crate?)")]
    NoArtifact(String),
}
