//! Exhaustive simulated crashes: the reliability workload (see `common/workload.rs`) runs on a
//! simulated disk, which is shown to a checker before every mutating storage step. At each such
//! crash point the checker draws power-loss images (plus the image a killed process leaves and
//! the durable state alone), opens each, checks the "nothing lost" promise and commits on top;
//! for one image per point it also crashes the recovery itself part-way and checks again.
//!
//! `REELDB_CRASH_IMAGES` sets the images drawn per crash point (default 260); the soak run in
//! the README uses 1,000.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::workload::{self, Cursor, Depth, check_promise};
use rayon::prelude::*;
use reeldb::Store;
use reeldb::storage::Storage;
use reeldb_testkit::SimStorage;

#[derive(Debug, Default)]
struct Tally {
    points: u64,
    drawn: u64,
    checked: u64,
    recoveries_crashed: u64,
    violations: Vec<String>,
}

fn images_per_point() -> usize {
    std::env::var("REELDB_CRASH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(260)
}

/// Checks crash point `point`, whose disk is `frozen`, against `cursor`.
fn check_point(
    point: u64,
    frozen: &SimStorage,
    cursor: &Cursor,
    seen: &Mutex<HashSet<u128>>,
    tally: &Mutex<Tally>,
) {
    let mut rng = fastrand::Rng::with_seed(point);
    let mut images = vec![frozen.process_crash_image(), frozen.durable_image()];
    images.extend((0..images_per_point()).map(|_| frozen.power_loss_image(&mut rng)));
    let drawn = images.len() as u64;
    let fresh: Vec<SimStorage> = {
        let mut seen = seen.lock().unwrap();
        images
            .into_iter()
            .filter(|image| seen.insert(image.digest()))
            .collect()
    };
    let failures: Vec<String> = fresh
        .par_iter()
        .enumerate()
        .filter_map(|(i, image)| {
            // The first image of a point reads every version and is crashed again in recovery;
            // the others read the latest and three more, and every fourth commits on top.
            let outcome = if i == 0 {
                crash_in_recovery(image, cursor, point)
            } else {
                let depth = Depth {
                    every_version: false,
                    recover: i % 4 == 1,
                    seed: point * 1000 + i as u64,
                };
                check_promise(Arc::new(image.clone()), cursor, depth)
            };
            outcome.err().map(|e| {
                let during = cursor.in_flight.as_ref().map(workload::Op::name);
                let acked = cursor.acked.latest();
                format!("crash point {point} ({during:?} after v{acked}), image {i}: {e}")
            })
        })
        .collect();
    let mut t = tally.lock().unwrap();
    t.points += 1;
    t.drawn += drawn;
    t.checked += fresh.len() as u64;
    t.recoveries_crashed += u64::from(!fresh.is_empty());
    t.violations.extend(failures);
}

/// Opens a writer on `image` (the recovery: it cuts back what unfinished work left), crashes it
/// after a few steps, takes a power-loss image of that and checks the promise on it.
fn crash_in_recovery(image: &SimStorage, cursor: &Cursor, point: u64) -> Result<(), String> {
    let every_version = Depth {
        recover: false,
        ..Depth::FULL
    };
    check_promise(Arc::new(image.snapshot()), cursor, every_version)?;
    let disk = image.snapshot();
    disk.crash_after(point % 5);
    if let Ok(store) = Store::open_in(Arc::new(disk.clone()) as Arc<dyn Storage>, Path::new("sim"))
    {
        let _ = store.writer_with(workload::writer_options());
    }
    let mut rng = fastrand::Rng::with_seed(point ^ 0x5EED);
    check_promise(
        Arc::new(disk.power_loss_image(&mut rng)),
        cursor,
        Depth::FULL,
    )
    .map_err(|e| format!("after a crash inside recovery: {e}"))
}

#[test]
fn every_crash_point_of_the_workload_keeps_the_promise() {
    let sim = SimStorage::new();
    let cursor = Arc::new(Mutex::new(Cursor::default()));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build().unwrap());
    let started = std::time::Instant::now();
    {
        let (cursor, seen, tally, pool) =
            (cursor.clone(), seen.clone(), tally.clone(), pool.clone());
        let point = std::sync::atomic::AtomicU64::new(0);
        sim.observe(move |frozen| {
            let at = point.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let c = cursor.lock().unwrap().clone();
            pool.install(|| check_point(at, &frozen, &c, &seen, &tally));
        });
    }
    workload::run(Arc::new(sim.clone()), &cursor).unwrap();
    let last = sim.steps();
    let end = cursor.lock().unwrap().clone();
    pool.install(|| check_point(last, &sim.snapshot(), &end, &seen, &tally));
    let t = tally.lock().unwrap();
    println!(
        "simulated crashes: {} crash points, {} images drawn, {} distinct images checked, \
         {} recoveries crashed part-way, {} violations, {:.1} s",
        t.points,
        t.drawn,
        t.checked,
        t.recoveries_crashed,
        t.violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        t.points > 500,
        "the workload takes many steps: {}",
        t.points
    );
    assert_eq!(
        end.acked.latest(),
        29,
        "17 versions kept by the rewind, then 12 commits"
    );
    assert!(
        t.violations.is_empty(),
        "{:#?}",
        &t.violations[..t.violations.len().min(2000)]
    );
}
