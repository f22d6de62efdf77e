//! Replication ([`Store::sync_to`], `reel sync SRC DST`): makes another location hold a copy
//! of a store at its latest version, copying only the bytes the destination lacks.
//!
//! Every file a committed version reads is append-only up to its committed length (packs,
//! node logs, records files); only versions.idx is replaced whole (by maintenance, expiry and
//! rewinds) and STORE is written once. So a copy of the source at an earlier version is a
//! prefix of each file, and a sync appends to each file the bytes from the destination's
//! length up to the length the source's latest version commits (no byte past it, so nothing
//! a crashed or running writer of the source left unfinished is copied), then writes the
//! source's versions.idx whole: the commit point, after which the destination reads the new
//! versions (STORE goes first when the source's feature bits changed). A fresh copy writes
//! STORE after the index, so a destination is a store only once a first copy finished.
//!
//! While it copies, the destination holds a `SYNC` file (written before the first byte,
//! removed after the commit point): catalog records past the destination's index are an
//! unfinished sync's, not proof of versions the index lost, and a writer, maintenance,
//! rewind or verification of that store refuses with [`Error::SyncUnfinished`] until a sync
//! finishes. Readers read the destination's committed versions meanwhile. A sync that was
//! killed is finished by running it again: bytes it copied are kept.
//!
//! The destination must be empty, an earlier copy of the source, or a copy the source's
//! maintenance or expiry moved on from (its versions are the same, read from other records):
//! the lock files it takes (LOCK and MAINTENANCE) keep writers, maintenance and other syncs
//! out while it runs, and it checks them before its commit point. A copy is known by its
//! `SYNCED` file, which names the versions.idx the last sync wrote: a destination whose
//! index is another (committed to, compacted or expired since: its files then hold bytes
//! and pack names of its own), or a source rewound since the last sync, is
//! [`Error::SyncDiverged`], and nothing is copied.
//!
//! Files the copy holds that the source's maintenance deleted since an earlier sync are
//! disposed of after the commit point (module `leftovers`): deleted from a local copy no
//! reader holds a version of, retired on an object store and deleted once the retention
//! ([`SyncOptions::retention`]) has passed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reeldb_keyframe::format::{Decoder, Encoder, FORMAT_VERSION, checksum};
use reeldb_keyframe::storage::{LockGuard, Storage};

use crate::catalog::index::{ENTRY_LEN, IndexEntry};
use crate::catalog::records::RECORDS_HEADER_LEN;
use crate::catalog::{self, CATALOG_DIR, OVERLAY_DIR, head, index_path, records_path};
use crate::error::{Error, Result};
use crate::location::{StorageOptions, first_request, locate};
use crate::maintenance::MAINTENANCE_LOCK_FILE;
use crate::maintenance::retire::DEFAULT_RETENTION;
use crate::maintenance::verify::VerifyReport;
use crate::store::{FEATURE_VERSION_HEADS, LOCK_FILE, STORE_FILE, Store};

mod leftovers;

/// The file a destination holds while a sync copies into it (see the module docs).
pub const SYNC_FILE: &str = "SYNC";
const SYNC_MAGIC: [u8; 8] = *b"REELSYNC";
/// The file naming the versions.idx the last sync wrote into a destination: a copy whose
/// index is another was changed since (committed to, or maintained), and is not synced into.
pub const SYNCED_FILE: &str = "SYNCED";
const SYNCED_MAGIC: [u8; 8] = *b"REELSYND";
/// The most bytes one append copies: a segment object, on an object store.
const COPY_CHUNK: u64 = 64 << 20;

/// How a sync found its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// No store there yet (or an unfinished first copy): everything was copied.
    Fresh,
    /// An earlier copy: the versions committed since were copied.
    Append,
    /// A copy whose versions the source's maintenance or expiry rewrote since: the new
    /// records and data were copied, and the index replaced.
    Replace,
    /// Already a copy of the source's latest version: nothing was copied.
    UpToDate,
}

impl SyncMode {
    /// Lower-case name, as `reel sync` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SyncMode::Fresh => "fresh",
            SyncMode::Append => "append",
            SyncMode::Replace => "replace",
            SyncMode::UpToDate => "up-to-date",
        }
    }
}

/// How a sync runs ([`Store::sync_to_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Verify the versions copied in the destination ([`SyncReport::verified`]).
    pub verify: bool,
    /// On an object store, how long files the copy no longer needs stay readable after a
    /// sync retires them, and how long ago a file must have been retired for a sync to
    /// delete it (default [`DEFAULT_RETENTION`], an hour; see module `leftovers`).
    pub retention: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            verify: false,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// What a sync did.
#[derive(Debug)]
pub struct SyncReport {
    /// How the destination was found.
    pub mode: SyncMode,
    /// The destination's latest version before (0 for a fresh copy).
    pub from_version: u64,
    /// The destination's latest version after: the source's latest when the sync began.
    pub to_version: u64,
    /// Files the destination received bytes of (the index and descriptor included).
    pub files_written: usize,
    /// Bytes copied, the index and descriptor included.
    pub bytes_copied: u64,
    /// True when an unfinished sync's `SYNC` file was found (and its bytes reused).
    pub resumed: bool,
    /// Files of the destination its source no longer has (its maintenance deleted them since
    /// an earlier sync), or that an earlier sync retired, deleted by this one.
    pub files_removed: usize,
    /// Such files kept: on an object store retired until their retention passes, on a local
    /// disk held by a reader of the destination (a later sync deletes them); with
    /// `leftovers_error`, every such file (some of which it may have deleted).
    pub files_kept: usize,
    /// Why those files were not disposed of, when that failed after the commit point (the
    /// copy is at `to_version` all the same; the next sync finds them again).
    pub leftovers_error: Option<Error>,
    /// With `verify`: the verification of the versions copied (all of them after a fresh
    /// copy or a replacement, and when nothing was new).
    pub verified: Option<VerifyReport>,
}

impl Store {
    /// Copies this store at its latest version into `dst` (a directory or a URL, as
    /// [`Store::open`] takes; `options` configure it when it is on an object store), copying
    /// only what `dst` lacks (see the module docs). With `verify`, the versions copied are
    /// then verified in `dst` ([`SyncReport::verified`]).
    pub fn sync_to(
        &self,
        dst: impl AsRef<Path>,
        options: &StorageOptions,
        verify: bool,
    ) -> Result<SyncReport> {
        let sync = SyncOptions {
            verify,
            ..SyncOptions::default()
        };
        self.sync_to_with(dst, options, &sync)
    }

    /// [`Store::sync_to`] with every setting of [`SyncOptions`].
    pub fn sync_to_with(
        &self,
        dst: impl AsRef<Path>,
        options: &StorageOptions,
        sync: &SyncOptions,
    ) -> Result<SyncReport> {
        let located = locate(dst.as_ref(), options)?;
        let result = self.sync_into_with(located.storage.clone(), &located.shown, sync);
        first_request(&located, result)
    }

    /// [`Store::sync_to`] into any [`Storage`] (used by tests to count or fail requests).
    pub fn sync_into(
        &self,
        dst: Arc<dyn Storage>,
        shown: &Path,
        verify: bool,
    ) -> Result<SyncReport> {
        let sync = SyncOptions {
            verify,
            ..SyncOptions::default()
        };
        self.sync_into_with(dst, shown, &sync)
    }

    /// [`Store::sync_to_with`] into any [`Storage`].
    pub fn sync_into_with(
        &self,
        dst: Arc<dyn Storage>,
        shown: &Path,
        sync: &SyncOptions,
    ) -> Result<SyncReport> {
        // Listed before the index is read: what it lacks, no version copied reads.
        let source_files = leftovers::data_files(self.inner.storage.as_ref())?;
        let source = Source::read(self)?;
        let target = shown.display().to_string();
        dst.create_dir_all(Path::new(""))?;
        let locks = destination_locks(dst.as_ref(), &target)?;
        let marker = read_marker(dst.as_ref())?;
        let resumed = match marker {
            Some(m) if m.rewinds != source.rewinds && !dst.exists(Path::new(STORE_FILE))? => {
                // An unfinished first copy of the source before a rewind: its bytes may not
                // be prefixes of the files now.
                clear_copy(dst.as_ref())?;
                false
            }
            found => found.is_some(),
        };
        let (mode, from_version) = classify(&source, dst.clone(), shown, marker)?;
        // What the copy held before (an unfinished first copy is left to the next sync).
        let held = match mode {
            SyncMode::Fresh => BTreeSet::new(),
            _ => leftovers::data_files(dst.as_ref())?,
        };
        let mut report = SyncReport {
            mode,
            from_version,
            to_version: source.latest,
            files_written: 0,
            bytes_copied: 0,
            resumed,
            files_removed: 0,
            files_kept: 0,
            leftovers_error: None,
            verified: None,
        };
        if mode != SyncMode::UpToDate {
            copy(self, &source, dst.as_ref(), mode, &locks, &mut report)?;
        } else if resumed {
            // An interrupted sync that got past its commit point.
            dst.write_atomic(Path::new(SYNCED_FILE), &synced(&source.index))?;
            dst.remove(Path::new(SYNC_FILE))?;
        }
        if mode == SyncMode::UpToDate
            && dst.locks_outlive_their_process()
            && source.latest > 0
            && head::read(dst.as_ref(), source.latest)?.is_none()
        {
            // One an earlier sync could not write.
            write_heads(self, &source, dst.as_ref(), &[source.latest]);
        }
        // After the commit point the copy is at the source's latest version whatever happens
        // here: a failure keeps the leftovers (the next sync finds them again) and is
        // reported, not returned.
        let left: Vec<PathBuf> = held.difference(&source_files).cloned().collect();
        let disposed = locks
            .iter()
            .try_for_each(|lock| lock.check().map_err(Error::from))
            .and_then(|()| leftovers::unread(&left, || source.committed_lengths(self, 0)))
            .and_then(|unread| {
                // Files the source's versions read yet it lacks are kept, and counted so.
                let still_read = left.len() - unread.len();
                let d = leftovers::dispose(dst.as_ref(), &unread, sync.retention)?;
                Ok((d.deleted, d.kept + still_read))
            });
        match disposed {
            Ok((deleted, kept)) => (report.files_removed, report.files_kept) = (deleted, kept),
            Err(e) => {
                report.files_kept = left.len();
                report.leftovers_error = Some(e);
            }
        }
        if sync.verify && source.latest > 0 {
            let copy = Store::open_in(dst, shown)?;
            let first = match mode {
                SyncMode::Append => from_version + 1,
                _ => 1,
            };
            report.verified = Some(copy.verify(first..=source.latest, &mut |_| {})?);
        }
        Ok(report)
    }
}

/// Copies what `dst` lacks of `source` (see the module docs), adding it to `report`.
fn copy(
    store: &Store,
    source: &Source,
    dst: &dyn Storage,
    mode: SyncMode,
    locks: &[Box<dyn LockGuard>],
    report: &mut SyncReport,
) -> Result<()> {
    dst.write_atomic(
        Path::new(SYNC_FILE),
        &marker(source.rewinds, checksum(&source.index)),
    )?;
    for dir in [CATALOG_DIR, reeldb_keyframe::pack::PACK_DIR] {
        dst.create_dir_all(Path::new(dir))?;
    }
    let reread = match mode {
        SyncMode::Append => report.from_version,
        _ => 0,
    };
    let lengths = source.committed_lengths(store, reread)?;
    // Data first, then the records that reference it, then the index that commits them.
    let (catalog_files, data_files): (Vec<_>, Vec<_>) = lengths
        .iter()
        .partition(|(path, _)| path.starts_with(CATALOG_DIR));
    let mut dirs = std::collections::BTreeSet::new();
    for (path, &len) in data_files.into_iter().chain(catalog_files) {
        let copied = copy_prefix(store, dst, path, len)?;
        if copied > 0 {
            report.files_written += 1;
            report.bytes_copied += copied;
            dirs.insert(path.parent().unwrap_or(Path::new("")).to_path_buf());
        }
    }
    for dir in &dirs {
        dst.sync_dir(dir)?;
    }
    // Directories made by this copy (overlays/, say) are entries of the root.
    dst.sync_dir(Path::new(""))?;
    let descriptor = catalog::read_exact(
        store.inner.storage.as_ref(),
        Path::new(STORE_FILE),
        0,
        store.inner.storage.len(Path::new(STORE_FILE))? as usize,
    )?;
    // A copy on an object store gets version heads (written below), one on a disk none.
    let heads = dst.locks_outlive_their_process();
    let descriptor = crate::store::with_feature(&descriptor, FEATURE_VERSION_HEADS, heads)?;
    // Feature bits the source set since (a catalog rewrite's, say) come before the index
    // that needs them; a first copy's descriptor comes last, making it a store.
    let had = match mode {
        SyncMode::Fresh => None,
        _ => Some(dst.read_at(Path::new(STORE_FILE), 0, descriptor.len())?),
    };
    let write_descriptor = |report: &mut SyncReport| -> Result<()> {
        dst.write_atomic(Path::new(STORE_FILE), &descriptor)?;
        report.files_written += 1;
        report.bytes_copied += descriptor.len() as u64;
        Ok(())
    };
    if had.is_some_and(|had| had != descriptor) {
        write_descriptor(report)?;
    }
    // A sync whose locks lapsed (on an object store) commits nothing: another writer or
    // sync may have the copy now.
    for lock in locks {
        lock.check()?;
    }
    // The heads of versions whose entries change go before the index that changes them.
    let old_index = match mode {
        SyncMode::Fresh => Vec::new(),
        _ => dst
            .read_at(&index_path(), 0, dst.len(&index_path())? as usize)?
            .to_vec(),
    };
    let mut new_heads = Vec::new();
    if heads {
        let changed = head::changed(&old_index, &source.index);
        head::remove_each(dst, &changed)?;
        let old_latest = (old_index.len() as u64 / ENTRY_LEN).saturating_sub(1);
        new_heads = changed;
        new_heads.extend(old_latest + 1..=source.latest);
    }
    dst.write_atomic(&index_path(), &source.index)?;
    report.files_written += 1;
    report.bytes_copied += source.index.len() as u64;
    if mode == SyncMode::Fresh {
        write_descriptor(report)?;
    }
    dst.write_atomic(Path::new(SYNCED_FILE), &synced(&source.index))?;
    dst.remove(Path::new(SYNC_FILE))?;
    dst.sync_dir(Path::new(""))?;
    if heads {
        // The latest version's head names the index's generation, which this changed.
        new_heads.push(source.latest);
        write_heads(store, source, dst, &new_heads);
    }
    Ok(())
}

/// Writes the heads of `versions` into the copy `dst` (skipping expired ones and version
/// 0), their records read from the source. Like a writer's (see `catalog::head`), after the
/// commit point and not the sync's failure: a version whose head could not be written opens
/// through versions.idx, and the next sync writes the latest version's if it is missing.
fn write_heads(store: &Store, source: &Source, dst: &dyn Storage, versions: &[u64]) {
    let Ok(generation) = dst.generation(&index_path()) else {
        return;
    };
    let mut versions = versions.to_vec();
    versions.sort_unstable();
    versions.dedup();
    // Records are read from the source (where they are local, or as near as anywhere).
    let known = std::collections::HashMap::new();
    for v in versions {
        let Some(e) = v
            .checked_sub(1)
            .and_then(|i| source.entries.get(i as usize))
        else {
            continue;
        };
        if e.expired {
            continue;
        }
        let written = head::encode(store.inner.storage.as_ref(), e, generation, &known)
            .and_then(|bytes| Ok(dst.write_atomic(&head::head_path(v), &bytes)?));
        // Not the sync's failure (see above).
        let _ = written;
    }
}

/// What a sync copies from: the source's index at its latest version, that version pinned.
struct Source {
    latest: u64,
    rewinds: u64,
    /// versions.idx up to the latest entry.
    index: Vec<u8>,
    /// Its entries, oldest first.
    entries: Vec<IndexEntry>,
    /// Keeps the latest version from being purged on a local store while it is copied.
    _pin: Option<crate::read::snapshot::Snapshot>,
}

impl Source {
    fn read(store: &Store) -> Result<Source> {
        let latest = store.latest_version()?;
        let pin = match latest {
            0 => None,
            v => Some(store.snapshot(v)?),
        };
        let len = ENTRY_LEN * (latest + 1);
        let index =
            catalog::read_exact(store.inner.storage.as_ref(), &index_path(), 0, len as usize)?;
        let rewinds = store.index().rewinds()?;
        let entries = (1..=latest)
            .map(|v| {
                let at = (ENTRY_LEN * v) as usize;
                IndexEntry::decode(&index[at..at + ENTRY_LEN as usize], v).map_err(|reason| {
                    Error::Corruption {
                        path: index_path().display().to_string(),
                        offset: at as u64,
                        reason,
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Source {
            latest,
            rewinds,
            index: index.to_vec(),
            entries,
            _pin: pin,
        })
    }

    /// The committed length of every file the versions above `after` read (every version's
    /// records, with `after` 0): records files to their last record or definition, node logs
    /// to their longest committed length, packs to the lengths the latest version lists.
    fn committed_lengths(&self, store: &Store, after: u64) -> Result<BTreeMap<PathBuf, u64>> {
        let mut lengths: BTreeMap<PathBuf, u64> = BTreeMap::new();
        let mut at_least = |path: PathBuf, len: u64| {
            let l = lengths.entry(path).or_insert(0);
            *l = (*l).max(len);
        };
        if self.latest == 0 {
            at_least(records_path(0), RECORDS_HEADER_LEN);
        }
        for e in self.entries.iter().filter(|e| e.record_len > 0) {
            at_least(
                records_path(e.records_file),
                e.record_offset + u64::from(e.record_len),
            );
        }
        // Expired versions are not read: what they referenced may be gone.
        for e in self
            .entries
            .iter()
            .filter(|e| e.version > after && !e.expired)
        {
            let rec = store.read_record(e)?;
            for t in &rec.tables {
                at_least(
                    records_path(t.def.file),
                    t.def.offset + u64::from(t.def.len),
                );
                if let Some(overlay) = &t.overlay {
                    at_least(
                        catalog::overlay_log_path(t.id, t.keyframe_at),
                        overlay.log_len,
                    );
                }
            }
            // Every record lists every pack as long as it then was.
            if e.version == self.latest {
                for &(id, len) in &rec.packs {
                    at_least(reeldb_keyframe::pack::pack_path(id), len);
                }
            }
        }
        Ok(lengths)
    }
}

/// The destination's writer and maintenance locks.
fn destination_locks(dst: &dyn Storage, target: &str) -> Result<[Box<dyn LockGuard>; 2]> {
    let locked = |e: reeldb_keyframe::Error, busy: fn(String) -> Error| match e {
        reeldb_keyframe::Error::Locked { .. } => busy(target.to_string()),
        other => Error::from(other),
    };
    let writer = dst
        .try_lock(Path::new(LOCK_FILE))
        .map_err(|e| locked(e, Error::WriterLocked))?;
    let maintenance = dst
        .try_lock(Path::new(MAINTENANCE_LOCK_FILE))
        .map_err(|e| locked(e, Error::MaintenanceLocked))?;
    Ok([writer, maintenance])
}

/// How `dst` stands to the source, and its latest version.
fn classify(
    source: &Source,
    dst: Arc<dyn Storage>,
    shown: &Path,
    marker: Option<Marker>,
) -> Result<(SyncMode, u64)> {
    let target = shown.display().to_string();
    if !dst.exists(Path::new(STORE_FILE))? {
        let foreign: Vec<String> = dst
            .list(Path::new(""))?
            .into_iter()
            .filter(|n| {
                ![LOCK_FILE, MAINTENANCE_LOCK_FILE, SYNC_FILE, SYNCED_FILE].contains(&n.as_str())
            })
            .filter(|n| {
                ![CATALOG_DIR, OVERLAY_DIR, reeldb_keyframe::pack::PACK_DIR].contains(&n.as_str())
            })
            .collect();
        if !foreign.is_empty()
            || (!dst.exists(Path::new(SYNC_FILE))? && has_store_files(dst.as_ref())?)
        {
            return Err(Error::AlreadyExists(target));
        }
        return Ok((SyncMode::Fresh, 0));
    }
    let diverged = |reason: String| Error::SyncDiverged {
        store: target.clone(),
        reason,
    };
    // Only an index a sync wrote says the copy's files are the source's prefixes: maintenance
    // or a commit on the copy appends bytes of its own (and names packs the source may use).
    let index_bytes = dst.read_at(&index_path(), 0, dst.len(&index_path())? as usize)?;
    let written = [read_synced(dst.as_ref())?, marker.map(|m| m.index_hash)];
    if !written.contains(&Some(checksum(&index_bytes))) {
        return Err(diverged(
            "its versions are not the ones the last sync wrote (it was committed to, \
             compacted or expired since, or not made by reel sync)"
                .into(),
        ));
    }
    let copy = Store::open_in(dst, shown)?;
    let index = copy.index();
    let latest = index.latest()?.map_or(0, |e| e.version);
    let entries = index.entries(latest)?;
    if index.rewinds()? != source.rewinds {
        return Err(diverged(format!(
            "the source was rewound since the last sync ({} rewinds, the copy saw {})",
            source.rewinds,
            index.rewinds()?
        )));
    }
    if latest > source.latest {
        return Err(diverged(format!(
            "the copy has versions up to {latest}, the source up to {}",
            source.latest
        )));
    }
    let same_version = |(c, s): (&IndexEntry, &IndexEntry)| {
        (c.version, c.committed_at, c.carried_offset, c.own_offset)
            == (s.version, s.committed_at, s.carried_offset, s.own_offset)
    };
    if let Some((c, _)) = entries
        .iter()
        .zip(&source.entries)
        .find(|&pair| !same_version(pair))
    {
        return Err(diverged(format!(
            "version {} of the copy is not the source's version {0}",
            c.version
        )));
    }
    let mode = if entries.iter().zip(&source.entries).any(|(c, s)| c != s) {
        SyncMode::Replace
    } else if latest == source.latest {
        SyncMode::UpToDate
    } else {
        SyncMode::Append
    };
    Ok((mode, latest))
}

/// True when `dst` holds any file under the store's directories.
fn has_store_files(dst: &dyn Storage) -> Result<bool> {
    for dir in [CATALOG_DIR, OVERLAY_DIR, reeldb_keyframe::pack::PACK_DIR] {
        if dst.is_dir(Path::new(dir))? && !dst.list(Path::new(dir))?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes every file of an unfinished first copy.
fn clear_copy(dst: &dyn Storage) -> Result<()> {
    let heads = head::heads_dir();
    if dst.is_dir(&heads)? {
        for name in dst.list(&heads)? {
            dst.remove(&heads.join(name))?;
        }
    }
    for dir in [CATALOG_DIR, OVERLAY_DIR, reeldb_keyframe::pack::PACK_DIR] {
        let dir = Path::new(dir);
        if !dst.is_dir(dir)? {
            continue;
        }
        for name in dst.list(dir)? {
            dst.remove(&dir.join(name))?;
        }
        dst.sync_dir(dir)?;
    }
    Ok(())
}

/// Appends to `path` in `dst` the source's bytes from `dst`'s length up to `len`; returns
/// the bytes copied.
fn copy_prefix(store: &Store, dst: &dyn Storage, path: &Path, len: u64) -> Result<u64> {
    let have = match dst.exists(path)? {
        true => dst.len(path)?,
        false => 0,
    };
    if have >= len {
        return Ok(0);
    }
    if let Some(parent) = path.parent() {
        dst.create_dir_all(parent)?;
    }
    let mut file = dst.open_append(path)?;
    let mut at = have;
    while at < len {
        let n = (len - at).min(COPY_CHUNK);
        let bytes = catalog::read_exact(store.inner.storage.as_ref(), path, at, n as usize)?;
        file.append(&bytes)?;
        file.sync()?;
        at += n;
    }
    Ok(len - have)
}

/// What an unfinished sync's `SYNC` file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marker {
    /// The source's rewinds when it began.
    rewinds: u64,
    /// The xxh3-64 of the versions.idx it was to write.
    index_hash: u64,
}

/// `body` followed by its xxh3-64: how `SYNC` and `SYNCED` are written.
fn sealed(body: Vec<u8>) -> Vec<u8> {
    let mut out = body;
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The body of the sealed file `path` (`len` bytes with its checksum) in `dst`: `None` when
/// there is no such file, `Some(None)` when it does not read as one.
fn read_sealed(dst: &dyn Storage, path: &Path, len: usize) -> Result<Option<Option<Vec<u8>>>> {
    if !dst.exists(path)? {
        return Ok(None);
    }
    let bytes = dst.read_at(path, 0, dst.len(path)? as usize)?;
    let body = &bytes[..bytes.len().saturating_sub(8)];
    let intact = bytes.len() == len && checksum(body).to_le_bytes() == bytes[len - 8..];
    Ok(Some(intact.then(|| body.to_vec())))
}

/// The `SYNC` file's bytes: magic, format version, reserved, the source's rewinds, the hash
/// of the index to be written, checksum.
fn marker(rewinds: u64, index_hash: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&SYNC_MAGIC)
        .u32(FORMAT_VERSION)
        .u32(0)
        .u64(rewinds)
        .u64(index_hash);
    sealed(e.finish())
}

/// An unfinished sync's `SYNC` file, if there is one. A file that does not read as one says
/// nothing known: rewinds `u64::MAX`, no index.
fn read_marker(dst: &dyn Storage) -> Result<Option<Marker>> {
    let Some(body) = read_sealed(dst, Path::new(SYNC_FILE), 40)? else {
        return Ok(None);
    };
    let parsed = body.and_then(|body| {
        let mut d = Decoder::new(&body);
        let magic: [u8; 8] = d.fixed().ok()?;
        let (_format, _reserved) = (d.u32().ok()?, d.u32().ok()?);
        let (rewinds, index_hash) = (d.u64().ok()?, d.u64().ok()?);
        (magic == SYNC_MAGIC).then_some(Marker {
            rewinds,
            index_hash,
        })
    });
    Ok(Some(parsed.unwrap_or(Marker {
        rewinds: u64::MAX,
        index_hash: 0,
    })))
}

/// The `SYNCED` file's bytes: magic, the xxh3-64 of the index a sync wrote, checksum.
fn synced(index: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&SYNCED_MAGIC).u64(checksum(index));
    sealed(e.finish())
}

/// The index hash the `SYNCED` file names, if there is one that reads as one.
fn read_synced(dst: &dyn Storage) -> Result<Option<u64>> {
    let body = read_sealed(dst, Path::new(SYNCED_FILE), 24)?.flatten();
    Ok(body.and_then(|body| {
        let mut d = Decoder::new(&body);
        let magic: [u8; 8] = d.fixed().ok()?;
        (magic == SYNCED_MAGIC).then(|| d.u64().ok()).flatten()
    }))
}

/// Fails with [`Error::SyncUnfinished`] while `storage` holds a `SYNC` file.
pub(crate) fn refuse_unfinished(storage: &dyn Storage) -> Result<()> {
    match storage.exists(Path::new(SYNC_FILE))? {
        true => Err(Error::SyncUnfinished),
        false => Ok(()),
    }
}
