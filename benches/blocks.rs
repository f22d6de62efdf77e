//! The figures issue 8 (format 3 column blocks) asks for on the Rust side, in one run, as
//! ratios against baselines measured in the same run:
//! - bytes of one keyframe of the state, per column and in all, beside the same state written
//!   as one zstd Parquet file (the peer harness's setting: row groups of 131,072 rows);
//! - a full scan of every column on 2 threads against the same scan on 1 thread;
//! - the peak heap of a full streaming scan, for the table and for the table grown 10x;
//! - the time to commit the keyframe.
//!
//! `cargo bench --bench blocks` (set `REELDB_PEER_DATA` to a peer-bench data folder to read
//! its `initial.arrow`; otherwise a synthetic state of the same shape, `REELDB_BENCH_ROWS`
//! rows).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use reeldb::{ScanOptions, Store};
use support::*;

/// Counts live and peak heap bytes, so the bench can report a scan's peak memory.
#[global_allocator]
static ALLOCATOR: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

fn state() -> RecordBatch {
    match peer_data() {
        Some(dir) => {
            let batches = read_ipc(&dir.join("initial.arrow"));
            arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
        }
        None => Workload::new(rows(), 42).initial(),
    }
}

/// `state` with its ids shifted by `shift`, so copies hold distinct keys.
fn shifted(state: &RecordBatch, shift: i64) -> RecordBatch {
    let ids = state
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let moved: ArrayRef = Arc::new(Int64Array::from_iter_values(
        ids.values().iter().map(|v| v + shift),
    ));
    let mut cols = state.columns().to_vec();
    cols[0] = moved;
    RecordBatch::try_new(state.schema(), cols).unwrap()
}

fn store_of(dir: &std::path::Path, state: &RecordBatch, copies: i64) -> (Store, f64) {
    let store = Store::create(dir).unwrap();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", state.schema(), &["id"]).unwrap();
    let span = state.num_rows() as i64 * 10;
    let t0 = Instant::now();
    for c in 0..copies {
        tx.upsert("t", shifted(state, c * span)).unwrap();
    }
    tx.commit().unwrap();
    (store, t0.elapsed().as_secs_f64())
}

fn parquet_column_bytes(state: &RecordBatch) -> (u64, Vec<u64>) {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(131_072))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, state.schema(), Some(props)).unwrap();
    w.write(state).unwrap();
    let meta = w.close().unwrap();
    let mut per_column = vec![0u64; state.num_columns()];
    for rg in meta.row_groups() {
        for (c, col) in rg.columns().iter().enumerate() {
            per_column[c] += col.compressed_size() as u64;
        }
    }
    (out.len() as u64, per_column)
}

/// A full scan of every column, streamed: rows seen.
fn full_scan(store: &Store) -> usize {
    let v = store.latest_version().unwrap();
    let t = store.snapshot(v).unwrap().table("t").unwrap();
    t.scan(&ScanOptions::new().in_parallel())
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

fn main() {
    let state = state();
    let n = state.num_rows();
    let dir = tempfile::tempdir().unwrap();
    let (store, commit_s) = store_of(&dir.path().join("one"), &state, 1);
    println!(
        "## Column blocks (format 3): {n} rows, {} columns",
        state.num_columns()
    );
    println!("keyframe commit: {commit_s:.2} s");

    let stats = store.stats().unwrap();
    let (parquet_total, parquet_cols) = parquet_column_bytes(&state);
    println!("\n| column | encoding | ReelDB bytes | Parquet zstd bytes | ratio |");
    println!("|---|---|---|---|---|");
    let mut reel_total = 0u64;
    for (c, f) in state.schema().fields().iter().enumerate() {
        let spaces: Vec<_> = stats
            .column_space
            .iter()
            .filter(|s| &s.column == f.name())
            .collect();
        let bytes: u64 = spaces.iter().map(|s| s.bytes).sum();
        reel_total += bytes;
        let encodings: Vec<&str> = spaces.iter().map(|s| s.encoding).collect();
        println!(
            "| {} | {} | {} | {} | {:.2}x |",
            f.name(),
            encodings.join(", "),
            bytes,
            parquet_cols[c],
            bytes as f64 / parquet_cols[c].max(1) as f64
        );
    }
    let on_disk = dir_bytes(&dir.path().join("one"));
    println!(
        "| all column blocks | | {reel_total} | {parquet_total} (file) | {:.2}x |",
        reel_total as f64 / parquet_total as f64
    );
    println!(
        "| store on disk (blocks, nodes, catalog) | | {on_disk} | {parquet_total} | {:.2}x |",
        on_disk as f64 / parquet_total as f64
    );

    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let double = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let one = single.install(|| time(7, || full_scan(&store)));
    let two = double.install(|| time(7, || full_scan(&store)));
    println!(
        "\nfull scan, every column: 1 thread {:.1} ms, 2 threads {:.1} ms: {:.2}x (target >= 1.7x)",
        one * 1e3,
        two * 1e3,
        one / two
    );

    let peak_of = |store: &Store| {
        let before = ALLOCATOR.current_usage();
        ALLOCATOR.reset_peak_usage();
        let rows = full_scan(store);
        (rows, ALLOCATOR.peak_usage().saturating_sub(before))
    };
    let (rows1, peak1) = peak_of(&store);
    drop(store);
    let (big, _) = store_of(&dir.path().join("ten"), &state, 10);
    let (rows10, peak10) = peak_of(&big);
    println!(
        "peak heap of a full streaming scan: {rows1} rows {:.1} MiB, {rows10} rows {:.1} MiB ({:.2}x for 10x the rows)",
        peak1 as f64 / (1 << 20) as f64,
        peak10 as f64 / (1 << 20) as f64,
        peak10 as f64 / peak1.max(1) as f64
    );
}
