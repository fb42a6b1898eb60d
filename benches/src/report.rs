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

/// A Markdown table with one line per measured row, its cells made by
/// `cells`.
pub fn rows_table(
    headers: &[&str],
    rows: &[serde_json::Value],
    cells: impl Fn(Row<'_>) -> Vec<String>,
) -> String {
    table(
        headers,
        &rows.iter().map(|r| cells(Row(r))).collect::<Vec<_>>(),
    )
}

/// One measured row (a JSON object), read into table cells.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a>(pub &'a serde_json::Value);

impl Row<'_> {
    /// The number `key`; 0 if the row has none.
    pub fn number(self, key: &str) -> f64 {
        self.0[key].as_f64().unwrap_or_default()
    }

    /// The number `key` with `digits` decimals.
    pub fn fixed(self, key: &str, digits: usize) -> String {
        f(self.number(key), digits)
    }

    /// The boolean `key` as `yes` or `no` (no when absent).
    pub fn yes_no(self, key: &str) -> String {
        if self.0[key].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
        .to_owned()
    }

    /// The value `key` as it reads: a string's text, anything else as JSON.
    pub fn text(self, key: &str) -> String {
        match &self.0[key] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
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
