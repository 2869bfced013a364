//! Compile-time tests of `#[localrpc::service]`: what must compile (`tests/ui/pass`), and the
//! errors for what must not (`tests/ui/fail`, each with the expected `.stderr`).
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test macro_ui`, then
//! review them: each error must point at the offending tokens of the user's trait.
//!
//! The expansion does not depend on the target, and trybuild runs cargo on the host, so these
//! run on the host only (not in the Windows test binaries that run under Wine).
#![cfg(not(windows))]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
