//! `Writer::clean`: pack log cleaning. Every record a live (unexpired) version references is
//! copied into new packs (tree nodes written again with their children's new locations; see
//! `reeldb_keyframe::copy`), every live version's record is appended again pointing at the
//! copies, and versions.idx is swapped atomically (the commit point, as in compaction). The
//! old packs are then retired: no record of a live version lists them, and the next writer
//! leaves them alone. They are deleted as soon as no live reader pins any version, since a
//! reader that opened a version before the swap may still read its old record; otherwise a
//! later clean or compaction deletes them.
//!
//! What this reclaims: overlay row batches compaction left unreferenced, the bytes of expired
//! versions and of versions a rewind purged, and anything else no live version reaches.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use reeldb_keyframe::RecordRef;
use reeldb_keyframe::copy::Copies;
use reeldb_keyframe::pack::{PACK_DIR, PackWriter, pack_path, retired};
use reeldb_keyframe::record::RecordKind;
use reeldb_keyframe::tree::{Root, Tree};

use crate::catalog::version::{BlockRecord, RootRecord, VersionRecord};
use crate::error::Result;
use crate::lease::ReaderCensus;
use crate::writer::Writer;

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
    let mut count = |r: &RecordRef| {
        if seen.insert((r.pack, r.offset)) {
            total += u64::from(r.len);
        }
    };
    for (_, rec) in records.iter().filter(|(e, _)| !e.expired) {
        for t in &rec.tables {
            let layout = store.load_def(t.def)?.layout.clone();
            let tree = Tree::new(
                store.inner.source.clone(),
                layout,
                t.root.as_ref().map(Root::from),
            );
            tree.for_each_record(&mut count)?;
            let batches = t
                .overlay
                .iter()
                .flat_map(|o| &o.batches)
                .chain(t.bframe.iter().flat_map(|f| &f.residual));
            for (_, c) in batches.flat_map(|b| b.present()) {
                count(&RecordRef::from(c));
            }
            for b in t.bframe.iter().flat_map(|f| [&f.hidden, &f.live]) {
                count(&RecordRef::from(b));
            }
        }
    }
    Ok(total)
}

impl Writer {
    /// Cleans the packs (see the module docs) when at least `min_garbage` (a fraction) of
    /// their bytes is referenced by no live version; retired packs no reader needs are
    /// deleted either way.
    pub fn clean(&mut self, min_garbage: f64) -> Result<Cleaning> {
        self.check_usable()?;
        let store = self.store().clone();
        let storage = store.inner.storage.clone();
        let latest = self.version();
        let mut report = Cleaning::default();
        let committed = self.packs.sync(true)?;
        report.bytes_before = committed.iter().map(|(_, len)| len).sum();
        if latest == 0 {
            return Ok(report);
        }
        let mut records = Vec::with_capacity(latest as usize);
        for v in 1..=latest {
            let e = store.index().entry(v)?;
            records.push((e, store.read_record(&e)?));
        }
        report.live_bytes = live_bytes(&store, &records)?;
        let garbage = 1.0 - report.live_bytes as f64 / report.bytes_before.max(1) as f64;
        // Nothing live to copy (every table empty): the packs stay, so ids never repeat.
        if garbage < min_garbage || report.live_bytes == 0 {
            self.delete_retired_packs(&mut report)?;
            return Ok(report);
        }
        report.copied = true;
        let mut fresh = PackWriter::fresh(storage.clone(), &committed)?;
        let first_new = fresh.next_pack_id();
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
                        f.hidden = block(
                            &tree,
                            &f.hidden,
                            RecordKind::Bitmap,
                            &mut fresh,
                            &mut copies,
                        )?;
                        f.live =
                            block(&tree, &f.live, RecordKind::Bitmap, &mut fresh, &mut copies)?;
                    }
                }
                rewritten.insert(e.version, rec);
            }
            let packs: Vec<(u32, u64)> = fresh
                .sync(true)?
                .into_iter()
                .filter(|(id, _)| *id >= first_new)
                .collect();
            report.bytes_after = packs.iter().map(|(_, len)| len).sum();
            report.versions = rewritten.len();
            report.records_copied = copies.len();
            self.publish(&records, std::mem::take(&mut rewritten), packs)
        })();
        if let Err(e) = result {
            // Nothing references what was appended: the reload cuts it off.
            return self.recover(e);
        }
        self.delete_retired_packs(&mut report)?;
        Ok(report)
    }

    /// Deletes the retired packs, unless a live reader pins any version.
    pub(crate) fn delete_retired_packs(&mut self, report: &mut Cleaning) -> Result<()> {
        let storage = self.store().inner.storage.clone();
        let committed = self.packs.sync(true)?;
        let old = retired(storage.as_ref(), &committed)?;
        if old.is_empty() {
            return Ok(());
        }
        let census = ReaderCensus::take(storage.as_ref())?;
        if !census.pinned.is_empty() {
            report.packs_held += old.len();
            return Ok(());
        }
        for id in &old {
            storage.remove(&pack_path(*id))?;
            report.packs_deleted += 1;
        }
        drop(census);
        storage.sync_dir(Path::new(PACK_DIR))?;
        Ok(())
    }
}
