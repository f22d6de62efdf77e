//! Kill loops with readers racing: the test re-spawns itself as child writers, compactors,
//! cleaners and rewinders and kills each, either at a random moment (SIGKILL) or at a named
//! failpoint (the child aborts just before, say, the second sync of `catalog/versions.idx`).
//! After every kill the parent checks the promise against the model: the store opens at the
//! last acknowledged version or the one the killed child was making, every version reads back
//! exactly. Meanwhile reader processes scan random versions and compare them with what the
//! parent recorded; one of them is SIGKILLed now and then while it holds a version, and later
//! rewinds must not be held back by it. Commits upsert, delete and patch.
//!
//! `REELDB_KILL_STEPS` sets the number of killed operations (default 300).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use common::workload::{self, Cursor, Depth, Model, Op, check_promise};
use reeldb::storage::{LocalStorage, Storage};
use reeldb::{Error, ScanOptions, Store};
use reeldb_testkit::{FaultyStorage, KillPoint};

/// The failpoints, each before the first, second or third matching operation: the steps of a
/// commit (packs, node logs, the catalog record, the index entry that is the commit point) and
/// of maintenance (which rewrites index entries, cuts files back and removes packs).
const FAILPOINTS: &[&str] = &[
    "write:packs/",
    "sync:packs/",
    "write:overlays/",
    "sync:overlays/",
    "write:catalog/records.log",
    "sync:catalog/records.log",
    "write:catalog/versions.idx",
    "sync:catalog/versions.idx",
    "sync:",
];

/// The operation of step `step` on a store whose latest version is `latest`.
fn operation(step: u64, latest: u64) -> Op {
    match step % 8 {
        3 => Op::Compact,
        5 if latest > 3 => Op::Rewind(latest - 2),
        7 => Op::Clean,
        _ => {
            let base = (step as i64 * 37) % 110;
            // Deletes fall on (base + 60) % 120, never on keys 50..60, which version 1 writes
            // and so every version has: one of them is patched, unless this commit upserts it
            // (a key cannot be patched in the commit that writes it).
            let patched = 50 + step as i64 % 10;
            Op::Commit {
                upsert: (base..base + 6)
                    .chain([120 + (step as i64 % 40)])
                    .map(|i| (i, step))
                    .collect(),
                delete: vec![(base + 60) % 120],
                patch: match (base..base + 6).contains(&patched) {
                    true => vec![],
                    false => vec![(patched, step)],
                },
                keyframe: step % 10 == 4,
            }
        }
    }
}

fn kill_steps() -> u64 {
    std::env::var("REELDB_KILL_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Run as a child by the kill loop: runs one operation (`REELDB_KILL_STEP` with the latest
/// version `REELDB_KILL_LATEST`), dying at `REELDB_KILL_AT` if set. Prints `<done>` when it
/// finished, `<refused>` when a rewind stayed held back by readers.
#[test]
fn child_runs_one_operation() {
    let Ok(path) = std::env::var("REELDB_KILL_STORE") else {
        return;
    };
    let var = |name| std::env::var(name).unwrap().parse::<u64>().unwrap();
    let op = operation(var("REELDB_KILL_STEP"), var("REELDB_KILL_LATEST"));
    // The parent times its random kill from here.
    println!("<open>");
    let storage = FaultyStorage::new(LocalStorage::new(&path));
    if let Ok(spec) = std::env::var("REELDB_KILL_AT") {
        storage.plan().kill_at(KillPoint::parse(&spec).unwrap());
    }
    let store = Store::open_in(Arc::new(storage) as Arc<dyn Storage>, Path::new(&path)).unwrap();
    let mut writer = store.writer_with(workload::writer_options()).unwrap();
    let started = Instant::now();
    loop {
        match workload::apply(&mut writer, &op) {
            Ok(()) => break println!("<done>"),
            // Readers hold versions only while they scan them: wait a little for them.
            Err(Error::VersionsInUse { .. }) if started.elapsed() < Duration::from_secs(3) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Error::VersionsInUse { .. }) => break println!("<refused>"),
            Err(e) => panic!("{op:?} failed: {e}"),
        }
    }
}

/// A digest of rows, however a scan split or ordered them.
fn digest(batches: &[RecordBatch]) -> String {
    let canonical = common::canonical(batches);
    let text = arrow::util::pretty::pretty_format_batches(&[canonical])
        .unwrap()
        .to_string();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// One line of the manifest the parent keeps for readers: a version, when it was committed
/// (which tells a version apart from one a rewind dropped and a later commit renumbered) and
/// the digest of its rows.
fn manifest_line(v: u64, committed_at: i64, digest: &str) -> String {
    format!("{v} {committed_at} {digest}")
}

/// Run as a child: reads random versions listed in `REELDB_KILL_MANIFEST` until stdin closes
/// or it is killed; prints `<bad ...>` for every problem at once and `<reads ok=N skipped=K>`
/// every ten reads and at the end.
#[test]
fn child_reads_random_versions_while_others_are_killed() {
    let (Ok(path), Ok(manifest)) = (
        std::env::var("REELDB_KILL_READ_STORE"),
        std::env::var("REELDB_KILL_MANIFEST"),
    ) else {
        return;
    };
    let stop = common::stop_when_stdin_closes();
    let store = Store::open(path).unwrap();
    let mut rng = fastrand::Rng::new();
    let (mut ok, mut skipped) = (0u64, 0u64);
    let bad = |what: String| println!("<bad {what}>");
    println!("<reading>");
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let lines: Vec<String> = std::fs::read_to_string(&manifest)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let Some(line) = (!lines.is_empty()).then(|| &lines[rng.usize(..lines.len())]) else {
            continue;
        };
        let mut parts = line.split(' ');
        let v: u64 = parts.next().unwrap().parse().unwrap();
        let at: i64 = parts.next().unwrap().parse().unwrap();
        let want = parts.next().unwrap();
        let snapshot = match store.snapshot(v) {
            Ok(s) => s,
            // Rewound away since the parent listed it.
            Err(Error::UnknownVersion { .. }) => {
                skipped += 1;
                continue;
            }
            Err(e) => {
                bad(format!("v{v}: {e}"));
                continue;
            }
        };
        if snapshot.info().committed_at.timestamp_micros() != at {
            // The same number, another version: the parent has not listed it yet.
            skipped += 1;
            continue;
        }
        let read = || -> Result<Vec<RecordBatch>, Error> {
            let t = snapshot.table("orders")?;
            t.scan(&ScanOptions::new())?.collect()
        };
        match read() {
            Ok(rows) if digest(&rows) == want => ok += 1,
            Ok(_) => bad(format!("v{v} reads wrong rows")),
            Err(e) => bad(format!("v{v}: {e}")),
        }
        if ok % 10 == 0 {
            println!("<reads ok={ok} skipped={skipped}>");
        }
    }
    println!("<reads ok={ok} skipped={skipped}>");
}

/// What a reader's output says: scans that matched, and every problem it reported.
fn parse_reads(text: &str) -> (u64, Vec<String>) {
    let ok = text
        .lines()
        .rev()
        .find_map(|l| l.split("<reads ok=").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let bad = text
        .lines()
        .filter(|l| l.contains("<bad "))
        .map(str::to_string)
        .collect();
    (ok, bad)
}

/// Rewrites the manifest with every version the store now holds (atomically: readers read it
/// at any moment), keeping lines of versions a rewind dropped (readers skip those).
fn update_manifest(
    store_path: &Path,
    manifest: &Path,
    model: &Model,
    lines: &mut BTreeSet<String>,
) {
    let store = Store::open(store_path).unwrap();
    for info in store.versions().unwrap() {
        let state = &model.history[info.version as usize - 1];
        let d = digest(std::slice::from_ref(&state.expected));
        lines.insert(manifest_line(
            info.version,
            info.committed_at.timestamp_micros(),
            &d,
        ));
    }
    let tmp = manifest.with_extension("tmp");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, manifest).unwrap();
}

#[test]
fn writers_compactors_and_rewinders_killed_anywhere_keep_the_promise_while_readers_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("s");
    let manifest = dir.path().join("manifest");
    let started = Instant::now();
    // Version 1, undisturbed.
    {
        let store = Store::create(&path).unwrap();
        let mut w = store.writer_with(workload::writer_options()).unwrap();
        workload::apply(&mut w, &workload::workload()[0]).unwrap();
    }
    let mut model = Model::default().after(&workload::workload()[0]);
    let mut lines = BTreeSet::new();
    update_manifest(&path, &manifest, &model, &mut lines);
    // Readers write their results to files (their stdout pipes are left unread).
    let reader_out = |i: usize| dir.path().join(format!("reader-{i}.out"));
    let start_reader = |i: usize| -> Child {
        let out = std::fs::File::create(reader_out(i)).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_reads_random_versions_while_others_are_killed",
                "--nocapture",
            ])
            .env("REELDB_KILL_READ_STORE", &path)
            .env("REELDB_KILL_MANIFEST", &manifest)
            .stdin(Stdio::piped())
            .stdout(out)
            .spawn()
            .unwrap();
        // Until it has started reading.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(reader_out(i))
            .unwrap_or_default()
            .contains("<reading>")
        {
            assert!(Instant::now() < deadline, "reader {i} never started");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("reader {i} exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    };
    let mut next_reader = 0;
    let mut readers: Vec<(usize, Child)> = (0..2)
        .map(|_| {
            next_reader += 1;
            (next_reader, start_reader(next_reader))
        })
        .collect();
    let (mut killed, mut at_failpoint, mut finished, mut refused, mut readers_killed) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut failpoints_hit = BTreeSet::new();
    let (mut reads_ok, mut read_problems) = (0u64, Vec::new());
    let mut rng = fastrand::Rng::with_seed(9);
    // How long each kind of operation typically takes, to spread random kills over it.
    let mut took: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    let mut violations = Vec::new();
    for step in 1..=kill_steps() {
        let latest = model.latest();
        let op = operation(step, latest);
        let failpoint = (step % 3 == 0).then(|| {
            let i = (step / 3) as usize;
            let name = FAILPOINTS[i % FAILPOINTS.len()];
            format!("{name}:{}", 1 + (i / FAILPOINTS.len()) % 3)
        });
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "child_runs_one_operation", "--nocapture"])
            .env("REELDB_KILL_STORE", &path)
            .env("REELDB_KILL_STEP", step.to_string())
            .env("REELDB_KILL_LATEST", latest.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(f) = &failpoint {
            command.env("REELDB_KILL_AT", f);
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        while stdout.read_line(&mut text).unwrap() > 0 && !text.contains("<open>") {}
        let opened = Instant::now();
        let typical = *took.entry(op.name()).or_insert(0.02);
        if failpoint.is_none() {
            // A random moment of the operation (from opening the store), as long as it
            // typically takes.
            std::thread::sleep(Duration::from_secs_f64(rng.f64() * typical * 1.2));
            let _ = child.kill();
        }
        stdout.read_to_string(&mut text).unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        if text.contains("<done>") {
            took.insert(
                op.name(),
                typical * 0.7 + opened.elapsed().as_secs_f64() * 0.3,
            );
        }
        let stdout = text;
        match status.signal() {
            Some(_) => {
                killed += 1;
                if let Some(f) = &failpoint {
                    at_failpoint += 1;
                    failpoints_hit.insert(f.rsplit_once(':').unwrap().0.to_string());
                }
            }
            None if stdout.contains("<done>") => finished += 1,
            None if stdout.contains("<refused>") => refused += 1,
            None => violations.push(format!("step {step} ({op:?}): the child failed: {stderr}")),
        }
        // The promise, on the disk as the child left it.
        let cursor = Cursor {
            created: true,
            acked: model.clone(),
            in_flight: Some(op.clone()),
        };
        let depth = Depth {
            every_version: true,
            recover: false,
            seed: step,
        };
        let storage = Arc::new(LocalStorage::new(&path)) as Arc<dyn Storage>;
        if let Err(v) = check_promise(storage, &cursor, depth) {
            violations.push(format!(
                "step {step} ({op:?}, failpoint {failpoint:?}): {v}"
            ));
            break;
        }
        let after = model.after(&op);
        let now = Store::open(&path).unwrap().latest_version().unwrap();
        if now == after.latest() && matches!(op, Op::Commit { .. } | Op::Rewind(_)) {
            model = after;
        }
        update_manifest(&path, &manifest, &model, &mut lines);
        // Now and then a reader dies while it holds a version; a new one takes its place.
        if step % 10 == 0 {
            let (i, mut victim) = readers.remove(0);
            victim.kill().unwrap();
            victim.wait().unwrap();
            readers_killed += 1;
            let (ok, bad) = parse_reads(&std::fs::read_to_string(reader_out(i)).unwrap());
            reads_ok += ok;
            read_problems.extend(bad);
            next_reader += 1;
            readers.push((next_reader, start_reader(next_reader)));
        }
    }
    for (i, mut child) in readers {
        drop(child.stdin.take());
        child.wait().unwrap();
        let (ok, bad) = parse_reads(&std::fs::read_to_string(reader_out(i)).unwrap());
        reads_ok += ok;
        read_problems.extend(bad);
    }
    println!(
        "kill loop: {} operations, {killed} killed ({at_failpoint} at failpoints {:?}, the rest \
         at random moments), {finished} finished first, {refused} rewinds held back by readers; \
         {readers_killed} readers killed while reading; {reads_ok} reader scans checked; {} \
         violations, {:.1} s",
        kill_steps(),
        failpoints_hit,
        violations.len() + read_problems.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(read_problems.is_empty(), "{read_problems:#?}");
    assert!(killed >= kill_steps() / 3, "too few kills landed: {killed}");
    assert!(reads_ok > 0, "the readers checked nothing");
    assert!(
        model.latest() > 10,
        "the store grew despite the kills: {}",
        model.latest()
    );
}
