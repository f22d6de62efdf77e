//! Criterion detail for the scan and get figures: Q1 (count and sum(amount) grouped by
//! status) over a keyframe, an in-memory RecordBatch and an mmap'd Arrow IPC file, and 1,000
//! point gets. `benches/figures.rs` prints the same comparisons as ratios.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use rayon::prelude::*;
use reeldb::Store;
use support::*;

fn scans(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let initial = Workload::new(rows(), 42).initial();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", initial.schema(), &["id"]).unwrap();
    tx.upsert("t", initial.clone()).unwrap();
    tx.commit().unwrap();
    drop(w);
    let ipc = dir.path().join("state.arrow");
    write_ipc(&ipc, &initial, 64 * 1024);
    let memory = slices(&initial, 16 * 1024);
    let n = initial.num_rows();

    let mut g = c.benchmark_group(format!("q1/{n}"));
    g.sample_size(20);
    g.bench_function("memory", |b| {
        b.iter(|| {
            merge(
                memory
                    .par_iter()
                    .map(|m| q1(std::slice::from_ref(m)))
                    .collect(),
            )
        })
    });
    g.bench_function("ipc_mmap", |b| {
        b.iter(|| {
            merge(
                ipc_mmap_batches(&ipc, &["status", "amount"])
                    .par_iter()
                    .map(|m| q1(std::slice::from_ref(m)))
                    .collect(),
            )
        })
    });
    g.bench_function("keyframe", |b| b.iter(|| q1_store(&store, 1)));
    g.finish();

    let probes = probe_keys(&initial);
    let mut g = c.benchmark_group(format!("get/{n}"));
    g.sample_size(10);
    g.bench_function("keyframe_1000", |b| {
        let t = store.latest().unwrap().table("t").unwrap();
        b.iter(|| get_all(&t, &probes))
    });
    g.finish();
}

criterion_group!(benches, scans);
criterion_main!(benches);
