//! `cargo xtask test`: the format check, then every test of the workspace.
//! CI runs exactly this (see `.ci/run`), so it is also how to reproduce CI.

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::tools;

/// Runs the checks from the workspace root (`sh` is already there) and stops
/// at the first that fails.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    // Formatting first: it takes a second, and a failure there is the
    // cheapest to fix.
    let format = if tools::rustfmt_available(sh) {
        cmd!(sh, "cargo fmt --all -- --check").run().context(
            "code is not formatted as rustfmt would; run `cargo fmt --all` and try again",
        )?;
        "formatting checked"
    } else {
        eprintln!(
            "xtask test: rustfmt is not installed, skipping the format check (`rustup component add rustfmt` adds it)"
        );
        "formatting NOT checked (no rustfmt)"
    };

    // The runtime tests drive our Lambda binaries through cargo-lambda.
    let venv = tools::ensure_venv(sh)?;
    let _tools = sh.push_env(tools::TOOLS_BIN_ENV, &venv.bin);
    // The console's browser test drives headless Chromium.
    let chromium = tools::ensure_chromium(sh)?;
    let _chromium = sh.push_env(tools::CHROMIUM_ENV, &chromium);

    // The CloudFormation templates must lint clean: errors and warnings fail
    // the run (cfn-lint expands the pattern itself).
    let cfn_lint = venv.bin.join("cfn-lint");
    cmd!(
        sh,
        "{cfn_lint} --non-zero-exit-code warning infra/**/*.yaml"
    )
    .run()
    .context("cfn-lint found problems in infra/ (listed above); fix the template and try again")?;

    // Plain `cargo test` (not nextest) so that it works on a bare machine;
    // it also runs doctests, which `--all-targets` would leave out.
    cmd!(sh, "cargo test --workspace")
        .run()
        .context("some tests failed; the output above says which")?;

    println!("xtask test: OK ({format}, all tests of the workspace passed)");
    Ok(())
}
