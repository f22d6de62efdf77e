//! Recovery when a writer opens (or reloads after maintenance or a rewind): the catalog cut
//! back to the latest version under the catalog lock, unless records.log proves acknowledged
//! versions past it, the latest entry and record made durable again, and the writer's
//! unfinished packs removed (on an object store left in place, and numbered past).

use super::*;

/// The latest committed version, with the catalog files cut back to it (under the catalog
/// lock; on an object store not below a rewind marker past it) and the writer's pack files
/// unfinished commits created removed (on an object store left, and numbered past); bytes past
/// committed lengths in kept packs stay, unreferenced (readers may map them), and new records
/// go to a new pack. The caller holds the writer lock.
pub(crate) fn settle(
    store: &Store,
    options: &WriterOptions,
) -> Result<(Option<(IndexEntry, VersionRecord)>, PackWriter)> {
    let storage = store.inner.storage.clone();
    let catalog = CatalogWriter::take(&storage)?;
    // A rewind by another handle may have freed positions this handle has cached.
    store.notice_rewinds()?;
    let head = match store.latest_entry()? {
        Some(e) => Some((e, store.read_record(&e)?)),
        None => None,
    };
    // Cutting the files back to the head must not cut off versions records.log proves were
    // acknowledged (an index cut short by damage).
    if let Some(lost) = tail::lost_after(storage.as_ref(), head.as_ref().map(|(e, _)| e))? {
        return Err(tail::lost_error(&lost));
    }
    let index_len = ENTRY_LEN * (head.as_ref().map_or(0, |(e, _)| e.version) + 1);
    if storage.len(&index_path())? > index_len {
        storage.truncate(&index_path(), index_len)?;
    }
    let mut records_len = head.as_ref().map_or(RECORDS_HEADER_LEN, |(e, _)| {
        e.record_offset + u64::from(e.record_len)
    });
    let file = head.as_ref().map_or(0, |(e, _)| e.records_file);
    let records = records_path(file);
    // On an object store, readers of the versions a rewind purged may still read their
    // records (table definitions are referenced by position): no other record may take
    // their place, so the cut stops at the rewind marker after them.
    if storage.locks_outlive_their_process()
        && let Some(end) = tail::last_marker_end(storage.as_ref(), file, records_len)?
    {
        records_len = records_len.max(end);
    }
    if !storage.exists(&records)? {
        // Rewound to nothing after a catalog rewrite retired records.log: it starts afresh.
        storage.write_atomic(&records, &records::header())?;
    } else if storage.len(&records)? > records_len {
        storage.truncate(&records, records_len)?;
    }
    if let Some((entry, _)) = &head {
        persist_head(storage.as_ref(), entry)?;
    }
    drop(catalog);
    let committed = head.as_ref().map_or(Vec::new(), |(_, r)| r.packs.clone());
    let mut packs = PackWriter::open(storage, &committed)?;
    if let Some(len) = options.max_pack_len {
        packs.set_max_pack_len(len);
    }
    Ok((head, packs))
}

/// Makes the latest version's index entry and version record durable again, by writing their
/// bytes over themselves and syncing, and syncs the catalog directory. A writer whose sync
/// failed leaves them visible but perhaps only in the page cache, which Linux then marks
/// clean ("fsyncgate"): without this, versions committed on top of such a head could outlive
/// it in a power loss and leave a hole. Identical bytes, so a crash part-way changes nothing.
pub(super) fn persist_head(
    storage: &dyn reeldb_keyframe::storage::Storage,
    entry: &IndexEntry,
) -> Result<()> {
    let entry_at = ENTRY_LEN * entry.version;
    let bytes = storage.read_at(&index_path(), entry_at, ENTRY_LEN as usize)?;
    storage.rewrite_in_place(&index_path(), entry_at, &bytes)?;
    let len = entry.record_len as usize;
    let path = records_path(entry.records_file);
    let record = storage.read_at(&path, entry.record_offset, len)?;
    storage.rewrite_in_place(&path, entry.record_offset, &record)?;
    storage.sync_dir(Path::new(crate::catalog::CATALOG_DIR))?;
    Ok(())
}
