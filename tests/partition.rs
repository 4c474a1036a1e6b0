//! A real partition of a five-node release on loopback: nodes a..e listen
//! on 127.0.0.11..15, and nftables drops every packet between {a, b, c}
//! and {d, e}. Under `partition = "keep-majority"` the minority stops its
//! failover children, the majority restarts them, and after the cut is
//! undone there is one copy of each child and one owner of each global
//! name.
//!
//! Needs `nft` and the right to change the firewall (root or
//! CAP_NET_ADMIN); `.ci/run` installs nftables. The rules live in a table
//! of the test's own, removed when the test ends, however it ends.

mod common;

use common::{Running, plasmoid, run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODES: [&str; 5] = ["a", "b", "c", "d", "e"];

fn ip(node: &str) -> String {
    let i = NODES.iter().position(|n| *n == node).unwrap_or(0);
    format!("127.0.0.{}", 11 + i)
}

fn nft() -> PathBuf {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// An nftables table that drops traffic between two groups of addresses
/// until dropped itself.
struct Cut {
    table: String,
}

impl Cut {
    fn between(left: &[&str], right: &[&str]) -> Cut {
        let table = format!("plasmoid_partition_{}", std::process::id());
        let set = |nodes: &[&str]| {
            let ips: Vec<String> = nodes.iter().map(|n| ip(n)).collect();
            format!("{{ {} }}", ips.join(", "))
        };
        let (l, r) = (set(left), set(right));
        let script = format!(
            "table ip {table} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  \
             ip saddr {l} ip daddr {r} drop\n  ip saddr {r} ip daddr {l} drop\n }}\n}}\n"
        );
        let mut child = Command::new(nft())
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("this test cuts links with `nft` (package nftables, run as root or with CAP_NET_ADMIN)");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("nft's stdin")
            .write_all(script.as_bytes())
            .expect("write the rules");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft could not add the partition rules (needs root or CAP_NET_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cut { table }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = Command::new(nft())
            .args(["delete", "table", "ip", &self.table])
            .status();
    }
}

/// A free UDP port on `addr`.
fn free_port(addr: &str) -> u16 {
    std::net::UdpSocket::bind((addr, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn release(dir: &Path) -> PathBuf {
    let nodes: String = NODES
        .iter()
        .map(|n| {
            let ip = ip(n);
            format!("{n} = {{ listen = \"{ip}:{}\" }}\n", free_port(&ip))
        })
        .collect();
    let manifest = dir.join("prod.toml");
    let text = format!(
        "[release]\nname = \"split\"\nversion = \"1\"\n[node]\nmax_particles = 64\n\
         [nodes]\n{nodes}\
         [cluster]\npartition = \"keep-majority\"\nstable_after_ms = 1000\n\
         [components.web]\nwasm = \"{}\"\n\
         [supervisor]\nstrategy = \"one-for-one\"\nmax_restarts = 10\nmax_seconds = 10\n\
         children = [\n\
           {{ id = \"w1\", component = \"web\", init = {{ global = \"w1\" }}, node = [\"d\", \"b\"] }},\n\
           {{ id = \"w2\", component = \"web\", init = {{ global = \"w2\" }}, node = [\"e\", \"c\"] }},\n\
         ]\n",
        common::wasm("web").display()
    );
    std::fs::write(&manifest, text).expect("write the manifest");
    let (code, out, err) = run(plasmoid().args(["release", "build"]).arg(&manifest));
    assert_eq!(code, 0, "{err}");
    PathBuf::from(out.trim())
}

fn status(rel: &Path, node: &str) -> serde_json::Value {
    let (code, out, err) = run(plasmoid()
        .args(["status", "--json", "--node", node, "--release"])
        .arg(rel));
    assert_eq!(code, 0, "status of {node}: {err}");
    serde_json::from_str(&out).expect("status is JSON")
}

/// What the test watches on one node.
#[derive(Debug, PartialEq)]
struct Seen {
    connected: Vec<String>,
    webs: Vec<String>,
    globals: BTreeMap<String, String>,
    standing: String,
}

fn seen(rel: &Path, node: &str) -> Seen {
    let s = status(rel, node);
    let mut connected: Vec<String> = s["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["connected"] == true)
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    connected.sort();
    let webs = s["particles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["component"] == "web")
        .filter_map(|p| p["pid"].as_str().map(str::to_string))
        .collect();
    let globals = s["globals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| Some((g[0].as_str()?.to_string(), g[1].as_str()?.to_string())))
        .collect();
    let standing = s["partition"][1].as_str().unwrap_or("none").to_string();
    Seen {
        connected,
        webs,
        globals,
        standing,
    }
}

/// Poll every node until `ok` holds for all of them.
fn until(rel: &Path, what: &str, within: Duration, ok: impl Fn(&str, &Seen) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let views: Vec<(&str, Seen)> = NODES.iter().map(|n| (*n, seen(rel, n))).collect();
        if views.iter().all(|(n, s)| ok(n, s)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}:\n{views:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn others(node: &str, among: &[&str]) -> Vec<String> {
    among
        .iter()
        .filter(|n| **n != node)
        .map(|n| n.to_string())
        .collect()
}

/// The short id prefix pids of `node` start with.
fn prefix(rel: &Path, node: &str) -> String {
    let id = std::fs::read_to_string(rel.join("nodes").join(node).join("id")).expect("node id");
    format!("{}.", &id[..8])
}

#[test]
fn a_three_two_partition_under_keep_majority_keeps_one_copy_of_each_child() {
    let dir = tempfile::tempdir().expect("dir");
    let rel = release(dir.path());
    let mut procs: BTreeMap<&str, Running> = BTreeMap::new();
    for n in ["b", "c", "d", "e", "a"] {
        procs.insert(n, Running::release_node(&rel, n));
    }
    for (n, p) in procs.iter_mut() {
        let ready = if *n == "a" {
            "release split-1 is up"
        } else {
            "node up"
        };
        assert!(
            p.wait_for(ready, Duration::from_secs(60)),
            "{n}:\n{}",
            p.seen
        );
    }
    let (d, e, b, c) = (
        prefix(&rel, "d"),
        prefix(&rel, "e"),
        prefix(&rel, "b"),
        prefix(&rel, "c"),
    );
    let owner =
        |s: &Seen, name: &str, on: &str| s.globals.get(name).is_some_and(|p| p.starts_with(on));
    until(
        &rel,
        "the cluster forms",
        Duration::from_secs(20),
        |n, s| {
            s.connected == others(n, &NODES)
                && s.standing == "serving"
                && owner(s, "w1", &d)
                && owner(s, "w2", &e)
        },
    );

    let cut = Cut::between(&["a", "b", "c"], &["d", "e"]);
    for n in ["d", "e"] {
        let p = procs.get_mut(n).expect("node");
        assert!(
            p.wait_for("partition: this side lost", Duration::from_secs(15)),
            "{n}:\n{}",
            p.seen
        );
    }
    let a = procs.get_mut("a").expect("a");
    assert!(
        a.wait_for("partition: this side wins", Duration::from_secs(15)),
        "{}",
        a.seen
    );
    let majority = ["a", "b", "c"];
    until(
        &rel,
        "the majority runs both children, the minority none",
        Duration::from_secs(15),
        |n, s| match n {
            "d" | "e" => s.standing == "stopped" && s.webs.is_empty(),
            "b" | "c" => {
                s.standing == "serving"
                    && s.webs.len() == 1
                    && owner(s, "w1", &b)
                    && owner(s, "w2", &c)
            }
            _ => s.standing == "serving" && s.connected == others(n, &majority),
        },
    );

    drop(cut);
    until(
        &rel,
        "the cluster heals with one copy of each",
        Duration::from_secs(30),
        |n, s| {
            let webs = match n {
                "b" | "c" => 1,
                _ => 0,
            };
            s.connected == others(n, &NODES)
                && s.standing == "serving"
                && s.webs.len() == webs
                && owner(s, "w1", &b)
                && owner(s, "w2", &c)
                && s.globals.len() == 2
        },
    );

    for (n, p) in procs {
        let (code, log) = p.terminate();
        assert_eq!(code, Some(0), "{n}: {log}");
    }
}
