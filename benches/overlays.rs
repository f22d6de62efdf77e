//! The figures issue 3 asks for, in one run: 1,000,000 rows, 100 versions of uniform 1% /
//! 0.2% / 0.1% changes, a keyframe every 20 versions (the default policy).
//!
//! `cargo bench --bench overlays` (`REELDB_BENCH_ROWS` and `REELDB_BENCH_VERSIONS` shrink it).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use reeldb::{Store, VersionKind};
use support::*;

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
    let t0 = Instant::now();
    let mut tx = w.begin();
    tx.create_table("t", schema(), &["id"]).unwrap();
    tx.upsert("t", generator.initial()).unwrap();
    tx.commit().unwrap();
    let first_keyframe_s = t0.elapsed().as_secs_f64();
    let one_copy = dir_bytes(&path);
    // Versions whose in-memory state the scans compare against: a keyframe, the version
    // right after it, and the last version before the next keyframe.
    let (at_keyframe, after, before_next) = (21u64, 22u64, 40u64);
    let mut states: HashMap<u64, RecordBatch> = HashMap::new();
    let (mut overlay_s, mut keyframe_s) = (Vec::new(), Vec::new());
    for v in 2..=versions + 1 {
        let change = generator.step(Spread::Uniform);
        let t = Instant::now();
        let mut tx = w.begin();
        tx.upsert("t", change.upserts).unwrap();
        tx.delete("t", change.deletes).unwrap();
        tx.commit().unwrap();
        let s = t.elapsed().as_secs_f64();
        if [at_keyframe, after, before_next].contains(&v) {
            states.insert(v, generator.initial());
        }
        match store.versions().unwrap().last().unwrap().kind {
            VersionKind::Overlay => overlay_s.push(s),
            VersionKind::Keyframe => keyframe_s.push(s),
            VersionKind::BFrame => unreachable!("nothing is compacted while committing"),
        }
    }
    drop(w);
    let kinds: Vec<&str> = store
        .versions()
        .unwrap()
        .iter()
        .map(|i| i.kind.as_str())
        .collect();
    let (o_med, k_med) = (median(&mut overlay_s), median(&mut keyframe_s));
    println!(
        "# ReelDB overlay figures ({n} rows, {versions} uniform versions, {} threads)\n",
        rayon::current_num_threads()
    );
    println!(
        "versions: {} overlays, {} keyframes (v{at_keyframe}: {}, v{after}: {}, v{before_next}: {})\n",
        overlay_s.len(),
        keyframe_s.len() + 1,
        kinds[at_keyframe as usize - 1],
        kinds[after as usize - 1],
        kinds[before_next as usize - 1]
    );
    println!("## Commit time per version\n");
    println!("| kind | median ms | ratio |\n|---|---|---|");
    println!(
        "| keyframe (folds the overlay) | {:.1} | 1.00x |",
        k_med * 1e3
    );
    println!(
        "| interstitial overlay | {:.1} | {:.1}x cheaper |",
        o_med * 1e3,
        k_med / o_med
    );
    println!(
        "(first keyframe of the initial state: {:.0} ms)\n",
        first_keyframe_s * 1e3
    );

    println!("## Q1 scan (count, sum(amount) by status) vs in-memory Arrow of the same state\n");
    println!(
        "| version | kind | ReelDB ms | in-memory ms | speed vs in-memory |\n|---|---|---|---|---|"
    );
    let mut scan_ms = HashMap::new();
    for v in [at_keyframe, after, before_next] {
        let state = &states[&v];
        let slices = slices(state, 16 * 1024);
        let want = q1_par(&slices);
        let got = q1_store(&store, v);
        assert_eq!(got.len(), want.len());
        for (k, (c, s)) in &want {
            let (gc, gs) = got[k];
            assert_eq!(gc, *c, "Q1 count {k} at v{v}");
            assert!(
                (gs - s).abs() <= 1e-6 * s.abs().max(1.0),
                "Q1 sum {k} at v{v}"
            );
        }
        let t_mem = time(15, || q1_par(&slices));
        let t_store = time(15, || q1_store(&store, v));
        scan_ms.insert(v, t_store);
        println!(
            "| v{v} | {} | {:.2} | {:.2} | {:.2}x |",
            kinds[v as usize - 1],
            t_store * 1e3,
            t_mem * 1e3,
            t_mem / t_store
        );
    }
    println!(
        "\nlast interstitial before the next keyframe vs its keyframe: {:.2}x the keyframe's scan speed\n",
        scan_ms[&at_keyframe] / scan_ms[&before_next]
    );

    println!("## 10,000 random gets\n");
    println!("| version | ms (fresh store) | ms (warm) |\n|---|---|---|");
    let latest = versions + 1;
    for v in [after, latest] {
        let state = &states
            .get(&v)
            .cloned()
            .unwrap_or_else(|| generator.initial());
        let ids = state
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        let mut rng = Rng(9);
        let probes: Vec<i64> = (0..10_000)
            .map(|_| ids.value(rng.below(ids.len() as u64) as usize))
            .collect();
        let cold = time(3, || {
            get_all(
                &Store::open(&path)
                    .unwrap()
                    .snapshot(v)
                    .unwrap()
                    .table("t")
                    .unwrap(),
                &probes,
            )
        });
        let t = store.snapshot(v).unwrap().table("t").unwrap();
        assert_eq!(get_all(&t, &probes), probes.len());
        let warm = time(3, || get_all(&t, &probes));
        println!(
            "| v{v} ({}) | {:.1} | {:.1} |",
            kinds[v as usize - 1],
            cold * 1e3,
            warm * 1e3
        );
    }

    let stats = store.stats().unwrap();
    let (total, overlays, batch_bytes) = (
        stats.bytes_on_disk,
        stats.node_log_bytes,
        stats.row_batch_bytes,
    );
    let packs = dir_bytes(&path.join("packs"));
    println!(
        "\n## Bytes on disk after {versions} versions (one compressed copy: {:.1} MB)\n",
        one_copy as f64 / 1e6
    );
    println!("| part | MB | x one copy |\n|---|---|---|");
    println!(
        "| keyframe blocks and nodes (packs minus row batches) | {:.1} | {:.2}x |",
        (packs - batch_bytes) as f64 / 1e6,
        (packs - batch_bytes) as f64 / one_copy as f64
    );
    println!(
        "| overlay row data (row batches in packs) | {:.1} | {:.2}x |",
        batch_bytes as f64 / 1e6,
        batch_bytes as f64 / one_copy as f64
    );
    println!(
        "| HAMT nodes and bitmaps (node logs) | {:.1} | {:.2}x |",
        overlays as f64 / 1e6,
        overlays as f64 / one_copy as f64
    );
    println!(
        "| total | {:.1} | {:.2}x |",
        total as f64 / 1e6,
        total as f64 / one_copy as f64
    );
    println!(
        "\nper overlay commit: {:.1} KB of node log vs {:.1} KB of row batch (compressed changed rows): {:.2}x",
        overlays as f64 / overlay_s.len() as f64 / 1e3,
        batch_bytes as f64 / overlay_s.len() as f64 / 1e3,
        overlays as f64 / batch_bytes as f64
    );
}
