//! Finds everything the expansion cannot serve, all at once, with the user's spans.
//!
//! A method with a problem is marked unusable (no client method, no server arm); a trait-level
//! problem that the generated impls cannot work around marks the whole trait. Type checks that
//! need the compiler (is this type serde?) are emitted by the expansion instead.
use std::collections::HashMap;

use quote::quote;
use syn::visit::{self, Visit};
use syn::{FnArg, Pat, TraitItem, Type};

use crate::errors::Errors;
use crate::parse::{Method, Service};

/// Generated client methods a service method would clash with.
const RESERVED: &[&str] = &[
    "connect",
    "new",
    "with_options",
    "with_timeout",
    "get_ref",
    "into_inner",
];

/// Reports every problem and marks what cannot be generated.
pub(crate) fn check(service: &mut Service, errors: &mut Errors) {
    check_trait(service, errors);
    let mut seen = HashMap::new();
    for method in &mut service.methods {
        let mut e = Errors::default();
        check_signature(method, &mut e);
        if let Some(TraitItem::Fn(f)) = service.item.items.get(method.item_index) {
            if method.has_default {
                e.spanned(&f.default, "a service method cannot have a default body");
            }
            for attr in f.attrs.iter().filter(|a| a.path().is_ident("cfg")) {
                e.spanned(
                    attr,
                    "a service method cannot be `#[cfg]`-gated: the method table must be the same in every build",
                );
            }
        }
        if RESERVED.contains(&method.wire_name.as_str()) {
            let client = quote::format_ident!("{}Client", service.ident);
            e.spanned(
                &method.ident,
                format_args!(
                    "`{}` clashes with `{client}::{}`; rename the method",
                    method.wire_name, method.wire_name
                ),
            );
        }
        if seen.insert(method.wire_name.clone(), ()).is_some() {
            e.spanned(
                &method.ident,
                format_args!(
                    "the service already has a method named `{}`",
                    method.wire_name
                ),
            );
            method.duplicate = true;
        }
        if !e.is_empty() {
            method.usable = false;
            errors.extend(e);
        }
    }
}

fn check_trait(service: &mut Service, errors: &mut Errors) {
    let item = &service.item;
    if let Some(unsafety) = &item.unsafety {
        errors.spanned(unsafety, "a service trait cannot be `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        errors.spanned(auto, "a service trait cannot be `auto`");
    }
    if !item.generics.params.is_empty() {
        errors.spanned(
            &item.generics,
            "a service trait cannot be generic: the client and server must agree on concrete types",
        );
        service.trait_ok = false;
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.spanned(where_clause, "a service trait cannot have a `where` clause");
        service.trait_ok = false;
    }
    if !item.supertraits.is_empty() {
        errors.spanned(
            &item.supertraits,
            "a service trait cannot have supertraits: only its own methods are served",
        );
    }
    for it in &item.items {
        let what = match it {
            TraitItem::Fn(_) => continue,
            TraitItem::Const(_) => "associated constants",
            TraitItem::Type(_) => "associated types",
            TraitItem::Macro(_) => "macro invocations",
            _ => "this kind of item",
        };
        errors.spanned(
            it,
            format_args!("a service trait can only contain methods, not {what}"),
        );
    }
}

fn check_signature(method: &Method, e: &mut Errors) {
    let sig = &method.sig;
    if let Some(constness) = &sig.constness {
        e.spanned(constness, "a service method cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        e.spanned(unsafety, "a service method cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        e.spanned(abi, "a service method cannot have an `extern` ABI");
    }
    if let Some(variadic) = &sig.variadic {
        e.spanned(variadic, "a service method cannot be variadic");
    }
    if sig.asyncness.is_none() {
        let (fn_token, ident) = (&sig.fn_token, &sig.ident);
        e.spanned(
            quote!(#fn_token #ident),
            "a service method must be an `async fn`",
        );
    }
    if !sig.generics.params.is_empty() {
        e.spanned(
            &sig.generics,
            "a service method cannot be generic: the client and server must agree on concrete types",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        e.spanned(
            where_clause,
            "a service method cannot have a `where` clause",
        );
    }

    match sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.colon_token.is_none()
                && r.mutability.is_none()
                && matches!(r.reference, Some((_, None))) => {}
        Some(FnArg::Receiver(r)) => e.spanned(
            r,
            "a service method must take `&self`: the server shares one instance between concurrent calls",
        ),
        Some(first @ FnArg::Typed(_)) => e.spanned(
            first,
            "a service method must take `&self` as its first argument",
        ),
        None => e.spanned(
            &sig.ident,
            "a service method must take `&self` as its first argument",
        ),
    }

    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        if !is_plain(&arg.pat) {
            e.spanned(
                &arg.pat,
                "a service method's argument must be a plain identifier (it names the argument of the generated client method)",
            );
        }
    }
    for arg in &method.args {
        check_type(&arg.ty, e);
    }
    if let Some(ret) = &method.declared_ret {
        check_type(ret, e);
    }
    let streams = method.args.iter().filter(|a| a.stream.is_some()).count();
    for (i, arg) in method.args.iter().enumerate() {
        if arg.stream.is_some() && (streams > 1 || i + 1 != method.args.len()) {
            e.spanned(
                &arg.ty,
                "a service method takes at most one `Streaming<T>` argument, and it comes last",
            );
        }
    }
}

/// Whether an argument pattern is a bare identifier (no `ref`, `mut` or `@`).
pub(crate) fn is_plain(pat: &Pat) -> bool {
    matches!(pat, Pat::Ident(p)
        if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none())
}

/// Rejects what cannot travel between processes, wherever it is nested.
fn check_type(ty: &Type, e: &mut Errors) {
    TypeCheck { errors: e }.visit_type(ty);
}

struct TypeCheck<'a> {
    errors: &'a mut Errors,
}

impl<'ast> Visit<'ast> for TypeCheck<'_> {
    fn visit_type_impl_trait(&mut self, ty: &'ast syn::TypeImplTrait) {
        self.errors.spanned(
            ty,
            "`impl Trait` is not allowed in a service method: the client and server need a concrete type to encode and decode",
        );
    }

    fn visit_type_reference(&mut self, ty: &'ast syn::TypeReference) {
        self.errors.spanned(
            ty,
            "a service method cannot take or return references: values are sent between processes, use an owned type (e.g. `String` for `&str`)",
        );
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let Some(first) = path.segments.first() {
            if first.ident == "Self" {
                self.errors.spanned(
                    &first.ident,
                    "`Self` is not allowed in a service method's types: the generated client and server have no such type; name it",
                );
            }
        }
        visit::visit_path(self, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn count_errors(item: proc_macro2::TokenStream) -> (usize, Service) {
        let mut errors = Errors::default();
        let mut svc = parse::service(quote!(), item, &mut errors).unwrap();
        check(&mut svc, &mut errors);
        (errors.len(), svc)
    }

    #[test]
    fn a_clean_trait_has_no_errors() {
        let (n, svc) = count_errors(quote! {
            pub trait Calc {
                /// Adds.
                async fn add(&self, a: i64, b: i64) -> i64;
                async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
                async fn ping(&self);
            }
        });
        assert_eq!(n, 0);
        assert!(svc.trait_ok && svc.methods.iter().all(|m| m.usable));
    }

    #[test]
    fn every_problem_is_reported() {
        let (n, svc) = count_errors(quote! {
            trait Bad<T>: Send {
                type Assoc;
                fn not_async(&self);
                async fn no_self(a: u8);
                async fn mut_self(&mut self);
                async fn generic<U>(&self, u: U);
                async fn pattern(&self, (a, b): (u8, u8));
                async fn opaque(&self, a: impl Send) -> Vec<impl Send>;
                async fn borrowed(&self, s: &str) -> Self;
                async fn body(&self) {}
                async fn new(&self);
                async fn pattern(&self);
                #[cfg(any())]
                async fn gated(&self);
            }
        });
        // generic trait, supertrait, assoc type, then one per method except `opaque` (2),
        // `borrowed` (2), the duplicate `pattern` and `gated`.
        assert_eq!(n, 3 + 1 + 1 + 1 + 1 + 1 + 2 + 2 + 1 + 1 + 1 + 1);
        assert!(!svc.trait_ok);
        assert!(svc.methods.iter().all(|m| !m.usable));
        assert!(svc.methods[9].duplicate);
    }
}
