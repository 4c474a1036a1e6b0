//! Watching a release's `components/` folder: `notify` events, debounced
//! until a file has been quiet and its size stable, so that a write still in
//! progress is not picked up. Temporary and hidden files are ignored; a
//! `.wasm` renamed into place, or written and then left alone, is reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Starts watching `dir`; settled `.wasm` files named after `known`
/// components arrive on the returned channel. Dropping the returned
/// watcher stops it.
pub fn watch(
    dir: &Path,
    known: Vec<String>,
    settle: Duration,
) -> Result<(notify::RecommendedWatcher, mpsc::Receiver<PathBuf>), notify::Error> {
    use notify::Watcher;
    // Bounded: only events for component files are queued. When
    // MAX_EVENTS are already waiting, an event is not queued but the
    // overflow is noted, and the debouncer then re-checks every component
    // file: a burst for one file never hides another file's event.
    let (raw_tx, raw_rx) = mpsc::channel::<PathBuf>(MAX_EVENTS);
    let overflow = Arc::new(AtomicBool::new(false));
    let filter = known.clone();
    let noted = overflow.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            for p in event.paths {
                if component_file(&p, &filter) && raw_tx.try_send(p).is_err() {
                    noted.store(true, Ordering::Release);
                }
            }
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    let (tx, rx) = mpsc::channel(known.len().max(1));
    let files = known
        .iter()
        .map(|k| dir.join(format!("{k}.wasm")))
        .collect();
    tokio::spawn(debounce(raw_rx, tx, known, files, overflow, settle));
    Ok((watcher, rx))
}

/// How many file events may wait for the debouncer (1024).
pub const MAX_EVENTS: usize = 1024;

/// `x.wasm` for a known component `x`; not `x.wasm.tmp`, `.x.wasm`, `x.cwasm`.
fn component_file(path: &Path, known: &[String]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.strip_suffix(".wasm")
        .is_some_and(|stem| !stem.starts_with('.') && known.iter().any(|k| k == stem))
}

/// A file is reported once it has had no events for `settle` and then the
/// same size over one more `settle`.
///
/// `files` are every component's file, re-checked all at once after the
/// event queue overflowed (`overflow`).
async fn debounce(
    mut raw: mpsc::Receiver<PathBuf>,
    out: mpsc::Sender<PathBuf>,
    known: Vec<String>,
    files: Vec<PathBuf>,
    overflow: Arc<AtomicBool>,
    settle: Duration,
) {
    // path → (last event or size change, size seen then)
    let mut pending: HashMap<PathBuf, (Instant, Option<u64>)> = HashMap::new();
    let tick = (settle / 4).max(Duration::from_millis(5));
    loop {
        let got = if pending.is_empty() {
            match raw.recv().await {
                Some(p) => Some(p),
                None => return,
            }
        } else {
            match tokio::time::timeout(tick, raw.recv()).await {
                Ok(Some(p)) => Some(p),
                Ok(None) => return,
                Err(_) => None,
            }
        };
        if let Some(p) = got
            && component_file(&p, &known)
        {
            pending.insert(p, (Instant::now(), None));
        }
        if overflow.swap(false, Ordering::AcqRel) {
            tracing::debug!(
                "more than {MAX_EVENTS} file events at once; re-checking every component file"
            );
            for f in &files {
                pending.insert(f.clone(), (Instant::now(), None));
            }
        }
        let now = Instant::now();
        let mut ready = Vec::new();
        pending.retain(|p, (last, size)| {
            if now.duration_since(*last) < settle {
                return true;
            }
            match std::fs::metadata(p).ok().map(|m| m.len()) {
                // Renamed away or deleted: nothing to install.
                None => false,
                Some(len) if Some(len) == *size => {
                    ready.push(p.clone());
                    false
                }
                // First look, or still growing: one more quiet period.
                Some(len) => {
                    *size = Some(len);
                    *last = now;
                    true
                }
            }
        });
        for p in ready {
            if out.send(p).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_component_wasm_files_count() {
        let known = vec!["counter".to_string()];
        assert!(component_file(
            Path::new("/r/components/counter.wasm"),
            &known
        ));
        assert!(!component_file(
            Path::new("/r/components/counter.wasm.tmp"),
            &known
        ));
        assert!(!component_file(
            Path::new("/r/components/counter.cwasm"),
            &known
        ));
        assert!(!component_file(
            Path::new("/r/components/.counter.wasm"),
            &known
        ));
        assert!(!component_file(
            Path::new("/r/components/other.wasm"),
            &known
        ));
    }

    /// A burst past the queue's bound loses no other file: after an
    /// overflow every component file is looked at again.
    #[tokio::test]
    async fn an_overflow_rechecks_every_component_file() {
        let dir = tempfile::tempdir().unwrap();
        let known = vec!["a".to_string(), "b".to_string()];
        let files: Vec<PathBuf> = known
            .iter()
            .map(|k| dir.path().join(format!("{k}.wasm")))
            .collect();
        for f in &files {
            std::fs::write(f, b"\0asm").unwrap();
        }
        let (raw_tx, raw_rx) = mpsc::channel(1);
        let (tx, mut rx) = mpsc::channel(2);
        let overflow = Arc::new(AtomicBool::new(true));
        let settle = Duration::from_millis(10);
        tokio::spawn(debounce(raw_rx, tx, known, files.clone(), overflow, settle));
        // Only a's event got into the queue; b's was the one dropped.
        raw_tx.send(files[0].clone()).await.unwrap();
        let mut seen = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        seen.sort();
        assert_eq!(seen, files);
    }
}
