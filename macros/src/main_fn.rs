//! `#[main]`: checks the entry function and exports it as `start`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Error, FnArg, ItemFn, Result};

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    if !attr.is_empty() {
        return Err(Error::new(attr.span(), "#[main] takes no arguments"));
    }
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(Error::new_spanned(
            asyncness,
            "#[main] functions cannot be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "#[main] functions cannot be generic: the init type must be known",
        ));
    }
    let name = &sig.ident;
    let body = match sig.inputs.len() {
        0 => quote! {
            // Without a parameter the particle ignores its init args.
            let _ = init;
            ::plasmoid_sdk::IntoStartResult::into_start_result(#name())
        },
        1 => {
            let ty = match &sig.inputs[0] {
                FnArg::Typed(arg) => &arg.ty,
                FnArg::Receiver(r) => {
                    return Err(Error::new_spanned(r, "#[main] must be a free function"));
                }
            };
            quote! { ::plasmoid_sdk::run_main::<#ty, _>(&init, #name) }
        }
        _ => {
            return Err(Error::new_spanned(
                &sig.inputs,
                "#[main] takes at most one parameter: the decoded init args",
            ));
        }
    };
    let export = crate::export_start(body);
    Ok(quote! {
        #func
        #export
    })
}
