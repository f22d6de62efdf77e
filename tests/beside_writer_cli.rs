//! `reel compact` in a loop beside a writer that keeps committing: its own test binary,
//! because a child process inherits every lock file descriptor open at the moment it is
//! spawned (until it execs), which would make lock assertions in parallel tests flaky.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::beside::{Model, commit_round, expected, options, scan};
use reeldb::{Store, VersionKind};

fn reel_compact(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reel"))
        .arg("compact")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn a_writer_commits_200_versions_while_reel_compact_runs_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::create(&path).unwrap();
    // The writer opens first: a `reel compact` that found no writer open would take the
    // writer lock for its log cleaning's copy.
    let mut w = store.writer_with(options()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let compactor = {
        let (done, finished, path) = (done.clone(), finished.clone(), path.clone());
        std::thread::spawn(move || {
            let mut runs = Vec::new();
            while !done.load(Ordering::SeqCst) {
                runs.push(reel_compact(&path));
                finished.fetch_add(1, Ordering::SeqCst);
            }
            runs
        })
    };
    let mut model = Model::new();
    let mut models = Vec::new();
    for round in 0..200 {
        let v = commit_round(&mut w, &mut model, round);
        assert_eq!(v, round + 1);
        models.push(model.clone());
        // Every 20 commits, let a compaction run finish meanwhile, so runs and commits
        // interleave however fast either is.
        if round % 20 == 19 {
            let seen = finished.load(Ordering::SeqCst);
            while finished.load(Ordering::SeqCst) == seen {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    let runs = compactor.join().unwrap();
    assert!(runs.len() >= 10, "{} runs", runs.len());
    for out in &runs {
        assert!(
            out.status.success(),
            "reel compact failed beside the writer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("a writer is open"),
            "the skipped copy is reported: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The writer goes on from where it was, after every swap the compactions made.
    let v = commit_round(&mut w, &mut model, 200);
    models.push(model.clone());
    assert_eq!(v, 201);
    drop(w);
    let kinds: Vec<VersionKind> = store.versions().unwrap().iter().map(|i| i.kind).collect();
    assert!(
        kinds.contains(&VersionKind::BFrame),
        "compaction did its work beside the writer"
    );
    for (i, m) in models.iter().enumerate() {
        assert_eq!(scan(&store, i as u64 + 1), expected(m), "v{}", i + 1);
    }
    // With the writer closed, one more run also copies the packs; nothing changes.
    let out = reel_compact(&path);
    assert!(out.status.success());
    let reopened = Store::open(&path).unwrap();
    for (i, m) in models.iter().enumerate() {
        assert_eq!(scan(&reopened, i as u64 + 1), expected(m), "v{}", i + 1);
    }
    let latest = reopened.latest_version().unwrap();
    assert!(
        reopened
            .verify(1..=latest, &mut |_| {})
            .unwrap()
            .is_intact()
    );
}
