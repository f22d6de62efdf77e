//! Rewinding: purging every version above a given one, atomically, so the store can be
//! refilled from the event stream starting at the source offset that version recorded.
//!
//! Under the reader gate (see `lease`), a rewind refuses if a live reader pins a version it
//! would purge; otherwise it replaces the version index by one that ends at the target
//! version, with the header's rewind count raised, in one atomic, durable write: the commit
//! point. Then it cuts the records file back to the target version, as a writer opening
//! after a crash does, removes the packs created after it (as unfinished commits' packs are;
//! on an object store they stay, for log cleaning to retire) and the node logs no remaining
//! version reaches (on an object store they stay too). Packs and node logs kept are never cut
//! (a reader may map them): bytes only purged versions used stay unreferenced until log
//! cleaning, and the next commit starts a new pack. Readers drop their caches keyed by file
//! position when they see the new rewind count, since records-file positions are written
//! again.
//!
//! On an object store readers publish no leases, so a rewind there cannot see (and does
//! not wait for) other processes' readers of the versions it purges. Those read them whole
//! for the retention: what they read is left in place, never overwritten, and deleted only
//! after log cleaning or compaction retired it (purged packs stay and a refill numbers its
//! packs above them; a purged generation's node log stays and a refill writing that
//! generation again appends after its bytes). They never read other rows: every pack record
//! and node frame is checked against the reference that names it, and the records file is
//! cut back no further than the rewind marker, so no record a purged version references is
//! ever replaced by another (its table definitions, referenced by position, stay as they
//! were).
//! The heads of the purged versions are removed before the commit point.
//!
//! Only the index entries up to the target are read before the commit point, so a store
//! whose newest versions are damaged can still be rewound past them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use reeldb_keyframe::storage::Storage;

use crate::catalog::index::{ENTRY_LEN, IndexEntry, NO_OFFSET, header_with};
use crate::catalog::records::{self, CatalogKind};
use crate::catalog::tail;
use crate::catalog::version::{self, VersionRecord};
use crate::catalog::{OVERLAY_DIR, head, index_path, records_path};
use crate::error::{Error, Result, lock_error};
use crate::lease::ReaderCensus;
use crate::maintenance::{maintenance_lock, retire};
use crate::store::{LOCK_FILE, Store};
use crate::writer::{Writer, WriterOptions, settle};

/// What a rewind did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewound {
    /// The version the store now ends at; the next commit is this plus one.
    pub to: u64,
    /// How many versions were purged.
    pub purged: u64,
    /// The source offset `to` carries: where to refill the store from.
    pub source_offset: Option<u64>,
}

impl Store {
    /// Purges every version above `to` (see the module docs), taking the writer lock for the
    /// duration ([`Error::WriterLocked`] if a writer holds it: a rewind needs it; use
    /// [`Writer::rewind`] then) and the maintenance lock ([`Error::MaintenanceLocked`] while
    /// maintenance runs).
    /// Fails with [`Error::VersionsInUse`], changing nothing, while a live reader in any
    /// process holds a version it would purge. `to` may be 0: the store is then empty again.
    pub fn rewind(&self, to: u64) -> Result<Rewound> {
        let storage = self.inner.storage.clone();
        let _lock = storage.try_lock(Path::new(LOCK_FILE)).map_err(|e| {
            lock_error(
                e,
                &format!(
                    "{} (a rewind needs the writer lock: stop the writer, or rewind through it)",
                    self.path().display()
                ),
            )
        })?;
        let _maintenance = maintenance_lock(self)?;
        let purged = purge_above(self, to)?;
        let (head, _packs) = settle(self, &WriterOptions::default())?;
        remove_unreachable_logs(storage.as_ref(), head.as_ref().map(|(_, r)| r), to)?;
        Ok(rewound(to, purged, head.as_ref().map(|(e, _)| e)))
    }
}

impl Writer {
    /// [`Store::rewind`] with this writer's lock; the writer then continues from `to`. A
    /// failure after the purge poisons the writer (the next writer to open finishes the cut).
    pub fn rewind(&mut self, to: u64) -> Result<Rewound> {
        self.check_usable()?;
        let _maintenance = maintenance_lock(self.store())?;
        let purged = match purge_above(self.store(), to) {
            Ok(p) => p,
            // The purge may have appended to records.log or replaced the index: take the
            // files as they now are, or stop writing.
            Err(e) => return self.recover(e),
        };
        if to < self.version() {
            let cut = self.reload().and_then(|()| {
                let storage = self.store().inner.storage.clone();
                remove_unreachable_logs(storage.as_ref(), self.head().map(|(_, r)| r), to)
            });
            if let Err(e) = cut {
                self.poison();
                return Err(e);
            }
        }
        Ok(rewound(to, purged, self.head().map(|(e, _)| e)))
    }
}

fn rewound(to: u64, purged: u64, head: Option<&IndexEntry>) -> Rewound {
    Rewound {
        to,
        purged,
        source_offset: head
            .and_then(|e| (e.carried_offset != NO_OFFSET).then_some(e.carried_offset)),
    }
}

/// Replaces the index by its first `to` entries (the commit point of a rewind), unless a live
/// reader holds a version above `to`. Returns how many versions were purged. The caller
/// holds the writer lock.
fn purge_above(store: &Store, to: u64) -> Result<u64> {
    let storage = store.inner.storage.clone();
    let census = ReaderCensus::take(storage.as_ref())?;
    // Entries the file holds, counting a torn last one (the rewind drops it too).
    let len = storage.len(&index_path())?;
    let held_entries = len.div_ceil(ENTRY_LEN).saturating_sub(1);
    let latest = store.latest_version().unwrap_or(held_entries);
    if to > latest {
        return Err(Error::UnknownVersion {
            version: to,
            latest,
        });
    }
    if to == latest && to == held_entries {
        // Nothing to purge, unless records.log proves versions past the index were committed
        // (an index cut short by damage): the marker then records that they are given up.
        let head = store.latest_entry()?;
        if tail::lost_after(storage.as_ref(), head.as_ref())?.is_some() {
            let file = head.map_or(0, |e| e.records_file);
            before_an_object_store_purge(store, to, file, head.as_ref())?;
            append_marker(storage.as_ref(), file, to, store.index().rewinds()?)?;
        }
        return Ok(0);
    }
    // On an object store no reader publishes a lease, so the census sees none: this handle's
    // own pins still count.
    let mut held: Vec<u64> = census.pinned.range(to + 1..).copied().collect();
    held.extend(store.inner.leases.pinned_above(to));
    held.sort_unstable();
    held.dedup();
    if !held.is_empty() {
        return Err(Error::VersionsInUse { versions: held });
    }
    let index = store.index();
    let mut bytes = header_with(index.rewinds()? + 1);
    let mut kept = Vec::with_capacity(to as usize);
    for v in 1..=to {
        // Each kept entry is checked, so a rewind never writes a damaged index.
        kept.push(index.entry(v)?);
    }
    if kept.last().is_some_and(|e| e.expired) {
        return Err(Error::Expired { version: to });
    }
    // Whether `to`'s own entry changes (its record appended again).
    let mut to_changed = false;
    if let Some(&old) = kept.last() {
        let last = keep_what_kept_versions_need(store, &kept)?;
        to_changed = last != old;
        kept.pop();
        kept.push(last);
    }
    for e in &kept {
        bytes.extend_from_slice(&e.encode());
    }
    // Every entry names one records file (a catalog rewrite moves them all at once).
    let file = kept
        .last()
        .copied()
        .or_else(|| index.entry(1).ok())
        .map_or(0, |e| e.records_file);
    before_an_object_store_purge(store, to, file, kept.last())?;
    // Before the commit point: the purged versions' records stay in records.log until the
    // cut, and must not then read as proof of lost versions (see `catalog::tail`).
    append_marker(storage.as_ref(), file, to, index.rewinds()? + 1)?;
    // An empty store's records file is records.log, which a catalog rewrite may have retired
    // (deleted, or kept for a reader): it starts afresh.
    if to == 0 && file != 0 {
        storage.write_atomic(&records_path(0), &records::header())?;
    }
    // No head may outlive its entry: those above `to` went first (above), `to`'s goes when
    // its entry changes. The latest's head then names the index's new generation.
    if store.inner.heads && to_changed {
        head::remove_each(storage.as_ref(), &[to])?;
    }
    storage.write_atomic(&index_path(), &bytes)?;
    if store.inner.heads
        && let Some(last) = kept.last()
    {
        // A head only speeds opens up: failing to write one is not the rewind's failure.
        let _ = storage
            .generation(&index_path())
            .map_err(Error::from)
            .and_then(|g| head::write(storage.as_ref(), last, g, &HashMap::new()));
    }
    drop(census);
    store.forget_positions();
    Ok(latest - to)
}

/// On an object store, what must come before a rewind to `to` (whose records file is
/// `file`, and index entry `target`) writes anything: the heads of every version above `to`
/// removed (an open would follow one to a purged or lost version, never checking the index),
/// and the retirement taken back from the node logs a refill may write again, which reclaim
/// would otherwise delete under the new versions: those of generations above `to`, and
/// those of the generations `to` holds (a refill's first overlay on a keyframe `to` holds
/// with none appends to its log, which compaction may have retired while a later version
/// began another generation). A rewind to 0 from
/// a records file other than records.log is refused there, as the store would start
/// records.log afresh, writing records at the positions of those a reader of an old
/// version may still read. A failure here leaves the store as it was (a retirement taken
/// back only keeps a file longer).
fn before_an_object_store_purge(
    store: &Store,
    to: u64,
    file: u64,
    target: Option<&IndexEntry>,
) -> Result<()> {
    let storage = store.inner.storage.as_ref();
    if !storage.locks_outlive_their_process() {
        return Ok(());
    }
    if to == 0 && file != 0 {
        return Err(Error::InvalidArgument(format!(
            "{}: a rewind to 0 of a store on an object store whose catalog was rewritten              would write its first records file again; rewind to 1 or later, or create a              new store",
            store.path().display()
        )));
    }
    let held: Vec<(u32, u64)> = match target {
        Some(e) => store
            .read_record(e)?
            .tables
            .iter()
            .map(|t| (t.id, t.keyframe_at))
            .collect(),
        None => Vec::new(),
    };
    head::remove_above(storage, to)?;
    retire::unretire(storage, |p| {
        p.parent() == Some(Path::new(OVERLAY_DIR))
            && p.file_name()
                .and_then(|n| n.to_str())
                .and_then(log_id)
                .is_some_and(|(t, g)| g > to || held.contains(&(t, g)))
    })?;
    Ok(())
}

/// Appends and syncs a rewind marker (see `catalog::tail`) to records file `file`.
fn append_marker(storage: &dyn Storage, file: u64, to: u64, rewinds: u64) -> Result<()> {
    let mut file = storage.open_append(&records_path(file))?;
    file.append(&tail::rewind_marker(to, rewinds))?;
    file.sync()?;
    Ok(())
}

/// The index entry for the last kept version, `to`. The cut that follows a rewind keeps
/// records.log up to the end of `to`'s record and each pack up to the length `to`'s record
/// lists. Compaction (and an earlier rewind) append records after later versions' records,
/// and a rewritten record may reference pack bytes written after `to` was committed (a
/// residual, or the next keyframe a B-frame reads). So when any kept version's record lies
/// past `to`'s, `to`'s record is appended again, last, listing for every pack the largest
/// length any kept record lists; the bytes only purged versions used then stay as
/// unreferenced pack bytes.
fn keep_what_kept_versions_need(store: &Store, kept: &[IndexEntry]) -> Result<IndexEntry> {
    let last = kept[kept.len() - 1];
    let end = |e: &IndexEntry| e.record_offset + u64::from(e.record_len);
    // Every kept record must survive the cut, expired ones too (maintenance still reads
    // them); only live ones count for the packs (cleaning may have retired an expired
    // version's).
    let beyond: Vec<&IndexEntry> = kept.iter().filter(|e| end(e) > end(&last)).collect();
    if beyond.is_empty() {
        return Ok(last);
    }
    let mut rec = store.read_record(&last)?;
    let mut packs: BTreeMap<u32, u64> = rec.packs.iter().copied().collect();
    for e in beyond.into_iter().filter(|e| !e.expired) {
        for (id, len) in store.read_record(e)?.packs {
            let at = packs.entry(id).or_insert(0);
            *at = (*at).max(len);
        }
    }
    rec.packs = packs.into_iter().collect();
    let storage = store.inner.storage.clone();
    let framed = records::frame(CatalogKind::Version, &version::encode(&rec));
    let path = records_path(last.records_file);
    let offset = storage.len(&path)?;
    let mut file = storage.open_append(&path)?;
    file.append(&framed)?;
    file.sync()?;
    Ok(IndexEntry {
        record_offset: offset,
        record_len: framed.len() as u32,
        record_checksum: reeldb_keyframe::format::checksum(&framed),
        ..last
    })
}

/// The table definition and generation a node-log file name belongs to
/// (`t{id}-g{keyframe_at}.olog`).
pub(crate) fn log_id(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_suffix(".olog")?.strip_prefix('t')?;
    let (def, g) = rest.split_once("-g")?;
    Some((def.parse().ok()?, g.parse().ok()?))
}

/// Removes every node log no version up to `to` reaches (`head` is version `to`'s record): its
/// generation began after `to`, or `to` holds that generation's keyframe with no overlay on
/// it. The logs kept keep their purged tails, unreferenced. On an object store it removes
/// none: a reader of a purged version may still read them there, and a refill writing
/// their generation again appends after their bytes (`NodeLogWriter::open_keeping`); those
/// it never writes again, compaction retires once they are closed.
fn remove_unreachable_logs(
    storage: &dyn Storage,
    head: Option<&VersionRecord>,
    to: u64,
) -> Result<()> {
    let dir = Path::new(OVERLAY_DIR);
    if storage.locks_outlive_their_process() || !storage.exists(dir)? {
        return Ok(());
    }
    let bare: Vec<(u32, u64)> = head
        .iter()
        .flat_map(|r| &r.tables)
        .filter(|t| t.overlay.is_none())
        .map(|t| (t.id, t.keyframe_at))
        .collect();
    let mut removed = false;
    for name in storage.list(dir)? {
        let path = dir.join(&name);
        let Some((def, g)) = log_id(&name) else {
            continue;
        };
        if g > to || bare.contains(&(def, g)) {
            storage.remove(&path)?;
            removed = true;
        }
    }
    if removed {
        storage.sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_log_names_give_their_table_and_generation() {
        assert_eq!(log_id("t64-g21.olog"), Some((64, 21)));
        assert_eq!(log_id("t64-g21.olog.tmp"), None);
        assert_eq!(log_id("notes.txt"), None);
    }
}
