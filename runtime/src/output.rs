//! A guest's stdout and stderr, as log lines under its pid.
//!
//! A particle that prints (a Python traceback, a Rust panic message, a JS
//! `console.log`) would otherwise write on the node's raw stderr, unlabelled
//! and interleaved with every other particle. Here each complete line
//! becomes one `tracing` event with the pid and component (stdout at info,
//! stderr at warn), and the last lines of stderr are kept so that a trap's
//! exit reason can say what the guest said before it died. Lines are cut
//! at [`MAX_LINE`] bytes and the tail holds at most [`TAIL_LINES`], so a
//! guest printing without end costs log volume, not memory. It does not
//! decide where logs go (the node's subscriber does).

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged as one event; the rest of a longer one follows as
/// further events.
pub const MAX_LINE: usize = 2_048;
/// Lines of stderr kept for an exit reason.
pub const TAIL_LINES: usize = 12;
/// Most characters of one line an exit reason carries.
const TAIL_LINE: usize = 300;
/// Lines of stderr older than this are not blamed for a trap.
const TAIL_AGE: std::time::Duration = std::time::Duration::from_secs(10);
/// Lines one stream may log at once, and per second after that; the rest
/// are counted and the count logged, so a guest printing in a loop costs
/// the log a line a second, not the node its log.
const BURST: f64 = 1_000.0;
const PER_SECOND: f64 = 200.0;
/// Most bytes of stderr an exit reason carries.
const TAIL_BYTES: usize = 1_536;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

struct Lines {
    who: Arc<str>,
    component: Arc<str>,
    stream: Stream,
    partial: Vec<u8>,
    tail: VecDeque<(std::time::Instant, String)>,
    tokens: f64,
    refilled: std::time::Instant,
    /// Lines not logged since the last report of them, and when that was.
    suppressed: u64,
    reported_at: std::time::Instant,
    /// Lines not logged in all, for the tests.
    #[cfg(test)]
    dropped: u64,
}

/// One of a guest's output streams; clones write to the same lines.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Lines>>);

impl GuestOutput {
    /// `who` names the writer in the log: a pid, or a handler's request.
    pub fn stdout(who: Arc<str>, component: Arc<str>) -> Self {
        Self::new(who, component, Stream::Stdout)
    }

    pub fn stderr(who: Arc<str>, component: Arc<str>) -> Self {
        Self::new(who, component, Stream::Stderr)
    }

    fn new(who: Arc<str>, component: Arc<str>, stream: Stream) -> Self {
        GuestOutput(Arc::new(Mutex::new(Lines {
            who,
            component,
            stream,
            partial: Vec::new(),
            tail: VecDeque::new(),
            tokens: BURST,
            refilled: std::time::Instant::now(),
            suppressed: 0,
            reported_at: std::time::Instant::now(),
            #[cfg(test)]
            dropped: 0,
        })))
    }

    fn feed(&self, bytes: &[u8]) {
        let mut l = self.0.lock();
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = MAX_LINE - l.partial.len();
            match rest.iter().take(room).position(|b| *b == b'\n') {
                Some(i) => {
                    l.partial.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    l.emit();
                }
                None if rest.len() >= room => {
                    l.partial.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                    l.emit();
                }
                None => {
                    l.partial.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
    }

    /// Log what is left of an unfinished line, and how many were not
    /// logged (the guest ended).
    pub fn flush(&self) {
        let mut l = self.0.lock();
        if !l.partial.is_empty() {
            l.emit();
        }
        l.report_suppressed();
    }

    /// The last lines of stderr of the last [`TAIL_AGE`], oldest first, at
    /// most [`TAIL_BYTES`].
    pub fn tail(&self) -> Option<String> {
        self.flush();
        let l = self.0.lock();
        let now = std::time::Instant::now();
        let mut out = String::new();
        for (at, line) in l.tail.iter().rev() {
            if now.duration_since(*at) > TAIL_AGE {
                break;
            }
            if out.len() + line.len() + 1 > TAIL_BYTES {
                break;
            }
            out.insert_str(0, &format!("{line}\n"));
        }
        let out = out.trim_end().to_string();
        (!out.is_empty()).then_some(out)
    }
}

impl Lines {
    /// Whether the rate limit lets one more line into the log.
    fn admit(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + earned).min(BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            // At most one report a second, so a steady flood does not
            // double the log with them.
            if now.duration_since(self.reported_at) >= std::time::Duration::from_secs(1) {
                self.report_suppressed();
            }
            true
        } else {
            self.suppressed += 1;
            #[cfg(test)]
            {
                self.dropped += 1;
            }
            false
        }
    }

    fn report_suppressed(&mut self) {
        if self.suppressed > 0 {
            let (who, component, n) = (&*self.who, &*self.component, self.suppressed);
            tracing::warn!(target: "particle::output", pid = who, component, "{n} lines of output were not logged (more than {PER_SECOND} a second)");
            self.suppressed = 0;
        }
        self.reported_at = std::time::Instant::now();
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.partial)
            .trim_end()
            .to_string();
        self.partial.clear();
        let logged = self.admit();
        let (who, component) = (&*self.who, &*self.component);
        match self.stream {
            Stream::Stdout => {
                if logged {
                    tracing::info!(target: "particle::stdout", pid = who, component, "{line}")
                }
            }
            Stream::Stderr => {
                if logged {
                    tracing::warn!(target: "particle::stderr", pid = who, component, "{line}");
                }
                if !line.trim().is_empty() {
                    if self.tail.len() == TAIL_LINES {
                        self.tail.pop_front();
                    }
                    // Each kept line is cut, so a few long ones cannot
                    // push everything else out of the reason.
                    let kept: String = line.chars().take(TAIL_LINE).collect();
                    self.tail.push_back((std::time::Instant::now(), kept));
                }
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.feed(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Lines go to the log at once: always room for a line's worth.
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.feed(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> GuestOutput {
        GuestOutput::stderr("n.1".into(), "py".into())
    }

    #[test]
    fn the_tail_keeps_the_last_lines_in_order_and_flushes_a_partial_one() {
        let e = err();
        e.feed(b"Traceback (most recent call last):\n  File \"app.py\", line 3\n");
        e.feed(b"ValueError: bo");
        e.feed(b"om");
        assert_eq!(
            e.tail().as_deref(),
            Some("Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: boom")
        );
    }

    #[test]
    fn the_tail_is_bounded_in_lines_and_bytes() {
        let e = err();
        for i in 0..100 {
            e.feed(format!("line {i}\n").as_bytes());
        }
        let t = e.tail().unwrap();
        assert_eq!(t.lines().count(), TAIL_LINES);
        assert!(t.ends_with("line 99"));
        let e = err();
        e.feed(&vec![b'x'; 10 * MAX_LINE]);
        e.feed(b"\n");
        let t = e.tail().unwrap();
        assert!(t.len() <= TAIL_BYTES, "{}", t.len());
    }

    #[test]
    fn a_flood_is_counted_not_logged_and_the_tail_still_follows() {
        let e = err();
        for i in 0..5_000 {
            e.feed(format!("line {i}\n").as_bytes());
        }
        let l = e.0.lock();
        // 1,000 at once, then 200 a second: the rest of 5,000 is counted.
        assert!(l.dropped >= 3_000, "{}", l.dropped);
        assert_eq!(l.tail.back().map(|(_, s)| s.as_str()), Some("line 4999"));
    }

    #[test]
    fn stdout_keeps_no_tail() {
        let o = GuestOutput::stdout("n.1".into(), "py".into());
        o.feed(b"hello\n");
        assert_eq!(o.tail(), None);
    }
}
