//! The canonical string of a method table (see the header of `proto/localrpc.proto`).
//!
//! For each method in declaration order: `name(T1,T2)->R;`, the types written as in the
//! source with all whitespace removed, an omitted return type written `()`. The generated
//! code hashes it with `localrpc::method_table_hash` in a constant, so the hash function
//! lives in one place.
use quote::ToTokens;

use crate::parse::Method;

/// The canonical string of `methods`.
pub(crate) fn canonical<'a>(methods: impl IntoIterator<Item = &'a Method>) -> String {
    let mut out = String::new();
    for method in methods {
        out.push_str(&method.wire_name);
        out.push('(');
        for (i, arg) in method.args.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&compact(&arg.ty));
        }
        out.push_str(")->");
        match &method.declared_ret {
            Some(ty) => out.push_str(&compact(ty)),
            None => out.push_str("()"),
        }
        out.push(';');
    }
    out
}

/// The tokens of `tokens` with all whitespace removed.
pub(crate) fn compact(tokens: &impl ToTokens) -> String {
    let mut s = tokens.to_token_stream().to_string();
    s.retain(|c| !c.is_whitespace());
    s
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::errors::Errors;
    use crate::parse;

    fn canonical_of(item: proc_macro2::TokenStream) -> String {
        let svc = parse::service(quote!(), item, &mut Errors::default()).unwrap();
        canonical(&svc.methods)
    }

    #[test]
    fn documented_example() {
        let s = canonical_of(quote! {
            pub trait Calculator {
                /// Adds.
                async fn add(&self, a: i64, b: i64) -> i64;
                async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
                async fn slow(&self, ms: u64) -> u64;
                async fn ping(&self);
            }
        });
        assert_eq!(
            s,
            "add(i64,i64)->i64;div(i64,i64)->Result<i64,DivByZero>;slow(u64)->u64;ping()->();"
        );
    }

    #[test]
    fn whitespace_and_raw_names() {
        let s = canonical_of(quote! {
            trait T {
                async fn r#type(&self, v: Vec < ( u8 , String ) >, m: std :: collections :: HashMap<K, V>) -> ( );
            }
        });
        assert_eq!(
            s,
            "type(Vec<(u8,String)>,std::collections::HashMap<K,V>)->();"
        );
    }

    #[test]
    fn empty_trait() {
        assert_eq!(
            canonical_of(quote!(
                trait T {}
            )),
            ""
        );
    }
}
