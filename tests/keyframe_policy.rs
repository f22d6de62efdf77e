//! The writer's keyframe policy: the bounds it cuts keyframes at, set for every table or for
//! one table alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{orders, orders_schema};
use reeldb::{KeyframePolicy, Store, WriterOptions};

/// Commits `rounds` changes of 5 rows to each of two tables; returns, per round, whether
/// each table read its keyframe as it is (no overlay) at that version.
fn at_keyframe(options: WriterOptions, rounds: u64) -> Vec<(bool, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let mut w = store.writer_with(options).unwrap();
    let mut tx = w.begin();
    for t in ["hot", "cold"] {
        tx.create_table(t, orders_schema(), &["id"]).unwrap();
        tx.upsert(t, orders(&(0..100).collect::<Vec<_>>(), 0))
            .unwrap();
    }
    tx.commit().unwrap();
    (1..=rounds)
        .map(|round| {
            let mut tx = w.begin();
            let ids: Vec<i64> = (0..5).map(|i| (round as i64 * 17 + i * 19) % 100).collect();
            for t in ["hot", "cold"] {
                tx.upsert(t, orders(&ids, round)).unwrap();
            }
            let v = tx.commit().unwrap();
            let snap = store.snapshot(v).unwrap();
            (
                snap.table("hot").unwrap().at_keyframe(),
                snap.table("cold").unwrap().at_keyframe(),
            )
        })
        .collect()
}

#[test]
fn a_table_policy_overrides_the_writers_for_that_table_only() {
    let every_third = KeyframePolicy {
        every: 3,
        fraction: 100.0,
        min_overlay_rows: 0,
        touching: 0.0,
    };
    let options = WriterOptions::default()
        .keyframe_policy(KeyframePolicy {
            every: 1000,
            fraction: 100.0,
            min_overlay_rows: 0,
            touching: 0.0,
        })
        .table_keyframe_policy("hot", every_third);
    let kinds = at_keyframe(options.clone(), 6);
    assert_eq!(options.policy_of("hot"), every_third);
    assert_eq!(options.policy_of("cold").every, 1000);
    let hot: Vec<bool> = kinds.iter().map(|k| k.0).collect();
    let cold: Vec<bool> = kinds.iter().map(|k| k.1).collect();
    assert_eq!(hot, [false, false, true, false, false, true]);
    assert_eq!(cold, [false; 6]);
}

#[test]
fn the_read_cost_bound_cuts_a_keyframe_once_the_overlay_would_pass_it() {
    // 5 changed rows per commit over 100: a bound of 12% lets two commits be overlays (5,
    // then 10 rows) and cuts a keyframe at the third (15 rows).
    let policy = KeyframePolicy {
        every: 1000,
        fraction: 0.12,
        min_overlay_rows: 0,
        touching: 0.0,
    };
    let options = WriterOptions::default().keyframe_policy(policy);
    let hot: Vec<bool> = at_keyframe(options, 6).iter().map(|k| k.0).collect();
    assert_eq!(hot, [false, false, true, false, false, true]);
    // A small table's overlay may grow to `min_overlay_rows` first: 5 rows per commit, 21
    // allowed, so the fifth commit (25 rows) is the keyframe.
    let options = WriterOptions::default().keyframe_policy(KeyframePolicy {
        min_overlay_rows: 21,
        ..policy
    });
    let hot: Vec<bool> = at_keyframe(options, 6).iter().map(|k| k.0).collect();
    assert_eq!(hot, [false, false, false, false, true, false]);
}

#[test]
fn a_policy_of_zero_commits_is_taken_as_one() {
    let options = WriterOptions::default().table_keyframe_policy(
        "hot",
        KeyframePolicy {
            every: 0,
            fraction: -1.0,
            min_overlay_rows: 0,
            touching: 0.0,
        },
    );
    let p = options.policy_of("hot");
    assert_eq!((p.every, p.fraction), (1, 0.0));
    assert!(at_keyframe(options, 3).iter().all(|k| k.0));
}
