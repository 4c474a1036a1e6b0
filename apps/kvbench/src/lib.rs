//! The store benchmark's particle (`plasmoid bench store`): a gen_server
//! that runs one measurement per call against its bucket `kvbench`, through
//! `wasi:keyvalue` as any particle would, and answers with the time of each
//! operation in nanoseconds (WASI's monotonic clock).

use plasmoid_sdk::store;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One measurement.
#[derive(Serialize, Deserialize)]
pub enum Run {
    /// `n` writes of `size` bytes, one durable write each.
    Put { n: u32, size: u32 },
    /// `n` batches of `batch` writes, one durable write per batch.
    PutMany { n: u32, batch: u32, size: u32 },
    /// `n` reads of keys the `Put` wrote.
    Get { n: u32 },
}

#[derive(Default)]
struct Bench;

const BUCKET: &str = "kvbench";

#[plasmoid_sdk::gen_server]
impl Bench {
    /// Nanoseconds per operation (per batch for `PutMany`); an error as
    /// the empty list and a log line.
    fn handle_call(&mut self, run: Run) -> Vec<u64> {
        match measure(run) {
            Ok(times) => times,
            Err(e) => {
                plasmoid_sdk::error!("kvbench: {e}");
                Vec::new()
            }
        }
    }
}

fn measure(run: Run) -> Result<Vec<u64>, store::StoreError> {
    let mut times = Vec::new();
    let mut time = |f: &mut dyn FnMut() -> Result<(), store::StoreError>| {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_nanos() as u64);
        Ok::<_, store::StoreError>(())
    };
    match run {
        Run::Put { n, size } => {
            let value = vec![7u8; size as usize];
            for i in 0..n {
                time(&mut || store::put(BUCKET, &format!("k{i}"), &value))?;
            }
        }
        Run::PutMany { n, batch, size } => {
            let value = vec![7u8; size as usize];
            for b in 0..n {
                let entries: Vec<(String, Vec<u8>)> = (0..batch)
                    .map(|i| (format!("b{b}-{i}"), value.clone()))
                    .collect();
                time(&mut || store::set_many(BUCKET, &entries))?;
            }
        }
        Run::Get { n } => {
            for i in 0..n {
                time(&mut || store::get::<Vec<u8>>(BUCKET, &format!("k{i}")).map(drop))?;
            }
        }
    }
    Ok(times)
}
