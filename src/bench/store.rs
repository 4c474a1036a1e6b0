//! `plasmoid bench store`: durable writes/s (one at a time and in batches)
//! and get latency p50/p99 through a particle (apps/kvbench, the SDK over
//! `wasi:keyvalue`), for the embedded (redb) and the Redis backend; in the
//! same run raw redb and a raw Redis client from native Rust doing the same
//! operations, the limit each particle figure is a ratio to.
//!
//! Redis figures need a server: `--redis URL`, or a `redis-server` on the
//! PATH, which the bench starts on a free port of 127.0.0.1 (append-only,
//! fsync on every write, as a durable store runs) and stops after.

use super::common::{emit, median, pct};
use anyhow::{Result, anyhow};
use plasmoid_runtime::{Node, NodeConfig, SpawnOpts};
use redb::{ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Mirrors apps/kvbench's `Run` (postcard: same variants, same order).
#[derive(Serialize)]
enum Run {
    Put { n: u32, size: u32 },
    PutMany { n: u32, batch: u32, size: u32 },
    Get { n: u32 },
}

const SIZE: u32 = 100;
const BATCH: u32 = 100;
const RAW: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");

/// One backend's figures: puts/s, batched items/s, get latencies (µs).
struct Figures {
    put_per_s: f64,
    batched_per_s: f64,
    get_us: Vec<f64>,
}

pub async fn run(wasm: PathBuf, redis: Option<String>, n: u32, runs: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("plasmoid-bench-store-{}", std::process::id()));
    let _clean = Clean(dir.clone());
    std::fs::create_dir_all(&dir)?;
    let node = Node::new(NodeConfig {
        max_particles: 16,
        ..NodeConfig::default()
    })?;
    node.load_component("kvbench", &wasm, None)?;
    node.spawn(
        "kvbench",
        "null",
        SpawnOpts {
            name: Some("kvbench".into()),
            ..Default::default()
        },
    )?;
    let me = node.native("bench");
    let pid = node
        .whereis("kvbench")
        .ok_or_else(|| anyhow!("kvbench did not register"))?;
    let particle = |run: Run| {
        let me = &me;
        async move {
            let reply = me
                .call(pid, postcard::to_allocvec(&run)?, Duration::from_secs(600))
                .await
                .map_err(|e| anyhow!("kvbench: {e:?}"))?;
            let ns: Vec<u64> = postcard::from_bytes(&reply)?;
            if ns.is_empty() {
                return Err(anyhow!("kvbench failed (see its log line)"));
            }
            Ok::<_, anyhow::Error>(ns)
        }
    };
    let measure_particle = async |n: u32| -> Result<Figures> {
        let puts = particle(Run::Put { n, size: SIZE }).await?;
        let batches = particle(Run::PutMany {
            n: (n / BATCH).max(1),
            batch: BATCH,
            size: SIZE,
        })
        .await?;
        let gets = particle(Run::Get { n }).await?;
        Ok(figures(&puts, &batches, &gets))
    };

    // Embedded: the particle on plasmoid-store's redb, against raw redb.
    let mut pairs = Vec::new();
    for r in 0..runs {
        node.set_store(Arc::new(plasmoid_store::Embedded::open(
            &dir.join(format!("store-{r}.redb")),
        )?));
        let p = measure_particle(n).await?;
        let raw = tokio::task::spawn_blocking({
            let path = dir.join(format!("raw-{r}.redb"));
            move || raw_redb(&path, n)
        })
        .await??;
        pairs.push((p, raw));
    }
    report("embedded", "raw redb", &pairs, n, runs);

    // Redis: the particle on plasmoid-store's Redis backend, against a raw
    // client on the same server.
    let (url, _server) = match redis {
        Some(u) => (u, None),
        None => match plasmoid_store::RedisServer::start(&dir) {
            Ok(s) => (s.url(), Some(s)),
            Err(e) => {
                eprintln!("bench store: no Redis figures: {e}");
                return Ok(());
            }
        },
    };
    let mut pairs = Vec::new();
    for r in 0..runs {
        let release = format!("bench{r}");
        node.set_store(Arc::new(plasmoid_store::Redis::new(&url, &release)?));
        let p = measure_particle(n).await?;
        let raw = raw_redis(&url, &format!("raw{r}"), n).await?;
        pairs.push((p, raw));
    }
    report("redis", "raw redis", &pairs, n, runs);
    Ok(())
}

fn figures(puts: &[u64], batches: &[u64], gets: &[u64]) -> Figures {
    let total = |v: &[u64]| v.iter().sum::<u64>() as f64 / 1e9;
    let mut get_us: Vec<f64> = gets.iter().map(|ns| *ns as f64 / 1e3).collect();
    get_us.sort_by(|a, b| a.total_cmp(b));
    Figures {
        put_per_s: puts.len() as f64 / total(puts).max(1e-9),
        batched_per_s: (batches.len() as f64 * BATCH as f64) / total(batches).max(1e-9),
        get_us,
    }
}

/// A figure's name, unit, and how to read it from [`Figures`].
type Row<'a> = (&'a str, &'a str, &'a dyn Fn(&Figures) -> f64);

fn report(backend: &str, raw_name: &str, pairs: &[(Figures, Figures)], n: u32, runs: usize) {
    let med = |f: &dyn Fn(&Figures) -> f64, raw: bool| {
        median(
            pairs
                .iter()
                .map(|(p, r)| f(if raw { r } else { p }))
                .collect(),
        )
    };
    let rows: [Row; 4] = [
        ("store.put.per_s", "writes/s", &|f| f.put_per_s),
        ("store.put_many.per_s", "writes/s", &|f| f.batched_per_s),
        ("store.get.p50", "µs", &|f| pct(&f.get_us, 50.0)),
        ("store.get.p99", "µs", &|f| pct(&f.get_us, 99.0)),
    ];
    for (name, unit, f) in rows {
        let (p, r) = (med(f, false), med(f, true));
        // For latencies the limit is the lower one: the ratio is raw / ours.
        let ratio = if unit == "µs" {
            r / p.max(1e-9)
        } else {
            p / r.max(1e-9)
        };
        let params = json!({"backend": backend, "via": "particle", "count": n, "runs": runs,
            "value_bytes": SIZE, "batch": BATCH, "ratio_to_raw": ratio});
        emit(name, p, unit, params);
        let params = json!({"backend": backend, "via": raw_name, "count": n, "runs": runs,
            "value_bytes": SIZE, "batch": BATCH});
        emit(name, r, unit, params);
    }
}

/// The same operations on redb directly: a durable commit per write, one
/// per batch, a read transaction per get.
fn raw_redb(path: &Path, n: u32) -> Result<Figures> {
    let db = redb::Database::create(path)?;
    let value = vec![7u8; SIZE as usize];
    let mut puts = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let txn = db.begin_write()?;
        txn.open_table(RAW)?
            .insert(format!("k{i}").as_str(), value.as_slice())?;
        txn.commit()?;
        puts.push(t.elapsed().as_nanos() as u64);
    }
    let mut batches = Vec::new();
    for b in 0..(n / BATCH).max(1) {
        let t = Instant::now();
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(RAW)?;
            for i in 0..BATCH {
                table.insert(format!("b{b}-{i}").as_str(), value.as_slice())?;
            }
        }
        txn.commit()?;
        batches.push(t.elapsed().as_nanos() as u64);
    }
    let mut gets = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let txn = db.begin_read()?;
        let got = txn.open_table(RAW)?.get(format!("k{i}").as_str())?;
        std::hint::black_box(got.map(|v| v.value().len()));
        gets.push(t.elapsed().as_nanos() as u64);
    }
    Ok(figures(&puts, &batches, &gets))
}

/// The same operations with the redis crate: SET per write, MSET per
/// batch, GET per read, each awaited.
async fn raw_redis(url: &str, prefix: &str, n: u32) -> Result<Figures> {
    use redis::AsyncCommands;
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let value = vec![7u8; SIZE as usize];
    let mut puts = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let () = c.set(format!("{prefix}:k{i}"), &value).await?;
        puts.push(t.elapsed().as_nanos() as u64);
    }
    let mut batches = Vec::new();
    for b in 0..(n / BATCH).max(1) {
        let pairs: Vec<(String, Vec<u8>)> = (0..BATCH)
            .map(|i| (format!("{prefix}:b{b}-{i}"), value.clone()))
            .collect();
        let t = Instant::now();
        let () = c.mset(&pairs).await?;
        batches.push(t.elapsed().as_nanos() as u64);
    }
    let mut gets = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let v: Option<Vec<u8>> = c.get(format!("{prefix}:k{i}")).await?;
        std::hint::black_box(v);
        gets.push(t.elapsed().as_nanos() as u64);
    }
    Ok(figures(&puts, &batches, &gets))
}

/// Removes the bench's files at the end.
struct Clean(PathBuf);

impl Drop for Clean {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
