//! Requests to an object store per open, per full scan, per 1,000 gets and per get, each
//! from a fresh handle (cold: nothing listed or decoded yet) and again on the same handle
//! (warm), with the times beside the same store on local disk, in one run.
//!
//! `cargo bench --bench object_store` (`REELDB_BENCH_ROWS`, default 200,000 rows: the
//! harness's table shape, 10 versions of 1% updates). It runs on object_store's in-memory
//! store (request counts are what S3 would be asked, `ObjectStorage::requests`; times have no
//! network in them) and then, when `REELDB_MOTO_PYTHON` names a Python with `moto[server]`,
//! on a moto S3 server on loopback. Last, per version, a new handle reads through a local
//! cache an earlier handle filled (`ObjectStorage::with_cache`), beside a new local handle.
//! Then, on each, `reel sync` (`Store::sync_into`) of a store of the same history into an
//! empty prefix, again, after one more version, and back to local disk. Last, the requests
//! of opens and of commits of a small table at 10, 1,000 and 10,000 versions
//! (`REELDB_BENCH_VERSIONS`; in-memory store), and of opens of a copy of 100,000 versions
//! (`REELDB_BENCH_OPEN_VERSIONS`; committed locally, synced into an in-memory store).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use reeldb::object_storage::object_store::ObjectStore;
use reeldb::object_storage::object_store::aws::AmazonS3Builder;
use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::object_storage::{ObjectStorage, Requests};
use reeldb::{ScanOptions, Store};
use reeldb_testkit::{BUCKET, MotoServer};
use support::{Rng, batch, get_all, new_row, probe_keys};

const VERSIONS: i64 = 10;

/// Writes the same history to `store`: `rows` rows, then `VERSIONS - 1` versions updating 1%.
fn write(store: &Store, rows: usize) -> arrow::array::RecordBatch {
    let mut rng = Rng(11);
    let mut state: Vec<_> = (0..rows).map(|_| new_row(&mut rng, 0, 100_000)).collect();
    let ids: Vec<i64> = (0..rows as i64).collect();
    let mut w = store.writer().unwrap();
    let mut tx = w.begin();
    tx.create_table("t", support::schema(), &["id"]).unwrap();
    tx.upsert("t", batch(&ids, &state.iter().collect::<Vec<_>>()))
        .unwrap();
    tx.commit().unwrap();
    for v in 1..VERSIONS {
        let mut changed: Vec<i64> = (0..rows / 100)
            .map(|_| rng.below(rows as u64) as i64)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for &id in &changed {
            state[id as usize] = new_row(&mut rng, v, 100_000);
        }
        let rows: Vec<_> = changed.iter().map(|&id| &state[id as usize]).collect();
        let mut tx = w.begin();
        tx.upsert("t", batch(&changed, &rows)).unwrap();
        tx.commit().unwrap();
    }
    batch(&ids, &state.iter().collect::<Vec<_>>())
}

/// One measured step: what it asked of the object store and how long it took there and on
/// local disk.
fn report(step: &str, requests: Requests, object_s: f64, local_s: f64) {
    println!(
        "| {step} | {} | {} | {:.1} KiB | {} | {:.2} ms | {:.2} ms |",
        requests.lists,
        requests.gets,
        requests.bytes_read as f64 / 1024.0,
        requests.writes(),
        object_s * 1e3,
        local_s * 1e3
    );
}

/// Full scan of `table`: the rows.
fn scan(table: &reeldb::Table) -> usize {
    table
        .scan(&ScanOptions::new())
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

/// Every step on the store under `prefix` of `objects` (written here) beside `local`.
fn measure(
    objects: Arc<dyn ObjectStore>,
    local: &Store,
    rows: usize,
    probes: &[i64],
) -> Result<(), Box<dyn std::error::Error>> {
    let name = Path::new("bench");
    let fresh = || ObjectStorage::new(objects.clone(), "bench").unwrap();
    let remote = Store::create_in(Arc::new(fresh()), name)?;
    let t = Instant::now();
    write(&remote, rows);
    println!(
        "writing every version: {:.2} s to the object store\n",
        t.elapsed().as_secs_f64()
    );
    println!(
        "| step | lists | gets | bytes got | writes | time, object store | time, local disk |"
    );
    println!("|---|---|---|---|---|---|---|");
    // The latest version, as `Store::latest` finds it: the newest version head, confirmed.
    let storage = fresh();
    let t = Instant::now();
    let latest = Store::open_in(Arc::new(storage.clone()), name)?.latest()?;
    let open_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert_eq!(
        Store::open(local.path())?.latest()?.version(),
        latest.version()
    );
    report(
        "open latest (store and snapshot), cold",
        storage.requests(),
        open_s,
        t.elapsed().as_secs_f64(),
    );
    for version in [1, VERSIONS as u64] {
        let storage = fresh();
        let local_handle = Store::open(local.path())?;
        let t = Instant::now();
        let handle = Store::open_in(Arc::new(storage.clone()), name)?;
        let snapshot = handle.snapshot(version)?;
        let open_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let local_snapshot = local_handle.snapshot(version)?;
        report(
            &format!("open v{version} (store and snapshot), cold"),
            storage.requests(),
            open_s,
            t.elapsed().as_secs_f64(),
        );
        let mut at = storage.requests();
        let t = Instant::now();
        let table = snapshot.table("t")?;
        let open_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let local_table = local_snapshot.table("t")?;
        report(
            &format!("open table of v{version}, cold"),
            storage.requests().since(&at),
            open_s,
            t.elapsed().as_secs_f64(),
        );
        for pass in ["cold", "warm"] {
            at = storage.requests();
            let t = Instant::now();
            let n = scan(&table);
            let scan_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            assert_eq!(n, scan(&local_table));
            report(
                &format!("full scan v{version}, {pass}"),
                storage.requests().since(&at),
                scan_s,
                t.elapsed().as_secs_f64(),
            );
        }
        // Gets on a handle of their own, so the scan's decoded blocks do not serve them.
        let storage = fresh();
        let handle = Store::open_in(Arc::new(storage.clone()), name)?;
        let table = handle.snapshot(version)?.table("t")?;
        let local_table = Store::open(local.path())?.snapshot(version)?.table("t")?;
        for pass in ["cold", "warm"] {
            at = storage.requests();
            let t = Instant::now();
            let found = get_all(&table, probes);
            let get_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            assert_eq!(found, get_all(&local_table, probes));
            report(
                &format!("1,000 gets v{version}, {pass}"),
                storage.requests().since(&at),
                get_s,
                t.elapsed().as_secs_f64(),
            );
        }
        // One get on a handle of its own: the windows on its path (1 MiB each), not the pack.
        let storage = fresh();
        let handle = Store::open_in(Arc::new(storage.clone()), name)?;
        let table = handle.snapshot(version)?.table("t")?;
        let local_table = Store::open(local.path())?.snapshot(version)?.table("t")?;
        at = storage.requests();
        let t = Instant::now();
        let found = get_all(&table, &probes[..1]);
        let get_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        assert_eq!(found, get_all(&local_table, &probes[..1]));
        report(
            &format!("1 get v{version}, cold"),
            storage.requests().since(&at),
            get_s,
            t.elapsed().as_secs_f64(),
        );
        // A new handle (as a new process) reading through a local cache that an earlier
        // handle filled, beside a new handle on the local store: its open, then the step
        // on the table opened, then both together.
        let cache = tempfile::tempdir()?;
        let cached = || fresh().with_cache(cache.path(), 1 << 30).unwrap();
        let filler = Store::open_in(Arc::new(cached()), name)?;
        scan(&filler.snapshot(version)?.table("t")?);
        get_all(&filler.snapshot(version)?.table("t")?, probes);
        for step in ["full scan", "1,000 gets"] {
            let storage = cached();
            let t = Instant::now();
            let table = Store::open_in(Arc::new(storage.clone()), name)?
                .snapshot(version)?
                .table("t")?;
            let open_s = t.elapsed().as_secs_f64();
            let opened = storage.requests();
            let t = Instant::now();
            let local_table = Store::open(local.path())?.snapshot(version)?.table("t")?;
            let local_open_s = t.elapsed().as_secs_f64();
            let run = |table: &reeldb::Table| match step {
                "full scan" => scan(table),
                _ => get_all(table, probes),
            };
            let t = Instant::now();
            let n = run(&table);
            let remote_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            assert_eq!(n, run(&local_table));
            let local_s = t.elapsed().as_secs_f64();
            let asked = storage.requests();
            let handle = format!("v{version}, new handle, warm cache");
            report(&format!("open {handle}"), opened, open_s, local_open_s);
            report(
                &format!(
                    "{step} {handle} ({} segments, {} listings from it)",
                    asked.cache_hits, asked.listings_remembered
                ),
                asked.since(&opened),
                remote_s,
                local_s,
            );
            report(
                &format!("open and {step} {handle}"),
                asked,
                open_s + remote_s,
                local_open_s + local_s,
            );
        }
    }
    Ok(())
}

/// `reel sync` into an empty prefix of `objects`, again with nothing new, after one more
/// version, and back out to an empty local directory: requests and bytes beside the bytes
/// the local store holds (its files' committed lengths are all it holds: nothing else runs).
fn measure_sync(
    objects: Arc<dyn ObjectStore>,
    rows: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let local = Store::create(dir.path().join("src"))?;
    write(&local, rows);
    let name = Path::new("mirror");
    let fresh = || ObjectStorage::new(objects.clone(), "mirror").unwrap();
    println!(
        "| sync | mode | files written | bytes copied | puts | bytes put | gets | bytes got | time | local store bytes (added) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let row =
        |step: &str, report: &reeldb::SyncReport, asked: Requests, s: f64, local_bytes: u64| {
            println!(
                "| {step} | {} | {} | {} | {} | {} | {} | {} | {:.1} ms | {local_bytes} |",
                report.mode.as_str(),
                report.files_written,
                report.bytes_copied,
                asked.puts,
                asked.bytes_written,
                asked.gets,
                asked.bytes_read,
                s * 1e3,
            );
        };
    let store_bytes = || support::dir_bytes(&dir.path().join("src"));
    for step in ["to an empty prefix", "again, nothing new"] {
        let storage = fresh();
        let t = Instant::now();
        let report = local.sync_into(Arc::new(storage.clone()), name, false)?;
        row(
            step,
            &report,
            storage.requests(),
            t.elapsed().as_secs_f64(),
            store_bytes(),
        );
    }
    let before = store_bytes();
    let mut w = local.writer()?;
    let mut rng = Rng(99);
    let changed: Vec<i64> = (0..rows as i64 / 100).map(|i| i * 100).collect();
    let new_rows: Vec<_> = changed
        .iter()
        .map(|_| new_row(&mut rng, VERSIONS, 100_000))
        .collect();
    let mut tx = w.begin();
    tx.upsert("t", batch(&changed, &new_rows.iter().collect::<Vec<_>>()))?;
    tx.commit()?;
    drop(w);
    let storage = fresh();
    let t = Instant::now();
    let report = local.sync_into(Arc::new(storage.clone()), name, false)?;
    row(
        "after one new version (1% of rows)",
        &report,
        storage.requests(),
        t.elapsed().as_secs_f64(),
        store_bytes() - before,
    );
    let storage = fresh();
    let remote = Store::open_in(Arc::new(storage.clone()), name)?;
    let back = dir.path().join("back");
    let t = Instant::now();
    let report = remote.sync_to(&back, &[], false)?;
    row(
        "back to an empty local directory",
        &report,
        storage.requests(),
        t.elapsed().as_secs_f64(),
        store_bytes(),
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows = std::env::var("REELDB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let local = Store::create(dir.path().join("s"))?;
    let t = Instant::now();
    let state = write(&local, rows);
    let probes = probe_keys(&state);
    println!("# Requests to an object store, {rows} rows, {VERSIONS} versions\n");
    println!(
        "writing every version to local disk: {:.2} s\n",
        t.elapsed().as_secs_f64()
    );
    println!("## object_store's in-memory store (no network)\n");
    measure(Arc::new(InMemory::new()), &local, rows, &probes)?;
    println!();
    measure_sync(Arc::new(InMemory::new()), rows)?;
    if let Some(moto) = MotoServer::start() {
        println!("\n## a moto S3 server on loopback ({})\n", moto.endpoint());
        let s3 = AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()?;
        let s3: Arc<dyn ObjectStore> = Arc::new(s3);
        measure(s3.clone(), &local, rows, &probes)?;
        println!();
        measure_sync(s3, rows)?;
    }
    // On the in-memory store: its request counts are S3's, and a moto server slows down
    // with the number of objects it holds (each listing walks them all).
    println!("\n## requests per open as versions accumulate (in-memory store)\n");
    measure_many_versions(Arc::new(InMemory::new()))?;
    println!("\n## requests per open of a copy of 100,000 versions (in-memory store)\n");
    measure_opens_of_a_long_history(Arc::new(InMemory::new()))?;
    Ok(())
}

/// Requests of a new handle's open at 1 to `REELDB_BENCH_OPEN_VERSIONS` (default 100,000)
/// versions: the versions committed to a local store (one row each, unsynced: committing
/// them to object_store's in-memory store slows with every key it holds), then copied by
/// `Store::sync_into`, which writes every version's head as a commit there does.
fn measure_opens_of_a_long_history(
    objects: Arc<dyn ObjectStore>,
) -> Result<(), Box<dyn std::error::Error>> {
    let many: u64 = std::env::var("REELDB_BENCH_OPEN_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let local = Store::create(dir.path().join("s"))?;
    let mut rng = Rng(7);
    let rows: Vec<_> = (0..100).map(|_| new_row(&mut rng, 0, 1_000)).collect();
    let ids: Vec<i64> = (0..100).collect();
    let t = Instant::now();
    let mut w = local.writer_with(reeldb::WriterOptions::default().sync(false))?;
    let mut tx = w.begin();
    tx.create_table("t", support::schema(), &["id"])?;
    tx.upsert("t", batch(&ids, &rows.iter().collect::<Vec<_>>()))?;
    tx.commit()?;
    for v in 2..=many {
        let id = rng.below(100) as i64;
        let row = new_row(&mut rng, v as i64, 1_000);
        let mut tx = w.begin();
        tx.upsert("t", batch(&[id], &[&row]))?;
        tx.commit()?;
    }
    drop(w);
    let committed = t.elapsed();
    let name = Path::new("long");
    let t = Instant::now();
    let report = local.sync_into(
        Arc::new(ObjectStorage::new(objects.clone(), "long")?),
        name,
        false,
    )?;
    println!(
        "{many} one-row versions committed locally in {:.1} s, copied in {:.1} s ({} bytes)\n",
        committed.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        report.bytes_copied
    );
    println!("| versions in the store | open | lists | gets | bytes got | writes | time |");
    println!("|---|---|---|---|---|---|---|");
    for at in [
        None,
        Some(1),
        Some(1_000.min(many)),
        Some(many / 2),
        Some(many),
    ] {
        let storage = ObjectStorage::new(objects.clone(), "long")?;
        println!("{}", open_row(storage, name, many, at)?);
    }
    Ok(())
}

/// A table row for a new handle on `storage` (a store of `versions` versions) opening
/// version `at`, or the latest: the requests it made and its time.
fn open_row(
    storage: ObjectStorage,
    name: &Path,
    versions: u64,
    at: Option<u64>,
) -> Result<String, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let handle = Store::open_in(Arc::new(storage.clone()), name)?;
    let opened = match at {
        None => handle.latest()?.version(),
        Some(at) => handle.snapshot(at)?.version(),
    };
    let asked = storage.requests();
    let what = at.map_or("latest".to_string(), |at| format!("v{at}"));
    Ok(format!(
        "| {versions} | {what} (got {opened}) | {} | {} | {:.1} KiB | {} | {:.2} ms |",
        asked.lists,
        asked.gets,
        asked.bytes_read as f64 / 1024.0,
        asked.writes(),
        t.elapsed().as_secs_f64() * 1e3
    ))
}

/// Requests per open and per commit as versions accumulate: a small table committed `many`
/// times (one row changed each), its opens measured at 10, 1,000 and `many` versions, and the
/// writer's requests for the commit of that version (`REELDB_BENCH_VERSIONS`, default 10,000).
fn measure_many_versions(objects: Arc<dyn ObjectStore>) -> Result<(), Box<dyn std::error::Error>> {
    let many: u64 = std::env::var("REELDB_BENCH_VERSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let samples = [10, 1_000, many];
    let name = Path::new("many");
    let fresh = || ObjectStorage::new(objects.clone(), "many").unwrap();
    let writer_storage = fresh();
    let store = Store::create_in(Arc::new(writer_storage.clone()), name)?;
    let mut rng = Rng(5);
    let rows: Vec<_> = (0..100).map(|_| new_row(&mut rng, 0, 1_000)).collect();
    let ids: Vec<i64> = (0..100).collect();
    let mut w = store.writer()?;
    let mut tx = w.begin();
    tx.create_table("t", support::schema(), &["id"])?;
    tx.upsert("t", batch(&ids, &rows.iter().collect::<Vec<_>>()))?;
    tx.commit()?;
    let mut opens = Vec::new();
    let mut commits = Vec::new();
    let t = Instant::now();
    let (mut since, mut sampled) = (Instant::now(), 1);
    for v in 2..=many {
        let id = rng.below(100) as i64;
        let row = new_row(&mut rng, v as i64, 1_000);
        let before = writer_storage.requests();
        let commit = Instant::now();
        let mut tx = w.begin();
        tx.upsert("t", batch(&[id], &[&row]))?;
        tx.commit()?;
        let took = commit.elapsed();
        if !samples.contains(&v) {
            continue;
        }
        let asked = writer_storage.requests().since(&before);
        commits.push(format!(
            "| {v} | {} | {} | {} | {} | {} | {:.2} ms | {:.2} ms |",
            asked.lists,
            asked.names_listed,
            asked.gets,
            asked.puts,
            asked.deletes,
            took.as_secs_f64() * 1e3,
            since.elapsed().as_secs_f64() * 1e3 / (v - sampled) as f64,
        ));
        for at in [None, Some(1), Some(v / 2)] {
            opens.push(open_row(fresh(), name, v, at)?);
        }
        (since, sampled) = (Instant::now(), v);
    }
    println!("| versions | open | lists | gets | bytes got | writes | time |");
    println!("|---|---|---|---|---|---|---|");
    opens.iter().for_each(|line| println!("{line}"));
    println!(
        "\nThe writer's commit of that version, and the mean commit since the sample before:\n"
    );
    println!("| version | lists | names listed | gets | puts | deletes | time | mean time |");
    println!("|---|---|---|---|---|---|---|---|");
    commits.iter().for_each(|line| println!("{line}"));
    println!(
        "\n{many} commits of one row: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
