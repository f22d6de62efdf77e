//! Requests to an object store per open, per full scan and per 1,000 gets, each from a fresh
//! handle (cold: nothing listed or decoded yet) and again on the same handle (warm), with the
//! times beside the same store on local disk, in one run.
//!
//! `cargo bench --bench object_store` (`REELDB_BENCH_ROWS`, default 200,000 rows: the
//! harness's table shape, 10 versions of 1% updates). The object store is object_store's
//! in-memory one: request counts are what S3 would be asked (`ObjectStorage::requests`),
//! times have no network in them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::object_storage::{ObjectStorage, Requests};
use reeldb::{ScanOptions, Store};
use support::{Rng, batch, get_all, new_row, probe_keys};

const VERSIONS: i64 = 10;

/// Writes the same history to `store`: `rows` rows, then `VERSIONS - 1` versions updating 1%.
fn write(store: &Store, rows: usize) -> arrow::array::RecordBatch {
    let mut rng = Rng(11);
    let mut state: Vec<_> = (0..rows).map(|_| new_row(&mut rng, 0, 100_000)).collect();
    let ids: Vec<i64> = (0..rows as i64).collect();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", support::schema(), &["id"]).unwrap();
    tx.upsert("t", batch(&ids, &state.iter().collect::<Vec<_>>()))
        .unwrap();
    tx.commit().unwrap();
    for v in 1..VERSIONS {
        let mut changed: Vec<i64> = (0..rows / 100)
            .map(|_| rng.below(rows as u64) as i64)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for &id in &changed {
            state[id as usize] = new_row(&mut rng, v, 100_000);
        }
        let rows: Vec<_> = changed.iter().map(|&id| &state[id as usize]).collect();
        let mut tx = w.begin();
        tx.upsert("t", batch(&changed, &rows)).unwrap();
        tx.commit().unwrap();
    }
    batch(&ids, &state.iter().collect::<Vec<_>>())
}

/// One measured step: what it asked of the object store and how long it took there and on
/// local disk.
fn report(step: &str, requests: Requests, object_s: f64, local_s: f64) {
    println!(
        "| {step} | {} | {} | {:.1} KiB | {} | {:.2} ms | {:.2} ms |",
        requests.lists,
        requests.gets,
        requests.bytes_read as f64 / 1024.0,
        requests.writes(),
        object_s * 1e3,
        local_s * 1e3
    );
}

fn main() {
    let rows = std::env::var("REELDB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let memory = Arc::new(InMemory::new());
    let name = Path::new("memory:///bench");
    let remote = Store::create_in(
        Arc::new(ObjectStorage::new(memory.clone(), "bench").unwrap()),
        name,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = Store::create(dir.path().join("s")).unwrap();
    let t = Instant::now();
    write(&remote, rows);
    let write_object = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let state = write(&local, rows);
    let write_local = t.elapsed().as_secs_f64();
    let probes = probe_keys(&state);
    println!("# Requests to an object store, {rows} rows, {VERSIONS} versions\n");
    println!(
        "writing every version: {:.2} s to the in-memory object store, {:.2} s to local disk\n",
        write_object, write_local
    );
    println!(
        "| step | lists | gets | bytes got | writes | time, object store | time, local disk |"
    );
    println!("|---|---|---|---|---|---|---|");
    for version in [1, VERSIONS as u64] {
        let storage = ObjectStorage::new(memory.clone(), "bench").unwrap();
        let local_handle = Store::open(local.path()).unwrap();
        let mut at = storage.requests();
        let t = Instant::now();
        let handle = Store::open_in(Arc::new(storage.clone()), name).unwrap();
        let table = handle.snapshot(version).unwrap().table("t").unwrap();
        let open_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let local_table = local_handle.snapshot(version).unwrap().table("t").unwrap();
        report(
            &format!("open v{version}, cold"),
            storage.requests().since(&at),
            open_s,
            t.elapsed().as_secs_f64(),
        );
        for pass in ["cold", "warm"] {
            at = storage.requests();
            let t = Instant::now();
            let n: usize = table
                .scan(&ScanOptions::new())
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            let scan_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let m: usize = local_table
                .scan(&ScanOptions::new())
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert_eq!(n, m);
            report(
                &format!("full scan v{version}, {pass}"),
                storage.requests().since(&at),
                scan_s,
                t.elapsed().as_secs_f64(),
            );
        }
        // Gets on a handle of their own, so the scan's decoded blocks do not serve them.
        let storage = ObjectStorage::new(memory.clone(), "bench").unwrap();
        let handle = Store::open_in(Arc::new(storage.clone()), name).unwrap();
        let table = handle.snapshot(version).unwrap().table("t").unwrap();
        let local_table = Store::open(local.path())
            .unwrap()
            .snapshot(version)
            .unwrap()
            .table("t")
            .unwrap();
        for pass in ["cold", "warm"] {
            at = storage.requests();
            let t = Instant::now();
            let found = get_all(&table, &probes);
            let get_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            assert_eq!(found, get_all(&local_table, &probes));
            report(
                &format!("1,000 gets v{version}, {pass}"),
                storage.requests().since(&at),
                get_s,
                t.elapsed().as_secs_f64(),
            );
        }
    }
}
