//! The catalog's two commit points and the lock that takes them in turn.
//!
//! The writer and maintenance run in separate processes and both change the catalog: the
//! writer appends a version (its records, then its index entry), maintenance replaces records
//! of existing versions (appends the new records, then swaps versions.idx atomically). Each
//! does so holding the catalog lock (`catalog/LOCK`, an exclusive `flock`) for just that
//! step, so the other waits at most one such step. Under the lock the files' lengths are
//! measured afresh (the other process may have appended or swapped since), and a step that
//! fails leaves nothing the other process could mistake for committed: an append is cut back
//! to those lengths before the lock is released, and an index swap that did not take leaves
//! only unreferenced records. Everything a
//! commit references (pack records, node-log nodes) is written and synced before the lock is
//! taken.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use reeldb_keyframe::storage::{LockGuard, Storage};

use super::index::{ENTRY_LEN, IndexEntry, IndexReader};
use super::{CATALOG_DIR, head, index_path, records_path};
use crate::error::{Error, Result};

/// Path of the catalog lock file.
pub fn lock_path() -> std::path::PathBuf {
    Path::new(CATALOG_DIR).join("LOCK")
}

/// The catalog's one writer: holds the catalog lock, so the catalog files are this holder's to
/// change (by [`CatalogWriter::append_version`] or [`CatalogWriter::replace_index`]) until it
/// is dropped. (A rewind, which holds the writer and maintenance locks and so excludes every
/// other appender, replaces the index itself: it must also work when the latest entry is
/// damaged, which taking this reads.)
#[derive(Debug)]
pub struct CatalogWriter {
    storage: Arc<dyn Storage>,
    guard: Box<dyn LockGuard>,
    /// The latest version's entry when the lock was taken.
    head: Option<IndexEntry>,
    /// The records file new records go to: the latest version's.
    records_file: u64,
    /// Length of that records file when the lock was taken.
    records_len: u64,
    /// Length of versions.idx when the lock was taken.
    index_len: u64,
    /// Whether versions get heads (module `head`): on an object store.
    heads: bool,
}

impl CatalogWriter {
    /// Waits for the catalog lock and takes it.
    pub fn take(storage: &Arc<dyn Storage>) -> Result<CatalogWriter> {
        let guard = storage.lock_exclusive(&lock_path())?;
        let head = IndexReader::new(storage.as_ref()).latest()?;
        let records_file = head.map_or(0, |e| e.records_file);
        let records = records_path(records_file);
        Ok(CatalogWriter {
            // records.log is missing only after a rewind to nothing retired it (a catalog
            // rewrite had moved on); the writer's open starts it afresh.
            records_len: match storage.exists(&records)? {
                true => storage.len(&records)?,
                false => 0,
            },
            index_len: storage.len(&index_path())?,
            head,
            records_file,
            heads: storage.locks_outlive_their_process(),
            storage: storage.clone(),
            guard,
        })
    }

    /// Length of the records file as it was when the lock was taken: where the next record
    /// goes.
    pub fn records_len(&self) -> u64 {
        self.records_len
    }

    /// The records file new records go to.
    pub fn records_file(&self) -> u64 {
        self.records_file
    }

    /// The latest committed version's index entry, as read when the lock was taken (nothing
    /// else changes it while the lock is held).
    pub fn head(&self) -> Option<IndexEntry> {
        self.head
    }

    /// Appends a version: `records` (table definitions, then the version record) at the end of
    /// records.log, then `entry` to versions.idx, which must end at the entry before it. Both
    /// synced when `durable`. On failure both files are cut back, unless the catalog lock was
    /// lost or another writer wrote first (then they may be that writer's).
    pub fn append_version(
        &mut self,
        records: &[u8],
        entry: &IndexEntry,
        durable: bool,
    ) -> Result<()> {
        let step = || -> Result<()> {
            let expected = ENTRY_LEN * entry.version;
            if self.index_len != expected {
                return Err(crate::error::Error::Internal(format!(
                    "versions.idx is {} bytes where version {} must start at {expected}",
                    self.index_len, entry.version
                )));
            }
            let mut log = self.storage.open_append(&records_path(self.records_file))?;
            log.append(records)?;
            if durable {
                log.sync()?;
            }
            self.guard.check()?;
            let mut index = self.storage.open_append(&index_path())?;
            index.append(&entry.encode())?;
            if durable {
                index.sync()?;
            }
            Ok(())
        };
        let result = step();
        if result.is_ok() && durable && self.heads {
            // The record (and any new definitions) just appended, and the definitions the
            // version before's head copies, need not be read back.
            let mut known = head::appended_records(records, self.records_len);
            if let Some(before) = self.head
                && let Ok(Some(bytes)) = self.storage.read_small(&head::head_path(before.version))
            {
                known.extend(head::framed_records(&bytes, self.records_file));
            }
            self.write_heads(&[entry.version], Some(entry), &known);
        }
        if let Err(e) = &result {
            // A lost lock or a segment another writer created first means the files'
            // ends may be another writer's now: they are left as they are.
            let lost = matches!(
                e,
                Error::Keyframe(
                    reeldb_keyframe::Error::LockLost { .. }
                        | reeldb_keyframe::Error::Conflict { .. }
                )
            );
            if !lost {
                self.cut_back()?;
            }
        }
        result
    }

    /// Replaces the index: appends `records` (the rewritten version records) to records.log
    /// and syncs them, then writes `index` (the whole new versions.idx) in one atomic, durable
    /// replacement, the commit point. A failure may come after the rename took (syncing the
    /// directory), so the appended records are left in place: unreferenced if the old index
    /// stands, and the next writer to open cuts them off.
    pub fn replace_index(&mut self, records: &[u8], index: &[u8]) -> Result<()> {
        if !records.is_empty() {
            let mut log = self.storage.open_append(&records_path(self.records_file))?;
            log.append(records)?;
            log.sync()?;
        }
        // Whoever took the catalog lock over (its lease lapsed, on an object store) may
        // have appended versions this index would drop.
        self.guard.check()?;
        // The heads of versions whose entries change go first: none may outlive its entry.
        let changed = match self.heads {
            true => {
                let old = super::read_exact(
                    self.storage.as_ref(),
                    &index_path(),
                    0,
                    self.index_len as usize,
                )?;
                let changed = head::changed(&old, index);
                head::remove_each(self.storage.as_ref(), &changed)?;
                changed
            }
            false => Vec::new(),
        };
        self.storage.write_atomic(&index_path(), index)?;
        if self.heads {
            // The latest version's head names the index's generation, which this changed.
            let mut again = changed;
            again.extend(self.head.map(|e| e.version));
            let known = head::appended_records(records, self.records_len);
            self.write_heads(&again, None, &known);
        }
        Ok(())
    }

    /// Writes the heads of `versions` as versions.idx now holds them (`entry`: the one just
    /// appended, else each is read; `known`: framed records of the current records file
    /// that need not be read back), skipping expired versions. A head is a copy that only
    /// speeds opens up, written after its commit point: one that cannot be written (a
    /// failed request, a lapsed lease) leaves its version to be opened through versions.idx,
    /// so failures here are not the commit's.
    fn write_heads(
        &self,
        versions: &[u64],
        entry: Option<&IndexEntry>,
        known: &HashMap<u64, Vec<u8>>,
    ) {
        let storage = self.storage.as_ref();
        let Ok(generation) = storage.generation(&index_path()) else {
            return;
        };
        for &v in versions {
            let write = || -> Result<()> {
                let e = match entry {
                    Some(e) if e.version == v => *e,
                    _ => IndexReader::new(storage).entry(v)?,
                };
                if !e.expired {
                    self.guard.check()?;
                    head::write(storage, &e, generation, known)?;
                }
                Ok(())
            };
            // Not the commit's failure (see above); the version opens through versions.idx.
            let _ = write();
        }
    }

    /// Cuts records.log and versions.idx back to their lengths when the lock was taken.
    fn cut_back(&self) -> Result<()> {
        let path = records_path(self.records_file);
        if self.storage.len(&path)? > self.records_len {
            self.storage.truncate(&path, self.records_len)?;
        }
        if self.storage.len(&index_path())? > self.index_len {
            self.storage.truncate(&index_path(), self.index_len)?;
        }
        Ok(())
    }
}
