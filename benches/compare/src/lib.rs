//! Benchmarks of localrpc against tarpc and tonic, with raw Tokio Unix-socket ping-pong as the
//! baseline; the code is in `benches/compare.rs`. Run `cargo bench -p localrpc-compare`.
