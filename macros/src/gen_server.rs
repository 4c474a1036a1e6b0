//! `#[gen_server]`: maps an inherent `impl` block onto `plasmoid_sdk::GenServer`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Error, FnArg, ImplItem, ImplItemFn, ItemImpl, Result, ReturnType, Type};

/// The user's handlers that the macro found, with the types it needs.
#[derive(Default)]
struct Handlers<'a> {
    /// `init`'s parameter type.
    init: Option<&'a Type>,
    /// `handle_call`'s request type and response type (`None` = `()`).
    call: Option<(&'a Type, Option<&'a Type>)>,
    /// `handle_cast`'s message type.
    cast: Option<&'a Type>,
    info: bool,
    exit: bool,
    http: bool,
    /// The user wrote `code_change` (to convert an older state shape).
    code_change: bool,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    let handoff = match attr.to_string().as_str() {
        "" => false,
        "handoff" => true,
        _ => {
            return Err(Error::new(
                attr.span(),
                "#[gen_server] takes no arguments, or `handoff` (keep the state across hot swaps)",
            ));
        }
    };
    let block: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &block.trait_ {
        return Err(Error::new_spanned(
            path,
            "#[gen_server] goes on an inherent `impl State { ... }` block",
        ));
    }
    if !block.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &block.generics,
            "#[gen_server] state types cannot be generic",
        ));
    }
    let handlers = find_handlers(&block)?;
    let state = &block.self_ty;

    let none = quote!(::plasmoid_sdk::NoMessage);
    let (call_ty, reply_ty, handle_call) = match handlers.call {
        Some((req, resp)) => {
            let resp = resp.map_or_else(|| quote!(()), |t| quote!(#t));
            let forward = quote! {
                fn handle_call(&mut self, request: Self::Call) -> Self::Reply {
                    <#state>::handle_call(self, request)
                }
            };
            (quote!(#req), resp, forward)
        }
        None => {
            let unreachable = quote! {
                fn handle_call(&mut self, request: Self::Call) -> Self::Reply {
                    match request {}
                }
            };
            (none.clone(), none.clone(), unreachable)
        }
    };
    let cast_ty = handlers.cast.map_or_else(|| none.clone(), |t| quote!(#t));
    let init = match handlers.init {
        Some(ty) => quote! {
            ::plasmoid_sdk::from_init_args::<#ty>(args)
                .map(<#state>::init)
                .map_err(::std::string::String::from)
        },
        None => quote! {
            // Without `init` the state does not take init args.
            let _ = args;
            ::core::result::Result::Ok(<#state as ::core::default::Default>::default())
        },
    };
    let handle_cast = handlers.cast.map(|_| {
        quote! {
            fn handle_cast(&mut self, message: Self::Cast) -> ::plasmoid_sdk::CastResult {
                <#state>::handle_cast(self, message)
            }
        }
    });
    let handle_info = handlers.info.then(|| {
        quote! {
            fn handle_info(
                &mut self,
                data: ::std::vec::Vec<u8>,
            ) -> ::plasmoid_sdk::CastResult {
                <#state>::handle_info(self, data)
            }
        }
    });
    let handle_http = handlers.http.then(|| {
        quote! {
            fn handle_http(
                &mut self,
                request: ::plasmoid_sdk::HttpRequest,
            ) -> ::plasmoid_sdk::HttpResponse {
                <#state>::handle_http(self, request)
            }
        }
    });
    let handle_exit = handlers.exit.then(|| {
        quote! {
            fn handle_exit(
                &mut self,
                message: ::plasmoid_sdk::Message,
            ) -> ::plasmoid_sdk::CastResult {
                <#state>::handle_exit(self, message)
            }
        }
    });

    // With `handoff` the state travels postcard-encoded; a user-written
    // `code_change(old: Vec<u8>) -> Result<Self, String>` takes it over instead.
    let handoff_items = handoff.then(|| {
        let code_change = if handlers.code_change {
            quote!(<#state>::code_change(old))
        } else {
            quote!(::plasmoid_sdk::decode::<Self>(&old).map_err(|e| e.to_string()))
        };
        quote! {
            const HANDOFF: bool = true;

            fn handoff(&self) -> ::core::option::Option<::std::vec::Vec<u8>> {
                ::core::option::Option::Some(::plasmoid_sdk::encode(self))
            }

            fn code_change(
                old: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                #code_change
            }
        }
    });
    if handlers.code_change && !handoff {
        return Err(Error::new(
            block.self_ty.span(),
            "`code_change` is used only with #[gen_server(handoff)]",
        ));
    }

    let call_client = handlers.call.map(|_| {
        quote! {
            /// Calls a running server of this type and waits for the reply
            /// (see `plasmoid_sdk::call`).
            #[allow(dead_code)]
            pub fn call(
                server: &::plasmoid_sdk::Pid,
                request: &#call_ty,
                timeout: ::core::option::Option<::std::time::Duration>,
            ) -> ::core::result::Result<#reply_ty, ::plasmoid_sdk::CallError> {
                ::plasmoid_sdk::call(server, request, timeout)
            }
        }
    });
    let cast_client = handlers.cast.map(|_| {
        quote! {
            /// Casts a message to a running server of this type.
            #[allow(dead_code)]
            pub fn cast(
                server: &::plasmoid_sdk::Pid,
                message: &#cast_ty,
            ) -> ::core::result::Result<(), ::plasmoid_sdk::SendError> {
                ::plasmoid_sdk::cast(server, message)
            }
        }
    });

    let export = crate::export_start(quote! {
        ::plasmoid_sdk::run_gen_server::<#state>(&init)
    });

    Ok(quote! {
        #block

        impl ::plasmoid_sdk::GenServer for #state {
            type Call = #call_ty;
            type Reply = #reply_ty;
            type Cast = #cast_ty;

            fn init(
                args: &str,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                #init
            }

            #handle_call
            #handle_cast
            #handle_info
            #handle_http
            #handle_exit
            #handoff_items
        }

        impl #state {
            #call_client
            #cast_client
        }

        #export
    })
}

/// Collects the recognised methods and checks their shapes, so that a wrong
/// signature is reported on the user's code rather than in the expansion.
fn find_handlers(block: &ItemImpl) -> Result<Handlers<'_>> {
    let mut found = Handlers::default();
    for item in &block.items {
        let ImplItem::Fn(method) = item else { continue };
        match method.sig.ident.to_string().as_str() {
            "init" => found.init = Some(single_arg(method, false)?),
            "handle_call" => {
                let request = single_arg(method, true)?;
                let reply = match &method.sig.output {
                    ReturnType::Default => None,
                    ReturnType::Type(_, ty) => Some(&**ty),
                };
                found.call = Some((request, reply));
            }
            "handle_cast" => found.cast = Some(single_arg(method, true)?),
            "handle_info" => {
                single_arg(method, true)?;
                found.info = true;
            }
            "handle_exit" => {
                single_arg(method, true)?;
                found.exit = true;
            }
            "handle_http" => {
                single_arg(method, true)?;
                found.http = true;
            }
            "code_change" => {
                single_arg(method, false)?;
                found.code_change = true;
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The type of the one parameter of `method`, after `self` if `method`
/// (`handle_*`) must take `&mut self`, or as the only input (`init`).
fn single_arg(method: &ImplItemFn, with_self: bool) -> Result<&Type> {
    let name = &method.sig.ident;
    let expected = if with_self {
        format!("`{name}` must be `fn {name}(&mut self, arg: T)`")
    } else {
        format!("`{name}` must be `fn {name}(args: T) -> Self`")
    };
    if !method.sig.generics.params.is_empty() || method.sig.asyncness.is_some() {
        return Err(Error::new_spanned(&method.sig, expected));
    }
    let mut inputs = method.sig.inputs.iter();
    if with_self && !matches!(inputs.next(), Some(FnArg::Receiver(_))) {
        return Err(Error::new_spanned(&method.sig, expected));
    }
    match (inputs.next(), inputs.next()) {
        (Some(FnArg::Typed(arg)), None) => Ok(&arg.ty),
        _ => Err(Error::new_spanned(&method.sig, expected)),
    }
}
