//! `Maintenance::thin`: keyframe thinning. A table keeps one full keyframe per `keep_every`
//! versions (always its newest); every version that reads a thinned keyframe (the keyframe's
//! own version, versions that carry it unchanged, and B-frames over it) is re-expressed as a
//! B-frame over the next keyframe with `reeldb_compactor::rebase`, so nothing reads the
//! thinned keyframe any more and log cleaning reclaims it. The B-frames already over the next
//! keyframe are rebased with them, so every version over a keyframe shares one residual and a
//! row version shown on both sides of the thinned keyframe is stored once. Thinned keyframes
//! are processed oldest first, so versions rebased onto a keyframe that is itself thinned
//! move on with it.
//!
//! A keyframe whose generation still has overlay versions is kept (compaction turns them into
//! B-frames first). Expired versions are left as they are. The commit point is the same
//! publication compaction uses (see `maintenance`). Versions a writer commits meanwhile read
//! the newest keyframe or a later one, which thinning never touches.

use std::collections::{BTreeMap, BTreeSet};

use reeldb_compactor::{Frame, RowBatch, Span, rebase};
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::record::RecordKind;
use reeldb_keyframe::tree::{Root, Tree};
use roaring::{RoaringBitmap, RoaringTreemap};

use super::compact::{RESIDUAL_BATCH_ROWS, batch_of, record_of};
use crate::catalog::index::IndexEntry;
use crate::catalog::version::{BatchRecord, BlockRecord, VersionRecord};
use crate::error::{Error, Result};
use crate::maintenance::Maintenance;

/// What a thinning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thinning {
    /// Keyframes no version reads any more.
    pub keyframes: usize,
    /// Versions re-expressed over a later keyframe (a version counts once per table).
    pub versions: usize,
    /// Rows written to the new residuals.
    pub residual_rows: u64,
}

fn bitmap_error(e: std::io::Error) -> Error {
    Error::InvalidArgument(format!("bitmap: {e}"))
}

impl Maintenance {
    /// Thins every table's keyframes to one per `keep_every` versions (see the module docs).
    pub fn thin(&mut self, keep_every: u64) -> Result<Thinning> {
        let records: Vec<(IndexEntry, VersionRecord)> = self.committed()?;
        let mut work: Vec<VersionRecord> = records.iter().map(|(_, r)| r.clone()).collect();
        let mut changed: BTreeSet<u64> = BTreeSet::new();
        let mut report = Thinning::default();
        let defs: BTreeSet<u32> = work
            .iter()
            .flat_map(|r| r.tables.iter().map(|t| t.id))
            .collect();
        let live = |v: u64| !records[v as usize - 1].0.expired;
        let result = (|| -> Result<()> {
            for def in defs {
                // Keyframes are told apart by their roots (after a rewind, a purged version's
                // number can be written again by another keyframe) and ordered by the version
                // that wrote them (the smallest `keyframe_at` of the entries reading them).
                let mut first_read: BTreeMap<RootId, u64> = BTreeMap::new();
                let mut open: BTreeSet<RootId> = BTreeSet::new();
                // The definitions the versions reading each keyframe read it with: a rebase
                // reads both keyframes' versions with one.
                let mut defs_of: BTreeMap<RootId, BTreeSet<u64>> = BTreeMap::new();
                for r in work.iter().filter(|r| live(r.version)) {
                    for t in r.tables.iter().filter(|t| t.id == def) {
                        defs_of.entry(root_id(t)).or_default().insert(t.def.offset);
                        let at = first_read.entry(root_id(t)).or_insert(t.keyframe_at);
                        *at = (*at).min(t.keyframe_at);
                        if t.overlay.is_some() {
                            open.insert(root_id(t));
                        }
                    }
                }
                let mut keyframes: Vec<(u64, RootId)> =
                    first_read.into_iter().map(|(id, at)| (at, id)).collect();
                keyframes.sort_unstable();
                // A keyframe is thinned into the next only when every version reading either
                // reads it with one definition: not across a schema change. (Every keyframe
                // listed has its definitions: the loop above fills both maps.)
                for pair in keyframes.windows(2) {
                    let (x, y) = (&defs_of[&pair[0].1], &defs_of[&pair[1].1]);
                    if x.len() != 1 || x != y {
                        open.insert(pair[0].1);
                    }
                }
                // Newest first: keep the newest, then one at least `keep_every` versions older.
                let mut thinned = BTreeSet::new();
                let mut last_kept: Option<u64> = None;
                for (at, id) in keyframes.iter().rev() {
                    match last_kept {
                        Some(kept) if kept - at < keep_every && !open.contains(id) => {
                            thinned.insert(*id);
                        }
                        _ => last_kept = Some(*at),
                    }
                }
                // The keyframe the latest version reads through a B-frame (after a rewind into
                // a compacted generation): nothing is thinned into it, since that would rebase
                // the latest version, which a writer may be building on.
                let latest_entry = work
                    .last()
                    .and_then(|r| r.tables.iter().find(|t| t.id == def));
                let latest_reads = latest_entry.filter(|t| t.bframe.is_some()).map(root_id);
                // Nor is the keyframe the latest version reads thinned, which would rebase it:
                // after a rewind, `keyframe_at` no longer orders keyframes by age, and the one
                // the latest version reads may not look newest.
                let latest_root = latest_entry.map(root_id);
                for (i, (_, x)) in keyframes.iter().enumerate() {
                    // A keyframe that closes a generation still holding overlays is kept:
                    // compaction rewrites that generation over it first.
                    let closes_open = i > 0 && open.contains(&keyframes[i - 1].1);
                    if !thinned.contains(x) || closes_open {
                        continue;
                    }
                    let Some((_, y)) = keyframes.get(i + 1) else {
                        continue;
                    };
                    if latest_reads == Some(*y) || latest_root == Some(*x) {
                        continue;
                    }
                    self.thin_one(def, *x, *y, &mut work, &live, &mut changed, &mut report)?;
                }
            }
            if !changed.is_empty() {
                let rewritten: BTreeMap<u64, VersionRecord> = changed
                    .iter()
                    .map(|v| (*v, work[*v as usize - 1].clone()))
                    .collect();
                self.publish(&records, rewritten, None)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            return self.abandon(e);
        }
        Ok(report)
    }

    /// Re-expresses every live version of table `def` that reads keyframe `x` over keyframe
    /// `y` (both told by their roots), together with the B-frames already over `y`, so the
    /// versions over `y` share one residual.
    #[allow(clippy::too_many_arguments)]
    fn thin_one(
        &mut self,
        def: u32,
        x: RootId,
        y: RootId,
        work: &mut [VersionRecord],
        live: &dyn Fn(u64) -> bool,
        changed: &mut BTreeSet<u64>,
        report: &mut Thinning,
    ) -> Result<()> {
        let store = self.store().clone();
        let entry_at = |r: &VersionRecord| r.tables.iter().position(|t| t.id == def);
        let over = |k: RootId| {
            work.iter()
                .filter(|r| live(r.version))
                .filter_map(|r| entry_at(r).map(|i| (r.version, &r.tables[i])))
                .filter(move |(_, t)| root_id(t) == k)
        };
        let (Some((_, tx)), Some((_, ty))) = (over(x).next(), over(y).next()) else {
            return Ok(());
        };
        let layout = store.load_def(tx.def)?.layout.clone();
        let source = store.inner.source.clone();
        let prev = Tree::new(
            source.clone(),
            layout.clone(),
            tx.root.as_ref().map(Root::from),
        );
        let next = Tree::new(source, layout, ty.root.as_ref().map(Root::from));
        let (next_root, next_at) = (ty.root.clone(), ty.keyframe_at);
        // The versions reading x, then the B-frames over y (so that the span gets one
        // residual: a row version both showed is stored once), their bitmaps, and their
        // residuals numbered across.
        let mut residuals: Vec<Vec<BatchRecord>> = Vec::new();
        let mut spans: Vec<(u64, bool, RoaringTreemap, RoaringBitmap)> = Vec::new();
        let on_x = over(x).map(|(v, t)| (v, false, t));
        let on_y = over(y)
            .filter(|(_, t)| t.bframe.is_some())
            .map(|(v, t)| (v, true, t));
        for (v, on_next, t) in on_x.chain(on_y) {
            let (hidden, live_rows) = match &t.bframe {
                None => (RoaringTreemap::new(), RoaringBitmap::new()),
                Some(b) => {
                    let h = source_bitmap(&prev, &b.hidden)?;
                    let l = source_bitmap(&prev, &b.live)?;
                    let at = match residuals.iter().position(|r| *r == b.residual) {
                        Some(i) => i,
                        None => {
                            residuals.push(b.residual.clone());
                            residuals.len() - 1
                        }
                    };
                    let offset: u32 = residuals[..at]
                        .iter()
                        .flat_map(|r| r.iter().map(|b| b.rows))
                        .sum();
                    let hidden = RoaringTreemap::deserialize_from(&h[..]).map_err(bitmap_error)?;
                    let live: RoaringBitmap =
                        RoaringBitmap::deserialize_from(&l[..]).map_err(bitmap_error)?;
                    (hidden, live.iter().map(|id| id + offset).collect())
                }
            };
            if t.overlay.is_some() {
                return Err(Error::InvalidArgument(format!(
                    "v{v} is an overlay of a keyframe being thinned: compact first"
                )));
            }
            spans.push((v, on_next, hidden, live_rows));
        }
        let batches: Vec<RowBatch> = residuals.iter().flatten().map(batch_of).collect();
        let frames: Vec<Frame<'_>> = spans
            .iter()
            .map(|(_, on_next, hidden, live)| Frame {
                on_next: *on_next,
                hidden,
                live,
            })
            .collect();
        let span = Span {
            prev: &prev,
            next: &next,
            batches: &batches,
            frames: &frames,
        };
        let rebased = rebase(&span, &mut self.packs, RESIDUAL_BATCH_ROWS)?;
        let residual: Vec<BatchRecord> = rebased.residual.iter().map(record_of).collect();
        report.residual_rows += residual.iter().map(|b| u64::from(b.rows)).sum::<u64>();
        report.keyframes += 1;
        for ((v, _, _, _), frame) in spans.iter().zip(&rebased.frames) {
            let bframe = self.store_bframe(frame, &residual, &rebased.first_keys)?;
            let rec = &mut work[*v as usize - 1];
            let Some(i) = entry_at(rec) else { continue };
            let t = &mut rec.tables[i];
            t.root = next_root.clone();
            t.keyframe_at = next_at;
            t.overlay = None;
            t.bframe = Some(bframe);
            changed.insert(*v);
            report.versions += 1;
        }
        Ok(())
    }
}

/// Which keyframe an entry reads: its root's content hash (`None`: an empty table).
type RootId = Option<[u8; 16]>;

fn root_id(t: &crate::catalog::version::TableEntry) -> RootId {
    t.root.as_ref().map(|r| r.hash)
}

/// The payload of a bitmap record.
fn source_bitmap(tree: &Tree, b: &BlockRecord) -> Result<Vec<u8>> {
    Ok(tree.read_record(&RecordRef::from(b), RecordKind::Bitmap)?)
}
