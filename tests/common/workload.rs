//! The reliability workload and the "nothing lost" promise.
//!
//! A fixed sequence of operations (31 commits across keyframes and overlays, two compactions,
//! a thinning, a log cleaning, an expiry and a rewind), a model of what every version holds,
//! and [`check_promise`], which opens any storage image and checks it against the model: the
//! store opens at the last acknowledged version or later, every acknowledged unexpired
//! version reads back exactly, a version above it appears only whole, a rewound version never
//! reappears, and nothing reads as corrupt.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use reeldb::storage::Storage;
use reeldb::{Error, Expiry, Store, Writer, WriterOptions};

use super::{canonical, ids, orders_salted, tiny_shape};

/// One step of the workload.
#[derive(Debug, Clone)]
pub enum Op {
    /// A commit: rows upserted as (id, salt), ids deleted, existing rows patched (every
    /// non-key column set, by `Transaction::patch`, to the (id, salt) row's), and whether it
    /// must be a keyframe. The commit that creates the table (the first to succeed) also
    /// writes the keys rounds patch.
    Commit {
        upsert: Vec<(i64, u64)>,
        delete: Vec<i64>,
        patch: Vec<(i64, u64)>,
        keyframe: bool,
    },
    /// `Writer::compact`.
    Compact,
    /// `Writer::thin(n)`.
    Thin(u64),
    /// `Writer::clean(0.0)`.
    Clean,
    /// `Writer::expire(Expiry::Before(v))`.
    ExpireBefore(u64),
    /// `Writer::rewind(v)`.
    Rewind(u64),
}

impl Op {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Commit { keyframe: true, .. } => "keyframe commit",
            Op::Commit { .. } => "commit",
            Op::Compact => "compact",
            Op::Thin(_) => "thin",
            Op::Clean => "clean",
            Op::ExpireBefore(_) => "expire",
            Op::Rewind(_) => "rewind",
        }
    }
}

/// Keys rounds patch: rounds up to 30 never upsert or delete them, and the commit that
/// creates the table writes them (see [`Op::Commit`]), so they always exist.
const PATCHED: std::ops::Range<i64> = 110..120;

/// The rows a commit upserts: its own, and when it creates the table (`first`) also the
/// [`PATCHED`] keys it lacks (salt 0), with its patches applied to them as upserts (a key
/// cannot be patched in the commit that writes it).
fn upserts_of(first: bool, upsert: &[(i64, u64)], patch: &[(i64, u64)]) -> Vec<(i64, u64)> {
    if !first {
        return upsert.to_vec();
    }
    let mut rows: BTreeMap<i64, u64> = PATCHED.map(|k| (k, 0)).collect();
    rows.extend(upsert.iter().copied());
    rows.extend(patch.iter().copied());
    rows.into_iter().collect()
}

/// The commit of round `round` (from 1 to 30): six of the 120 first keys and a new one
/// upserted, one key deleted, and one of the [`PATCHED`] keys patched.
pub fn round(round: u64, keyframe: bool) -> Op {
    assert!(
        round <= 30,
        "round {round}: keys 110..120 are only safe to patch up to 30"
    );
    let base = (round as i64 * 37) % 110;
    Op::Commit {
        upsert: (base..base + 6)
            .chain([120 + round as i64])
            .map(|i| (i, round))
            .collect(),
        // 60 keys away from the upserted ones, so never one of them.
        delete: vec![(base + 60) % 120],
        patch: vec![(PATCHED.start + round as i64 % 10, round)],
        keyframe,
    }
}

/// The fixed workload. Rows live in a 120-key table of tiny leaves, so every keyframe has many
/// leaves and overlays touch a few of them.
pub fn workload() -> Vec<Op> {
    let mut ops = vec![Op::Commit {
        upsert: (0..120).map(|i| (i, 0)).collect(),
        delete: vec![],
        patch: vec![],
        keyframe: true,
    }];
    for r in 1..=12 {
        ops.push(round(r, r == 8));
    }
    ops.push(Op::Compact);
    for r in 13..=18 {
        ops.push(round(r, r == 16));
    }
    ops.push(Op::ExpireBefore(3));
    ops.push(Op::Rewind(17));
    for r in 19..=30 {
        ops.push(round(r, r == 24));
    }
    ops.push(Op::Compact);
    ops.push(Op::Thin(10));
    ops.push(Op::Clean);
    ops
}

/// Writer options of the workload: tiny leaves, and a keyframe only when forced.
pub fn writer_options() -> WriterOptions {
    WriterOptions::default()
        .tree_shape(tiny_shape())
        .keyframe_every(1000)
        .keyframe_fraction(1.0)
}

/// One version's rows: id -> salt, and the rows as a scan must return them (canonical).
#[derive(Debug, PartialEq)]
pub struct State {
    /// Salt of every row, by id.
    pub rows: BTreeMap<i64, u64>,
    /// The rows as one batch sorted by id, built once.
    pub expected: arrow::array::RecordBatch,
}

impl State {
    fn new(rows: BTreeMap<i64, u64>) -> Arc<State> {
        let (keys, salts): (Vec<i64>, Vec<u64>) = rows.iter().map(|(k, s)| (*k, *s)).unzip();
        let expected = orders_salted(&keys, &salts);
        Arc::new(State { rows, expected })
    }
}

/// What every version holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// `history[v - 1]` is version v.
    pub history: Vec<Arc<State>>,
    /// Expired versions (they may no longer open).
    pub expired: BTreeSet<u64>,
}

impl Model {
    /// The latest version number (0 before the first commit).
    pub fn latest(&self) -> u64 {
        self.history.len() as u64
    }

    /// The model after `op` took effect.
    pub fn after(&self, op: &Op) -> Model {
        let mut next = self.clone();
        match op {
            Op::Commit {
                upsert,
                delete,
                patch,
                ..
            } => {
                let mut state = self
                    .history
                    .last()
                    .map(|s| s.rows.clone())
                    .unwrap_or_default();
                let first = self.history.is_empty();
                for (id, salt) in upserts_of(first, upsert, patch).iter().chain(patch) {
                    state.insert(*id, *salt);
                }
                for id in delete {
                    state.remove(id);
                }
                next.history.push(State::new(state));
            }
            Op::ExpireBefore(v) => {
                next.expired.extend((1..*v).filter(|&x| x < self.latest()));
            }
            Op::Rewind(to) => next.history.truncate(*to as usize),
            Op::Compact | Op::Thin(_) | Op::Clean => {}
        }
        next
    }
}

/// Where the workload is: the model of what was acknowledged, and the operation under way.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// True once `Store::create` returned.
    pub created: bool,
    /// Every acknowledged operation applied.
    pub acked: Model,
    /// The operation under way, if any (its effect may or may not be visible).
    pub in_flight: Option<Op>,
}

impl Cursor {
    /// The models a store may show: the acknowledged one, or the one after the operation in
    /// flight.
    fn allowed(&self) -> Vec<Model> {
        let mut models = vec![self.acked.clone()];
        if let Some(op) = &self.in_flight {
            models.push(self.acked.after(op));
        }
        models
    }
}

/// Runs `op` with `writer`.
pub fn apply(writer: &mut Writer, op: &Op) -> Result<(), Error> {
    match op {
        Op::Commit {
            upsert,
            delete,
            patch,
            keyframe,
        } => {
            // The first commit of a store also creates the table.
            let first = writer.version() == 0;
            let mut tx = writer.begin();
            if first {
                tx.create_table("orders", super::orders_schema(), &["id"])?;
            }
            let (keys, salts): (Vec<i64>, Vec<u64>) =
                upserts_of(first, upsert, patch).into_iter().unzip();
            tx.upsert("orders", orders_salted(&keys, &salts))?;
            if !delete.is_empty() {
                tx.delete("orders", ids(delete))?;
            }
            if !first && !patch.is_empty() {
                // Every non-key column, in another order than the table's.
                let (keys, salts): (Vec<i64>, Vec<u64>) = patch.iter().copied().unzip();
                let rows = orders_salted(&keys, &salts);
                tx.patch("orders", rows.project(&[0, 3, 2, 1])?)?;
            }
            if *keyframe {
                tx.keyframe();
            }
            tx.commit().map(|_| ())
        }
        Op::Compact => writer.compact(&mut |_, _| {}).map(|_| ()),
        Op::Thin(n) => writer.thin(*n).map(|_| ()),
        Op::Clean => writer.clean(0.0).map(|_| ()),
        // Every expiry is followed by a catalog rewrite, so crashes hit that too.
        Op::ExpireBefore(v) => writer
            .expire(Expiry::Before(*v), &[])
            .and_then(|_| writer.rewrite_catalog(0.0))
            .map(|_| ()),
        Op::Rewind(to) => writer.rewind(*to).map(|_| ()),
    }
}

/// Runs the whole workload on `storage`, publishing progress in `cursor`; stops at the first
/// error (a crashed disk fails every operation after the crash).
pub fn run(storage: Arc<dyn Storage>, cursor: &Mutex<Cursor>) -> Result<(), Error> {
    let store = Store::create_in(storage, Path::new("sim"))?;
    cursor.lock().unwrap().created = true;
    let mut writer = store.writer_with(writer_options())?;
    for op in workload() {
        cursor.lock().unwrap().in_flight = Some(op.clone());
        apply(&mut writer, &op)?;
        let mut c = cursor.lock().unwrap();
        c.acked = c.acked.after(&op);
        c.in_flight = None;
    }
    Ok(())
}

/// A broken promise, described.
pub type Violation = String;

/// How much of an image [`check_promise`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Depth {
    /// Read every version; otherwise the latest and a few others drawn with `seed`.
    pub every_version: bool,
    /// Then open a writer, commit one more version and read it back.
    pub recover: bool,
    /// Draws the versions read when not every one is.
    pub seed: u64,
}

impl Depth {
    /// Every version, then a recovery commit.
    pub const FULL: Depth = Depth {
        every_version: true,
        recover: true,
        seed: 0,
    };
}

/// Versions read besides the latest when a check does not read every version.
const SAMPLED_VERSIONS: usize = 3;

/// Opens `image` and checks it against what `cursor` allows (the versions `depth` asks for);
/// then, when `depth.recover` is set, commits one more version and checks that it reads back.
pub fn check_promise(
    image: Arc<dyn Storage>,
    cursor: &Cursor,
    depth: Depth,
) -> Result<(), Violation> {
    let store = match Store::open_in(image, Path::new("sim")) {
        Ok(store) => store,
        Err(Error::NotAStore(_)) if !cursor.created => return Ok(()),
        Err(e) => return Err(format!("the store does not open: {e}")),
    };
    let latest = store
        .latest_version()
        .map_err(|e| format!("no latest version: {e}"))?;
    let allowed = cursor.allowed();
    // A version expired by the acknowledged state or by an expiry under way may refuse to open.
    let may_refuse: BTreeSet<u64> = allowed.iter().flat_map(|m| m.expired.clone()).collect();
    let model = allowed
        .into_iter()
        .find(|m| m.latest() == latest)
        .ok_or_else(|| {
            format!(
                "latest version {latest}, but the acknowledged latest is {} with {:?} in flight",
                cursor.acked.latest(),
                cursor.in_flight
            )
        })?;
    let mut chosen: Vec<u64> = (1..=latest).collect();
    if !depth.every_version && latest > 0 {
        let mut rng = fastrand::Rng::with_seed(depth.seed);
        rng.shuffle(&mut chosen[..latest as usize - 1]);
        chosen = chosen[..SAMPLED_VERSIONS.min(latest as usize - 1)]
            .iter()
            .copied()
            .chain([latest])
            .collect();
    }
    check_versions(&store, &model, &chosen, &may_refuse)?;
    if depth.recover {
        let mut writer = store
            .writer_with(writer_options())
            .map_err(|e| format!("no writer after recovery: {e}"))?;
        let op = Op::Commit {
            upsert: vec![(5, 999)],
            delete: vec![6],
            patch: vec![],
            keyframe: false,
        };
        apply(&mut writer, &op).map_err(|e| format!("recovery commit failed: {e}"))?;
        drop(writer);
        let next = model.after(&op);
        let v = next.latest();
        read_version(&store, v, &next.history[v as usize - 1])?;
    }
    Ok(())
}

/// The `chosen` versions of `model` read back exactly, but those in `may_refuse`, which may
/// instead refuse to open as expired.
fn check_versions(
    store: &Store,
    model: &Model,
    chosen: &[u64],
    may_refuse: &BTreeSet<u64>,
) -> Result<(), Violation> {
    for &v in chosen {
        match read_version(store, v, &model.history[v as usize - 1]) {
            Err(e) if may_refuse.contains(&v) && e.contains("expired") => {}
            other => other?,
        }
    }
    Ok(())
}

/// Version `v` of `store` holds exactly `state`.
fn read_version(store: &Store, v: u64, state: &State) -> Result<(), Violation> {
    let read = || -> Result<_, Error> {
        let table = store.snapshot(v)?.table("orders")?;
        table
            .scan(&reeldb::ScanOptions::new())?
            .collect::<Result<Vec<_>, _>>()
    };
    let batches = read().map_err(|e| format!("version {v} does not read: {e}"))?;
    if canonical(&batches) != state.expected {
        return Err(format!("version {v} reads wrong rows"));
    }
    Ok(())
}
