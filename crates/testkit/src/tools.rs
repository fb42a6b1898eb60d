//! Where the pinned Python tools are (cargo-lambda, moto, cfn-lint):
//! `WILDRYDES_TOOLS_BIN` if set (`cargo xtask test` sets it), else the venv
//! `cargo xtask tools` fills, `target/xtask/venv/bin` at the workspace root.
//! Plain `cargo test` works once that has run; before, a test that needs a
//! tool fails with the one line saying so.

use std::path::PathBuf;

/// Variable naming the folder of the tools' programs.
pub const TOOLS_BIN_ENV: &str = "WILDRYDES_TOOLS_BIN";

/// The folder of the tools' programs.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(TOOLS_BIN_ENV) {
        return PathBuf::from(dir);
    }
    workspace_root().join("target/xtask/venv/bin")
}

/// The program `name` of the pinned tools; panics, saying what to run, if
/// it is not installed.
pub fn program(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask tools` once (it installs the pinned tools into target/xtask/venv), or run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

/// The workspace root: two levels above this crate.
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit lives two levels below the workspace root")
        .to_path_buf()
}

/// Variable naming the Chromium program (`cargo xtask test` sets it).
pub const CHROMIUM_ENV: &str = "WILDRYDES_CHROMIUM";

/// Headless Chromium for browser tests: `WILDRYDES_CHROMIUM`, else
/// Debian's `/usr/bin/chromium`; panics, saying what to run, if missing.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os(CHROMIUM_ENV)
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask tools` once (it installs Debian's chromium package), or run the tests with `cargo xtask test`",
        path.display()
    );
    path
}
