//! What every benchmark shares: printing a figure, medians and
//! percentiles, the guest components it measures, this process's memory,
//! and bounded waits (a bench never hangs on particles that cannot start).

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Scheduler threads of the run, printed with every figure.
pub static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// How long a bench waits for particles to start or end before it fails (60 s).
pub const SETTLE: Duration = Duration::from_secs(60);

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One figure as one JSON line on stdout.
pub fn emit(name: &str, value: f64, unit: &str, mut params: Value) {
    params["threads"] = json!(THREADS.get().copied().unwrap_or(1));
    let line = json!({"name": name, "value": value, "unit": unit, "params": params});
    // A closed pipe (`| head`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The median of the runs (the upper one of an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The `p`th percentile (0–100) of sorted values; 0 for none.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A component of this checkout's `apps/`, built on demand unless given.
pub fn app_wasm(given: Option<PathBuf>, app: &str, flag: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    // The crate folder may spell the component's `_` as `-` (hello-http).
    let mut dir = PathBuf::from("apps").join(app);
    if !dir.join("Cargo.toml").is_file() {
        dir = PathBuf::from("apps").join(app.replace('_', "-"));
    }
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "apps/{app} not found here: run from the plasmoid checkout or pass {flag} {app}.wasm"
        );
    }
    let build = plasmoid_release::build_guest(&dir)?;
    build
        .get(app)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("building apps/{app} produced no {app}.wasm"))
}

/// Memory maps of this process (the kernel caps them at vm.max_map_count).
pub fn map_count() -> Option<u64> {
    Some(
        std::fs::read_to_string("/proc/self/maps")
            .ok()?
            .lines()
            .count() as u64,
    )
}

/// Proportional resident memory of this process, KiB. PSS, not RSS: pages
/// of a component's copy-on-write image that thousands of particles map
/// are one page of memory, but RSS would count them once per particle.
pub fn pss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = status.lines().find(|l| l.starts_with("Pss:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Poll until `done`, at most `within`; the error names `what` it waited for.
pub async fn wait_until(
    mut done: impl FnMut() -> bool,
    within: Duration,
    what: &str,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            bail!("gave up after {} s waiting for {what}", within.as_secs());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&sorted, 50.0), 51.0);
        assert_eq!(pct(&sorted, 99.0), 99.0);
        assert_eq!(pct(&[], 50.0), 0.0);
    }
}
