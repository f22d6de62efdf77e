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

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{read_all_canonical, write_history};
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::aws::AmazonS3Builder;
use reeldb::storage::Storage;
use reeldb::{Error, Store};

/// A moto S3 server with one bucket, `bkt`, stopped when dropped.
struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl Moto {
    /// Starts one, or `None` (having said so) when no Python with moto is configured.
    fn start() -> Option<Moto> {
        let Some(python) = std::env::var_os("REELDB_MOTO_PYTHON") else {
            assert!(
                std::env::var_os("REELDB_REQUIRE_MOTO").is_none(),
                "REELDB_REQUIRE_MOTO is set but REELDB_MOTO_PYTHON is not"
            );
            println!("s3: skipped, REELDB_MOTO_PYTHON names no Python with moto[server]");
            return None;
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testkit/moto_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("bkt")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("moto_server.py printed {line:?}"));
        let stdin = child.stdin.take();
        Some(Moto { child, stdin, port })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Storage options for a store on this server.
    fn options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", self.endpoint().as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
            ("client_max_retries", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same, as the environment of a `reel` process.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("REELDB_LOCK_TTL", "2".into()),
        ]
    }

    /// `ObjectStorage` on `prefix` of the bucket, as a store's own would be.
    fn storage(&self, prefix: &str) -> ObjectStorage {
        let s3 = AmazonS3Builder::new()
            .with_bucket_name("bkt")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        ObjectStorage::new(Arc::new(s3), prefix).unwrap()
    }
}

impl Drop for Moto {
    /// Closing its standard input ends it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
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
                    let (storage, barrier, path) = (moto.storage(""), barrier.clone(), &path);
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
    let storage = moto.storage("quiet");
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
