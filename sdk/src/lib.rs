//! The guest-side SDK for writing Plasmoid particles in Rust.
//!
//! A particle is a WebAssembly component that implements the `particle` world
//! of `wit/process.wit`. This crate owns everything a particle author touches:
//! the wit-bindgen bindings of that world, thin Rust wrappers over the process
//! interface (so user code never handles raw WIT calling conventions), the
//! message codecs (postcard for messages, JSON for init args), the logging and
//! messaging macros, and the gen_server loop behind `#[gen_server]`.
//!
//! It does not own the runtime semantics (links, monitors, mailboxes, Cedar):
//! those live in the host (`plasmoid-runtime`); the SDK only calls them. The
//! attribute macros themselves live in `plasmoid-macros` and expand to calls
//! into this crate, so that the logic stays here where it can be tested.
//!
//! ```ignore
//! use plasmoid_sdk::prelude::*;
//!
//! #[plasmoid_sdk::main]
//! fn start(n: u32) -> Result<(), String> {
//!     info!("started with {n}");
//!     Ok(())
//! }
//! ```

// The proc macros expand to `::plasmoid_sdk::...` paths; this alias makes the
// same paths resolve inside this crate too (docs, tests, bindings).
extern crate self as plasmoid_sdk;

/// The raw wit-bindgen bindings of world `particle`.
///
/// Public because the macros' generated code implements `bindings::Guest` and
/// invokes the export macro from user crates; particle authors normally use
/// the wrappers at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "particle",
        path: "../wit",
        // The `start` export is implemented in the user's crate (by the
        // macros), so the export macro must be usable across crates.
        pub_export_macro: true,
        export_macro_name: "__export_particle",
        default_bindings_module: "::plasmoid_sdk::bindings",
        // Value types get equality (handy in tests and matches) and the
        // serde shapes the host and test tooling use in JSON: "normal",
        // {"shutdown": "..."}, "info", ...
        additional_type_attributes: {
            "plasmoid:runtime/process@0.1.0/exit-reason": [
                #[derive(PartialEq, Eq, serde::Serialize, serde::Deserialize)]
                #[serde(rename_all = "snake_case")]
            ],
            "plasmoid:runtime/process@0.1.0/log-level": [
                #[derive(serde::Serialize, serde::Deserialize)]
                #[serde(rename_all = "snake_case")]
            ],
            "plasmoid:runtime/process@0.1.0/spawn-error": [#[derive(PartialEq, Eq)]],
            "plasmoid:runtime/process@0.1.0/send-error": [#[derive(PartialEq, Eq)]],
            "plasmoid:runtime/process@0.1.0/link-error": [#[derive(PartialEq, Eq)]],
            "plasmoid:runtime/process@0.1.0/registry-error": [#[derive(PartialEq, Eq)]],
        },
    });
}

mod codec;
mod entry;
pub mod http;
mod macros;
pub mod pg;
mod process;
mod server;
pub mod store;
pub mod supervisor;
mod types;

pub use bindings::plasmoid::runtime::process::{
    DownMessage, ExitMessage, ExitReason, LinkError, LogLevel, Message, NodeInfo, Pid,
    RegistryError, SendError, SpawnError, TaggedMessage, TimerError,
};
pub use codec::{DecodeError, decode, encode, from_init_args, to_init_args, try_to_init_args};
pub use entry::{IntoStartResult, run_main};
pub use http::{HttpRequest, HttpResponse, respond};
pub use plasmoid_macros::{gen_server, main};
pub use process::{
    cancel_timer, demonitor, exit, link, log, lookup, lookup_global, make_ref, monitor,
    monitor_nodes, nodes, recv, recv_as, recv_ref, register, register_global, resolve, self_name,
    self_pid, send, send_after, send_exit, send_interval, send_tagged, spawn, spawn_link, spawn_on,
    trap_exit, unlink, unregister, unregister_global,
};
pub use server::{CallError, CastResult, GenServer, NoMessage, call, cast, run_gen_server};

/// Everything a particle usually needs, in one `use plasmoid_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CallError, CastResult, DownMessage, ExitMessage, ExitReason, GenServer, HttpRequest,
        HttpResponse, LinkError, LogLevel, Message, Pid, RegistryError, SendError, SpawnError,
        TaggedMessage, TimerError, cancel_timer, decode, demonitor, encode, exit, from_init_args,
        link, log, lookup, make_ref, monitor, recv, recv_ref, register, resolve, respond,
        self_name, self_pid, send, send_after, send_exit, send_interval, send_tagged, spawn,
        spawn_link, spawn_on, to_init_args, trap_exit, unlink, unregister,
    };
    // `recv` and `send` above bring both the functions and the macros.
    pub use crate::{debug, error, info, trace, warn};
    pub use std::time::Duration;
}
