//! `Maintenance::clean`: pack log cleaning. Every record a live (unexpired) version references
//! is copied into new packs of the writer's range (tree nodes written again with their
//! children's new locations; see `reeldb_keyframe::copy`), every live version's record is
//! appended again pointing at the copies, and versions.idx is swapped atomically (the commit
//! point, as in compaction). The old packs are then retired: no record of a live version lists
//! them, and the next writer leaves them alone. They are deleted as soon as no live reader
//! pins any version, since a reader that opened a version before the swap may still read its
//! old record; otherwise a later clean or compaction deletes them. When the maintenance range
//! had packs, an empty one is started there and listed, so that range's ids keep rising.
//!
//! The copy needs the writer lock for its duration: an open writer's deduplication index
//! points into the old packs, and its next commit would reference them. Beside an open writer
//! the copy is skipped ([`Cleaning::writer_open`]); retired packs are still deleted, since a
//! writer never learns of a pack retired before it opened.
//!
//! What this reclaims: overlay row batches compaction left unreferenced, the bytes of expired
//! versions and of versions a rewind purged, and anything else no live version reaches.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use reeldb_keyframe::RecordRef;
use reeldb_keyframe::copy::Copies;
use reeldb_keyframe::pack::{PACK_DIR, PackRange, PackWriter, pack_path, retired};
use reeldb_keyframe::record::RecordKind;
use reeldb_keyframe::storage::LockGuard;
use reeldb_keyframe::tree::{Root, Tree};

use crate::catalog::version::{BlockRecord, RootRecord, VersionRecord};
use crate::error::Result;
use crate::lease::ReaderCensus;
use crate::maintenance::Maintenance;

/// What a clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaning {
    /// False when too little of the packs was garbage to be worth copying the rest.
    pub copied: bool,
    /// Bytes of the records live versions reference, before the clean.
    pub live_bytes: u64,
    /// Versions whose records now point at the copies.
    pub versions: usize,
    /// Distinct records copied.
    pub records_copied: usize,
    /// Bytes of the packs before the clean.
    pub bytes_before: u64,
    /// Bytes of the new packs.
    pub bytes_after: u64,
    /// Retired packs deleted.
    pub packs_deleted: usize,
    /// Retired packs kept because a live reader pins a version.
    pub packs_held: usize,
    /// True when a writer was open, so the copy was skipped (however much was garbage).
    pub writer_open: bool,
}

fn block(
    tree: &Tree,
    b: &BlockRecord,
    kind: RecordKind,
    packs: &mut PackWriter,
    copies: &mut Copies,
) -> Result<BlockRecord> {
    Ok(BlockRecord::from(&tree.copy_record(
        &RecordRef::from(b),
        kind,
        packs,
        copies,
    )?))
}

/// Bytes of the distinct pack records the live versions reference (nodes are read, blocks
/// are not).
fn live_bytes(
    store: &crate::store::Store,
    records: &[(crate::catalog::index::IndexEntry, VersionRecord)],
) -> Result<u64> {
    let mut seen: HashSet<(u32, u64)> = HashSet::new();
    let mut total = 0u64;
    // Counts a record once; true the first time.
    let mut count = |r: &RecordRef| {
        let new = seen.insert((r.pack, r.offset));
        if new {
            total += u64::from(r.len);
        }
        new
    };
    for (_, rec) in records.iter().filter(|(e, _)| !e.expired) {
        for t in &rec.tables {
            let layout = store.load_def(t.def)?.layout.clone();
            let tree = Tree::new(
                store.inner.source.clone(),
                layout,
                t.root.as_ref().map(Root::from),
            );
            tree.for_each_record(&mut |r| {
                count(r);
            })?;
            let batches = t
                .overlay
                .iter()
                .flat_map(|o| &o.batches)
                .chain(t.bframe.iter().flat_map(|f| &f.residual));
            for (_, c) in batches.flat_map(|b| b.present()) {
                let block = RecordRef::from(c);
                // Versions of a span list the same residual: each block looked at once.
                if count(&block)
                    && let Some(own) = tree.own_block_of(&block)?
                {
                    count(&own);
                }
            }
            if let Some(f) = &t.bframe {
                count(&RecordRef::from(&f.membership));
            }
        }
    }
    Ok(total)
}

impl Maintenance {
    /// Cleans the packs (see the module docs) when at least `min_garbage` (a fraction) of
    /// their bytes is referenced by no live version and no writer is open; retired packs no
    /// reader needs are deleted either way.
    pub fn clean(&mut self, min_garbage: f64) -> Result<Cleaning> {
        let store = self.store().clone();
        let storage = store.inner.storage.clone();
        let mut report = Cleaning::default();
        // Held until the copy is published.
        let _writer_lock: Option<Box<dyn LockGuard>> = if self.writer_quiet {
            None
        } else {
            match super::try_writer_lock(&store)? {
                Some(lock) => Some(lock),
                None => {
                    report.writer_open = true;
                    self.delete_retired_packs(&mut report)?;
                    return Ok(report);
                }
            }
        };
        let records = self.committed()?;
        let Some((_, head)) = records.last() else {
            return Ok(report);
        };
        let committed = head.packs.clone();
        report.bytes_before = committed.iter().map(|(_, len)| len).sum();
        report.live_bytes = live_bytes(&store, &records)?;
        let garbage = 1.0 - report.live_bytes as f64 / report.bytes_before.max(1) as f64;
        // Nothing live to copy (every table empty): the packs stay, so ids never repeat.
        if garbage < min_garbage || report.live_bytes == 0 {
            self.delete_retired_packs(&mut report)?;
            return Ok(report);
        }
        report.copied = true;
        let mut fresh = PackWriter::fresh(storage.clone(), &committed, PackRange::Writer)?;
        let first_new = fresh.next_pack_id();
        // The maintenance range's packs are retired too; an empty one keeps its ids rising.
        let mut fresh_ours = PackRange::Maintenance
            .max_in(&committed)
            .map(|_| PackWriter::fresh(storage.clone(), &committed, PackRange::Maintenance))
            .transpose()?;
        let mut copies = Copies::new();
        let mut rewritten: BTreeMap<u64, VersionRecord> = BTreeMap::new();
        let result = (|| -> Result<()> {
            for (e, rec) in records.iter().filter(|(e, _)| !e.expired) {
                let mut rec = rec.clone();
                for t in &mut rec.tables {
                    let layout = store.load_def(t.def)?.layout.clone();
                    let tree = Tree::new(
                        store.inner.source.clone(),
                        layout,
                        t.root.as_ref().map(Root::from),
                    );
                    let root = tree.copy_to(&mut fresh, &mut copies)?;
                    t.root = root.as_ref().map(RootRecord::from);
                    for b in t.overlay.iter_mut().flat_map(|o| o.batches.iter_mut()) {
                        for c in b.columns.iter_mut().flatten() {
                            *c = block(&tree, c, RecordKind::ColumnBlock, &mut fresh, &mut copies)?;
                        }
                    }
                    if let Some(f) = &mut t.bframe {
                        for b in &mut f.residual {
                            for c in b.columns.iter_mut().flatten() {
                                *c = block(
                                    &tree,
                                    c,
                                    RecordKind::ColumnBlock,
                                    &mut fresh,
                                    &mut copies,
                                )?;
                            }
                        }
                        f.membership = block(
                            &tree,
                            &f.membership,
                            RecordKind::Membership,
                            &mut fresh,
                            &mut copies,
                        )?;
                    }
                }
                rewritten.insert(e.version, rec);
            }
            let mut packs: Vec<(u32, u64)> = fresh
                .sync(true)?
                .into_iter()
                .filter(|(id, _)| *id >= first_new)
                .collect();
            let mut ours = Vec::new();
            if let Some(w) = &mut fresh_ours {
                let id = w.start_empty_pack()?;
                ours = w.sync(true)?.into_iter().filter(|p| p.0 == id).collect();
                packs.extend(ours.iter().copied());
            }
            report.bytes_after = packs.iter().map(|(_, len)| len).sum();
            report.versions = rewritten.len();
            report.records_copied = copies.len();
            self.publish(&records, std::mem::take(&mut rewritten), Some(packs))?;
            // This run appends from now on after the packs it just listed.
            self.packs = PackWriter::open_in(storage.clone(), &ours, PackRange::Maintenance)?;
            Ok(())
        })();
        if let Err(e) = result {
            return self.abandon(e);
        }
        self.delete_retired_packs(&mut report)?;
        Ok(report)
    }

    /// Deletes the retired packs, unless a live reader pins any version (on an object
    /// store: retires them, see `retire`).
    pub(crate) fn delete_retired_packs(&mut self, report: &mut Cleaning) -> Result<()> {
        let store = self.store().clone();
        let storage = store.inner.storage.clone();
        let Some(head) = store.latest_entry()? else {
            return Ok(());
        };
        let committed = store.read_record(&head)?.packs;
        let old = retired(storage.as_ref(), &committed)?;
        if old.is_empty() {
            return Ok(());
        }
        let census = ReaderCensus::take(storage.as_ref())?;
        if !census.pinned.is_empty() {
            report.packs_held += old.len();
            return Ok(());
        }
        drop(census);
        let paths: Vec<_> = old.iter().map(|id| pack_path(*id)).collect();
        match self.delete_or_retire(&paths)? {
            true => {
                report.packs_deleted += paths.len();
                storage.sync_dir(Path::new(PACK_DIR))?;
            }
            false => report.packs_held += paths.len(),
        }
        Ok(())
    }
}
