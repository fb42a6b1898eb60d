//! A process's CPU time and memory, read from `/proc`.
//!
//! `/proc/PID/stat` gives user and system time of the whole thread group in
//! clock ticks (the same accounting as `getrusage(RUSAGE_SELF)`, at tick
//! resolution), and, for the calling process, the time of its children that
//! were waited for: how the CPU time of a child that exits by itself is
//! taken exactly. `/proc/PID/status` gives the resident set and its peak
//! (`VmRSS`, `VmHWM`). Measurements are made long enough (a second of CPU
//! or more) that the 10 ms tick is below a percent.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User plus system time of all its threads, live and exited.
    pub cpu: Duration,
    /// Resident memory now, in KiB.
    pub rss_kib: u64,
    /// Peak resident memory since it started, in KiB.
    pub peak_rss_kib: u64,
    /// Time on a CPU of its live threads, to the nanosecond (the sum of
    /// `/proc/PID/task/*/schedstat`): precise where `cpu` counts ticks, but
    /// blind to threads that have exited. For short spans such as a cold
    /// start.
    pub threads_cpu: Duration,
}

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`; 100 on
/// every Linux in practice).
fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

fn ticks(n: u64) -> Duration {
    Duration::from_nanos(n.saturating_mul(1_000_000_000) / ticks_per_second())
}

/// The numeric fields of `/proc/<who>/stat` after the command name, which
/// may hold spaces and parentheses: index 0 is field 3 (`state`) of proc(5).
fn stat_fields(who: &str) -> io::Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{who}/stat"))?;
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("unexpected /proc stat format"))?;
    Ok(after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// proc(5) field number `n` (1-based) from [`stat_fields`].
fn field(fields: &[u64], n: usize) -> u64 {
    fields.get(n - 3).copied().unwrap_or(0)
}

/// A `/proc/<who>/status` line's value in KiB (`VmRSS`, `VmHWM`).
fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The sum of the first field (nanoseconds on a CPU) of every live
/// thread's `schedstat`.
fn threads_cpu(who: &str) -> io::Result<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{who}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(text) = std::fs::read_to_string(path) {
            ns += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(Duration::from_nanos(ns))
}

fn usage_of(who: &str) -> io::Result<Usage> {
    let fields = stat_fields(who)?;
    let status = std::fs::read_to_string(format!("/proc/{who}/status"))?;
    Ok(Usage {
        cpu: ticks(field(&fields, 14) + field(&fields, 15)),
        rss_kib: status_kib(&status, "VmRSS"),
        peak_rss_kib: status_kib(&status, "VmHWM"),
        threads_cpu: threads_cpu(who)?,
    })
}

/// The calling process.
pub fn of_self() -> io::Result<Usage> {
    usage_of("self")
}

/// A live process (a child not yet waited for).
pub fn of_process(pid: u32) -> io::Result<Usage> {
    usage_of(&pid.to_string())
}

/// CPU time of the calling process's children that have exited and been
/// waited for: the delta around a child's `wait` is exactly its CPU time.
pub fn of_waited_children() -> io::Result<Duration> {
    let fields = stat_fields("self")?;
    Ok(ticks(field(&fields, 16) + field(&fields, 17)))
}

/// KiB as MiB, for reports.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_a_cpu_clock() {
        let u = of_self().unwrap_or_else(|e| panic!("{e}"));
        assert!(u.rss_kib > 0 && u.peak_rss_kib >= u.rss_kib, "{u:?}");
        assert!(u.threads_cpu > Duration::ZERO, "{u:?}");
        assert!(of_waited_children().is_ok());
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), 2048);
        assert_eq!(status_kib(status, "VmRSS"), 1024);
        assert_eq!(status_kib(status, "VmSwap"), 0);
    }
}
