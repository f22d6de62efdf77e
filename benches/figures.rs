//! The figures issue 2 asks for, in one run, as ratios against baselines measured in the same
//! run: keyframe scan vs in-memory Arrow and vs an mmap'd Arrow IPC file; bytes on disk after
//! 100 versions (uniform and hot-range changes) vs one copy, with commit times; opening the
//! first vs the last of 100,000 versions; 1,000 gets vs an in-memory binary search; the
//! catalog's size after expiring all but 10 of 10,000 versions.
//!
//! `cargo bench --bench figures` (set `REELDB_PEER_DATA` to a peer-bench data folder to use
//! its files; `REELDB_BENCH_ROWS`, `REELDB_BENCH_VERSIONS` and `REELDB_BENCH_SMALL_COMMITS`
//! shrink the run).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use arrow::array::{Array, Int64Array, RecordBatch};
use reeldb::{ScanOptions, Store, WriterOptions};
use support::*;

/// Whether a section runs: `REELDB_FIGURES` lists sections (scan, get, storage, open,
/// catalog);
/// unset runs them all.
fn section(name: &str) -> bool {
    std::env::var("REELDB_FIGURES").map_or(true, |v| v.split(',').any(|s| s.trim() == name))
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn same(a: &HashMap<String, (u64, f64)>, b: &HashMap<String, (u64, f64)>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, (n, s))| {
            b.get(k)
                .is_some_and(|(m, t)| n == m && ((s - t) / s.abs().max(1.0)).abs() < 1e-9)
        })
}

/// Checks ReelDB's answers against the peer bench's reference answers (`expected.json`: row
/// count, Q1, Q2 and Q3 at its check versions). Peer version n is ReelDB version n + 1.
fn check_peer_answers(store: &Store, data: &Path) -> Vec<u64> {
    use arrow::array::Float64Array;
    let expected: serde_json::Value =
        serde_json::from_reader(std::fs::File::open(data.join("expected.json")).unwrap()).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let mut checked = Vec::new();
    for (v, e) in expected.as_object().unwrap() {
        let peer_v: u64 = v.parse().unwrap();
        let version = peer_v + 1;
        let t = store.snapshot(version).unwrap().table("t").unwrap();
        assert_eq!(
            t.num_rows(),
            e["rows"].as_u64().unwrap(),
            "rows at peer v{peer_v}"
        );
        let q1 = q1_store(store, version);
        for (status, pair) in e["Q1"].as_object().unwrap() {
            let (n, sum) = q1[status.as_str()];
            assert_eq!(
                n,
                pair[0].as_u64().unwrap(),
                "Q1 count {status} at peer v{peer_v}"
            );
            assert!(
                close(sum, pair[1].as_f64().unwrap()),
                "Q1 sum {status} at peer v{peer_v}"
            );
        }
        let q2: f64 = t
            .scan(
                &ScanOptions::new()
                    .columns(&["amount"])
                    .filter(reeldb::Filter::eq("region", "r7")),
            )
            .unwrap()
            .map(|b| {
                let b = b.unwrap();
                let a = b.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
                a.iter().flatten().sum::<f64>()
            })
            .sum();
        assert!(
            close(q2, e["Q2"].as_f64().unwrap()),
            "Q2 at peer v{peer_v}: {q2}"
        );
        let lookups = read_ipc(&data.join(format!("lookups/v{peer_v:04}.arrow")));
        let ids: Vec<i64> = lookups
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        let (mut found, mut sum_id, mut sum_amount) = (0u64, 0i64, 0f64);
        for id in ids {
            if let Some(row) = t.get(id).unwrap() {
                found += 1;
                sum_id += id;
                sum_amount += row
                    .column(4)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap()
                    .value(0);
            }
        }
        let q3 = &e["Q3"];
        assert_eq!(
            found,
            q3["found"].as_u64().unwrap(),
            "Q3 found at peer v{peer_v}"
        );
        assert_eq!(
            sum_id,
            q3["sum_id"].as_i64().unwrap(),
            "Q3 ids at peer v{peer_v}"
        );
        assert!(
            close(sum_amount, q3["sum_amount"].as_f64().unwrap()),
            "Q3 amounts at peer v{peer_v}"
        );
        checked.push(peer_v);
    }
    checked.sort_unstable();
    checked
}

fn initial_state() -> RecordBatch {
    match peer_data() {
        Some(dir) => {
            let batches = read_ipc(&dir.join("initial.arrow"));
            arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
        }
        None => Workload::new(rows(), 42).initial(),
    }
}

fn create(path: &Path, initial: &RecordBatch) -> (Store, f64) {
    let store = Store::create(path).unwrap();
    let mut w = store.writer().unwrap();
    let t = Instant::now();
    let mut tx = w.begin();
    tx.create_table("t", initial.schema(), &["id"]).unwrap();
    tx.upsert("t", initial.clone()).unwrap();
    tx.commit().unwrap();
    (store, t.elapsed().as_secs_f64())
}

fn main() {
    let work = tempfile::tempdir().unwrap();
    let initial = initial_state();
    let source = if peer_data().is_some() {
        "peer-bench data folder"
    } else {
        "generated (peer-bench schema and mix)"
    };
    println!(
        "# ReelDB figures ({} rows, {source}, {} threads)\n",
        initial.num_rows(),
        rayon::current_num_threads()
    );

    let (store, keyframe_write_s) = create(&work.path().join("scan"), &initial);
    if section("scan") {
        // --- Scans: keyframe vs in-memory Arrow vs mmap'd IPC, same Q1, same parallelism.
        let memory = slices(&initial, 16 * 1024);
        let ipc = work.path().join("state.arrow");
        write_ipc(&ipc, &initial, 64 * 1024);
        let expect = q1(std::slice::from_ref(&initial));
        assert!(
            same(&q1_store(&store, 1), &expect),
            "keyframe Q1 disagrees with the in-memory answer"
        );
        assert!(same(
            &q1_par(&ipc_mmap_batches(&ipc, &["status", "amount"])),
            &expect
        ));
        let reps = 21;
        let t_mem = time(reps, || q1_par(&memory));
        let t_kf = time(reps, || q1_store(&store, 1));
        let t_ipc = time(reps, || {
            q1_par(&ipc_mmap_batches(&ipc, &["status", "amount"]))
        });
        println!("## Q1 scan: count and sum(amount) group by status (median of {reps})\n");
        println!("| source | ms | speed vs in-memory Arrow |\n|---|---|---|");
        println!(
            "| in-memory Arrow RecordBatch | {:.2} | 1.00x |",
            t_mem * 1e3
        );
        println!(
            "| Arrow IPC file, mmap, zero-copy | {:.2} | {:.2}x |",
            t_ipc * 1e3,
            t_mem / t_ipc
        );
        println!(
            "| ReelDB keyframe (par_scan) | {:.2} | {:.2}x |",
            t_kf * 1e3,
            t_mem / t_kf
        );
    }
    if section("get") {
        // --- Point gets: 1,000 random keys vs binary search on the in-memory sorted ids.
        let ids = initial
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        let probes = probe_keys(&initial);
        let gets = |table: &reeldb::Table| get_all(table, &probes);
        // Cold: a freshly opened store (empty cache of decoded blocks), warm page cache.
        let path = store.path().to_path_buf();
        let t_cold = time(3, || {
            gets(
                &Store::open(&path)
                    .unwrap()
                    .latest()
                    .unwrap()
                    .table("t")
                    .unwrap(),
            )
        });
        let table = store.latest().unwrap().table("t").unwrap();
        let t_get = time(5, || gets(&table));
        let t_bs = time(5, || {
            probes
                .iter()
                .map(|k| {
                    let i = ids.values().binary_search(k).unwrap();
                    initial.slice(i, 1).num_rows()
                })
                .sum::<usize>()
        });
        println!("\n## 1,000 single-key gets\n");
        println!("| method | ms |\n|---|---|");
        println!("| in-memory binary search + slice | {:.3} |", t_bs * 1e3);
        println!(
            "| ReelDB get, freshly opened store (cold block cache) | {:.1} |",
            t_cold * 1e3
        );
        println!("| ReelDB get, warm block cache | {:.1} |", t_get * 1e3);
        drop(table);
    }
    drop(store);
    if section("storage") {
        // --- Storage after 100 versions of 1% / 0.2% / 0.1% changes.
        let versions = env("REELDB_BENCH_VERSIONS", 100);
        println!(
            "\n## {versions} versions of 1% updates, 0.2% inserts, 0.1% deletes (a keyframe per commit)\n"
        );
        println!(
            "| spread | bytes after v0 | bytes after v{versions} | x one copy | commit median ms | commit / first keyframe write |"
        );
        println!("|---|---|---|---|---|---|");
        let cases: Vec<(&str, Option<Spread>)> = match peer_data() {
            Some(_) => vec![
                ("uniform (peer-bench changes)", None),
                ("hot: ten ranges, 5% of keys", Some(Spread::Hot)),
                ("hot: newest 5% of keys", Some(Spread::Recent)),
            ],
            None => vec![
                ("uniform", Some(Spread::Uniform)),
                ("hot: ten ranges, 5% of keys", Some(Spread::Hot)),
                ("hot: newest 5% of keys", Some(Spread::Recent)),
            ],
        };
        for (label, spread) in cases {
            let dir = work.path().join(label.replace([' ', ':', ','], "_"));
            // Generated spreads start from the generator's own (deterministic) state; the peer
            // case replays the peer's change files over the peer's initial state.
            let mut generator = spread.map(|_| Workload::new(initial.num_rows(), 42));
            let start = generator
                .as_ref()
                .map_or_else(|| initial.clone(), |g| g.initial());
            let (store, first_s) = create(&dir, &start);
            let one_copy = dir_bytes(&dir);
            // Issue 2's figures: every commit a keyframe (overlays are measured by
            // benches/overlays.rs).
            let mut w = store
                .writer_with(WriterOptions::default().keyframe_every(1))
                .unwrap();
            let mut commits = Vec::new();
            for v in 1..=versions {
                let change = match (&mut generator, spread) {
                    (Some(g), Some(s)) => g.step(s),
                    _ => split_peer_change(&read_ipc(
                        &peer_data().unwrap().join(format!("changes/v{v:04}.arrow")),
                    )),
                };
                let t = Instant::now();
                let mut tx = w.begin();
                tx.upsert("t", change.upserts).unwrap();
                tx.delete("t", change.deletes).unwrap();
                tx.commit().unwrap();
                commits.push(t.elapsed().as_secs_f64());
            }
            drop(w);
            let total = dir_bytes(&dir);
            if spread.is_none() && versions == 100 {
                let data = peer_data().unwrap();
                let checked = check_peer_answers(&Store::open(&dir).unwrap(), &data);
                eprintln!(
                    "peer-bench reference answers (rows, Q1, Q2, Q3) match at peer versions {checked:?}"
                );
            }
            let med = median(&mut commits);
            println!(
                "| {label} | {:.1} MB | {:.1} MB | {:.2}x | {:.1} | {:.2}x |",
                one_copy as f64 / 1e6,
                total as f64 / 1e6,
                total as f64 / one_copy as f64,
                med * 1e3,
                med / first_s
            );
        }
        println!(
            "\n(first keyframe write of {} rows: {:.0} ms)",
            initial.num_rows(),
            keyframe_write_s * 1e3
        );
    }
    if section("open") {
        // --- Opening the first vs the last of many small commits.
        let n = env("REELDB_BENCH_SMALL_COMMITS", 100_000) as u64;
        let dir = work.path().join("small");
        let build_s = small_commits(&dir, &initial, n);
        let reader = Store::open(&dir).unwrap();
        let (first, last) = (open_s(&reader, 1), open_s(&reader, n));
        let (first2, last2) = (open_s(&reader, 1), open_s(&reader, n));
        println!("\n## Opening a version among {n} (built in {build_s:.1} s, no sync)\n");
        println!("| version | µs (median of 2,001, two rounds) |\n|---|---|");
        println!("| 1 | {:.1} / {:.1} |", first * 1e6, first2 * 1e6);
        println!("| {n} | {:.1} / {:.1} |", last * 1e6, last2 * 1e6);
        println!("\nlast / first: {:.2}x", (last + last2) / (first + first2));
    }
    if section("catalog") {
        // --- The catalog after `reel expire --keep-last 10` (expiry, then a catalog rewrite).
        let n = env("REELDB_BENCH_CATALOG_VERSIONS", 10_000) as u64;
        let dir = work.path().join("catalog");
        small_commits(&dir, &initial, n);
        let records = |dir: &Path| -> u64 {
            std::fs::read_dir(dir.join("catalog"))
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_name().to_string_lossy().starts_with("records"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        };
        let store = Store::open(&dir).unwrap();
        let before = records(&dir);
        let open_before = open_s(&store, n);
        let t = Instant::now();
        let mut m = store.maintenance().unwrap();
        let expired = m.expire(reeldb::Expiry::KeepLast(10), &[]).unwrap();
        let rewrite = m
            .rewrite_catalog(reeldb::maintenance::catalog::REWRITE_AT_DEAD)
            .unwrap();
        drop(m);
        let took = t.elapsed().as_secs_f64();
        assert!(rewrite.rewritten && expired.len() as u64 == n - 10);
        let after = records(&dir);
        let open_after = open_s(&store, n);
        println!("\n## The catalog after expiring all but 10 of {n} versions\n");
        println!("| figure | measured | target |\n|---|---|---|");
        println!(
            "| records bytes before / after | {before} / {after} ({:.3}%) | <= 1% |",
            100.0 * after as f64 / before as f64
        );
        println!("| expire + catalog rewrite | {:.0} ms | — |", took * 1e3);
        println!(
            "| opening v{n} before / after (µs, median of 2,001) | {:.1} / {:.1} | < 1 ms |",
            open_before * 1e6,
            open_after * 1e6
        );
    }
}

/// Builds a store at `dir` of `n` versions, each a one-row upsert of `initial`'s first row
/// with another key (no sync); returns the seconds it took.
fn small_commits(dir: &Path, initial: &RecordBatch, n: u64) -> f64 {
    let store = Store::create(dir).unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().sync(false).keyframe_every(1))
        .unwrap();
    let small = initial.slice(0, 1);
    let mut tx = w.begin();
    tx.create_table("t", initial.schema(), &["id"]).unwrap();
    tx.commit().unwrap();
    let t = Instant::now();
    for i in 1..n {
        let mut tx = w.begin();
        let row = RecordBatch::try_new(
            small.schema(),
            std::iter::once(std::sync::Arc::new(Int64Array::from(vec![i as i64 % 1000])) as _)
                .chain(small.columns()[1..].iter().cloned())
                .collect(),
        )
        .unwrap();
        tx.upsert("t", row).unwrap();
        tx.commit().unwrap();
    }
    t.elapsed().as_secs_f64()
}

/// Seconds to open version `v` and read its row count (median of 2,001).
fn open_s(store: &Store, v: u64) -> f64 {
    time(2001, || {
        store.snapshot(v).unwrap().table("t").unwrap().num_rows()
    })
}
