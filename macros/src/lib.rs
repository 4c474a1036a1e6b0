//! Attribute macros for Plasmoid particles: `#[main]` and `#[gen_server]`.
//!
//! Use them through `plasmoid-sdk` (`#[plasmoid_sdk::main]`), which
//! re-exports them: the generated code names `::plasmoid_sdk::…` paths, so
//! the user crate must depend on the SDK under that name.
//!
//! This crate owns only the syntax: checking the user's signatures and
//! mapping them onto the SDK. The behaviour (init decoding, the gen_server
//! receive loop, call/cast) lives in `plasmoid-sdk`, where it is ordinary
//! code with tests; the expansions stay small calls into it.

use proc_macro::TokenStream;

mod gen_server;
mod main_fn;

/// Turns `fn start(init: T) -> Result<(), String>` (or `fn start()`) into
/// the particle's exported `start`.
///
/// The init args string is decoded as JSON into `T` (an empty string reads
/// as `null`); bad init args end the particle with an `Err` that names `T`.
/// The function may also return `()` or `Result<(), E>` for any
/// `E: Display`. Without a parameter, the init args are ignored.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_fn::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an `impl State { … }` block a gen_server particle.
///
/// Recognised methods (all optional):
/// - `fn init(args: T) -> Self`: builds the state from JSON init args;
///   without it the state is `State::default()`.
/// - `fn handle_call(&mut self, req: Req) -> Resp`: answers calls.
/// - `fn handle_cast(&mut self, msg: M) -> CastResult`: data messages that
///   decode as `M`.
/// - `fn handle_info(&mut self, data: Vec<u8>) -> CastResult`: other data.
/// - `fn handle_exit(&mut self, msg: Message) -> CastResult`: `Exit` and
///   `Down` messages.
///
/// `#[gen_server(handoff)]` keeps the state across hot swaps: the state type
/// must be `Serialize + Deserialize`; the old version hands it over
/// postcard-encoded and the new one decodes it, or, if the new version
/// defines `fn code_change(old: Vec<u8>) -> Result<Self, String>`, converts it.
///
/// Generates the exported `start` (running `plasmoid_sdk::run_gen_server`)
/// and typed clients on the type: `State::call(&pid, &req, timeout)` when
/// `handle_call` exists and `State::cast(&pid, &msg)` when `handle_cast`
/// exists.
#[proc_macro_attribute]
pub fn gen_server(attr: TokenStream, item: TokenStream) -> TokenStream {
    gen_server::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The `start` export shared by both macros: `Guest` implemented on a hidden
/// type whose `start` runs `body` with the init args bound to `init`, then
/// the SDK's export macro to emit the component export.
fn export_start(body: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    quote::quote! {
        #[doc(hidden)]
        struct __PlasmoidParticle;

        impl ::plasmoid_sdk::bindings::Guest for __PlasmoidParticle {
            fn start(
                init: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::string::String> {
                #body
            }
        }

        ::plasmoid_sdk::bindings::__export_particle!(
            __PlasmoidParticle with_types_in ::plasmoid_sdk::bindings
        );
    }
}
