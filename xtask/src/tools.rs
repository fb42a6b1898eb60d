//! Finding, and later installing, the tools that tasks need.
//!
//! Rule: a task asks this module for a tool right before it uses it, so
//! `cargo xtask test` on a bare machine installs only what the tests of the
//! day need, and a task that needs nothing installs nothing.
//!
//! Planned, not yet written because no task needs them yet:
//!
//! - `ensure_venv(sh) -> anyhow::Result<Venv>`: a Python virtual environment
//!   in `target/xtask/venv` (created with `python3 -m venv`), with pinned
//!   `moto[server]` (the CloudFormation/IAM/Lambda control plane) and
//!   `cargo-lambda` (which PyPI ships as a binary) installed by its own
//!   `pip`; a stamp file holding the pinned versions makes a second call a
//!   no-op. `Venv` knows the paths of its `bin/` programs, so callers never
//!   depend on `PATH`. The first task to need moto or cargo-lambda calls it.

use xshell::{Shell, cmd};

/// Whether `cargo fmt` works here. rustfmt is a rustup component that a
/// minimal toolchain lacks; without it the format check is skipped, not
/// failed, so the tests still run.
pub(crate) fn rustfmt_available(sh: &Shell) -> bool {
    cmd!(sh, "cargo fmt --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}
