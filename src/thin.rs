//! `Writer::thin`: keyframe thinning. A table keeps one full keyframe per `keep_every`
//! versions (always its newest); every version that reads a thinned keyframe (the keyframe's
//! own version, versions that carry it unchanged, and B-frames over it) is re-expressed as a
//! B-frame over the next keyframe with `reeldb_compactor::rebase`, so nothing reads the
//! thinned keyframe any more and log cleaning reclaims it. Thinned keyframes are processed
//! oldest first, so versions rebased onto a keyframe that is itself thinned move on with it.
//!
//! A keyframe whose generation still has overlay versions is kept (compaction turns them into
//! B-frames first). Expired versions are left as they are. The commit point is the same
//! atomic index swap compaction uses.

use std::collections::{BTreeMap, BTreeSet};

use reeldb_compactor::{Frame, RowBatch, Span, rebase};
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::record::RecordKind;
use reeldb_keyframe::tree::{Root, Tree};
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::catalog::index::IndexEntry;
use crate::catalog::version::{BatchRecord, BlockRecord, VersionRecord};
use crate::compact::{RESIDUAL_BATCH_ROWS, batch_of, record_of};
use crate::error::{Error, Result};
use crate::writer::Writer;

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

impl Writer {
    /// Thins every table's keyframes to one per `keep_every` versions (see the module docs).
    pub fn thin(&mut self, keep_every: u64) -> Result<Thinning> {
        self.check_usable()?;
        let store = self.store().clone();
        let latest = self.version();
        let mut records: Vec<(IndexEntry, VersionRecord)> = Vec::with_capacity(latest as usize);
        for v in 1..=latest {
            let e = store.index().entry(v)?;
            records.push((e, store.read_record(&e)?));
        }
        let mut work: Vec<VersionRecord> = records.iter().map(|(_, r)| r.clone()).collect();
        let mut changed: BTreeSet<u64> = BTreeSet::new();
        let mut report = Thinning::default();
        let defs: BTreeSet<u64> = work
            .iter()
            .flat_map(|r| r.tables.iter().map(|t| t.def.offset))
            .collect();
        let live = |v: u64| !records[v as usize - 1].0.expired;
        let result = (|| -> Result<()> {
            for def in defs {
                let keyframes: BTreeSet<u64> = work
                    .iter()
                    .filter(|r| live(r.version))
                    .flat_map(|r| r.tables.iter().filter(|t| t.def.offset == def))
                    .map(|t| t.keyframe_at)
                    .collect();
                let open: BTreeSet<u64> = work
                    .iter()
                    .flat_map(|r| r.tables.iter().filter(|t| t.def.offset == def))
                    .filter(|t| t.overlay.is_some())
                    .map(|t| t.keyframe_at)
                    .collect();
                // Newest first: keep the newest, then one at least `keep_every` versions older.
                let mut thinned = Vec::new();
                let mut last_kept: Option<u64> = None;
                for &k in keyframes.iter().rev() {
                    match last_kept {
                        Some(kept) if kept - k < keep_every && !open.contains(&k) => {
                            thinned.push(k)
                        }
                        _ => last_kept = Some(k),
                    }
                }
                thinned.sort_unstable();
                for x in thinned {
                    let Some(&y) = keyframes.range(x + 1..).next() else {
                        continue;
                    };
                    self.thin_one(def, x, y, &mut work, &live, &mut changed, &mut report)?;
                }
            }
            if !changed.is_empty() {
                let packs = self.packs.sync(self.options.sync)?;
                let rewritten: BTreeMap<u64, VersionRecord> = changed
                    .iter()
                    .map(|v| (*v, work[*v as usize - 1].clone()))
                    .collect();
                self.publish(&records, rewritten, packs)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            if self.reload().is_err() {
                self.poison();
            }
            return Err(e);
        }
        Ok(report)
    }

    /// Re-expresses every live version of table `def` that reads keyframe `x` over keyframe
    /// `y`.
    #[allow(clippy::too_many_arguments)]
    fn thin_one(
        &mut self,
        def: u64,
        x: u64,
        y: u64,
        work: &mut [VersionRecord],
        live: &dyn Fn(u64) -> bool,
        changed: &mut BTreeSet<u64>,
        report: &mut Thinning,
    ) -> Result<()> {
        let store = self.store().clone();
        let entry_at = |r: &VersionRecord| r.tables.iter().position(|t| t.def.offset == def);
        let over = |k: u64| {
            work.iter()
                .filter(|r| live(r.version))
                .filter_map(|r| entry_at(r).map(|i| (r.version, &r.tables[i])))
                .filter(move |(_, t)| t.keyframe_at == k)
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
        let next_root = ty.root.clone();
        // The versions reading x, their bitmaps over x, and their residuals numbered across.
        let mut residuals: Vec<Vec<BatchRecord>> = Vec::new();
        let mut spans: Vec<(u64, RoaringTreemap, RoaringBitmap)> = Vec::new();
        for (v, t) in over(x) {
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
                    "v{v} is an overlay of keyframe {x}: compact before thinning"
                )));
            }
            spans.push((v, hidden, live_rows));
        }
        let batches: Vec<RowBatch> = residuals.iter().flatten().map(batch_of).collect();
        let frames: Vec<Frame<'_>> = spans
            .iter()
            .map(|(_, hidden, live)| Frame {
                on_next: false,
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
        for ((v, _, _), frame) in spans.iter().zip(&rebased.frames) {
            let bframe = self.store_bframe(frame, &residual, &rebased.first_keys)?;
            let rec = &mut work[*v as usize - 1];
            let Some(i) = entry_at(rec) else { continue };
            let t = &mut rec.tables[i];
            t.root = next_root.clone();
            t.keyframe_at = y;
            t.overlay = None;
            t.bframe = Some(bframe);
            changed.insert(*v);
            report.versions += 1;
        }
        Ok(())
    }
}

/// The payload of a bitmap record.
fn source_bitmap(tree: &Tree, b: &BlockRecord) -> Result<Vec<u8>> {
    Ok(tree.read_record(&RecordRef::from(b), RecordKind::Bitmap)?)
}
