//! Compaction: closed generations become B-frames; every version still reads exactly as
//! committed (scan, get, range), before and after reopening; node logs go once no reader
//! needs them; a rewind into a compacted generation and new commits on top still work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use arrow::array::RecordBatch;
use common::{canonical, ids, orders, orders_schema, read_all_canonical as read_all, tiny_shape};
use reeldb::{ScanOptions, Store, VersionKind, WriterOptions};

fn options() -> WriterOptions {
    WriterOptions::default()
        .tree_shape(tiny_shape())
        .keyframe_every(4)
        .max_pack_len(16 << 10)
}

fn commit_round(w: &mut reeldb::Writer, round: u64) -> u64 {
    let mut tx = w.begin();
    if round == 0 {
        tx.create_table("orders", orders_schema(), &["id"]).unwrap();
        tx.upsert("orders", orders(&(0..300).collect::<Vec<_>>(), 0))
            .unwrap();
    } else {
        let lo = (round as i64 * 53) % 280;
        tx.upsert("orders", orders(&(lo..lo + 25).collect::<Vec<_>>(), round))
            .unwrap();
        tx.delete("orders", ids(&[(lo + 60) % 300, 300 + round as i64]))
            .unwrap();
        if round.is_multiple_of(3) {
            // Re-insert a key deleted earlier, and write one row back to its first content.
            tx.upsert("orders", orders(&[(lo + 7) % 300 + 300], round))
                .unwrap();
        }
    }
    tx.source_offset(10 * round);
    tx.commit().unwrap()
}

/// Every version by scan, by range in both directions and by get of every key it may hold.
fn everything(store: &Store) -> Vec<(RecordBatch, RecordBatch, Vec<Option<RecordBatch>>)> {
    let latest = store.latest_version().unwrap();
    (1..=latest)
        .map(|v| {
            let t = store.snapshot(v).unwrap().table("orders").unwrap();
            let scan: Vec<RecordBatch> = t
                .scan(&ScanOptions::new().in_key_order())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut back: Vec<RecordBatch> = t
                .range::<reeldb::Key, _>(..)
                .unwrap()
                .rev()
                .collect::<Result<_, _>>()
                .unwrap();
            back.reverse();
            let gets = (0..620i64).map(|k| t.get(k).unwrap()).collect();
            (canonical(&scan), canonical(&back), gets)
        })
        .collect()
}

fn kinds(store: &Store) -> Vec<VersionKind> {
    store.versions().unwrap().iter().map(|v| v.kind).collect()
}

fn keyframe_count(store: &Store) -> usize {
    kinds(store)
        .iter()
        .filter(|k| **k == VersionKind::Keyframe)
        .count()
}

#[test]
fn compacted_versions_read_exactly_as_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..14 {
        commit_round(&mut w, round);
    }
    let truth = everything(&store);
    let scans = read_all(&store);
    let report = w.compact(&mut |_, _| {}).unwrap();
    assert!(report.generations >= 2, "{report:?}");
    assert_eq!(report.node_logs_removed, report.generations);
    assert!(kinds(&store).contains(&VersionKind::BFrame));
    assert!(
        kinds(&store).contains(&VersionKind::Overlay),
        "the open generation stays"
    );
    assert_eq!(everything(&store), truth);
    // Compacting again finds nothing to do; new commits and another compaction still agree.
    let again = w.compact(&mut |_, _| {}).unwrap();
    assert_eq!(again.generations, 0);
    for round in 14..22 {
        commit_round(&mut w, round);
    }
    let truth = everything(&store);
    w.compact(&mut |_, _| {}).unwrap();
    drop(w);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(everything(&reopened), truth);
    assert_eq!(read_all(&reopened)[..14], scans[..]);
    let report = reopened
        .verify(1..=reopened.latest_version().unwrap(), &mut |_| {})
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.versions);
    // Only the open generation's node log may remain.
    assert!(std::fs::read_dir(path.join("overlays")).unwrap().count() <= 1);
}

#[test]
fn a_node_log_a_reader_still_needs_outlives_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..9 {
        commit_round(&mut w, round);
    }
    let truth = read_all(&store);
    // Version 3 is an overlay of the first generation, which version 5's keyframe closed.
    assert_eq!(kinds(&store)[2], VersionKind::Overlay);
    let held = store.snapshot(3).unwrap().table("orders").unwrap();
    let report = w.compact(&mut |_, _| {}).unwrap();
    assert!(report.node_logs_held >= 1, "{report:?}");
    let rows: Vec<RecordBatch> = held
        .scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(canonical(&rows), truth[2], "the old form still reads");
    drop(held);
    let report = w.compact(&mut |_, _| {}).unwrap();
    assert_eq!(report.node_logs_held, 0);
    assert!(report.node_logs_removed >= 1);
    assert_eq!(read_all(&store), truth);
}

#[test]
fn rewinding_into_a_compacted_generation_then_committing_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..12 {
        commit_round(&mut w, round);
    }
    w.compact(&mut |_, _| {}).unwrap();
    let truth = read_all(&store);
    let to = kinds(&store)
        .iter()
        .position(|k| *k == VersionKind::BFrame)
        .unwrap() as u64
        + 1;
    // Rewinding to a B-frame purges the keyframe it reads; its bytes must stay.
    let r = w.rewind(to).unwrap();
    assert_eq!(r.to, to);
    assert_eq!(read_all(&store), truth[..to as usize]);
    // The next change folds the B-frame into a new keyframe.
    let v = commit_round(&mut w, 40);
    assert_eq!(v, to + 1);
    commit_round(&mut w, 41);
    drop(w);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(read_all(&reopened)[..to as usize], truth[..to as usize]);
    let report = reopened
        .verify(1..=reopened.latest_version().unwrap(), &mut |_| {})
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.versions);
    // The state after the rewind and two commits, against a store that never compacted.
    let plain = dir.path().join("plain");
    let other = Store::create(&plain).unwrap();
    let mut w2 = other.writer_with(options()).unwrap();
    for round in 0..to {
        commit_round(&mut w2, round);
    }
    commit_round(&mut w2, 40);
    commit_round(&mut w2, 41);
    drop(w2);
    assert_eq!(read_all(&reopened), read_all(&other));
}

/// A digest of version `v`'s rows, however a scan splits or orders them.
fn try_digest(store: &Store, v: u64) -> Result<String, reeldb::Error> {
    use std::hash::{Hash, Hasher};
    let t = store.snapshot(v)?.table("orders")?;
    let rows: Vec<RecordBatch> = t.scan(&ScanOptions::new())?.collect::<Result<_, _>>()?;
    let text = arrow::util::pretty::pretty_format_batches(&[canonical(&rows)])?.to_string();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Ok(format!("{:016x}", h.finish()))
}

fn digest(store: &Store, v: u64) -> String {
    try_digest(store, v).unwrap()
}

/// Run as a child by the test below: reads random known versions until stdin closes, and
/// prints how many reads matched and what went wrong.
#[test]
fn child_reads_random_versions() {
    let (Ok(path), Ok(digests)) = (
        std::env::var("REELDB_READ_STORE"),
        std::env::var("REELDB_READ_DIGESTS"),
    ) else {
        return;
    };
    let want: Vec<String> = std::fs::read_to_string(digests)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let stop = common::stop_when_stdin_closes();
    let store = Store::open(path).unwrap();
    let (mut ok, mut bad) = (0u64, Vec::new());
    let mut seed = std::process::id() as u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v = (seed >> 33) % want.len() as u64 + 1;
        match try_digest(&store, v) {
            Ok(d) if d == want[v as usize - 1] => ok += 1,
            Ok(d) => bad.push(format!("v{v}: digest {d}")),
            Err(e) => bad.push(format!("v{v}: {e}")),
        }
    }
    println!("<reads ok={ok} bad={}> {bad:?}", bad.len());
}

#[test]
fn readers_in_other_processes_see_every_version_unchanged_while_the_writer_commits_and_compacts() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..10 {
        commit_round(&mut w, round);
    }
    let digests: Vec<String> = (1..=10).map(|v| digest(&store, v)).collect();
    let file = dir.path().join("digests");
    std::fs::write(&file, digests.join("\n")).unwrap();
    let mut readers: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_reads_random_versions", "--nocapture"])
                .env("REELDB_READ_STORE", &path)
                .env("REELDB_READ_DIGESTS", &file)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for round in 10..40 {
        commit_round(&mut w, round);
        if round % 7 == 0 {
            w.compact(&mut |_, _| {}).unwrap();
        }
    }
    w.compact(&mut |_, _| {}).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for r in &mut readers {
        drop(r.stdin.take());
    }
    for r in readers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success());
        let line = out
            .stdout
            .lines()
            .map(Result::unwrap)
            .find(|l| l.contains("<reads"))
            .unwrap();
        assert!(line.contains("bad=0>"), "{line}");
        assert!(!line.contains("ok=0 "), "{line}");
    }
    // And the versions the readers checked still read as they did.
    for (i, d) in digests.iter().enumerate() {
        assert_eq!(&digest(&store, i as u64 + 1), d);
    }
}

/// Run as a child by the test below: compacts the store and exits.
#[test]
fn child_compacts() {
    let Ok(path) = std::env::var("REELDB_COMPACT_STORE") else {
        return;
    };
    let store = Store::open(path).unwrap();
    store.writer().unwrap().compact(&mut |_, _| {}).unwrap();
    println!("<compacted>");
}

#[test]
fn a_compactor_killed_at_any_moment_leaves_every_version_as_committed() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    let store = Store::create(&pristine).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..30 {
        commit_round(&mut w, round);
    }
    drop(w);
    let truth = read_all(&store);
    drop(store);
    // How long an undisturbed compaction takes, to spread the kills over it.
    let timing = dir.path().join("timing");
    common::copy_dir(&pristine, &timing);
    let started = std::time::Instant::now();
    Store::open(&timing)
        .unwrap()
        .writer()
        .unwrap()
        .compact(&mut |_, _| {})
        .unwrap();
    let span = started.elapsed().as_micros().max(1000) as u64 * 2;
    for round in 0..6u64 {
        let path = dir.path().join(format!("k{round}"));
        common::copy_dir(&pristine, &path);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_compacts", "--nocapture"])
            .env("REELDB_COMPACT_STORE", &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(span * round / 5));
        let _ = child.kill();
        child.wait().unwrap();
        let reopened = Store::open(&path).unwrap();
        assert_eq!(
            read_all(&reopened),
            truth,
            "killed after {}/5 of a compaction",
            round
        );
        let report = reopened
            .verify(1..=reopened.latest_version().unwrap(), &mut |_| {})
            .unwrap();
        assert!(report.is_intact(), "{:?}", report.versions);
        // The next compaction finishes whatever the killed one left.
        reopened.writer().unwrap().compact(&mut |_, _| {}).unwrap();
        assert_eq!(read_all(&reopened), truth);
    }
}

#[test]
fn compaction_and_commits_take_turns_on_the_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..6 {
        commit_round(&mut w, round);
    }
    // While a writer is open, a second handle can neither compact nor rewind.
    let other = Store::open(&path).unwrap();
    assert!(matches!(
        other.writer(),
        Err(reeldb::Error::WriterLocked(_))
    ));
    assert!(matches!(
        other.rewind(2),
        Err(reeldb::Error::WriterLocked(_))
    ));
    drop(w);
    assert!(other.writer().unwrap().compact(&mut |_, _| {}).is_ok());
}

#[test]
fn cleaning_copies_what_live_versions_use_and_retires_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..24 {
        commit_round(&mut w, round);
    }
    w.compact(&mut |_, _| {}).unwrap();
    let truth = read_all(&store);
    w.expire(reeldb::Expiry::Before(9), &[]).unwrap();
    let held = store.snapshot(12).unwrap().table("orders").unwrap();
    let before = store.stats().unwrap().bytes_on_disk;
    let first = w.clean(0.0).unwrap();
    assert_eq!(first.versions, 16);
    assert!(first.bytes_after < first.bytes_before, "{first:?}");
    assert!(first.packs_held > 0, "a reader pins v12: {first:?}");
    // The reader keeps reading from the retired packs.
    let rows: Vec<RecordBatch> = held
        .scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(canonical(&rows), truth[11]);
    drop(held);
    let second = w.clean(0.0).unwrap();
    assert!(second.packs_deleted > 0, "{second:?}");
    drop(w);
    let after = store.stats().unwrap().bytes_on_disk;
    assert!(after < before, "{before} -> {after}");
    let live = |s: &Store, last: u64| -> Vec<RecordBatch> {
        (9..=last)
            .map(|v| {
                let t = s.snapshot(v).unwrap().table("orders").unwrap();
                let rows: Vec<RecordBatch> = t
                    .scan(&ScanOptions::new())
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                canonical(&rows)
            })
            .collect()
    };
    for s in [Store::open(&path).unwrap(), store] {
        assert_eq!(live(&s, 24), truth[8..]);
        let report = s.verify(1..=24, &mut |_| {}).unwrap();
        assert!(report.is_intact(), "{:?}", report.versions);
    }
    // Rewinding and committing on top of a cleaned store still works.
    let reopened = Store::open(&path).unwrap();
    let mut w = reopened.writer_with(options()).unwrap();
    w.rewind(15).unwrap();
    commit_round(&mut w, 15);
    drop(w);
    assert_eq!(live(&reopened, 15), truth[8..15]);
}

#[test]
fn thinning_keeps_every_version_and_cleaning_then_reclaims_the_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..30 {
        commit_round(&mut w, round);
    }
    w.compact(&mut |_, _| {}).unwrap();
    w.clean(0.0).unwrap();
    let truth = everything(&store);
    let before = store.stats().unwrap().bytes_on_disk;
    let report = w.thin(12).unwrap();
    assert!(report.keyframes >= 3, "{report:?}");
    assert_eq!(everything(&store), truth);
    let keyframes = kinds(&store)
        .iter()
        .filter(|k| **k == VersionKind::Keyframe)
        .count();
    assert!(keyframes <= 4, "{:?}", kinds(&store));
    let cleaning = w.clean(0.0).unwrap();
    assert!(cleaning.bytes_after < cleaning.bytes_before, "{cleaning:?}");
    assert!(store.stats().unwrap().bytes_on_disk < before);
    // Thinning again finds nothing; more commits, compaction and thinning still agree.
    assert_eq!(w.thin(12).unwrap().keyframes, 0);
    for round in 30..40 {
        commit_round(&mut w, round);
    }
    let truth = everything(&store);
    w.compact(&mut |_, _| {}).unwrap();
    w.thin(12).unwrap();
    w.clean(0.0).unwrap();
    drop(w);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(everything(&reopened), truth);
    let report = reopened.verify(1..=40, &mut |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.versions);
}

#[test]
fn thinning_stores_a_row_version_living_across_a_thinned_keyframe_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let options = WriterOptions::default()
        .tree_shape(tiny_shape())
        .keyframe_every(100)
        .keyframe_fraction(1.0)
        .keyframe_touching(0.0);
    let mut w = store.writer_with(options).unwrap();
    // v1 keyframe; v2 overlay (key 0); v3 keyframe (key 1); v4 overlay (key 1); v5 keyframe
    // (key 0). Key 0's row of v2 lives through v4, across the keyframe v3.
    let steps: [(i64, bool); 5] = [(-1, true), (0, false), (1, true), (1, false), (0, true)];
    for (round, (key, keyframe)) in steps.into_iter().enumerate() {
        let mut tx = w.begin();
        if key < 0 {
            tx.create_table("orders", orders_schema(), &["id"]).unwrap();
            tx.upsert("orders", orders(&(0..40).collect::<Vec<_>>(), 0))
                .unwrap();
        } else {
            tx.upsert("orders", orders(&[key], round as u64 + 1))
                .unwrap();
        }
        if keyframe {
            tx.keyframe();
        }
        tx.commit().unwrap();
    }
    assert_eq!(
        kinds(&store),
        [
            VersionKind::Keyframe,
            VersionKind::Overlay,
            VersionKind::Keyframe,
            VersionKind::Overlay,
            VersionKind::Keyframe
        ]
    );
    let truth = everything(&store);
    w.compact(&mut |_, _| {}).unwrap();
    assert_eq!(w.thin(100).unwrap().keyframes, 2);
    w.clean(0.0).unwrap();
    assert_eq!(everything(&store), truth);
    // Every version is a B-frame over v5, whose residual holds the four row versions v5
    // lacks: keys 0 and 1 as first written, key 0 of v2 (once), key 1 of v3.
    assert_eq!(kinds(&store)[..4], [VersionKind::BFrame; 4]);
    assert_eq!(store.stats().unwrap().residual_rows, 4);
}

#[test]
fn a_run_of_thinned_keyframes_is_rebased_in_one_pass_with_one_residual() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..30 {
        commit_round(&mut w, round);
    }
    w.compact(&mut |_, _| {}).unwrap();
    let truth = everything(&store);
    let before = keyframe_count(&store);
    assert!(before > 3, "{:?}", kinds(&store));
    let report = w.thin(1000).unwrap();
    // Every keyframe before the newest, thinned into it at once.
    assert_eq!(
        (report.keyframes, report.runs),
        (before - 1, 1),
        "{report:?}"
    );
    assert_eq!(everything(&store), truth);
    assert_eq!(keyframe_count(&store), 1, "{:?}", kinds(&store));
    // One residual serves every version: its rows are the report's.
    assert_eq!(store.stats().unwrap().residual_rows, report.residual_rows);
}

/// Thirty rounds of changes to a 300-row table, then `plan` run by the writer: the thinning
/// it did, the keyframes before and after, and the table's rows. Checks that every version
/// reads as before, the progress told the runs, and the store reopens and verifies.
fn thin_thirty_rounds(plan: reeldb::MaintenancePlan) -> (reeldb::Thinning, usize, usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..30 {
        commit_round(&mut w, round);
    }
    let truth = everything(&store);
    let keyframes_before = keyframe_count(&store);
    let mut steps = Vec::new();
    let report = w
        .maintain(&plan, &mut |step, done, total| {
            steps.push((step, done, total))
        })
        .unwrap();
    let thinning = report.thinning.expect("the plan thins");
    assert!(thinning.keyframes > 0, "{thinning:?}");
    assert!(
        steps.contains(&(
            reeldb::MaintenanceStep::Thinning,
            thinning.runs,
            thinning.runs
        )),
        "{steps:?}"
    );
    assert_eq!(everything(&store), truth);
    let keyframes_after = keyframe_count(&store);
    assert_eq!(keyframes_after, keyframes_before - thinning.keyframes);
    let rows = store
        .snapshot(store.latest_version().unwrap())
        .unwrap()
        .table("orders")
        .unwrap()
        .num_rows();
    drop(w);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(everything(&reopened), truth);
    assert!(reopened.verify(1..=30, &mut |_| {}).unwrap().is_intact());
    (thinning, keyframes_before, keyframes_after, rows)
}

#[test]
fn thinning_by_the_residual_bound_keeps_a_versions_residual_within_its_keyframes_rows() {
    use reeldb::{KeyframeThinning, MaintenancePlan};
    let plan = MaintenancePlan {
        thinning: KeyframeThinning::ResidualBound {
            fraction: 1.0,
            min_rows: 0,
        },
        ..MaintenancePlan::default()
    };
    let (thinning, _, keyframes_after, rows) = thin_thirty_rounds(plan);
    // Some keyframes stay: thinning them all would give the oldest versions a residual
    // larger than the table (each round changes about 27 of ~300 rows).
    assert!(keyframes_after > 1, "{thinning:?}");
    // Each run's residual stays within the bound: at most the kept keyframe's rows.
    assert!(
        thinning.residual_rows <= thinning.runs as u64 * (rows + 30),
        "{thinning:?}, {rows} rows"
    );
}

#[test]
fn the_default_plan_lets_a_small_tables_residual_grow_to_the_floor_and_keeps_fewer_keyframes() {
    use reeldb::{KeyframeThinning, MaintenancePlan, THIN_RESIDUAL_MIN_ROWS};
    let plan = MaintenancePlan::default();
    assert_eq!(
        plan.thinning,
        KeyframeThinning::ResidualBound {
            fraction: 1.0,
            min_rows: THIN_RESIDUAL_MIN_ROWS,
        }
    );
    let (thinning, before, after, rows) = thin_thirty_rounds(plan);
    assert!(rows < THIN_RESIDUAL_MIN_ROWS);
    // ~810 changed rows in all, far below the floor: every keyframe the rules let go goes,
    // in one run, which the fraction alone (above) would have split.
    assert_eq!(thinning.runs, 1, "{thinning:?}");
    assert!(
        after < before && after <= 2,
        "{before} -> {after}, {thinning:?}"
    );
    assert!(
        thinning.residual_rows <= THIN_RESIDUAL_MIN_ROWS,
        "{thinning:?}"
    );
}

#[test]
fn a_plan_that_keeps_every_keyframe_does_not_thin() {
    use reeldb::{KeyframeThinning, MaintenancePlan};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer_with(options()).unwrap();
    for round in 0..12 {
        commit_round(&mut w, round);
    }
    let before = keyframe_count(&store);
    let plan = MaintenancePlan {
        thinning: KeyframeThinning::Off,
        ..MaintenancePlan::default()
    };
    let report = w.maintain(&plan, &mut |_, _, _| {}).unwrap();
    assert_eq!(report.thinning, None);
    assert!(before > 1);
    assert_eq!(keyframe_count(&store), before);
}
