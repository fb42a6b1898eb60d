//! The crate graph, checked (rust-analyzer's "tidy" tests): what
//! ARCHITECTURE.md says about which crate may depend on which is read off
//! `cargo metadata` and enforced here.
//!
//! Dependencies through `workspace-hack` are left out: that crate only
//! unifies features (see its Cargo.toml); no code of ours can `use` what it
//! pulls in, since only direct dependencies are in scope.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The resolved graph: package name to its normal (not dev, not build)
/// dependencies' names, `workspace-hack` edges left out.
struct Graph {
    normal: BTreeMap<String, BTreeSet<String>>,
    members: BTreeSet<String>,
}

fn graph() -> Graph {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cannot run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let members = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].to_owned())
        .collect();
    let mut normal = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = name_of[node["id"].as_str().unwrap()].to_owned();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| name_of[d["pkg"].as_str().unwrap()].to_owned())
            .filter(|d| d != "workspace-hack")
            .collect();
        normal
            .entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(deps);
    }
    Graph { normal, members }
}

impl Graph {
    /// Every package `name` reaches through normal dependencies.
    fn reach(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in self.normal.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }

    /// The crates of ours `name` depends on directly.
    fn ours(&self, name: &str) -> BTreeSet<&str> {
        self.normal[name]
            .iter()
            .filter(|d| self.members.contains(*d))
            .map(String::as_str)
            .collect()
    }
}

#[test]
fn our_crates_depend_inward_only() {
    let g = graph();
    // Core at the centre; each crate on the ones inside it, and no more.
    let expected: [(&str, &[&str]); 10] = [
        ("wildrydes-core", &[]),
        ("wildrydes-alarm", &["wildrydes-core"]),
        ("wildrydes-lambda", &["wildrydes-alarm", "wildrydes-core"]),
        (
            "wildrydes-daemon",
            &["wildrydes-alarm", "wildrydes-cli", "wildrydes-core"],
        ),
        ("wildrydes-producer", &["wildrydes-cli", "wildrydes-core"]),
        ("wildrydes-cli", &[]),
        ("wildrydes-local-aws", &["wildrydes-core"]),
        (
            "wildrydes-ops",
            &["wildrydes-cli", "wildrydes-core", "wildrydes-local-aws"],
        ),
        (
            "wildrydes-testkit",
            &["wildrydes-core", "wildrydes-local-aws"],
        ),
        ("xtask", &[]),
    ];
    for (name, deps) in expected {
        assert_eq!(
            g.ours(name),
            deps.iter().copied().collect::<BTreeSet<_>>(),
            "{name} depends on other crates of ours than ARCHITECTURE.md says"
        );
    }
}

#[test]
fn the_domain_knows_nothing_of_lambda_the_command_line_or_the_emulators() {
    let g = graph();
    let outside = [
        "lambda_runtime",
        "aws_lambda_events",
        "clap",
        "ferrokinesis",
        "dynoxide-rs",
        "wildrydes-local-aws",
    ];
    for name in ["wildrydes-core", "wildrydes-alarm"] {
        let reach = g.reach(name);
        for dep in outside {
            assert!(!reach.contains(dep), "{name} depends on {dep}");
        }
    }
}

#[test]
fn no_production_binary_links_the_emulators() {
    let g = graph();
    for name in ["wildrydes-lambda", "wildrydes-daemon", "wildrydes-producer"] {
        let reach = g.reach(name);
        for dep in [
            "wildrydes-local-aws",
            "wildrydes-testkit",
            "ferrokinesis",
            "dynoxide-rs",
        ] {
            assert!(!reach.contains(dep), "{name} links {dep}");
        }
    }
}

#[test]
fn xtask_stays_light() {
    let g = graph();
    let reach = g.reach("xtask");
    let heavy: Vec<_> = reach
        .iter()
        .filter(|d| d.starts_with("aws-") || *d == "tokio" || d.starts_with("wildrydes-"))
        .collect();
    assert!(heavy.is_empty(), "xtask depends on {heavy:?}");
    assert!(
        reach.len() < 60,
        "xtask pulls {} crates: {reach:?}",
        reach.len()
    );
}

#[test]
fn every_crate_of_ours_unifies_features_through_the_workspace_hack() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if matches!(name, "xtask" | "workspace-hack") {
            continue;
        }
        let has_hack = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "workspace-hack" && d["kind"].is_null());
        assert!(
            has_hack,
            "{name} does not depend on workspace-hack: add `workspace-hack.workspace = true` to its [dependencies] (and run `cargo hakari generate` if you added a dependency)"
        );
    }
}
