//! The figures the compactor issues ask for, in one run: the overlay issue's workload
//! (1,000,000 rows, 100 versions of uniform 1% / 0.2% / 0.1% changes, the default policy),
//! then the steps of the default `reel compact` one by one (`Writer::compact`, thinning by
//! the default policy, `Writer::clean`), then thinning to the newest keyframe alone: bytes
//! after each step as ratios to one zstd Parquet copy of v1 (written in the same run) and to
//! the floor (one compressed copy plus the compressed changes), their times, the temporary
//! disk the default plan needed (its peak beyond both the store before and after it), and
//! the Q1 scan at B-frames against in-memory Arrow.
//!
//! `cargo bench --bench compaction` (`REELDB_BENCH_ROWS` and `REELDB_BENCH_VERSIONS`
//! shrink it; at least 41 versions).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use reeldb::{MaintenancePlan, Store, VersionKind};
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
    let parquet_v1 = parquet_bytes(&schema(), &generator.initial());
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
    // The default plan's other steps: thinning by its policy, then cleaning at its garbage
    // threshold. Nothing is deleted before cleaning, which copies live records to new packs
    // before deleting the old ones: the disk peaks at the bytes before cleaning plus the
    // copy.
    let plan = MaintenancePlan::default();
    let t = Instant::now();
    let thinning = w.thin_with(plan.thinning, &mut |_, _| {}).unwrap();
    let thin_s = t.elapsed().as_secs_f64();
    let before_clean = dir_bytes(&path);
    let t = Instant::now();
    let plan_cleaning = w.clean(plan.clean_at_garbage).unwrap();
    let plan_clean_s = t.elapsed().as_secs_f64();
    let thinned = store.stats().unwrap();
    let peak = before_clean
        + if plan_cleaning.copied {
            plan_cleaning.bytes_after
        } else {
            0
        };
    let temporary = peak.saturating_sub(before.bytes_on_disk.max(thinned.bytes_on_disk));
    let kinds: Vec<VersionKind> = store.versions().unwrap().iter().map(|i| i.kind).collect();
    let keyframes_left = kinds
        .iter()
        .filter(|k| **k == VersionKind::Keyframe)
        .count();
    // Every version still reads as it did; Q1 at the same versions, now over fewer keyframes.
    let mut thinned_lines = Vec::new();
    for v in [first_v, bframe_v, next_v] {
        check_q1(&store, v, &states[&v]);
        let slices = slices(&states[&v], 16 * 1024);
        let t_mem = time(15, || q1_par(&slices));
        let t_store = time(15, || q1_store(&store, v));
        thinned_lines.push(format!(
            "| v{v} | {} | {:.2} | {:.2} | {:.2}x |",
            kinds[v as usize - 1].as_str(),
            t_store * 1e3,
            t_mem * 1e3,
            t_store / t_mem
        ));
    }
    // Then down to the newest keyframe alone: every other version a B-frame over it.
    let t = Instant::now();
    w.thin(versions + 1).unwrap();
    let single_s = t.elapsed().as_secs_f64();
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
    println!(
        "one zstd Parquet copy of v1: {:.1} MB\n",
        parquet_v1 as f64 / 1e6
    );
    println!("| | MB | x one Parquet copy | x floor |\n|---|---|---|---|");
    let row = |what: &str, bytes: u64| {
        println!(
            "| {what} | {:.1} | {:.2}x | {:.2}x |",
            bytes as f64 / 1e6,
            bytes as f64 / parquet_v1 as f64,
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
    row("of which B-frame membership", after.bitmap_bytes);
    row(
        "after compaction and log cleaning (packs copied, old ones deleted)",
        cleaned.bytes_on_disk,
    );
    row(
        "after the default plan (compaction, thinning by its policy, cleaning)",
        thinned.bytes_on_disk,
    );
    row("of which B-frame residuals", thinned.residual_bytes);
    row("of which B-frame membership", thinned.bitmap_bytes);
    row(
        "after thinning to the newest keyframe alone, then cleaning",
        single.bytes_on_disk,
    );
    row("of which B-frame residuals", single.residual_bytes);
    row("of which B-frame membership", single.bitmap_bytes);
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
        "thinning by the default policy: {:.1} s, {} keyframes thinned in {} runs ({} left), {} versions rebased, {} residual rows written; {} residual rows kept\n",
        thin_s,
        thinning.keyframes,
        thinning.runs,
        keyframes_left,
        thinning.versions,
        thinning.residual_rows,
        thinned.residual_rows
    );
    println!(
        "the default plan: {:.1} s in all (compaction {:.1} s, thinning {:.1} s, cleaning {:.1} s); temporary disk {:.1} MB = {:.2}x the store after it\n",
        compact_s + thin_s + plan_clean_s,
        compact_s,
        thin_s,
        plan_clean_s,
        temporary as f64 / 1e6,
        temporary as f64 / thinned.bytes_on_disk as f64
    );
    println!("thinning to the newest keyframe alone: {single_s:.1} s\n");
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
    println!("\n## Q1 after the default plan\n");
    println!("| version | kind | ReelDB ms | in-memory ms | ratio |\n|---|---|---|---|---|");
    for line in &thinned_lines {
        println!("{line}");
    }
}
