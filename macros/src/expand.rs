//! The expansion: the trait, its `ServiceInfo`, the serde bounds; the client and the server
//! are in `expand_client` and `expand_server`.
//!
//! Everything generated names `::localrpc::__private::...` only, never the prelude.
use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, TraitItem, Type, parse_quote, parse_quote_spanned};

use crate::errors::Errors;
use crate::parse::{self, Method, Return, Service};
use crate::{expand_client, expand_server, hash, validate};

/// `#[service]`: parse, validate, expand. On errors, the errors come first and the items
/// still follow (stubs where the trait is unusable), so that the user's other code that
/// names them does not add errors of its own.
pub(crate) fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut service = match parse::service(attr, item.clone(), &mut errors) {
        Ok(service) => service,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    validate::check(&mut service, &mut errors);
    let names = Names::new(&service);
    let mut out = errors.to_compile_errors();
    out.extend([
        service_trait(&service),
        info(&service, &names),
        expand_client::client(&service, &names),
        expand_client::blocking_client(&service, &names),
        expand_server::server(&service, &names),
    ]);
    out
}

/// The identifiers the expansion introduces.
pub(crate) struct Names {
    pub(crate) client: Ident,
    pub(crate) blocking_client: Ident,
    pub(crate) server: Ident,
    /// The hidden `ServiceInfo` static.
    pub(crate) info: Ident,
    /// The client's type parameter in impls that mention the user's types.
    pub(crate) client_param: Ident,
    /// The server's type parameter in impls that mention the user's types.
    pub(crate) server_param: Ident,
}

impl Names {
    fn new(service: &Service) -> Names {
        let ident = &service.ident;
        // Type parameters resolve at the call site, so `S` would capture a user type named
        // `S` in `fn add(&self, a: S)`: pick names that no type in the trait uses.
        let mut taken = HashSet::from([ident.to_string()]);
        let mut collect = CollectIdents(&mut taken);
        for method in service.served() {
            for arg in &method.args {
                collect.visit_type(&arg.ty);
            }
            collect.visit_type(&method.output());
        }
        let fresh = |base: &str| {
            let mut name = base.to_string();
            while taken.contains(&name) {
                name.push('_');
            }
            Ident::new(&name, Span::call_site())
        };
        Names {
            client: format_ident!("{}Client", ident, span = ident.span()),
            blocking_client: format_ident!("{}BlockingClient", ident, span = ident.span()),
            server: format_ident!("{}Server", ident, span = ident.span()),
            info: format_ident!("__LOCALRPC_INFO_{}", ident, span = ident.span()),
            client_param: fresh("S"),
            server_param: fresh("T"),
        }
    }
}

struct CollectIdents<'a>(&'a mut HashSet<String>);

impl<'ast> Visit<'ast> for CollectIdents<'_> {
    fn visit_ident(&mut self, ident: &'ast Ident) {
        self.0.insert(ident.to_string());
    }
}

impl Service {
    /// The methods that get a client method and a server arm, in wire order: all of them
    /// when the trait is valid.
    pub(crate) fn served(&self) -> impl Iterator<Item = &Method> {
        self.methods
            .iter()
            .filter(move |m| self.trait_ok && m.usable)
    }
}

/// The trait, each `async fn m(..) -> R` turned into `fn m(..) -> impl Future<Output = R> + Send`
/// so that a generic server can spawn the futures. Methods that are not plain `async fn`
/// declarations stay as written; later duplicates are dropped (already reported).
fn service_trait(service: &Service) -> TokenStream {
    let mut item = service.item.clone();
    let methods = &service.methods;
    let mut next = 0;
    item.items = std::mem::take(&mut item.items)
        .into_iter()
        .enumerate()
        .filter_map(|(index, it)| {
            let TraitItem::Fn(mut f) = it else {
                return Some(it);
            };
            let method = &methods[next];
            next += 1;
            debug_assert_eq!(method.item_index, index);
            if method.duplicate {
                return None;
            }
            if let (Some(asyncness), None) = (f.sig.asyncness, &f.default) {
                let output = method.output();
                f.sig.asyncness = None;
                f.sig.output = parse_quote_spanned! {asyncness.span()=>
                    -> impl ::localrpc::__private::Future<Output = #output>
                        + ::localrpc::__private::Send
                };
            }
            if f.default.is_none() {
                // Rejected patterns (already reported) become `_`, which a declaration
                // allows, so that rustc does not report them a second time.
                for arg in &mut f.sig.inputs {
                    if let FnArg::Typed(arg) = arg {
                        if !validate::is_plain(&arg.pat) {
                            *arg.pat = parse_quote!(_);
                        }
                    }
                }
            }
            Some(TraitItem::Fn(f))
        })
        .collect();
    item.into_token_stream()
}

/// The hidden `ServiceInfo` static: name, method names, method table hash.
fn info(service: &Service, names: &Names) -> TokenStream {
    let vis = &service.vis;
    let info = &names.info;
    let wire_name = &service.wire_name;
    let method_names = service.served().map(|m| &m.wire_name);
    let canonical = hash::canonical(service.served());
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #vis static #info: ::localrpc::__private::ServiceInfo =
            ::localrpc::__private::ServiceInfo::new(
                #wire_name,
                &[#(#method_names),*],
                ::localrpc::__private::method_table_hash(#canonical),
            );
    }
}

/// `Ty: Serialize + DeserializeOwned` for each distinct argument and result type, for the
/// `where` clauses of the generated client and server impls.
///
/// A type that is not serde then fails at its own `where` predicate, spanned over the user's
/// type: the error points at the type, and the two impls give the same diagnostic, which
/// rustc shows once. Without the predicates, the generated bodies would fail instead, with
/// errors pointing at the attribute.
pub(crate) fn serde_bounds(service: &Service) -> Vec<TokenStream> {
    let mut seen = HashSet::new();
    service
        .served()
        .flat_map(|m| {
            let ret: Vec<&Type> = match (&m.ret, &m.declared_ret) {
                (Return::Fallible { ok, err }, _) => vec![ok, err],
                (Return::Stream(item), _) => vec![item],
                (Return::Value(ty), Some(_)) => vec![ty],
                (Return::Value(_), None) => vec![],
            };
            m.args
                .iter()
                .map(|a| a.stream.as_ref().unwrap_or(&a.ty))
                .chain(ret)
        })
        .filter(|ty| !is_primitive(ty) && seen.insert(hash::compact(ty)))
        .map(|ty| {
            // The bound's tokens take the span of the type's last token, so that the
            // predicate's span covers exactly the type.
            let end = ty
                .to_token_stream()
                .into_iter()
                .last()
                .map_or_else(Span::call_site, |t| t.span());
            let bound = quote_spanned! {end=>
                : ::localrpc::__private::serde::Serialize
                    + ::localrpc::__private::serde::de::DeserializeOwned
            };
            quote!(#ty #bound)
        })
        .collect()
}

/// `bool`, `char` and the numbers, which need no check (and would clutter the docs).
fn is_primitive(ty: &Type) -> bool {
    const PRIMITIVES: &[&str] = &[
        "bool", "char", "f32", "f64", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16",
        "u32", "u64", "u128", "usize",
    ];
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .get_ident()
            .is_some_and(|ident| PRIMITIVES.iter().any(|name| ident == name)),
        Type::Tuple(t) => t.elems.is_empty(),
        _ => false,
    }
}

/// The doc comments to put on a generated item: the user's, or `fallback`.
pub(crate) fn docs_or(method: &Method, fallback: String) -> TokenStream {
    if method.docs.is_empty() {
        quote!(#[doc = #fallback])
    } else {
        let docs = &method.docs;
        quote!(#(#docs)*)
    }
}
