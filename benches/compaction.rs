//! The figures the compactor issue asks for, in one run: the overlay issue's workload
//! (1,000,000 rows, 100 versions of uniform 1% / 0.2% / 0.1% changes, the default policy),
//! then `Writer::compact` and `Writer::clean`, then thinning to one keyframe per 50 versions
//! and to the newest keyframe alone: bytes after each step as ratios to the floor (one
//! compressed copy plus the compressed changes), their times, and the Q1 scan at a B-frame
//! against its next keyframe's.
//!
//! `cargo bench --bench compaction` (`REELDB_BENCH_ROWS` and `REELDB_BENCH_VERSIONS`
//! shrink it; at least 41 versions).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use reeldb::{Store, VersionKind};
use support::*;

/// Q1 at version `v` of the store equals Q1 over its state in memory.
fn check_q1(store: &Store, v: u64, state: &arrow::array::RecordBatch) {
    let want = q1_par(&slices(state, 16 * 1024));
    let got = q1_store(store, v);
    assert_eq!(got.len(), want.len());
    for (k, (c, s)) in &want {
        let (gc, gs) = got[k];
        assert_eq!(gc, *c, "Q1 count {k} at v{v}");
        assert!(
            (gs - s).abs() <= 1e-6 * s.abs().max(1.0),
            "Q1 sum {k} at v{v}"
        );
    }
}

fn main() {
    let n = rows();
    let versions: u64 = std::env::var("REELDB_BENCH_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut generator = Workload::new(n, 42);
    let store = Store::create(&path).unwrap();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    tx.upsert("t", generator.initial()).unwrap();
    tx.commit().unwrap();
    let one_copy = dir_bytes(&path);
    // Versions whose state the B-frame scans are checked against: the first and the last
    // version of the second generation (B-frames after compaction; the first hides the most
    // of the next keyframe) and the keyframe that closed it.
    let (first_v, bframe_v, next_v) = (22u64, 40u64, 41u64);
    let mut states = std::collections::HashMap::new();
    for v in 2..=versions + 1 {
        let change = generator.step(Spread::Uniform);
        let mut tx = w.begin();
        tx.upsert("t", change.upserts).unwrap();
        tx.delete("t", change.deletes).unwrap();
        tx.commit().unwrap();
        if [first_v, bframe_v, next_v].contains(&v) {
            states.insert(v, generator.initial());
        }
    }
    let before = store.stats().unwrap();
    let changes = before.row_batch_bytes;
    let floor = one_copy + changes;
    let t = Instant::now();
    let report = w.compact(&mut |_, _| {}).unwrap();
    let compact_s = t.elapsed().as_secs_f64();
    let after = store.stats().unwrap();
    let t = Instant::now();
    let cleaning = w.clean(0.0).unwrap();
    let clean_s = t.elapsed().as_secs_f64();
    let cleaned = store.stats().unwrap();
    let kinds: Vec<VersionKind> = store.versions().unwrap().iter().map(|i| i.kind).collect();
    assert_eq!(kinds[first_v as usize - 1], VersionKind::BFrame);
    assert_eq!(kinds[bframe_v as usize - 1], VersionKind::BFrame);
    assert_eq!(kinds[next_v as usize - 1], VersionKind::Keyframe);
    let mut ms = Vec::new();
    let mut scan_lines = Vec::new();
    for v in [first_v, bframe_v, next_v] {
        let slices = slices(&states[&v], 16 * 1024);
        check_q1(&store, v, &states[&v]);
        let t_mem = time(15, || q1_par(&slices));
        let t_store = time(15, || q1_store(&store, v));
        ms.push(t_store);
        scan_lines.push(format!(
            "| v{v} | {} | {:.2} | {:.2} |",
            kinds[v as usize - 1].as_str(),
            t_store * 1e3,
            t_mem * 1e3
        ));
    }
    let t = Instant::now();
    let thinning = w.thin(50).unwrap();
    let thin_s = t.elapsed().as_secs_f64();
    w.clean(0.0).unwrap();
    let thinned = store.stats().unwrap();
    // Every version still reads as it did, over one keyframe per 50 versions.
    for v in [first_v, bframe_v, next_v] {
        check_q1(&store, v, &states[&v]);
    }
    // Then down to the newest keyframe alone: every other version a B-frame over it.
    w.thin(versions + 1).unwrap();
    w.clean(0.0).unwrap();
    drop(w);
    let single = store.stats().unwrap();
    for v in [first_v, bframe_v, next_v] {
        check_q1(&store, v, &states[&v]);
    }

    println!(
        "# ReelDB compaction figures ({n} rows, {versions} uniform versions, {} threads)\n",
        rayon::current_num_threads()
    );
    println!(
        "floor = one compressed copy ({:.1} MB) + the compressed changes ({:.1} MB) = {:.1} MB\n",
        one_copy as f64 / 1e6,
        changes as f64 / 1e6,
        floor as f64 / 1e6
    );
    println!("| | MB | x floor |\n|---|---|---|");
    let row = |what: &str, bytes: u64| {
        println!(
            "| {what} | {:.1} | {:.2}x |",
            bytes as f64 / 1e6,
            bytes as f64 / floor as f64
        )
    };
    row("on disk before compaction", before.bytes_on_disk);
    row("on disk after compaction", after.bytes_on_disk);
    row(
        "of which overlay row batches no version references (left for log cleaning)",
        changes,
    );
    row("of which B-frame residuals", after.residual_bytes);
    row("of which B-frame bitmaps", after.bitmap_bytes);
    row(
        "after compaction and log cleaning (packs copied, old ones deleted)",
        cleaned.bytes_on_disk,
    );
    row(
        "after thinning to one keyframe per 50 versions, then cleaning",
        thinned.bytes_on_disk,
    );
    row("of which B-frame residuals", thinned.residual_bytes);
    row("of which B-frame bitmaps", thinned.bitmap_bytes);
    row(
        "after thinning to the newest keyframe alone, then cleaning",
        single.bytes_on_disk,
    );
    row("of which B-frame residuals", single.residual_bytes);
    row("of which B-frame bitmaps", single.bitmap_bytes);
    println!(
        "\ncompaction: {:.1} s for {} generations ({} versions), {} residual rows, {} node logs ({:.1} MB) deleted\n",
        compact_s,
        report.generations,
        report.versions,
        report.residual_rows,
        report.node_logs_removed,
        report.bytes_reclaimed as f64 / 1e6
    );

    println!(
        "log cleaning: {:.1} s, {} records copied, packs {:.1} MB -> {:.1} MB, {} old packs deleted\n",
        clean_s,
        cleaning.records_copied,
        cleaning.bytes_before as f64 / 1e6,
        cleaning.bytes_after as f64 / 1e6,
        cleaning.packs_deleted
    );
    println!(
        "thinning: {:.1} s, {} keyframes thinned, {} versions rebased, {} residual rows written; {} residual rows kept\n",
        thin_s,
        thinning.keyframes,
        thinning.versions,
        thinning.residual_rows,
        thinned.residual_rows
    );
    println!(
        "one compressed copy: {:.1} MB; the store after thinning holds {:.2} copies (one keyframe per 50 versions) and {:.2} copies (the newest keyframe alone)\n",
        one_copy as f64 / 1e6,
        thinned.bytes_on_disk as f64 / one_copy as f64,
        single.bytes_on_disk as f64 / one_copy as f64
    );
    println!("## Q1 scan at a B-frame vs its next keyframe (before thinning)\n");
    println!("| version | kind | ReelDB ms | in-memory ms |\n|---|---|---|---|");
    for line in &scan_lines {
        println!("{line}");
    }
    println!(
        "\nB-frame scan vs its next keyframe's: {:.2}x (first version of the generation), {:.2}x (last)",
        ms[2] / ms[0],
        ms[2] / ms[1]
    );
}
