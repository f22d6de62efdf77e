//! Disk full on a real file system: the store lives on a small tmpfs that a ballast file
//! fills before each operation, leaving a different few pages free each time, so commits,
//! keyframes, compactions and log cleanings run out of space at many different points. Each
//! must fail with an error that says so and leave nothing behind; once the ballast is gone
//! the store reopens with every acknowledged version exactly as written, and work goes on.
//!
//! Mounting a tmpfs needs root. Without it the test says so and passes, unless
//! `REELDB_REQUIRE_TMPFS` is set (`.ci/run` sets it when it runs as root), so CI proves it ran.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::workload::{self, Cursor, Depth, Model, Op, check_promise};
use reeldb::storage::{LocalStorage, Storage};
use reeldb::{Error, Store};

/// A tmpfs of a fixed size, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        status.is_ok_and(|s| s.success()).then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// True when `e`, or an error it wraps, is the OS saying the disk is full.
fn is_disk_full(e: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(28))
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The kind of file an I/O error message names ("I/O error on packs/00000003.pack: ...").
fn file_kind(message: &str) -> String {
    let file = message
        .split("I/O error on ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("?");
    match file.split('/').next() {
        Some(dir @ ("packs" | "overlays" | "leases")) => format!("{dir}/"),
        _ => file.to_string(),
    }
}

/// Fills the file system holding `ballast` to the last byte, then frees `pages` 4 KiB pages.
fn fill_leaving(ballast: &Path, pages: u64) {
    let mut f = std::fs::File::create(ballast).unwrap();
    for chunk in [1 << 16, 4096, 512, 1] {
        let buf = vec![0x5Au8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(pages * 4096)).unwrap();
    f.sync_all().unwrap();
}

/// Commits big enough to need many pages: a 3,000-row keyframe, then 400 upserts, 20
/// deletes and 3 patches a round, a keyframe every sixth round, a compaction every fifth and a cleaning
/// every ninth.
fn operations() -> Vec<Op> {
    let mut ops = vec![Op::Commit {
        upsert: (0..3000).map(|i| (i, 0)).collect(),
        delete: vec![],
        patch: vec![],
        keyframe: true,
    }];
    let base_of = |round: u64| (round as i64 * 613) % 2500;
    let deletes_of = |round: u64| -> Vec<i64> {
        (0..20)
            .map(|i| (base_of(round) + 450 + i * 7) % 3000)
            .collect()
    };
    // Patched keys must exist: keys no round deletes, which the first commit writes.
    let deleted: std::collections::BTreeSet<i64> = (1..=90).flat_map(deletes_of).collect();
    let kept: Vec<i64> = (0..3000).filter(|k| !deleted.contains(k)).collect();
    assert!(kept.len() > 100, "{} keys are never deleted", kept.len());
    for round in 1..=90u64 {
        let base = base_of(round);
        let upserted = base..base + 400;
        ops.push(Op::Commit {
            upsert: upserted.clone().map(|i| (i, round)).collect(),
            delete: deletes_of(round),
            patch: (0..kept.len())
                .map(|j| kept[(round as usize * 7 + j * 11) % kept.len()])
                .filter(|k| !upserted.contains(k))
                .take(3)
                .map(|k| (k, round))
                .collect(),
            keyframe: round % 6 == 0,
        });
        if round % 5 == 0 {
            ops.push(Op::Compact);
        }
        if round % 9 == 0 {
            ops.push(Op::Clean);
        }
    }
    ops
}

/// Opens a writer on `path` and runs `op`.
fn run(path: &Path, op: &Op) -> Result<(), Error> {
    let store = Store::open(path)?;
    let mut writer = store.writer_with(workload::writer_options())?;
    workload::apply(&mut writer, op)
}

/// The store at `path` holds exactly `model` (every version read).
fn check(path: &Path, model: &Model) -> Result<(), String> {
    let cursor = Cursor {
        created: true,
        acked: model.clone(),
        in_flight: None,
    };
    let depth = Depth {
        every_version: true,
        recover: false,
        seed: 0,
    };
    check_promise(
        Arc::new(LocalStorage::new(path)) as Arc<dyn Storage>,
        &cursor,
        depth,
    )
}

#[test]
fn a_full_disk_fails_commits_and_compactions_cleanly_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("8m") else {
        assert!(
            std::env::var_os("REELDB_REQUIRE_TMPFS").is_none(),
            "REELDB_REQUIRE_TMPFS is set but a tmpfs could not be mounted"
        );
        println!("disk full: skipped, mounting a tmpfs needs root");
        return;
    };
    let path: PathBuf = fs.path().join("store");
    let ballast = fs.path().join("ballast");
    Store::create(&path).unwrap();
    let mut model = Model::default();
    let (mut hits, mut hits_in_maintenance, mut done) = (0u32, 0u32, 0u32);
    let mut rng = fastrand::Rng::with_seed(28);
    let mut where_full = std::collections::BTreeSet::new();
    for (i, op) in operations().iter().enumerate() {
        // Mostly a few pages, sometimes none or one or two (encoded blocks are small, so
        // the catalog's appends are where such a disk fills), sometimes plenty (so the store
        // keeps growing).
        let pages = match rng.u32(0..10) {
            0 => 0,
            1 => 64,
            2 | 3 => rng.u64(1..3),
            _ => rng.u64(1..24),
        };
        fill_leaving(&ballast, pages);
        match run(&path, op) {
            Ok(()) => {
                model = model.after(op);
                done += 1;
            }
            Err(e) => {
                assert!(is_disk_full(&e), "operation {i} ({op:?}): {e}");
                hits += 1;
                hits_in_maintenance += u32::from(!matches!(op, Op::Commit { .. }));
                where_full.insert(file_kind(&e.to_string()));
            }
        }
        // The failed operation left nothing visible, even before space is freed.
        std::fs::remove_file(&ballast).unwrap();
        if let Err(v) = check(&path, &model) {
            panic!(
                "after operation {i} ({}) with {pages} pages free: {v}",
                op.name()
            );
        }
        // What failed for lack of space succeeds once there is space.
        if model.latest() == 0 {
            run(&path, op).unwrap();
            model = model.after(op);
        }
    }
    // With space again, everything goes on: a commit, a compaction, a cleaning.
    for op in [operations()[1].clone(), Op::Compact, Op::Clean] {
        run(&path, &op).unwrap();
        model = model.after(&op);
    }
    check(&path, &model).unwrap();
    println!(
        "disk full: {hits} operations failed with ENOSPC ({hits_in_maintenance} compactions or \
         cleanings; writing {where_full:?}), {done} succeeded in the space left, 0 violations; \
         {} versions check",
        model.latest()
    );
    assert!(
        where_full.len() >= 3,
        "the disk filled in too few places: {where_full:?}"
    );
    assert!(hits >= 10, "the disk filled too rarely: {hits} hits");
    assert!(
        hits_in_maintenance >= 1,
        "no compaction or cleaning ran out of space"
    );
}
