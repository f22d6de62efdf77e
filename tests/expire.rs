//! Expiry: selected versions can no longer be opened or rewound to, keep their numbers, and
//! stay expired after reopening; the latest version and versions tagged with a kept metadata
//! key survive; readers already holding an expired version keep reading it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{canonical, ids, orders, orders_schema, read_all_canonical, tiny_shape};
use reeldb::{Error, Expiry, ScanOptions, Store, WriterOptions};

/// Eight versions; version 3 is tagged `release`.
fn history(path: &std::path::Path) -> Vec<arrow::array::RecordBatch> {
    let store = Store::create(path).unwrap();
    let mut w = store
        .writer_with(WriterOptions::default().tree_shape(tiny_shape()))
        .unwrap();
    let mut tx = w.begin();
    tx.create_table("orders", orders_schema(), &["id"]).unwrap();
    tx.upsert("orders", orders(&(0..100).collect::<Vec<_>>(), 0))
        .unwrap();
    tx.commit().unwrap();
    for round in 1..8u64 {
        let mut tx = w.begin();
        tx.upsert("orders", orders(&[round as i64 * 10], round))
            .unwrap();
        tx.delete("orders", ids(&[round as i64])).unwrap();
        if round == 2 {
            tx.meta("release", "1.0");
        }
        tx.commit().unwrap();
    }
    drop(w);
    read_all_canonical(&store)
}

fn opens(store: &Store, v: u64) -> bool {
    match store.snapshot(v) {
        Ok(_) => true,
        Err(Error::Expired { version }) => {
            assert_eq!(version, v);
            false
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn keep_last_expires_the_older_versions_but_not_tagged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = history(&path);
    let store = Store::open(&path).unwrap();
    let held = store.snapshot(1).unwrap().table("orders").unwrap();
    let mut w = store.writer().unwrap();
    let expired = w.expire(Expiry::KeepLast(3), &["release"]).unwrap();
    assert_eq!(expired, vec![1, 2, 4, 5]);
    // Already expired versions are not reported again.
    assert!(
        w.expire(Expiry::KeepLast(3), &["release"])
            .unwrap()
            .is_empty()
    );
    drop(w);
    let reopened = Store::open(&path).unwrap();
    let open: Vec<bool> = (1..=8).map(|v| opens(&reopened, v)).collect();
    assert_eq!(open, [false, false, true, false, false, true, true, true]);
    for v in [3u64, 6, 7, 8] {
        let t = reopened.snapshot(v).unwrap().table("orders").unwrap();
        let rows: Vec<_> = t
            .scan(&ScanOptions::new())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(canonical(&rows), truth[v as usize - 1]);
    }
    let listed: Vec<u64> = reopened
        .versions()
        .unwrap()
        .iter()
        .map(|i| i.version)
        .collect();
    assert_eq!(listed, vec![3, 6, 7, 8]);
    // The reader that held version 1 before it expired still reads it.
    let rows: Vec<_> = held
        .scan(&ScanOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(canonical(&rows), truth[0]);
    // Verify skips expired versions; a rewind to one is refused; new commits follow on.
    let report = reopened.verify(1..=8, &mut |_| {}).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.newest_intact, Some(8));
    assert!(matches!(
        reopened.rewind(4),
        Err(Error::Expired { version: 4 })
    ));
    assert_eq!(reopened.rewind(6).unwrap().purged, 2);
    let mut w = reopened.writer().unwrap();
    let mut tx = w.begin();
    tx.delete("orders", ids(&[50])).unwrap();
    assert_eq!(tx.commit().unwrap(), 7);
}

#[test]
fn before_and_older_than_select_by_number_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    history(&path);
    let store = Store::open(&path).unwrap();
    let mut w = store.writer().unwrap();
    assert_eq!(w.expire(Expiry::Before(3), &[]).unwrap(), vec![1, 2]);
    // Nothing is an hour old yet; everything but the latest is older than zero seconds.
    assert!(
        w.expire(Expiry::OlderThan(std::time::Duration::from_secs(3600)), &[])
            .unwrap()
            .is_empty()
    );
    let rest = w
        .expire(Expiry::OlderThan(std::time::Duration::ZERO), &[])
        .unwrap();
    assert_eq!(rest, vec![3, 4, 5, 6, 7]);
    assert!(opens(&store, 8));
    assert_eq!(store.versions().unwrap().len(), 1);
}
