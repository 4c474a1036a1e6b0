//! What one page asks to see of a sample: the particle table sorted,
//! filtered and cut to its row limit on the server, so a node with many
//! thousands of particles sends a page only the rows it shows.

use crate::model::{Event, ParticleRow, PeerRow, Point, Sample, TreeNode};
use serde::{Deserialize, Serialize};

/// The most rows a page may ask for.
pub const MAX_ROWS: usize = 2000;

#[derive(Clone, Debug, Deserialize)]
pub struct TableQuery {
    /// Column to sort by (see [`key`]); default `mailbox`.
    #[serde(default)]
    pub sort: Option<String>,
    /// Ascending when `asc`; descending otherwise.
    #[serde(default)]
    pub dir: Option<String>,
    /// Rows whose pid, name, component or child id contain this text.
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A sample as one page sees it.
#[derive(Serialize)]
pub struct View<'a> {
    pub at_ms: u64,
    pub release: &'a str,
    pub node: &'a str,
    pub node_id: &'a str,
    pub uptime_ms: u64,
    pub alive: usize,
    pub tree: &'a Option<TreeNode>,
    pub particles: Vec<&'a ParticleRow>,
    /// Rows that matched the filter, before the limit.
    pub matched: usize,
    pub total: usize,
    pub sort: String,
    pub dir: &'static str,
    pub peers: &'a [PeerRow],
    pub point: &'a Point,
    pub events: Vec<Event>,
}

fn num(r: &ParticleRow, column: &str) -> Option<f64> {
    Some(match column {
        "mailbox" => r.mailbox as f64,
        "memory" => r.memory as f64,
        "ticks" => r.ticks as f64,
        "cpu" => r.ticks_per_interval as f64,
        "in" => r.in_per_s,
        "out" => r.out_per_s,
        "restarts" => f64::from(r.restarts),
        "links" => r.links as f64,
        _ => return None,
    })
}

fn text<'a>(r: &'a ParticleRow, column: &str) -> &'a str {
    match column {
        "name" => r.name.as_deref().unwrap_or(""),
        "component" => &r.component,
        "child" => r.child.as_deref().unwrap_or(""),
        _ => &r.pid,
    }
}

/// The rows `q` asks for, and how many matched.
pub fn select<'a>(s: &'a Sample, q: &TableQuery) -> (Vec<&'a ParticleRow>, usize, String, bool) {
    let column = q.sort.clone().unwrap_or_else(|| "mailbox".into());
    let asc = q.dir.as_deref() == Some("asc");
    let needle = q.filter.as_deref().unwrap_or("").trim().to_lowercase();
    let mut rows: Vec<&ParticleRow> = s
        .particles
        .iter()
        .filter(|r| {
            needle.is_empty()
                || [
                    r.pid.as_str(),
                    r.name.as_deref().unwrap_or(""),
                    &r.component,
                    r.child.as_deref().unwrap_or(""),
                ]
                .iter()
                .any(|f| f.to_lowercase().contains(&needle))
        })
        .collect();
    let matched = rows.len();
    rows.sort_by(|a, b| {
        let o = match (num(a, &column), num(b, &column)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => text(a, &column).cmp(text(b, &column)),
        };
        let o = if asc { o } else { o.reverse() };
        // Ties in pid order, so equal rows keep their places between samples.
        o.then_with(|| a.pid.cmp(&b.pid))
    });
    rows.truncate(q.limit.unwrap_or(100).clamp(1, MAX_ROWS));
    (rows, matched, column, asc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: &str, mailbox: usize, name: &str) -> ParticleRow {
        ParticleRow {
            pid: pid.into(),
            name: Some(name.into()),
            component: "c".into(),
            version: None,
            child: None,
            mailbox,
            memory: 0,
            ticks: 0,
            ticks_per_interval: 0,
            received: 0,
            sent: 0,
            in_per_s: 0.0,
            out_per_s: 0.0,
            restarts: 0,
            links: 0,
            monitors: 0,
            native: false,
        }
    }

    fn sample(rows: Vec<ParticleRow>) -> Sample {
        Sample {
            at_ms: 0,
            release: String::new(),
            node: String::new(),
            node_id: String::new(),
            uptime_ms: 0,
            alive: rows.len(),
            tree: None,
            particles: rows,
            peers: Vec::new(),
            point: Point {
                at_ms: 0,
                msgs_per_s: 0.0,
                alive: 0,
                memory: 0,
                http_per_s: 0.0,
            },
            restarts: Vec::new(),
        }
    }

    fn q(sort: &str, dir: &str, filter: &str, limit: usize) -> TableQuery {
        TableQuery {
            sort: Some(sort.into()),
            dir: Some(dir.into()),
            filter: Some(filter.into()),
            limit: Some(limit),
        }
    }

    #[test]
    fn sorts_filters_and_limits() {
        let s = sample(vec![
            row("a.1", 5, "x"),
            row("a.2", 50, "y"),
            row("a.3", 1, "xy"),
        ]);
        let (rows, matched, _, _) = select(&s, &q("mailbox", "desc", "", 2));
        assert_eq!(matched, 3);
        let pids: Vec<&str> = rows.iter().map(|r| r.pid.as_str()).collect();
        assert_eq!(pids, ["a.2", "a.1"]);
        let (rows, matched, _, _) = select(&s, &q("mailbox", "asc", "X", 10));
        assert_eq!(matched, 2);
        let pids: Vec<&str> = rows.iter().map(|r| r.pid.as_str()).collect();
        assert_eq!(pids, ["a.3", "a.1"]);
        let (rows, _, _, _) = select(&s, &q("name", "asc", "", 10));
        assert_eq!(rows[0].pid, "a.1");
    }

    #[test]
    fn the_limit_is_bounded() {
        let s = sample((0..3000).map(|i| row(&format!("a.{i}"), i, "n")).collect());
        let (rows, _, _, _) = select(&s, &q("mailbox", "desc", "", 1_000_000));
        assert_eq!(rows.len(), MAX_ROWS);
    }
}
