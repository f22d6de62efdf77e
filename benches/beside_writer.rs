//! What maintenance running beside a live writer costs the writer (issue 9's target: the
//! median commit while compaction runs is at most 1.2x the median commit with none, same run).
//!
//! One writer commits versions of 1% / 0.2% / 0.1% changes to a 1,000,000-row table, with a
//! keyframe every 4 commits so generations keep closing; in alternating blocks of commits
//! another process runs `reel compact` in a loop (compact, then clean, whose copy is skipped
//! beside the writer) at normal priority, or at `nice -n 19` as cron jobs usually run, or
//! nothing runs. Reported: the median commit of each kind of block, the ratios to the quiet
//! blocks, and how many runs finished meanwhile.
//!
//! `cargo bench --bench beside_writer` (`REELDB_BENCH_ROWS` shrinks it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use reeldb::{Store, Writer, WriterOptions};
use support::*;

const BLOCKS: usize = 4;
const COMMITS_PER_BLOCK: usize = 10;

fn commit(w: &mut Writer, generator: &mut Workload) -> f64 {
    let change = generator.step(Spread::Uniform);
    let t = Instant::now();
    let mut tx = w.begin();
    tx.upsert("t", change.upserts).unwrap();
    tx.delete("t", change.deletes).unwrap();
    tx.commit().unwrap();
    t.elapsed().as_secs_f64()
}

/// Commits `COMMITS_PER_BLOCK` versions while `reel compact` runs in a loop in another
/// process at niceness `nice` (none when `None`); returns the commit times and the runs.
fn block(
    w: &mut Writer,
    generator: &mut Workload,
    path: &std::path::Path,
    nice: Option<u32>,
) -> (Vec<f64>, usize) {
    let Some(nice) = nice else {
        return (
            (0..COMMITS_PER_BLOCK)
                .map(|_| commit(w, generator))
                .collect(),
            0,
        );
    };
    let stop = Arc::new(AtomicBool::new(false));
    let maintainer = {
        let (stop, path) = (stop.clone(), path.to_path_buf());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new("nice")
                    .arg("-n")
                    .arg(nice.to_string())
                    .arg(env!("CARGO_BIN_EXE_reel"))
                    .arg("compact")
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };
    // Let the first run get under way before timing.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let times = (0..COMMITS_PER_BLOCK)
        .map(|_| commit(w, generator))
        .collect();
    stop.store(true, Ordering::SeqCst);
    (times, maintainer.join().unwrap())
}

fn main() {
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut generator = Workload::new(n, 7);
    let store = Store::create(&path).unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().keyframe_every(4))
        .unwrap();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    tx.upsert("t", generator.initial()).unwrap();
    tx.commit().unwrap();
    // Warm up: a first generation to compact, and the page cache.
    for _ in 0..8 {
        commit(&mut w, &mut generator);
    }

    // Alternating blocks: none, `reel compact` at normal priority, at nice 19 (as cron jobs
    // usually run).
    let kinds = [None, Some(0), Some(19)];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut runs = vec![0usize; kinds.len()];
    for _ in 0..BLOCKS {
        for (i, nice) in kinds.iter().enumerate() {
            let (t, r) = block(&mut w, &mut generator, &path, *nice);
            times[i].extend(t);
            runs[i] += r;
        }
    }
    drop(w);
    let compacted = store
        .versions()
        .unwrap()
        .iter()
        .filter(|v| v.kind == reeldb::VersionKind::BFrame)
        .count();
    let quiet = median(&mut times[0]);
    println!(
        "beside_writer: {n} rows, {} commits of 1% changes per kind, in {BLOCKS} alternating blocks",
        times[0].len()
    );
    println!(
        "  median commit, no maintenance running          {:>7.1} ms",
        quiet * 1e3
    );
    for (i, label) in [
        (1, "reel compact in a loop"),
        (2, "nice -n 19 reel compact loop"),
    ] {
        let m = median(&mut times[i]);
        println!(
            "  median commit, {label:<30}  {:>7.1} ms  ({:.2}x; target <= 1.2x; {} runs)",
            m * 1e3,
            m / quiet,
            runs[i]
        );
    }
    println!("  versions compacted to B-frames beside the writer: {compacted}");
    assert!(compacted > 0, "maintenance compacted beside the writer");
}
