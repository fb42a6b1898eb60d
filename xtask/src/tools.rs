//! Finding and installing the tools that tasks need.
//!
//! Rule: a task asks this module for a tool right before it uses it, so
//! `cargo xtask test` on a bare machine installs what the tests need and
//! nothing else, and a second call is a no-op.
//!
//! Python-distributed tools (see `xtask/requirements.txt`) live in a virtual
//! environment under `target/xtask/venv`, created with the machine's
//! `python3 -m venv` and filled by its own `pip`. A copy of the requirements
//! kept inside the venv tells whether it is up to date.

use std::path::PathBuf;

use anyhow::Context as _;
use xshell::{Shell, cmd};

/// The pinned Python tools, installed by [`ensure_venv`].
const REQUIREMENTS: &str = include_str!("../requirements.txt");

/// Environment variable through which tests find the venv's programs.
pub(crate) const TOOLS_BIN_ENV: &str = "WILDRYDES_TOOLS_BIN";

/// A virtual environment holding the pinned tools.
#[derive(Debug)]
pub(crate) struct Venv {
    /// Its `bin` folder, where `cargo-lambda` and friends are.
    pub(crate) bin: PathBuf,
}

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

/// The venv with every pinned tool, created or updated if needed. `sh` must
/// be at the workspace root.
pub(crate) fn ensure_venv(sh: &Shell) -> anyhow::Result<Venv> {
    let dir = sh.current_dir().join("target/xtask/venv");
    let bin = dir.join("bin");
    let stamp = dir.join("wildrydes-requirements.txt");
    if sh
        .read_file(&stamp)
        .is_ok_and(|installed| installed == REQUIREMENTS)
    {
        return Ok(Venv { bin });
    }
    eprintln!(
        "xtask: installing the pinned Python tools into {}",
        dir.display()
    );
    cmd!(sh, "python3 -m venv {dir}")
        .run()
        .context("cannot create a Python virtual environment: install python3 with its venv module (apt-get install python3-venv)")?;
    let requirements = dir.join("requirements.txt");
    sh.write_file(&requirements, REQUIREMENTS)?;
    let pip = bin.join("pip");
    cmd!(sh, "{pip} install --disable-pip-version-check --quiet -r {requirements}")
        .run()
        .context("cannot install the pinned Python tools of xtask/requirements.txt: check that PyPI is reachable")?;
    sh.write_file(&stamp, REQUIREMENTS)?;
    Ok(Venv { bin })
}

/// Environment variable through which the browser test finds Chromium.
pub(crate) const CHROMIUM_ENV: &str = "WILDRYDES_CHROMIUM";

/// Where Debian's Chromium package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium for the console's browser test: Debian's package,
/// installed with apt-get (as root, or with sudo) if it is not there yet.
pub(crate) fn ensure_chromium(sh: &Shell) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("xtask: installing Debian's chromium package for the browser test");
    let root = cmd!(sh, "id -u")
        .quiet()
        .read()
        .is_ok_and(|uid| uid.trim() == "0");
    let sudo: &[&str] = if root { &[] } else { &["sudo", "-n"] };
    cmd!(sh, "env {sudo...} apt-get update -qq")
        .run()
        .context("cannot update apt's package lists to install chromium: run as root (or with passwordless sudo), or install chromium yourself (apt-get install chromium)")?;
    cmd!(
        sh,
        "env {sudo...} DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium"
    )
    .run()
    .context("cannot install Debian's chromium package: install it yourself (apt-get install chromium)")?;
    anyhow::ensure!(
        path.is_file(),
        "apt-get installed chromium but {CHROMIUM} is missing: is this Debian?"
    );
    Ok(path)
}
