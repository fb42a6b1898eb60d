//! Where results go (`target/bench/` unless `WILDRYDES_BENCH_DIR` says
//! otherwise), as JSON for tools and a Markdown table for people and for
//! `BENCHMARKS.md`.

use std::path::PathBuf;

/// Environment variable naming the results folder.
pub const DIR_ENV: &str = "WILDRYDES_BENCH_DIR";

/// The results folder, created if missing.
pub fn dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os(DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench")));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// A Markdown table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", headers.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Writes `NAME.json` (the rows as measured) and `NAME.md` (`title`, the
/// command and the table) into [`dir`], prints the table, and returns the
/// Markdown file's path.
pub fn write(
    name: &str,
    title: &str,
    command: &str,
    json: &serde_json::Value,
    markdown_table: &str,
) -> anyhow::Result<PathBuf> {
    let dir = dir()?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(json)?,
    )?;
    let md = dir.join(format!("{name}.md"));
    let text = format!("### {title}\n\n`{command}`\n\n{markdown_table}");
    std::fs::write(&md, &text)?;
    println!("\n{text}");
    println!("(written to {})", md.display());
    Ok(md)
}

/// `x` with `digits` decimals.
pub fn f(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}
