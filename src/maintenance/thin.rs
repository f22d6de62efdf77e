//! `Maintenance::thin`: keyframe thinning. A table keeps only the keyframes a
//! [`KeyframeThinning`] policy chooses (always its newest); every version that reads a
//! thinned keyframe (the keyframe's own version, versions that carry it unchanged, and
//! B-frames over it) is re-expressed as a B-frame over the next kept keyframe with
//! `reeldb_compactor::rebase`, so nothing reads the thinned keyframe any more and log
//! cleaning reclaims it.
//!
//! Consecutive thinned keyframes form a *run* ending at the kept keyframe after them. Each
//! run is rebased once: its keyframes are read in one merged pass, and every version over
//! them, together with the B-frames already over the kept keyframe, gets one shared
//! residual, so a row version shown on both sides of a thinned keyframe is stored once. The
//! work is linear in the store: each keyframe is read once by the rebase and at most twice by
//! the cost policy's estimate, each version's bitmaps once.
//!
//! A keyframe whose generation still has overlay versions is kept (compaction turns them into
//! B-frames first), as is one closing such a generation, one read with another table
//! definition than the keyframe after it, and any the latest version reads. Expired versions
//! are left as they are. The commit point is the same publication compaction uses (see
//! `maintenance`). Versions a writer commits meanwhile read the newest keyframe or a later
//! one, which thinning never touches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use reeldb_compactor::Membership;
use reeldb_compactor::fingerprint::RowHasher;
use reeldb_compactor::{Frame, Over, RowBatch, Span, changed_keys, rebase};
use reeldb_keyframe::RecordRef;
use reeldb_keyframe::tree::{Root, Tree};
use roaring::{RoaringBitmap, RoaringTreemap};

use super::compact::{RESIDUAL_BATCH_ROWS, batch_of, record_of};
use crate::catalog::index::IndexEntry;
use crate::catalog::version::{BatchRecord, BlockRecord, TableEntry, VersionRecord};
use crate::error::{Error, Result};
use crate::maintenance::Maintenance;
use crate::read::overlay_view::load_membership;

/// The default bound of [`KeyframeThinning::ResidualBound`]: thinning stops where a run's
/// residual could exceed this fraction of the kept keyframe's rows (and
/// [`THIN_RESIDUAL_MIN_ROWS`]).
pub const THIN_RESIDUAL_BOUND: f64 = 1.0;

/// The residual rows [`KeyframeThinning::ResidualBound`] allows a run by default however
/// small its table: a residual this size reads in about a millisecond, where each keyframe
/// kept is a whole copy of the table.
pub const THIN_RESIDUAL_MIN_ROWS: u64 = 16_384;

/// Which keyframes thinning keeps. Whatever the policy, a table keeps its newest keyframe
/// and the keyframes listed in the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyframeThinning {
    /// Keep every keyframe.
    Off,
    /// Keep one keyframe per this many versions: walking from the newest, a keyframe is kept
    /// when it was written at least this many versions before the last one kept.
    Every(u64),
    /// Keep a keyframe when thinning it would let the residual of its run grow past
    /// `fraction` of the kept keyframe's rows and past `min_rows`. The residual is estimated
    /// from the catalog and
    /// the keyframes before anything is written: the rows that differ between consecutive
    /// keyframes of the run (counted reading only the leaves they do not share) plus the
    /// residual rows already over them. A version over a keyframe reads its rows and, at
    /// most, that residual, so the bound is also a bound on how much more than a keyframe
    /// scan a thinned version's scan reads (for a table of more than `min_rows / fraction`
    /// rows).
    ResidualBound {
        /// The bound as a fraction of the kept keyframe's rows.
        fraction: f64,
        /// Residual rows always allowed, however few rows the table has.
        min_rows: u64,
    },
}

impl Default for KeyframeThinning {
    fn default() -> Self {
        KeyframeThinning::ResidualBound {
            fraction: THIN_RESIDUAL_BOUND,
            min_rows: THIN_RESIDUAL_MIN_ROWS,
        }
    }
}

/// What a thinning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thinning {
    /// Keyframes no version reads any more.
    pub keyframes: usize,
    /// Runs of consecutive thinned keyframes, each rebased in one pass.
    pub runs: usize,
    /// Versions re-expressed over a later keyframe (a version counts once per table).
    pub versions: usize,
    /// Rows written to the new residuals.
    pub residual_rows: u64,
}

/// Which keyframe an entry reads: its root's content hash (`None`: an empty table).
type RootId = Option<[u8; 16]>;

fn root_id(t: &TableEntry) -> RootId {
    t.root.as_ref().map(|r| r.hash)
}

/// One keyframe of a table, as the versions reading it describe it.
struct Keyframe {
    id: RootId,
    /// The version that wrote it: the smallest `keyframe_at` of the entries reading it.
    at: u64,
    /// An entry reading it (for its root and definition).
    entry: TableEntry,
    /// The definitions versions read it with.
    defs: BTreeSet<u64>,
    /// True when a live version reads it through an overlay.
    open: bool,
    /// Rows of the distinct residuals of the B-frames over it.
    residual_rows: u64,
}

/// A run of thinned keyframes (oldest first, by index into the table's keyframes) and the
/// kept keyframe after them.
struct Run {
    thinned: Vec<usize>,
    kept: usize,
}

impl Maintenance {
    /// Thins every table's keyframes to one per `keep_every` versions (see the module docs).
    pub fn thin(&mut self, keep_every: u64) -> Result<Thinning> {
        self.thin_with(KeyframeThinning::Every(keep_every), &mut |_, _| {})
    }

    /// Thins every table's keyframes as `policy` chooses (see the module docs). `progress` is
    /// told the runs rebased and to rebase.
    pub fn thin_with(
        &mut self,
        policy: KeyframeThinning,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Thinning> {
        let records: Vec<(IndexEntry, VersionRecord)> = self.committed()?;
        let mut work: Vec<VersionRecord> = records.iter().map(|(_, r)| r.clone()).collect();
        let mut changed: BTreeSet<u64> = BTreeSet::new();
        let mut report = Thinning::default();
        if policy == KeyframeThinning::Off {
            return Ok(report);
        }
        let defs: BTreeSet<u32> = work
            .iter()
            .flat_map(|r| r.tables.iter().map(|t| t.id))
            .collect();
        let live = |v: u64| !records[v as usize - 1].0.expired;
        let result = (|| -> Result<()> {
            let mut plans: Vec<(u32, Vec<Keyframe>, Vec<Run>)> = Vec::new();
            for def in defs {
                let keyframes = self.keyframes_of(def, &work, &live)?;
                let runs = self.choose_runs(def, &keyframes, &work, policy)?;
                plans.push((def, keyframes, runs));
            }
            let total: usize = plans.iter().map(|(_, _, runs)| runs.len()).sum();
            progress(0, total);
            for (def, keyframes, runs) in &plans {
                for run in runs {
                    self.rebase_run(
                        *def,
                        keyframes,
                        run,
                        &mut work,
                        &live,
                        &mut changed,
                        &mut report,
                    )?;
                    progress(report.runs, total);
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

    /// Table `def`'s keyframes that live versions read, oldest first. They are told apart by
    /// their roots (after a rewind, a purged version's number can be written again by another
    /// keyframe) and ordered by the version that wrote them.
    fn keyframes_of(
        &self,
        def: u32,
        work: &[VersionRecord],
        live: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Keyframe>> {
        let mut by_root: BTreeMap<RootId, Keyframe> = BTreeMap::new();
        let mut residuals: BTreeMap<RootId, Vec<&[BatchRecord]>> = BTreeMap::new();
        for r in work.iter().filter(|r| live(r.version)) {
            for t in r.tables.iter().filter(|t| t.id == def) {
                let k = by_root.entry(root_id(t)).or_insert_with(|| Keyframe {
                    id: root_id(t),
                    at: t.keyframe_at,
                    entry: t.clone(),
                    defs: BTreeSet::new(),
                    open: false,
                    residual_rows: 0,
                });
                k.at = k.at.min(t.keyframe_at);
                k.defs.insert(t.def.offset);
                k.open |= t.overlay.is_some();
                if let Some(b) = &t.bframe {
                    let seen = residuals.entry(root_id(t)).or_default();
                    if !seen.contains(&b.residual.as_slice()) {
                        seen.push(&b.residual);
                        k.residual_rows +=
                            b.residual.iter().map(|b| u64::from(b.rows)).sum::<u64>();
                    }
                }
            }
        }
        let mut keyframes: Vec<Keyframe> = by_root.into_values().collect();
        keyframes.sort_by_key(|k| k.at);
        Ok(keyframes)
    }

    /// Which keyframes of table `def` `policy` thins, as runs (see the module docs).
    fn choose_runs(
        &self,
        def: u32,
        keyframes: &[Keyframe],
        work: &[VersionRecord],
        policy: KeyframeThinning,
    ) -> Result<Vec<Run>> {
        let Some(newest) = keyframes.len().checked_sub(1) else {
            return Ok(Vec::new());
        };
        // The latest version is never rebased (a writer may be building on it): neither the
        // keyframe it reads is thinned nor, when it reads one through a B-frame (after a
        // rewind into a compacted generation), is anything thinned into that one. After a
        // rewind `keyframe_at` no longer orders keyframes by age, so both are checked by root.
        let latest_entry = work
            .last()
            .and_then(|r| r.tables.iter().find(|t| t.id == def));
        let latest_root = latest_entry.map(root_id);
        let latest_reads = latest_entry.filter(|t| t.bframe.is_some()).map(root_id);
        let mut hasher: Option<RowHasher> = None;
        let mut thinned = vec![false; keyframes.len()];
        let (mut kept, mut estimate) = (newest, keyframes[newest].residual_rows);
        for i in (0..newest).rev() {
            let x = &keyframes[i];
            let y = &keyframes[kept];
            let closes_open = i > 0 && keyframes[i - 1].open;
            let candidate = !x.open
                && !closes_open
                && x.defs.len() == 1
                && x.defs == y.defs
                && latest_root != Some(x.id)
                && latest_reads != Some(y.id);
            let thin = candidate
                && match policy {
                    KeyframeThinning::Off => false,
                    KeyframeThinning::Every(n) => y.at - x.at < n,
                    KeyframeThinning::ResidualBound { fraction, min_rows } => {
                        let tree = self.tree_of(x)?;
                        let hasher = match &mut hasher {
                            Some(h) => h,
                            None => hasher.insert(RowHasher::new(tree.layout())?),
                        };
                        let apart = changed_keys(&tree, &self.tree_of(&keyframes[i + 1])?, hasher)?;
                        let grown = estimate + apart + x.residual_rows;
                        let rows = y.entry.root.as_ref().map_or(0, |r| r.rows);
                        let fits = grown as f64 <= (fraction * rows as f64).max(min_rows as f64);
                        if fits {
                            estimate = grown;
                        }
                        fits
                    }
                };
            if thin {
                thinned[i] = true;
            } else {
                kept = i;
                estimate = x.residual_rows;
            }
        }
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for (i, t) in thinned.into_iter().enumerate() {
            match t {
                true => run.push(i),
                false if !run.is_empty() => runs.push(Run {
                    thinned: std::mem::take(&mut run),
                    kept: i,
                }),
                false => {}
            }
        }
        Ok(runs)
    }

    /// The keyframe tree an entry reads.
    fn tree_of(&self, k: &Keyframe) -> Result<Tree> {
        let store = self.store();
        let layout = store.load_def(k.entry.def)?.layout.clone();
        Ok(Tree::new(
            store.inner.source.clone(),
            layout,
            k.entry.root.as_ref().map(Root::from),
        ))
    }

    /// Re-expresses every live version of table `def` that reads a keyframe of `run` over the
    /// run's kept keyframe, together with the B-frames already over it, so all of them share
    /// one residual.
    #[allow(clippy::too_many_arguments)]
    fn rebase_run(
        &mut self,
        def: u32,
        keyframes: &[Keyframe],
        run: &Run,
        work: &mut [VersionRecord],
        live: &dyn Fn(u64) -> bool,
        changed: &mut BTreeSet<u64>,
        report: &mut Thinning,
    ) -> Result<()> {
        let entry_at = |r: &VersionRecord| r.tables.iter().position(|t| t.id == def);
        let thinned_ids: Vec<RootId> = run.thinned.iter().map(|i| keyframes[*i].id).collect();
        let kept = &keyframes[run.kept];
        let trees: Vec<Tree> = run
            .thinned
            .iter()
            .map(|i| self.tree_of(&keyframes[*i]))
            .collect::<Result<_>>()?;
        let next = self.tree_of(kept)?;
        let (next_root, next_at) = (kept.entry.root.clone(), kept.entry.keyframe_at);
        // Every version over the run (its keyframes' own and their B-frames, and the B-frames
        // over the kept keyframe) in version order, with its bitmaps; their residuals are
        // numbered across, each distinct one once.
        let mut residuals: Vec<Vec<BatchRecord>> = Vec::new();
        let mut spans: Vec<(u64, Over, RoaringTreemap, RoaringBitmap)> = Vec::new();
        let mut memberships: Vec<(BlockRecord, Arc<Membership>)> = Vec::new();
        for r in work.iter().filter(|r| live(r.version)) {
            let Some(t) = entry_at(r).map(|i| &r.tables[i]) else {
                continue;
            };
            let over = match thinned_ids.iter().position(|id| *id == root_id(t)) {
                Some(i) => Over::Thinned(i),
                None if root_id(t) == kept.id && t.bframe.is_some() => Over::Next,
                None => continue,
            };
            if t.overlay.is_some() {
                return Err(Error::InvalidArgument(format!(
                    "v{} is an overlay of a keyframe being thinned: compact first",
                    r.version
                )));
            }
            let (hidden, live_rows) = match &t.bframe {
                None => (RoaringTreemap::new(), RoaringBitmap::new()),
                Some(b) => {
                    let m = match memberships.iter().position(|(r, _)| *r == b.membership) {
                        Some(i) => &memberships[i].1,
                        None => {
                            let rows = b.residual.iter().map(|b| u64::from(b.rows)).sum();
                            let r = RecordRef::from(&b.membership);
                            let m = load_membership(&self.store().inner.source, &r, rows, b.frame)?;
                            memberships.push((b.membership.clone(), m));
                            &memberships[memberships.len() - 1].1
                        }
                    };
                    if b.frame >= m.frames {
                        return Err(Error::Corruption {
                            path: crate::catalog::RECORDS_LABEL.to_string(),
                            offset: 0,
                            reason: format!(
                                "v{} reads frame {} of a {}-frame membership",
                                r.version, b.frame, m.frames
                            ),
                        });
                    }
                    let frame = m.frame(b.frame);
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
                    (
                        frame.hidden,
                        frame.live.iter().map(|id| id + offset).collect(),
                    )
                }
            };
            spans.push((r.version, over, hidden, live_rows));
        }
        let batches: Vec<RowBatch> = residuals.iter().flatten().map(batch_of).collect();
        let frames: Vec<Frame<'_>> = spans
            .iter()
            .map(|(_, over, hidden, live)| Frame {
                over: *over,
                hidden,
                live,
            })
            .collect();
        let thinned: Vec<&Tree> = trees.iter().collect();
        let span = Span {
            thinned: &thinned,
            next: &next,
            batches: &batches,
            frames: &frames,
        };
        let rebased = rebase(&span, &mut self.packs, RESIDUAL_BATCH_ROWS)?;
        let residual: Vec<BatchRecord> = rebased.residual.iter().map(record_of).collect();
        report.residual_rows += residual.iter().map(|b| u64::from(b.rows)).sum::<u64>();
        report.keyframes += run.thinned.len();
        report.runs += 1;
        let bframes = self.store_bframes(&rebased, &residual)?;
        for ((v, _, _, _), bframe) in spans.iter().zip(bframes) {
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
