//! The simulated disk against its model: durability after syncs, power-loss images, failed
//! syncs, crashes, capacity and locks.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use reeldb_keyframe::Error;
use reeldb_keyframe::storage::Storage;

use super::SimStorage;
use crate::Fault;

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn unsynced_appends_are_visible_but_lost_in_the_durable_image() {
    let sim = SimStorage::new();
    let mut f = sim.open_append(p("f")).unwrap();
    f.append(b"kept").unwrap();
    f.sync().unwrap();
    sim.sync_dir(p("")).unwrap();
    f.append(b" lost").unwrap();
    assert_eq!(&sim.map(p("f")).unwrap()[..], b"kept lost");
    assert_eq!(&sim.durable_image().map(p("f")).unwrap()[..], b"kept");
    assert_eq!(
        &sim.process_crash_image().map(p("f")).unwrap()[..],
        b"kept lost"
    );
}

#[test]
fn a_created_file_survives_power_loss_only_after_its_directory_is_synced() {
    let sim = SimStorage::new();
    sim.create_dir_all(p("d")).unwrap();
    sim.sync_dir(p("")).unwrap();
    let mut f = sim.open_append(p("d/f")).unwrap();
    f.append(b"x").unwrap();
    f.sync().unwrap();
    assert!(!sim.durable_image().exists(p("d/f")).unwrap());
    sim.sync_dir(p("d")).unwrap();
    assert_eq!(&sim.durable_image().map(p("d/f")).unwrap()[..], b"x");
}

#[test]
fn a_rename_is_durable_only_after_the_directory_sync() {
    let sim = SimStorage::new();
    sim.write_atomic(p("x"), b"one").unwrap();
    let mut f = sim.open_append(p("x.new")).unwrap();
    f.append(b"two").unwrap();
    f.sync().unwrap();
    sim.rename(p("x.new"), p("x")).unwrap();
    assert_eq!(&sim.map(p("x")).unwrap()[..], b"two");
    assert_eq!(&sim.durable_image().map(p("x")).unwrap()[..], b"one");
    sim.sync_dir(p("")).unwrap();
    assert_eq!(&sim.durable_image().map(p("x")).unwrap()[..], b"two");
}

#[test]
fn power_loss_images_keep_a_subset_of_unsynced_writes_in_order() {
    let sim = SimStorage::new();
    let mut f = sim.open_append(p("f")).unwrap();
    f.append(b"base").unwrap();
    f.sync().unwrap();
    sim.sync_dir(p("")).unwrap();
    f.append(b"AAAA").unwrap();
    f.append(b"BBBB").unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..400 {
        let data = sim.power_loss_image(&mut rng).map(p("f")).unwrap().to_vec();
        assert!(data.starts_with(b"base"), "synced bytes always survive");
        assert!(data.len() <= 12);
        seen.insert(data);
    }
    for expected in [
        &b"base"[..],
        b"baseAAAA",
        b"base\0\0\0\0BBBB",
        b"baseAAAABBBB",
    ] {
        assert!(seen.contains(expected), "{:?} never drawn", expected);
    }
    assert!(
        seen.iter().any(|d| d.len() > 4 && d.len() < 8),
        "a torn append"
    );
}

#[test]
fn a_failed_sync_loses_the_writes_it_covered_even_if_a_later_sync_succeeds() {
    let sim = SimStorage::new();
    let mut f = sim.open_append(p("f")).unwrap();
    sim.sync_dir(p("")).unwrap();
    f.append(b"data").unwrap();
    let next = sim.plan().ops();
    sim.plan().fail_at(next, Fault::Eio, false);
    assert!(f.sync().is_err());
    f.sync().unwrap();
    assert_eq!(&sim.map(p("f")).unwrap()[..], b"data", "still visible");
    assert_eq!(
        &sim.durable_image().map(p("f")).unwrap()[..],
        b"",
        "never durable"
    );
}

#[test]
fn a_crash_freezes_the_disk_at_the_chosen_step() {
    let sim = SimStorage::new();
    sim.crash_after(2);
    let mut f = sim.open_append(p("f")).unwrap(); // step 1: create
    f.append(b"a").unwrap(); // step 2
    assert!(f.append(b"b").is_err());
    assert!(sim.is_crashed());
    assert!(sim.map(p("f")).is_err(), "a dead process does nothing more");
    assert_eq!(&sim.process_crash_image().map(p("f")).unwrap()[..], b"a");
}

#[test]
fn writes_past_the_capacity_fail_with_enospc_and_change_nothing() {
    let sim = SimStorage::new();
    sim.set_capacity(Some(6));
    let mut f = sim.open_append(p("f")).unwrap();
    f.append(b"1234").unwrap();
    let err = f.append(b"567").unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(sim.len(p("f")).unwrap(), 4);
}

#[test]
fn locks_are_exclusive_per_guard() {
    let sim = SimStorage::new();
    let held = sim.try_lock(p("LOCK")).unwrap();
    assert!(matches!(sim.try_lock(p("LOCK")), Err(Error::Locked { .. })));
    drop(held);
    let _shared = sim.lock_shared(p("gate")).unwrap();
    let _again = sim.lock_shared(p("gate")).unwrap();
    assert!(sim.try_lock(p("gate")).is_err());
}
