//! Measurement programs of the Wild Rydes pipeline: what they share.
//!
//! # Layout
//!
//! - [`usage`]: a process's CPU time and memory, read from `/proc` (the
//!   figures `getrusage` gives, without `unsafe`).
//! - [`noop`]: a DynamoDB endpoint that answers every call at once with
//!   `{"UnprocessedItems":{}}`, to isolate the caller's own cost.
//! - [`backend`]: the embedded backend (or the no-op endpoint) run in a
//!   process of its own, so that a measured process holds only the code
//!   under test; [`backend::Backend`] starts one and hands out its
//!   environment.
//! - [`fixture`]: the workshop's day of aggregates, spread over unicorns so
//!   that a batch of any size has distinct table keys.
//! - [`http`]: the few HTTP calls made to processes under measurement.
//! - [`report`]: where results go, and the small table printed for each.
//!
//! The binary (`src/bin/wildrydes-bench.rs`) measures whole processes: the
//! Lambda binary's cold start and per-record cost under cargo-lambda's
//! runtime API, the daemon's sustained throughput, the producer's largest
//! fleet. `crates/lambda/benches/stream_processor.rs` measures the handler.
//! `cargo xtask bench` runs them all; `BENCHMARKS.md` records the figures.

pub mod backend;
pub mod fixture;
pub mod http;
pub mod noop;
pub mod report;
pub mod usage;
