//! The `reel` maintenance commands end to end: `verify`, `rewind`, `compact` and `expire`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cli::{fails, ok, reel};
use common::orders;

#[test]
fn verify_names_the_newest_intact_version_and_exits_2_on_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    let out = ok(&["verify", s]);
    assert!(out.contains("4 versions checked, 0 damaged"), "{out}");
    assert!(out.contains("newest intact version: 4"), "{out}");
    assert!(ok(&["verify", s, "--version", "2"]).contains("newest intact version: 2"));

    // Damage the newest version's record: only v4 is affected.
    let records = path.join("catalog/records.log");
    let mut bytes = std::fs::read(&records).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    std::fs::write(&records, &bytes).unwrap();
    let out = reel(&["verify", s]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("v4: "), "{text}");
    assert!(text.contains("1 damaged"), "{text}");
    assert!(text.contains("newest intact version: 3"), "{text}");
}

#[test]
fn rewind_purges_later_versions_and_can_find_the_last_good_one_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    let out = ok(&["rewind", s, "--to", "3"]);
    assert!(
        out.contains("rewound to v3: 1 versions purged; the next commit is v4"),
        "{out}"
    );
    let listed = ok(&["versions", s]);
    let last = listed.lines().last().unwrap().split_whitespace().next();
    assert_eq!(last, Some("3"), "{listed}");
    assert!(fails(&["rewind", s, "--to", "7"]).contains("version 7"));
    // Damage v3's record (the newest): --to-last-good verifies and lands on v2.
    let records = path.join("catalog/records.log");
    let mut bytes = std::fs::read(&records).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    std::fs::write(&records, &bytes).unwrap();
    let out = ok(&["rewind", s, "--to-last-good"]);
    assert!(out.contains("rewound to v2"), "{out}");
    assert!(ok(&["verify", s]).contains("newest intact version: 2"));
}

#[test]
fn compact_rewrites_closed_generations_and_versions_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let truth = common::build_history(&path);
    {
        // Close the generation: a forced keyframe.
        let store = reeldb::Store::open(&path).unwrap();
        let mut w = store.writer().unwrap();
        let mut tx = w.begin();
        tx.upsert("orders", orders(&[999], 9)).unwrap();
        tx.keyframe();
        tx.commit().unwrap();
    }
    let s = path.to_str().unwrap();
    let out = ok(&["compact", s, "--keyframe-every", "0"]);
    assert!(!out.contains("thinned"), "{out}");
    assert!(
        out.contains("2 generations (2 versions) rewritten as B-frames"),
        "{out}"
    );
    assert!(out.contains("2 node logs deleted"), "{out}");
    let listed = ok(&["versions", s]);
    assert_eq!(listed.matches("bframe").count(), 2, "{listed}");
    let store = reeldb::Store::open(&path).unwrap();
    let now = common::read_all_canonical(&store);
    let then: Vec<_> = truth.iter().map(|v| common::canonical(v)).collect();
    assert_eq!(now[..4], then[..]);
    assert!(ok(&["verify", s]).contains("0 damaged"));
    // The default plan thins: a few changed rows against a table of hundreds leave a residual
    // far below the bound, so only the newest keyframe stays.
    let out = ok(&["compact", s]);
    assert!(out.contains("keyframes thinned in 1 runs"), "{out}");
    let listed = ok(&["versions", s]);
    assert_eq!(listed.matches("keyframe").count(), 1, "{listed}");
    let now = common::read_all_canonical(&store);
    assert_eq!(now[..4], then[..]);
    assert!(ok(&["verify", s]).contains("0 damaged"));
}

#[test]
fn expire_retires_old_versions_and_refuses_a_bad_choice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    assert!(ok(&["expire", s, "--keep-last", "2"]).contains("2 versions expired (v1 to v2)"));
    let err = fails(&["scan", s, "orders", "--version", "1"]);
    assert!(err.contains("version 1 was expired"), "{err}");
    assert!(fails(&["expire", s, "--older-than", "3 weeks"]).contains("bad duration"));
    assert!(ok(&["expire", s, "--older-than", "1d"]).contains("0 versions expired"));
}

#[test]
fn verify_names_versions_an_index_cut_lost_and_a_rewind_accepts_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    common::build_history(&path);
    let s = path.to_str().unwrap();
    // versions.idx loses the entries of v3 and v4: v4's record proves v3 was acknowledged.
    let index = path.join("catalog/versions.idx");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap();
    f.set_len(64 * 3).unwrap();
    drop(f);
    let out = reel(&["verify", s]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("versions 3 to 3 were committed"), "{text}");
    assert!(text.contains("reel rewind --to 2"), "{text}");
    ok(&["rewind", s, "--to", "2"]);
    let out = ok(&["verify", s]);
    assert!(
        out.contains("0 damaged") && !out.contains("were committed"),
        "{out}"
    );
}
