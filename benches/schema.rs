//! What a schema change costs on a large table (issue 9's target: adding, dropping, renaming
//! or widening a column on a 1M-row table takes < 10 ms and writes < 64 KiB, whatever the
//! table's size), beside a one-row upsert commit to the same table in the same run, and what
//! a full scan costs after the changes against before them.
//!
//! `cargo bench --bench schema` (`REELDB_BENCH_ROWS` shrinks it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use arrow::datatypes::{DataType, Field};
use reeldb::{ColumnChange, ScanOptions, Store, Writer};
use support::*;

/// Commits `change` and returns its seconds and the bytes it added to the store.
fn timed(w: &mut Writer, path: &std::path::Path, change: ColumnChange) -> (f64, u64) {
    let before = dir_bytes(path);
    let t = Instant::now();
    let mut tx = w.begin();
    tx.alter("t", change).unwrap();
    tx.commit().unwrap();
    (t.elapsed().as_secs_f64(), dir_bytes(path) - before)
}

fn scan_s(store: &Store) -> f64 {
    let t = store.latest().unwrap().table("t").unwrap();
    time(3, || {
        t.scan(&ScanOptions::new().in_parallel())
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum::<usize>()
    })
}

fn main() {
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let generator = Workload::new(n, 42);
    let store = Store::create(&path).unwrap();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    tx.upsert("t", generator.initial()).unwrap();
    tx.commit().unwrap();
    let scan_before = scan_s(&store);

    // The baseline: a one-row upsert, the smallest data commit.
    let one_row = generator.initial().slice(0, 1);
    let mut upsert_s: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let mut tx = w.begin();
            tx.upsert("t", one_row.clone()).unwrap();
            tx.commit().unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let upsert = median(&mut upsert_s);

    println!("schema changes on a table of {n} rows (5 of each; median time, largest bytes)");
    println!(
        "{:<14} {:>10} {:>12} {:>14} {:>10}",
        "change", "ms", "x upsert", "bytes written", "target"
    );
    println!(
        "{:<14} {:>10.2} {:>12} {:>14} {:>10}",
        "1-row upsert",
        upsert * 1e3,
        "1.00",
        "",
        ""
    );
    // Five rounds of: add a column, rename it, widen it, drop it.
    let names = ["add column", "rename column", "widen column", "drop column"];
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut bytes = [0u64; 4];
    for i in 0..5 {
        let changes = [
            ColumnChange::Add {
                field: Field::new(format!("extra{i}"), DataType::Int32, true),
                default: Some("0".into()),
            },
            ColumnChange::Rename {
                from: format!("extra{i}"),
                to: format!("renamed{i}"),
            },
            ColumnChange::Widen {
                column: format!("renamed{i}"),
                to: DataType::Int64,
            },
            ColumnChange::Drop(format!("renamed{i}")),
        ];
        for (k, change) in changes.into_iter().enumerate() {
            let (s, b) = timed(&mut w, &path, change);
            secs[k].push(s);
            bytes[k] = bytes[k].max(b);
        }
    }
    for (k, name) in names.iter().enumerate() {
        let s = median(&mut secs[k]);
        println!(
            "{:<14} {:>10.2} {:>12.2} {:>14} {:>10}",
            name,
            s * 1e3,
            s / upsert,
            bytes[k],
            if s < 0.010 && bytes[k] < 64 * 1024 {
                "met"
            } else {
                "not met"
            }
        );
    }
    drop(w);
    let scan_after = scan_s(&store);
    println!(
        "full scan after the changes: {:.1} ms, {:.2}x the scan before them ({:.1} ms)",
        scan_after * 1e3,
        scan_after / scan_before,
        scan_before * 1e3
    );
}
