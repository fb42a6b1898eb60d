//! Nothing to see here: this crate exists for its `Cargo.toml`, which names
//! every dependency the workspace builds with the union of the features any
//! build turns on. Every crate of ours depends on it, so `cargo build -p X`,
//! `cargo test --workspace` and `cargo xtask demo` all compile the same copy
//! of each dependency. `cargo hakari generate` rewrites it.
