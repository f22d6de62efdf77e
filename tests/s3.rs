//! Stores on a real S3 API: a moto server on loopback (`testkit/moto_server.py`, which
//! serves one request at a time so that conditional puts are serialized as S3 serializes
//! them), started by each test on a free port and stopped when it ends.
//!
//! The server needs a Python with `moto[server]`, named by `REELDB_MOTO_PYTHON`. Without it
//! each test says so and passes, unless `REELDB_REQUIRE_MOTO` is set (`.ci/run` sets both),
//! so CI proves they ran.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{read_all_canonical, write_history};
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::aws::AmazonS3Builder;
use reeldb::storage::Storage;
use reeldb::{Error, Store};
use reeldb_testkit::MotoServer as Moto;

/// `ObjectStorage` on `prefix` of the server's bucket, as a store's own would be.
fn storage(moto: &Moto, prefix: &str) -> ObjectStorage {
    storage_at(&moto.endpoint(), prefix)
}

/// `ObjectStorage` on `prefix` of the bucket of the server at `endpoint`.
fn storage_at(endpoint: &str, prefix: &str) -> ObjectStorage {
    let s3 = AmazonS3Builder::new()
        .with_bucket_name("bkt")
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    ObjectStorage::new(Arc::new(s3), prefix).unwrap()
}

/// Runs `reel` with the server's environment; returns (exit code, stdout, stderr).
fn reel(moto: &Moto, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(args)
        .envs(moto.env())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_store_made_with_the_cli_on_s3_reads_the_same_through_the_library() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let csv = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let first = csv("a.csv", "id,name\n1,a\n2,b\n");
    let second = csv("b.csv", "id,name\n3,c\n");
    let url = "s3://bkt/stores/cli";
    for args in [
        vec!["init", url],
        vec!["create", "--key", "id", "--schema-from", &first, url, "t"],
        vec!["commit", url, "--upsert", &format!("t={first}")],
        vec!["commit", url, "--upsert", &format!("t={second}")],
    ] {
        let (code, _, err) = reel(&moto, &args);
        assert_eq!(code, Some(0), "reel {args:?}: {err}");
    }
    let (code, out, _) = reel(&moto, &["get", url, "t", "3"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("| 3  | c    |"), "{out}");
    let store = Store::open_url(url, &moto.options()).unwrap();
    assert_eq!(store.latest_version().unwrap(), 3);
    let t = store.snapshot(2).unwrap().table("t").unwrap();
    assert_eq!(t.num_rows(), 2);
    assert!(t.get(3i64).unwrap().is_none(), "3 came at version 3");
    assert!(store.verify(1..=3, &mut |_| {}).unwrap().is_intact());
}

#[test]
fn writers_in_processes_racing_on_s3_each_commit_a_version_of_their_own_or_are_refused() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = "s3://bkt/race";
    let file = |name: &str| {
        let p = dir.path().join(format!("{name}.csv"));
        std::fs::write(&p, format!("id,name\n1,{name}\n")).unwrap();
        p.display().to_string()
    };
    let schema = file("schema");
    for args in [
        vec!["init", url],
        vec!["create", "--key", "id", "--schema-from", &schema, url, "t"],
    ] {
        let (code, _, err) = reel(&moto, &args);
        assert_eq!(code, Some(0), "reel {args:?}: {err}");
    }
    let (mut committed, mut refused) = (Vec::new(), 0);
    for round in 0..3 {
        let racers: Vec<(String, Child)> = (0..3)
            .map(|i| {
                let name = format!("r{round}w{i}");
                let child = Command::new(env!("CARGO_BIN_EXE_reel"))
                    .args(["commit", url, "--upsert", &format!("t={}", file(&name))])
                    .envs(moto.env())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (name, child)
            })
            .collect();
        for (name, child) in racers {
            let out = child.wait_with_output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            );
            if out.status.success() {
                committed.push((stdout.trim().parse::<u64>().unwrap(), name));
            } else {
                assert!(
                    stderr.contains("another writer holds the lock")
                        || stderr.contains("lost the store's lock"),
                    "{stderr}"
                );
                refused += 1;
            }
        }
    }
    println!("committed {committed:?}, refused {refused}");
    committed.sort();
    let store = Store::open_url(url, &moto.options()).unwrap();
    assert_eq!(store.latest_version().unwrap(), 1 + committed.len() as u64);
    for (i, (version, name)) in committed.iter().enumerate() {
        assert_eq!(*version, 2 + i as u64, "versions are distinct and in order");
        let row = store
            .snapshot(*version)
            .unwrap()
            .table("t")
            .unwrap()
            .get(1i64);
        let value = arrow::util::display::array_value_to_string(row.unwrap().unwrap().column(1), 0);
        assert_eq!(&value.unwrap(), name, "version {version} is its writer's");
    }
    assert!(
        store
            .verify(1..=1 + committed.len() as u64, &mut |_| {})
            .unwrap()
            .is_intact()
    );
}

#[test]
fn a_library_store_on_s3_reads_at_every_version_from_a_new_handle() {
    let Some(moto) = Moto::start() else { return };
    let url = "s3://bkt/lib";
    let store = Store::create_url(url, &moto.options()).unwrap();
    write_history(&store);
    let written = read_all_canonical(&store);
    let reader = Store::open_url(url, &moto.options()).unwrap();
    assert_eq!(read_all_canonical(&reader), written);
}

#[test]
fn of_appenders_racing_for_one_segment_on_s3_exactly_one_writes_it() {
    let Some(moto) = Moto::start() else { return };
    let racers = 6;
    for round in 0..5 {
        let path = format!("race/versions-{round}.idx");
        let barrier = Arc::new(Barrier::new(racers));
        let outcomes: Vec<Result<(), reeldb_keyframe::Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..racers)
                .map(|i| {
                    let (storage, barrier, path) = (storage(&moto, ""), barrier.clone(), &path);
                    s.spawn(move || {
                        let mut f = storage.open_append(Path::new(path)).unwrap();
                        f.append(format!("writer {i}").as_bytes()).unwrap();
                        barrier.wait();
                        f.sync()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .filter_map(|o| o.as_ref().err())
                .all(|e| matches!(e, reeldb_keyframe::Error::Conflict { .. })),
            "{outcomes:?}"
        );
    }
}

#[test]
fn a_second_read_through_a_warm_local_cache_gets_no_data_object_from_s3() {
    let Some(moto) = Moto::start() else { return };
    let url = "s3://bkt/cached";
    let store = Store::create_url(url, &moto.options()).unwrap();
    write_history(&store);
    let cache = tempfile::tempdir().unwrap();
    let read = || {
        let storage = storage(&moto, "cached")
            .with_cache(cache.path(), 64 << 20)
            .unwrap();
        let reader = Store::open_in(Arc::new(storage.clone()), Path::new(url)).unwrap();
        (read_all_canonical(&reader), storage.requests())
    };
    let (cold, cold_asked) = read();
    let (warm, warm_asked) = read();
    assert_eq!(warm, cold);
    assert_eq!(cold, read_all_canonical(&store));
    assert!(cold_asked.gets > 0, "{cold_asked:?}");
    // STORE and the four versions' heads are got at every open (small, and a head may be
    // written again in place, so never cached); no data object is.
    assert_eq!(
        (warm_asked.gets, warm_asked.writes()),
        (1 + 4, 0),
        "{warm_asked:?}"
    );
    assert!(warm_asked.bytes_read < 8 << 10, "{warm_asked:?}");

    // The command line's --cache-dir: the same rows, cold and warm, from its own cache.
    let cli_cache = tempfile::tempdir().unwrap();
    let dir = cli_cache.path().display().to_string();
    let scan = || reel(&moto, &["--cache-dir", &dir, "scan", url, "orders"]);
    let (code, first, err) = scan();
    assert_eq!(code, Some(0), "{err}");
    assert!(std::fs::read_dir(cli_cache.path()).unwrap().count() > 0);
    assert_eq!(scan().1, first);
    // It configures object stores only.
    let local = tempfile::tempdir().unwrap();
    let (code, _, err) = reel(
        &moto,
        &[
            "--cache-dir",
            &dir,
            "init",
            &local.path().display().to_string(),
        ],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("cache_dir"), "{err}");
}

#[test]
fn readers_of_a_store_on_s3_write_nothing() {
    let Some(moto) = Moto::start() else { return };
    let url = "s3://bkt/quiet";
    let store = Store::create_url(url, &moto.options()).unwrap();
    write_history(&store);
    let everything = |s: &ObjectStorage| {
        let mut names = Vec::new();
        let mut dirs = vec![std::path::PathBuf::new()];
        while let Some(d) = dirs.pop() {
            for n in s.list(&d).unwrap() {
                let p = d.join(&n);
                if s.is_dir(&p).unwrap() {
                    dirs.push(p);
                } else {
                    names.push((p.display().to_string(), s.len(&p).unwrap()));
                }
            }
        }
        names.sort();
        names
    };
    let storage = storage(&moto, "quiet");
    let before = everything(&storage);
    let reader = Store::open_in(Arc::new(storage.clone()), Path::new(url)).unwrap();
    let t = reader.snapshot(1).unwrap().table("orders").unwrap();
    assert!(t.get(7i64).unwrap().is_some());
    read_all_canonical(&reader);
    let asked = storage.requests();
    assert_eq!(asked.writes(), 0, "{asked:?}");
    assert_eq!(everything(&storage), before);
}

#[test]
fn a_missing_bucket_or_a_silent_endpoint_is_unreachable_naming_the_url() {
    let Some(moto) = Moto::start() else { return };
    let mut options = moto.options();
    let missing = Store::create_url("s3://no-such-bucket/p", &options);
    assert!(
        matches!(&missing, Err(Error::StorageUnreachable { url, .. }) if url == "s3://no-such-bucket/p"),
        "{missing:?}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for (k, v) in options.iter_mut() {
        match k.as_str() {
            "endpoint" => *v = format!("http://127.0.0.1:{port}"),
            "client_max_retries" => *v = "0".into(),
            _ => {}
        }
    }
    let silent = Store::open_url("s3://bkt/p", &options);
    assert!(
        matches!(&silent, Err(Error::StorageUnreachable { url, .. }) if url == "s3://bkt/p"),
        "{silent:?}"
    );
    let (code, _, err) = reel(&moto, &["versions", "s3://no-such-bucket/p"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("s3://no-such-bucket/p"), "{err}");
}

#[test]
fn writers_killed_mid_commit_leave_every_version_whole() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = "s3://bkt/killed";
    let file = |round: usize| {
        let p = dir.path().join(format!("r{round}.csv"));
        let mut body = String::from("id,name\n");
        for i in 0..60_000 {
            body.push_str(&format!("{i},name-{round}-{}\n", i * 7919 % 10_007));
        }
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let first = file(0);
    let mut options = moto.options();
    options.push(("lock_ttl".into(), "2".into()));
    for args in [
        vec!["init", url],
        vec![
            "create",
            "--key",
            "id",
            "--schema-from",
            first.as_str(),
            url,
            "t",
        ],
    ] {
        let (code, _, err) = reel(&moto, &args);
        assert_eq!(code, Some(0), "reel {args:?}: {err}");
    }
    // A commit of 60,000 rows takes about 0.3 s here: the kills land before, during and after
    // its uploads.
    let (mut outcomes, mut content) = (Vec::new(), 0);
    for (round, delay_ms) in [30u64, 80, 130, 180, 230, 280, 330].into_iter().enumerate() {
        let before = Store::open_url(url, &options).unwrap();
        let was = before.latest_version().unwrap();
        let mut writer = Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(["commit", url, "--upsert", &format!("t={}", file(round + 1))])
            .envs(moto.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = writer.kill();
        writer.wait().unwrap();
        let store = Store::open_url(url, &options).unwrap();
        let latest = store.latest_version().unwrap();
        assert!(latest == was || latest == was + 1, "{was} -> {latest}");
        if latest > was {
            content = round + 1;
        }
        if latest > 1 {
            let t = store.snapshot(latest).unwrap().table("t").unwrap();
            assert_eq!(t.num_rows(), 60_000, "a commit is whole or absent");
            let row = t.get(5i64).unwrap().unwrap();
            let name = arrow::util::display::array_value_to_string(row.column(1), 0).unwrap();
            assert!(name.starts_with(&format!("name-{content}-")), "{name}");
        }
        for v in 1..=latest {
            let t = store.snapshot(v).unwrap().table("t").unwrap();
            let rows: usize = t
                .scan(&reeldb::ScanOptions::new())
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert_eq!(rows as u64, t.num_rows(), "version {v} reads whole");
        }
        // A writer killed holding the store's lock leaves it to expire: a lease (2 s here)
        // after its last renewal the next writer takes it over and settles what the dead
        // one left half-written.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lock = "free";
        let writer = loop {
            match store.writer() {
                Ok(w) => break w,
                Err(Error::WriterLocked(_)) if Instant::now() < deadline => {
                    lock = "expired";
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("{e}"),
            }
        };
        drop(writer);
        let report = store.verify(1..=latest.max(1), &mut |_| {}).unwrap();
        assert!(report.is_intact(), "{report:?}");
        outcomes.push((delay_ms, latest > was, lock));
    }
    println!("kills (delay ms, committed, lock): {outcomes:?}");
    // Nothing lost: a writer that is not killed commits the next version whole.
    let was = Store::open_url(url, &options)
        .unwrap()
        .latest_version()
        .unwrap();
    let (code, _, err) = reel(&moto, &["commit", url, "--upsert", &format!("t={first}")]);
    assert_eq!(code, Some(0), "{err}");
    let store = Store::open_url(url, &options).unwrap();
    assert_eq!(store.latest_version().unwrap(), was + 1);
    let row = store
        .snapshot(was + 1)
        .unwrap()
        .table("t")
        .unwrap()
        .get(5i64)
        .unwrap();
    let name = arrow::util::display::array_value_to_string(row.unwrap().column(1), 0).unwrap();
    assert!(name.starts_with("name-0-"), "{name}");
}

/// A small `reel demo` store (11 versions of two tables) in `dir`, on local disk.
fn demo_store(moto: &Moto, dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    let src_arg = src.display().to_string();
    let args = [
        "demo",
        "--orders",
        "20000",
        "--batches",
        "10",
        "--events",
        "2000",
    ];
    let (code, _, err) = reel(moto, &[&args[..], &[&src_arg]].concat());
    assert_eq!(code, Some(0), "{err}");
    src
}

/// Run as a child by the sync kill test: syncs `REELDB_SYNC_SRC` into `REELDB_SYNC_PREFIX` of
/// the server at `REELDB_SYNC_ENDPOINT`, dying at `REELDB_KILL_AT`.
#[test]
fn child_syncs_until_its_kill_point() {
    let Ok(src) = std::env::var("REELDB_SYNC_SRC") else {
        return;
    };
    let var = |name| std::env::var(name).unwrap();
    let dst = reeldb_testkit::FaultyStorage::new(
        storage_at(&var("REELDB_SYNC_ENDPOINT"), &var("REELDB_SYNC_PREFIX"))
            .with_lock_ttl(Duration::from_secs(2)),
    );
    dst.plan()
        .kill_at(reeldb_testkit::KillPoint::parse(&var("REELDB_KILL_AT")).unwrap());
    let store = Store::open(&src).unwrap();
    store
        .sync_into(Arc::new(dst), Path::new("s3://bkt/killed"), false)
        .unwrap();
}

#[test]
fn a_sync_to_s3_killed_at_each_step_is_finished_by_the_next_and_syncs_back_the_same() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = demo_store(&moto, dir.path());
    let src_arg = src.display().to_string();
    let scan = |at: &str, table: &str| reel(&moto, &["scan", at, table, "--format", "csv"]).1;
    let steps = [
        "sync:overlays:1",
        "sync:packs:1",
        "sync:catalog/records:1",
        "write:catalog/versions.idx:1",
        "write:STORE:1",
        "write:SYNC:2",
    ];
    for (n, step) in steps.iter().enumerate() {
        let prefix = format!("mirrors/{n}");
        let url = format!("s3://bkt/{prefix}");
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_syncs_until_its_kill_point", "--nocapture"])
            .env("REELDB_SYNC_SRC", &src_arg)
            .env("REELDB_SYNC_ENDPOINT", moto.endpoint())
            .env("REELDB_SYNC_PREFIX", &prefix)
            .env("REELDB_KILL_AT", step)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the sync did not die at {step}");
        // The killed sync's locks are leases (2 s here): the next sync waits them out.
        let started = Instant::now();
        let (code, out, err) = loop {
            let (code, out, err) = reel(&moto, &["sync", &src_arg, &url, "--verify"]);
            let locked = err.contains("holds the lock") || err.contains("already running");
            if code == Some(0) || !locked || started.elapsed().as_secs() > 20 {
                break (code, out, err);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(code, Some(0), "after {step}: {out}{err}");
        assert!(
            out.contains("an unfinished sync resumed"),
            "after {step}: {out}"
        );
        assert!(out.contains("all intact"), "after {step}: {out}");
        assert_eq!(
            scan(&url, "orders"),
            scan(&src_arg, "orders"),
            "after {step}"
        );
    }
    let url = "s3://bkt/mirrors/0";
    let back = dir.path().join("back");
    let back_arg = back.display().to_string();
    let (code, out, err) = reel(&moto, &["sync", url, &back_arg, "--verify"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("fresh:"), "{out}");
    for table in ["orders", "accounts"] {
        assert_eq!(scan(&back_arg, table), scan(&src_arg, table), "{table}");
    }
    let (_, out, _) = reel(&moto, &["sync", &src_arg, url]);
    assert!(out.starts_with("up-to-date:"), "{out}");
}

#[test]
fn compact_and_expire_run_on_s3_and_what_they_retire_goes_after_the_retention() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = demo_store(&moto, dir.path());
    let src_arg = src.display().to_string();
    let url = "s3://bkt/maintained";
    let (code, out, err) = reel(&moto, &["sync", &src_arg, url]);
    assert_eq!(code, Some(0), "{out}{err}");
    let scan = |at: &str, table: &str, v: &str| {
        reel(
            &moto,
            &["scan", at, table, "--version", v, "--format", "csv"],
        )
        .1
    };
    let latest = Store::open(&src)
        .unwrap()
        .latest_version()
        .unwrap()
        .to_string();
    // Within the default retention (an hour) nothing is deleted.
    let (code, out, err) = reel(&moto, &["compact", url]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("kept until their retention passes"), "{out}");
    let (code, out, err) = reel(
        &moto,
        &["expire", url, "--keep-last", "3", "--retention", "0s"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("versions expired"), "{out}");
    assert!(
        out.contains("retired files:") && out.contains(" deleted"),
        "{out}"
    );
    let (code, out, err) = reel(&moto, &["verify", url]);
    assert_eq!(code, Some(0), "{out}{err}");
    for table in ["orders", "accounts"] {
        assert_eq!(
            scan(url, table, &latest),
            scan(&src_arg, table, &latest),
            "{table}"
        );
    }
    let (code, _, err) = reel(&moto, &["scan", url, "orders", "--version", "1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn a_store_on_s3_rewound_with_the_cli_reads_as_its_source_did_at_that_version() {
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = demo_store(&moto, dir.path());
    let src_arg = src.display().to_string();
    let url = "s3://bkt/rewound";
    let (code, out, err) = reel(&moto, &["sync", &src_arg, url]);
    assert_eq!(code, Some(0), "{out}{err}");
    let latest = Store::open(&src).unwrap().latest_version().unwrap();
    let to = (latest - 2).to_string();
    let scan = |at: &str, v: &str| {
        reel(
            &moto,
            &["scan", at, "orders", "--version", v, "--format", "csv"],
        )
    };

    let (code, out, err) = reel(&moto, &["rewind", url, "--to", &to]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = reel(&moto, &["verify", url]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, rows, err) = scan(url, &to);
    assert_eq!(code, Some(0), "{err}");
    assert!(rows.lines().count() > 1, "{rows}");
    assert_eq!(rows, scan(&src_arg, &to).1);
    let (code, _, err) = scan(url, &(latest - 1).to_string());
    assert_eq!(code, Some(1), "version {} is purged", latest - 1);
    assert!(err.contains("version"), "{err}");
    // What is left syncs back out whole.
    let copy = dir.path().join("copy").display().to_string();
    let (code, out, err) = reel(&moto, &["sync", url, &copy]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        Store::open(&copy).unwrap().latest_version().unwrap(),
        latest - 2
    );
    assert_eq!(scan(&copy, &to).1, rows);
}
