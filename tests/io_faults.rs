//! I/O errors at every storage operation: the reliability workload runs on a simulated disk
//! whose k-th operation fails with EIO or ENOSPC, once or from then on, for k over the whole
//! workload. Every failure must come back as an error (never a panic, never a false Ok); a
//! commit that failed leaves no version and poisons its writer; a new writer carries on; and
//! the disk, both as the process left it and as a power loss right after would leave it,
//! keeps the "nothing lost" promise.
//!
//! `REELDB_FAULT_STRIDE` sets the distance between fault points (default 1: every
//! operation); `REELDB_FAULT_ONLY=K` tries operation K alone and `REELDB_FAULT_TRACE=1` prints
//! each workload step's outcome, to reproduce a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::workload::{self, Cursor, Depth, Op, check_promise};
use rayon::prelude::*;
use reeldb::{Error, Store};
use reeldb_testkit::{Fault, OpKind, SimStorage};

fn stride() -> usize {
    std::env::var("REELDB_FAULT_STRIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Runs the workload with operation `at` failing; returns the promise violations found and
/// whether the fault was hit.
fn run_with_fault(at: u64, fault: Fault, persistent: bool) -> (Vec<String>, bool) {
    let sim = SimStorage::new();
    sim.plan().fail_at(at, fault, persistent);
    let cursor = Mutex::new(Cursor::default());
    let mut violations = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let trace = format!("{fault:?} {persistent} at {at}");
        drive(&sim, &cursor, &mut violations, &trace);
    }));
    if outcome.is_err() {
        violations.push("panicked".to_string());
    }
    let hit = sim.plan().failures() > 0;
    sim.plan().heal();
    let c = cursor.lock().unwrap().clone();
    for (name, image) in [
        ("as left", sim.process_crash_image()),
        ("after a power loss", sim.durable_image()),
    ] {
        if let Err(e) = check_promise(Arc::new(image), &c, Depth::FULL) {
            violations.push(format!("{name}: {e}"));
        }
    }
    let mode = if persistent { "persistent" } else { "once" };
    let violations = violations
        .into_iter()
        .map(|v| format!("{fault:?} {mode} at op {at}: {v}"))
        .collect();
    (violations, hit)
}

/// The workload, going on after each failed operation with a new writer (when one opens).
fn drive(sim: &SimStorage, cursor: &Mutex<Cursor>, violations: &mut Vec<String>, trace: &str) {
    let Ok(store) = Store::create_in(Arc::new(sim.clone()), Path::new("sim")) else {
        return;
    };
    cursor.lock().unwrap().created = true;
    let Ok(mut writer) = store.writer_with(workload::writer_options()) else {
        return;
    };
    for op in workload::workload() {
        cursor.lock().unwrap().in_flight = Some(op.clone());
        let result = workload::apply(&mut writer, &op);
        if std::env::var_os("REELDB_FAULT_TRACE").is_some() {
            eprintln!(
                "[{trace}] {} -> {result:?} (op {})",
                op.name(),
                sim.plan().ops()
            );
        }
        let mut c = cursor.lock().unwrap();
        match result {
            Ok(()) => c.acked = c.acked.after(&op),
            Err(e) => {
                let name = op.name();
                if !matches!(
                    e,
                    Error::Keyframe(_)
                        | Error::Overlay(_)
                        | Error::Compactor(_)
                        | Error::Corruption { .. }
                ) {
                    violations.push(format!("{name} failed with an untyped cause: {e}"));
                }
                let latest = store.latest_version().ok();
                match &op {
                    Op::Commit { .. } => {
                        if latest.is_some_and(|l| l != c.acked.latest()) {
                            violations.push(format!("a failed {name} left version {latest:?}"));
                        }
                        // After a failed sync the writer must refuse to go on; after a failed
                        // read (before anything was written) it may retry.
                        let failed_sync = sim.plan().first_failed() == Some(OpKind::Sync);
                        match workload::apply(&mut writer, &op) {
                            Err(Error::Poisoned) => {}
                            Ok(()) if !failed_sync => c.acked = c.acked.after(&op),
                            Err(_) if !failed_sync => {}
                            again => violations.push(format!(
                                "after a failed sync the writer was not poisoned: {again:?}"
                            )),
                        }
                    }
                    // A rewind or expiry that failed after its commit point took effect.
                    Op::Rewind(to) if latest == Some(*to) => c.acked = c.acked.after(&op),
                    Op::ExpireBefore(_) => {
                        if matches!(store.snapshot(1), Err(Error::Expired { .. })) {
                            c.acked = c.acked.after(&op);
                        }
                    }
                    _ => {}
                }
                drop(c);
                drop(writer);
                match store.writer_with(workload::writer_options()) {
                    Ok(w) => writer = w,
                    Err(_) => return,
                }
                continue;
            }
        }
        c.in_flight = None;
    }
}

#[test]
fn every_io_error_comes_back_as_an_error_and_keeps_the_promise() {
    let started = std::time::Instant::now();
    let total = {
        let sim = SimStorage::new();
        workload::run(Arc::new(sim.clone()), &Mutex::new(Cursor::default())).unwrap();
        sim.plan().ops()
    };
    let modes = [
        (Fault::Eio, false),
        (Fault::Eio, true),
        (Fault::Enospc, false),
        (Fault::Enospc, true),
    ];
    let only: Option<u64> = std::env::var("REELDB_FAULT_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let points: Vec<(u64, Fault, bool)> = modes
        .iter()
        .enumerate()
        .flat_map(|(m, &(fault, persistent))| {
            // Each mode starts at a different offset, so together they cover every operation.
            (m as u64 % stride() as u64..total)
                .step_by(stride())
                .map(move |at| (at, fault, persistent))
        })
        .filter(|(at, _, _)| only.is_none_or(|o| o == *at))
        .collect();
    let results: Vec<(Vec<String>, bool)> = points
        .par_iter()
        .map(|&(at, fault, persistent)| run_with_fault(at, fault, persistent))
        .collect();
    let hits = results.iter().filter(|(_, hit)| *hit).count();
    let violations: Vec<&String> = results.iter().flat_map(|(v, _)| v).collect();
    println!(
        "I/O faults: {} operations in the workload, {} fault points x modes tried, {} faults hit, \
         {} violations, {:.1} s",
        total,
        points.len(),
        hits,
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(30)]
    );
    assert!(
        hits as u64 * stride() as u64 > total,
        "faults must land: {hits}"
    );
}

/// A commit whose index sync fails, with every later operation failing too (so the writer
/// cannot cut its entry back), leaves a version that is visible but perhaps not durable: the
/// failed sync may have dropped it from the write-back cache. The next writer builds on it,
/// so it must make it durable first; otherwise a power loss after the next commit would leave
/// a hole where it was.
#[test]
fn a_version_left_visible_by_a_failed_sync_is_made_durable_before_anything_builds_on_it() {
    let commits: Vec<Op> = workload::workload().into_iter().take(3).collect();
    let (mut visible_but_failed, mut points) = (0, 0);
    for k in 0.. {
        let sim = SimStorage::new();
        let storage = Arc::new(sim.clone()) as Arc<dyn reeldb::storage::Storage>;
        let store = Store::create_in(storage.clone(), Path::new("sim")).unwrap();
        let mut writer = store.writer_with(workload::writer_options()).unwrap();
        let mut model = workload::Model::default();
        for op in &commits[..2] {
            workload::apply(&mut writer, op).unwrap();
            model = model.after(op);
        }
        let start = sim.plan().ops();
        sim.plan().fail_at(start + k, Fault::Eio, true);
        let failed = workload::apply(&mut writer, &commits[2]).is_err();
        drop(writer);
        sim.plan().heal();
        if !failed {
            break; // k is past the commit's last operation
        }
        points += 1;
        if store.latest_version().unwrap() == 3 {
            visible_but_failed += 1;
            model = model.after(&commits[2]);
        }
        let mut writer = store.writer_with(workload::writer_options()).unwrap();
        let next = workload::workload()[3].clone();
        workload::apply(&mut writer, &next).unwrap();
        drop(writer);
        let cursor = Cursor {
            created: true,
            acked: model.after(&next),
            in_flight: None,
        };
        let depth = Depth {
            every_version: true,
            recover: false,
            seed: k,
        };
        if let Err(v) = check_promise(Arc::new(sim.durable_image()), &cursor, depth) {
            panic!("failing from operation {k} of the commit on: {v}");
        }
    }
    assert!(points > 5, "the commit takes several operations: {points}");
    assert!(
        visible_but_failed >= 1,
        "some failure point leaves the version visible"
    );
}
