//! `Maintenance::compact`: every closed generation of every table becomes B-frames (see the
//! compactor crate), and the node logs nothing needs any more are deleted.
//!
//! A table's generation is closed once a later version wrote the table's next keyframe. Its
//! overlay versions are rewritten as B-frames over that next keyframe: the residual and one
//! pair of bitmaps per version are appended to maintenance's packs, then published (see
//! `maintenance`): a new version record for every rewritten version is appended to
//! records.log, the latest version's record is appended again last, every appended record
//! lists the packs' new lengths (so a writer opening later, or a rewind, keeps the new pack
//! bytes), and versions.idx is replaced atomically by one whose entries point at the new
//! records: the commit point. A crash before it leaves the store as it was (plus
//! unreferenced bytes); after it, every version reads as before, now from its B-frame.
//! Versions a writer commits meanwhile keep their entries: they never read a closed
//! generation. A node log is deleted only once its generation is closed (a later keyframe
//! of its table, or no such table, in the latest version read, which it precedes: the writer
//! appends only to its tables' open generations), no live version reads it, and no
//! live reader pins a version of its generation, since such a reader may still read that
//! version's old record; otherwise a later compaction deletes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use reeldb_compactor::{ClosedGeneration, Compacted, Fingerprints, RowBatch, compact_with};
use reeldb_keyframe::format::content_hash;
use reeldb_keyframe::record::RecordKind;
use reeldb_keyframe::tree::{Root, Tree};
use reeldb_overlay::{OverlayVersion, VersionDelta};

use crate::catalog::index::IndexEntry;
use crate::catalog::version::{BFrameRecord, BatchRecord, BlockRecord, TableEntry, VersionRecord};
use crate::catalog::{OVERLAY_DIR, overlay_log_path};
use crate::error::{Error, Result};
use crate::lease::ReaderCensus;
use crate::maintenance::Maintenance;
use crate::read::overlay_view::deltas_of;

/// Rows per residual batch.
pub(crate) const RESIDUAL_BATCH_ROWS: usize = 65_536;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Closed generations rewritten as B-frames.
    pub generations: usize,
    /// Versions rewritten (a version counts once however many of its tables were).
    pub versions: usize,
    /// Rows written to residuals.
    pub residual_rows: u64,
    /// Closed generations left as overlays because a table's schema changed within them
    /// (their versions read with different definitions, which one residual cannot serve):
    /// they read as before and keep their node logs.
    pub mixed_schema_generations: usize,
    /// Node logs deleted.
    pub node_logs_removed: usize,
    /// Bytes of the deleted node logs.
    pub bytes_reclaimed: u64,
    /// Node logs kept because a live reader pins a version of their generation.
    pub node_logs_held: usize,
}

/// One table's closed generation, found in the catalog.
struct Closed {
    table: u32,
    /// The generation's keyframe version.
    from: u64,
    /// The version that wrote the next keyframe.
    next: u64,
    /// The generation's overlay versions, oldest first.
    versions: Vec<u64>,
}

fn entry_of(rec: &VersionRecord, table: u32) -> Option<&TableEntry> {
    rec.tables.iter().find(|t| t.id == table)
}

/// Every closed generation with overlay versions still to compact, and how many closed
/// generations are left out because their overlay versions read with different definitions.
fn closed_generations(records: &[(IndexEntry, VersionRecord)]) -> (Vec<Closed>, usize) {
    let mut open: BTreeMap<(u32, u64), (Vec<u64>, BTreeSet<u64>)> = BTreeMap::new();
    // Expired versions are left as they are: nothing reads them any more.
    for (_, rec) in records.iter().filter(|(e, _)| !e.expired) {
        for t in &rec.tables {
            if t.overlay.is_some() {
                let (versions, defs) = open.entry((t.id, t.keyframe_at)).or_default();
                versions.push(rec.version);
                defs.insert(t.def.offset);
            }
        }
    }
    let mut out = Vec::new();
    let mut mixed = 0;
    for ((table, from), (versions, defs)) in open {
        let last = versions[versions.len() - 1];
        // The generation is closed by the first later live version whose entry for the table
        // belongs to a later generation (a keyframe, or an overlay of it): its root is the
        // next keyframe. Expired records are skipped: cleaning may have retired what they
        // reference.
        let after = records[last as usize..]
            .iter()
            .filter(|(e, _)| !e.expired)
            .map(|(_, r)| r)
            .find(|r| entry_of(r, table).is_some_and(|t| t.keyframe_at != from));
        if let Some(after) = after
            && let Some(t) = entry_of(after, table)
            && t.keyframe_at > from
            && t.bframe.is_none()
        {
            if defs.len() > 1 {
                mixed += 1;
                continue;
            }
            out.push(Closed {
                table,
                from,
                next: after.version,
                versions,
            });
        }
    }
    (out, mixed)
}

pub(crate) fn batch_of(b: &BatchRecord) -> RowBatch {
    RowBatch {
        rows: b.rows,
        columns: b.blocks(),
    }
}

pub(crate) fn record_of(b: &RowBatch) -> BatchRecord {
    BatchRecord::new(b.rows, &b.columns)
}

impl Maintenance {
    /// Compacts every closed generation (see the module docs), calling `progress` with the
    /// number of generations done and to do.
    pub fn compact(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<Compaction> {
        let records = self.committed()?;
        let (closed, mixed) = closed_generations(&records);
        let mut report = Compaction {
            mixed_schema_generations: mixed,
            ..Compaction::default()
        };
        let mut rewritten: BTreeMap<u64, VersionRecord> = BTreeMap::new();
        // A generation's next keyframe is the next generation's previous one: fingerprinted
        // once for both.
        let mut fingerprints = Fingerprints::default();
        let result = (|| -> Result<()> {
            for (done, g) in closed.iter().enumerate() {
                progress(done, closed.len());
                self.compact_generation(
                    g,
                    &records,
                    &mut rewritten,
                    &mut report,
                    &mut fingerprints,
                )?;
            }
            progress(closed.len(), closed.len());
            report.versions = rewritten.len();
            if !rewritten.is_empty() {
                self.publish(&records, rewritten, None)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            return self.abandon(e);
        }
        self.remove_unused_logs(&mut report)?;
        self.delete_retired_packs(&mut super::Cleaning::default())?;
        Ok(report)
    }

    fn compact_generation(
        &mut self,
        g: &Closed,
        records: &[(IndexEntry, VersionRecord)],
        rewritten: &mut BTreeMap<u64, VersionRecord>,
        report: &mut Compaction,
        fingerprints: &mut Fingerprints,
    ) -> Result<()> {
        let store = self.store().clone();
        let rec_at = |v: u64| -> Result<&VersionRecord> {
            records
                .get(v as usize - 1)
                .map(|(_, r)| r)
                .ok_or(Error::UnknownVersion {
                    version: v,
                    latest: records.len() as u64,
                })
        };
        let next_entry = entry_of(rec_at(g.next)?, g.table)
            .ok_or_else(|| Error::InvalidArgument("table vanished".into()))?
            .clone();
        let first = entry_of(rec_at(g.versions[0])?, g.table)
            .ok_or_else(|| Error::InvalidArgument("table vanished".into()))?;
        let layout = store.load_def(first.def)?.layout.clone();
        let source = store.inner.source.clone();
        let prev = Tree::new(
            source.clone(),
            layout.clone(),
            first.root.as_ref().map(Root::from),
        );
        let next = Tree::new(source, layout, next_entry.root.as_ref().map(Root::from));
        let log = store.node_log(&overlay_log_path(g.table, g.from));
        // Each version's bitmaps, folded from the generation's deltas as they accumulate
        // (every version of a generation lists its predecessors' deltas first).
        let mut versions = Vec::with_capacity(g.versions.len());
        let mut deltas: Vec<VersionDelta> = Vec::new();
        // The deltas read so far, as the last version's record names them.
        let mut read_refs: &[(u64, u64)] = &[];
        let mut last_batches = Vec::new();
        for &v in &g.versions {
            let o = entry_of(rec_at(v)?, g.table)
                .and_then(|t| t.overlay.as_ref())
                .ok_or_else(|| Error::InvalidArgument(format!("v{v} lost its overlay")))?;
            if !o.deltas.starts_with(read_refs) {
                return Err(Error::Corruption {
                    path: crate::catalog::RECORDS_LABEL.to_string(),
                    offset: 0,
                    reason: format!(
                        "v{v}'s overlay of table {} does not extend the versions before it",
                        g.table
                    ),
                });
            }
            for r in &deltas_of(o)[read_refs.len()..] {
                deltas.push(VersionDelta::load(&log, *r)?);
            }
            read_refs = &o.deltas;
            versions.push(OverlayVersion::fold(&deltas, o.rows()));
            last_batches = o.batches.iter().map(batch_of).collect();
        }
        let generation = ClosedGeneration {
            prev: &prev,
            next: &next,
            versions: &versions,
            batches: &last_batches,
        };
        let compacted = compact_with(
            &generation,
            &mut self.packs,
            RESIDUAL_BATCH_ROWS,
            fingerprints,
        )?;
        let residual: Vec<BatchRecord> = compacted.residual.iter().map(record_of).collect();
        report.residual_rows += residual.iter().map(|b| u64::from(b.rows)).sum::<u64>();
        report.generations += 1;
        let bframes = self.store_bframes(&compacted, &residual)?;
        for (&v, bframe) in g.versions.iter().zip(bframes) {
            let rec = match rewritten.get_mut(&v) {
                Some(r) => r,
                None => rewritten.entry(v).or_insert(rec_at(v)?.clone()),
            };
            for t in rec.tables.iter_mut().filter(|t| t.id == g.table) {
                t.root = next_entry.root.clone();
                t.keyframe_at = next_entry.keyframe_at;
                t.overlay = None;
                t.bframe = Some(bframe.clone());
            }
        }
        Ok(())
    }

    /// Stores a compacted span's membership in the packs (once: every B-frame of the span
    /// names the same record) and returns one catalog record per frame, in frame order.
    pub(crate) fn store_bframes(
        &mut self,
        compacted: &Compacted,
        residual: &[BatchRecord],
    ) -> Result<Vec<BFrameRecord>> {
        let payload = compacted.membership.encode();
        let membership =
            self.packs
                .put(RecordKind::Membership, &payload, content_hash(&payload))?;
        Ok(compacted
            .membership
            .counts()
            .into_iter()
            .enumerate()
            .map(|(frame, (hidden_count, live_count))| BFrameRecord {
                residual: residual.to_vec(),
                first_keys: compacted.first_keys.clone(),
                membership: BlockRecord::from(&membership),
                frame: frame as u32,
                hidden_count,
                live_count,
            })
            .collect())
    }

    /// Deletes the node logs of closed generations no live version reads, unless a live
    /// reader pins a version of their generation (on an object store: retires them, see
    /// `retire`).
    fn remove_unused_logs(&mut self, report: &mut Compaction) -> Result<()> {
        let store = self.store().clone();
        let storage = store.inner.storage.clone();
        let dir = Path::new(OVERLAY_DIR);
        if !storage.exists(dir)? {
            return Ok(());
        }
        let records = self.committed()?;
        let mut used: Vec<PathBuf> = Vec::new();
        // Per table, the versions that wrote keyframes, to bound each generation.
        let mut keyframes: HashMap<u32, Vec<u64>> = HashMap::new();
        for (e, rec) in &records {
            for t in &rec.tables {
                if t.keyframe_at == e.version && t.bframe.is_none() {
                    keyframes.entry(t.id).or_default().push(e.version);
                }
                // An expired version no longer keeps its node log (a reader still holding it
                // is seen in the census below).
                if t.overlay.is_some() && !e.expired {
                    used.push(overlay_log_path(t.id, t.keyframe_at));
                }
            }
        }
        // The generation each table's latest entry reads: the writer may be appending to its
        // node log for a commit not yet published.
        let open: Vec<(u32, u64)> = records
            .last()
            .iter()
            .flat_map(|(_, r)| &r.tables)
            .map(|t| (t.id, t.keyframe_at))
            .collect();
        // Generations newer than every version read are the writer's too (those of tables
        // created since among them), whatever the latest entries say (after a rewind into a
        // compacted generation, a B-frame's `keyframe_at` names a purged version above the
        // generations that follow it). Any other log is closed: no table, whatever its id,
        // begins a generation at a version already committed. (A rewind below it would, and
        // takes back a retirement first: `retire::unretire`.)
        let read_latest = records.last().map_or(0, |(e, _)| e.version);
        let census = ReaderCensus::take(storage.as_ref())?;
        let (mut doomed, mut bytes) = (Vec::new(), 0);
        for name in storage.list(dir)? {
            let path = dir.join(&name);
            let Some((table, g)) = super::rewind::log_id(&name) else {
                continue;
            };
            let still_open = g > read_latest || open.iter().any(|&(t, at)| t == table && at <= g);
            if used.contains(&path) || still_open {
                continue;
            }
            let end = keyframes
                .get(&table)
                .and_then(|k| k.iter().find(|&&v| v > g).copied())
                .unwrap_or(u64::MAX);
            if census.pinned.range(g + 1..end).next().is_some() {
                report.node_logs_held += 1;
                continue;
            }
            bytes += storage.len(&path)?;
            doomed.push(path);
        }
        drop(census);
        if doomed.is_empty() {
            return Ok(());
        }
        match self.delete_or_retire(&doomed)? {
            true => {
                report.bytes_reclaimed += bytes;
                report.node_logs_removed += doomed.len();
                storage.sync_dir(dir)?;
            }
            false => report.node_logs_held += doomed.len(),
        }
        Ok(())
    }
}
