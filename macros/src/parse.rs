//! From syn's AST to the model the expansion works on.
//!
//! Parsing is lenient: every method gets a model, even a broken one, so that `validate` can
//! report all problems at once and the expansion can still emit stub items.
use proc_macro2::TokenStream;
use quote::format_ident;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemTrait, LitStr, Pat, PathArguments, ReturnType,
    Signature, TraitItem, Type, Visibility, parse_quote,
};

use crate::errors::Errors;

/// A service trait.
pub(crate) struct Service {
    /// The trait as written.
    pub(crate) item: ItemTrait,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// The name sent in the handshake.
    pub(crate) wire_name: String,
    /// The methods, in declaration order (the wire order).
    pub(crate) methods: Vec<Method>,
    /// False when the trait itself is unusable (generics): only stubs are generated then.
    pub(crate) trait_ok: bool,
}

/// One method of the trait.
pub(crate) struct Method {
    /// The signature as written.
    pub(crate) sig: Signature,
    /// Where in `Service::item.items` the method is.
    pub(crate) item_index: usize,
    pub(crate) has_default: bool,
    pub(crate) ident: Ident,
    /// The method's name on the wire and in the method table hash (`r#` removed).
    pub(crate) wire_name: String,
    /// The `///` comments, copied onto the client method.
    pub(crate) docs: Vec<Attribute>,
    pub(crate) args: Vec<Arg>,
    /// The declared return type; `None` for `()` left implicit.
    pub(crate) declared_ret: Option<Type>,
    pub(crate) ret: Return,
    /// False when `validate` found a problem: no client method or server arm is generated.
    pub(crate) usable: bool,
    /// A later method with an earlier method's name: left out of the emitted trait.
    pub(crate) duplicate: bool,
}

/// One argument after `&self`.
pub(crate) struct Arg {
    /// The argument's identifier, or a made-up one where the pattern is not an identifier.
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// `T` when the type is spelled `Streaming<T>`: a request stream.
    pub(crate) stream: Option<Type>,
}

/// How a method's result travels.
#[expect(
    clippy::large_enum_variant,
    reason = "a few per trait, at compile time"
)]
pub(crate) enum Return {
    /// Any type not spelled `Result<T, E>`, including `()`.
    Value(Type),
    /// `Result<T, E>`: `E` travels as an application error.
    Fallible { ok: Type, err: Type },
    /// `Streaming<T>`: a response stream of `T`s.
    Stream(Type),
}

impl Method {
    /// The request stream's item type, if the method takes one (the last argument).
    pub(crate) fn request_stream(&self) -> Option<&Type> {
        self.args.last().and_then(|a| a.stream.as_ref())
    }

    /// The arguments that travel in the request (all but a request stream).
    pub(crate) fn plain_args(&self) -> impl Iterator<Item = &Arg> {
        self.args.iter().filter(|a| a.stream.is_none())
    }

    /// Whether the method takes or returns a stream.
    pub(crate) fn is_streaming(&self) -> bool {
        self.request_stream().is_some() || matches!(self.ret, Return::Stream(_))
    }

    /// The type the trait method's future resolves to, as written (`()` if left implicit).
    pub(crate) fn output(&self) -> Type {
        match &self.declared_ret {
            Some(ty) => ty.clone(),
            None => parse_quote!(()),
        }
    }
}

/// Parses the attribute's arguments and the trait. `Err` only when the item is not a trait.
pub(crate) fn service(
    attr: TokenStream,
    item: TokenStream,
    errors: &mut Errors,
) -> syn::Result<Service> {
    let item: ItemTrait = syn::parse2(item)
        .map_err(|e| syn::Error::new(e.span(), "`#[localrpc::service]` applies to a trait"))?;
    let name = service_name(attr, errors);
    let wire_name = match &name {
        Some(lit) => lit.value(),
        None => item.ident.unraw().to_string(),
    };
    let methods = item
        .items
        .iter()
        .enumerate()
        .filter_map(|(index, it)| match it {
            TraitItem::Fn(f) => Some(method(index, &f.sig, &f.attrs, f.default.is_some())),
            _ => None,
        })
        .collect();
    Ok(Service {
        vis: item.vis.clone(),
        ident: item.ident.clone(),
        item,
        wire_name,
        methods,
        trait_ok: true,
    })
}

/// `name = "..."`, the only argument.
fn service_name(attr: TokenStream, errors: &mut Errors) -> Option<LitStr> {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            if lit.value().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "the service name cannot be empty",
                ));
            }
            name = Some(lit);
            Ok(())
        } else {
            Err(meta.error("unknown argument; the only one is `name = \"...\"`"))
        }
    });
    if let Err(e) = parser.parse2(attr) {
        errors.push(e);
    }
    name
}

fn method(item_index: usize, sig: &Signature, attrs: &[Attribute], has_default: bool) -> Method {
    let args = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat_type) => Some(pat_type),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(i, pat_type)| Arg {
            ident: match &*pat_type.pat {
                Pat::Ident(pat) => pat.ident.clone(),
                _ => format_ident!("__arg{}", i),
            },
            ty: (*pat_type.ty).clone(),
            stream: streaming_item(&pat_type.ty),
        })
        .collect();
    let declared_ret = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    let ret = match &declared_ret {
        None => Return::Value(parse_quote!(())),
        Some(ty) => match (result_args(ty), streaming_item(ty)) {
            (Some((ok, err)), _) => Return::Fallible { ok, err },
            (None, Some(item)) => Return::Stream(item),
            (None, None) => Return::Value(ty.clone()),
        },
    };
    Method {
        sig: sig.clone(),
        item_index,
        has_default,
        ident: sig.ident.clone(),
        wire_name: sig.ident.unraw().to_string(),
        docs: attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        args,
        declared_ret,
        ret,
        usable: true,
        duplicate: false,
    }
}

/// `T` of a type spelled `Streaming<T>` (any path ending in `Streaming`).
pub(crate) fn streaming_item(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Streaming" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter();
    match (types.next(), types.next()) {
        (Some(GenericArgument::Type(item)), None) => Some(item.clone()),
        _ => None,
    }
}

/// `T` and `E` of a type spelled `Result<T, E>` (any path ending in `Result`).
fn result_args(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(Some(ok)), Some(Some(err)), None) => Some((ok, err)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(ty: Type) -> Option<(String, String)> {
        let s = |t: Type| quote::quote!(#t).to_string();
        result_args(&ty).map(|(ok, err)| (s(ok), s(err)))
    }

    #[test]
    fn result_detection_is_syntactic() {
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(ret(parse_quote!(Result<i64, E>)), pair("i64", "E"));
        assert_eq!(
            ret(parse_quote!(std::result::Result<(), my::E>)),
            pair("()", "my :: E")
        );
        assert_eq!(ret(parse_quote!(io::Result<i64>)), None);
        assert_eq!(ret(parse_quote!(Result<'a, i64, E>)), None);
        assert_eq!(ret(parse_quote!(Option<i64>)), None);
        assert_eq!(ret(parse_quote!(<X as Y>::Result<A, B>)), None);
    }

    #[test]
    fn lenient_on_broken_methods() {
        let mut errors = Errors::default();
        let svc = service(
            quote::quote!(name = ""),
            quote::quote! {
                trait T {
                    fn plain((a, b): (u8, u8), r#type: u8);
                    type Assoc;
                    async fn r#loop(&self) -> std::result::Result<u8, ()>;
                }
            },
            &mut errors,
        )
        .unwrap();
        assert!(!errors.is_empty(), "the empty name is reported");
        assert_eq!(svc.wire_name, "T");
        assert_eq!(svc.methods.len(), 2);
        let idents: Vec<_> = svc.methods[0]
            .args
            .iter()
            .map(|a| a.ident.to_string())
            .collect();
        assert_eq!(idents, ["__arg0", "r#type"]);
        assert_eq!(svc.methods[1].item_index, 2);
        assert_eq!(svc.methods[1].wire_name, "loop");
        assert!(matches!(svc.methods[1].ret, Return::Fallible { .. }));
    }
}
