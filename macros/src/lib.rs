//! The `#[service]` attribute of [localrpc](https://docs.rs/localrpc). Use it through the
//! re-export `localrpc::service`; this crate is an implementation detail with no API of its own.
//!
//! The work follows serde_derive's layout: `parse` turns the trait into a model, `validate`
//! collects every problem with the user's span, and `expand` writes the code.
//! Generated code names only `::localrpc::__private`, so it compiles under
//! `#![no_implicit_prelude]` and whatever the user's crate depends on.
use proc_macro::TokenStream;

mod errors;
mod expand;
mod expand_client;
mod expand_server;
mod hash;
mod parse;
mod validate;

/// Turns a trait into a localrpc service: a client, a server and the method table.
///
/// (Runnable examples are in the `localrpc` crate docs; this crate cannot depend on it.)
///
/// ```text
/// #[localrpc::service]
/// pub trait Calculator {
///     /// Adds two numbers.
///     async fn add(&self, a: i64, b: i64) -> i64;
///     async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
/// }
/// ```
///
/// Each method must be an `async fn` taking `&self` and arguments named by plain identifiers,
/// without generics, default bodies or `impl Trait`; argument and return types must implement
/// `serde::Serialize` and `serde::de::DeserializeOwned`. The attribute generates:
///
/// - the trait itself, with each `async fn m(&self, ..) -> R` turned into
///   `fn m(&self, ..) -> impl Future<Output = R> + Send` (implement it with `async fn`);
/// - `CalculatorClient<S = localrpc::Client>`, with `connect`, `new`, `with_options`,
///   `with_timeout`, `get_ref`, `into_inner` and one `async fn` per method returning
///   `Result<R, localrpc::Error>` (for a method declared `-> Result<T, E>`:
///   `Result<Result<T, E>, localrpc::Error>`); `S` is any
///   `tower::Service<CallRequest, Response = CallResponse, Error = localrpc::Error> + Clone`;
/// - `CalculatorServer<T>`, a `tower::Service<ServerRequest>` over any `T: Calculator`.
///
/// `#[localrpc::service(name = "myapp.Calculator")]` sets the service name sent on the wire
/// (by default the trait's name). Methods are called by index, in declaration order, and a
/// hash of the names and signatures refuses mismatched clients at connect time.
///
/// See the [localrpc crate docs](https://docs.rs/localrpc) for complete, tested examples.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::service(attr.into(), item.into()).into()
}
