//! The commit path on an object store under faults: each put of a commit fails in turn,
//! either before it reaches the store or after it landed (a put that timed out on its way
//! back). After each, the store reads at its old version or, whole, at the new one; it
//! verifies; and the next writer commits on top.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt;
use std::path::Path as StorePath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{canonical, orders, read_all_canonical, write_history};
use futures::stream::BoxStream;
use reeldb::object_storage::ObjectStorage;
use reeldb::object_storage::object_store::memory::InMemory;
use reeldb::object_storage::object_store::path::Path;
use reeldb::object_storage::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use reeldb::{Error, Store};

/// How an injected put failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PutFault {
    /// The put never reached the store.
    Lost,
    /// The put was applied, but its caller sees an error (a timeout on the way back).
    Landed,
}

/// An in-memory store whose `n`th put (counting from when it was armed) fails.
#[derive(Debug)]
struct FlakyStore {
    inner: Arc<InMemory>,
    puts: AtomicU64,
    failing: Mutex<Option<(u64, PutFault)>>,
}

impl FlakyStore {
    fn arm(&self, nth: u64, fault: PutFault) {
        self.puts.store(0, Ordering::SeqCst);
        *self.failing.lock().unwrap() = Some((nth, fault));
    }

    fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlakyStore")
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        let fault = match *self.failing.lock().unwrap() {
            Some((nth, fault)) if nth == n => Some(fault),
            _ => None,
        };
        match fault {
            None => self.inner.put_opts(location, payload, opts).await,
            Some(fault) => {
                if fault == PutFault::Landed {
                    self.inner.put_opts(location, payload, opts).await?;
                }
                Err(reeldb::object_storage::object_store::Error::Generic {
                    store: "FlakyStore",
                    source: format!("injected: put {n} failed ({fault:?})").into(),
                })
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn open(store: Arc<dyn ObjectStore>) -> Store {
    Store::open_in(
        Arc::new(ObjectStorage::new(store, "s").unwrap()),
        StorePath::new("memory:///s"),
    )
    .unwrap()
}

/// A new store on `store` holding `write_history`'s four versions.
fn create_with_history(store: Arc<dyn ObjectStore>) {
    let created = Store::create_in(
        Arc::new(ObjectStorage::new(store, "s").unwrap()),
        StorePath::new("memory:///s"),
    )
    .unwrap();
    write_history(&created);
}

/// The commit every case makes: ids 500..520 new, 0..10 updated.
fn commit(store: &Store) -> reeldb::Result<u64> {
    let mut w = store.writer()?;
    let mut tx = w.begin();
    let ids: Vec<i64> = (0..10).chain(500..520).collect();
    tx.upsert("orders", orders(&ids, 77))?;
    tx.commit()
}

#[test]
fn every_put_of_a_commit_failing_lost_or_landed_leaves_a_store_at_one_version_or_the_next() {
    // The rows of the version the commit makes, from a store that had no fault.
    let clean = Arc::new(InMemory::new());
    create_with_history(clean.clone());
    let before = read_all_canonical(&open(clean.clone()));
    assert_eq!(commit(&open(clean.clone())).unwrap(), 5);
    let after = read_all_canonical(&open(clean.clone()));

    let mut cases = Vec::new();
    for fault in [PutFault::Lost, PutFault::Landed] {
        for nth in 0.. {
            let memory = Arc::new(InMemory::new());
            create_with_history(memory.clone());
            let flaky = Arc::new(FlakyStore {
                inner: memory.clone(),
                puts: AtomicU64::new(0),
                failing: Mutex::new(None),
            });
            let store = open(flaky.clone());
            flaky.arm(nth, fault);
            let result = commit(&store);
            let puts = flaky.puts();
            drop(store);

            let reader = open(memory.clone());
            let latest = reader.latest_version().unwrap();
            match &result {
                Ok(v) => assert_eq!((*v, latest), (5, 5), "{fault:?} put {nth}"),
                Err(e) => assert!(
                    matches!(e, Error::Keyframe(_) | Error::Overlay(_)),
                    "{fault:?} put {nth}: {e}"
                ),
            }
            let expected = match latest {
                4 => &before,
                5 => &after,
                other => panic!("{fault:?} put {nth}: version {other}"),
            };
            assert_eq!(
                &read_all_canonical(&reader),
                expected,
                "{fault:?} put {nth}"
            );
            let report = reader.verify(1..=latest, &mut |_| {}).unwrap();
            assert!(report.is_intact(), "{fault:?} put {nth}: {report:?}");
            // The next writer settles what the failed one left and commits on top.
            let mut w = reader.writer().unwrap();
            let mut tx = w.begin();
            tx.upsert("orders", orders(&[900], 1)).unwrap();
            assert_eq!(tx.commit().unwrap(), latest + 1, "{fault:?} put {nth}");
            let row = reader
                .snapshot(latest + 1)
                .unwrap()
                .table("orders")
                .unwrap();
            assert_eq!(
                canonical(&[row.get(900i64).unwrap().unwrap()]),
                canonical(&[orders(&[900], 1)])
            );
            cases.push((fault, nth, result.is_ok(), latest));
            if nth >= puts {
                // The fault came after the commit's last put: every put has had its turn.
                assert!(result.is_ok());
                break;
            }
        }
    }
    println!("(fault, failed put, commit ok, version after): {cases:?}");
    let lost_failures = cases
        .iter()
        .filter(|c| c.0 == PutFault::Lost && !c.2)
        .count();
    assert!(lost_failures >= 3, "a commit makes several puts: {cases:?}");
}
