//! Pack files: append-only files of records. [`PackReader`] (module `pack_reader`) reads them
//! for readers; [`PackWriter`] appends new records for one appender, storing each content
//! hash once.
//!
//! ```text
//! pack file: magic "REELPACK", format_version u32, pack_id u32, then records back to back
//! ```
//! A pack's valid length is the one the latest committed version records; bytes past it are
//! the remains of an unfinished commit. They are never cut back (a reader may map the file):
//! they stay unreferenced, the next appender starts a new pack, and log cleaning reclaims them.
//!
//! Two processes may append at once, the writer and maintenance, each to packs of its own
//! [`PackRange`], so neither takes the other's unfinished packs for its own leftovers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{ContentHash, Decoder, Encoder, FORMAT_VERSION, PACK_HEADER_LEN, PACK_MAGIC};
use crate::node::RecordRef;
pub use crate::pack_reader::PackReader;
use crate::record::{self, RecordKind};
use crate::storage::{AppendFile, Storage};

/// Directory of the pack files, relative to the store root.
pub const PACK_DIR: &str = "packs";
/// A pack is sealed and a new one started once it passes this length.
pub const DEFAULT_MAX_PACK_LEN: u64 = 1 << 30;

/// Which appender creates a pack: ids below [`MAINTENANCE_PACK_IDS`] are the writer's, the
/// rest maintenance's. A new pack takes an id above every id its range's committed packs
/// have, so a pack a committed version references is never replaced by another of its id
/// (a rewind may purge packs and let their ids be taken again; readers notice rewinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackRange {
    /// Packs the writer's commits create (ids 1 to 2^31 - 1).
    Writer,
    /// Packs compaction and thinning create (ids 2^31 and up).
    Maintenance,
}

/// The first pack id of [`PackRange::Maintenance`].
pub const MAINTENANCE_PACK_IDS: u32 = 1 << 31;

impl PackRange {
    /// The range pack `id` belongs to.
    pub fn of(id: u32) -> PackRange {
        if id >= MAINTENANCE_PACK_IDS {
            PackRange::Maintenance
        } else {
            PackRange::Writer
        }
    }

    /// True when pack `id` belongs to this range.
    pub fn contains(self, id: u32) -> bool {
        PackRange::of(id) == self
    }

    /// The id of this range's first pack.
    pub fn first(self) -> u32 {
        match self {
            PackRange::Writer => 1,
            PackRange::Maintenance => MAINTENANCE_PACK_IDS,
        }
    }

    /// The highest id among `committed` in this range, if any.
    pub fn max_in(self, committed: &[(u32, u64)]) -> Option<u32> {
        committed
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| self.contains(*id))
            .max()
    }

    /// The id after the highest in `ids` of this range, or the range's first.
    fn next_after(self, ids: impl Iterator<Item = u32>) -> u32 {
        ids.filter(|id| self.contains(*id))
            .max()
            .map_or(self.first(), |m| m + 1)
    }
}

/// Path of pack `id`, relative to the store root.
pub fn pack_path(id: u32) -> PathBuf {
    Path::new(PACK_DIR).join(format!("{id:08}.pack"))
}

/// The pack id a pack file name stands for.
pub fn pack_id_of(name: &str) -> Option<u32> {
    name.strip_suffix(".pack")?.parse().ok()
}

/// Appends records to the packs of one [`PackRange`], deduplicating by content hash.
///
/// Records appended since the last [`PackWriter::sync`] are pending: [`PackWriter::abort`]
/// forgets them, so an abandoned commit leaves nothing referenced. Bytes past a pack's
/// committed length (an abandoned or crashed commit's) are never cut back or overwritten, since
/// a reader may have the file mapped: the writer starts a new pack instead, and log cleaning
/// reclaims the dead tail.
#[derive(Debug)]
pub struct PackWriter {
    storage: Arc<dyn Storage>,
    range: PackRange,
    index: HashMap<ContentHash, RecordRef>,
    pending: Vec<ContentHash>,
    /// Committed length of every pack of this writer's range, by id.
    committed: Vec<(u32, u64)>,
    active: Option<(u32, Box<dyn AppendFile>)>,
    created_pending: bool,
    max_pack_len: u64,
    /// Records and bytes appended since the writer opened.
    appended: (u64, u64),
    /// Whether the last committed pack may take more records (not when cleaning retires it).
    reuse_last: bool,
    /// The highest id of the packs past the committed ones left in place when the writer
    /// opened (see [`PackWriter::open_in`]): new packs are numbered above it.
    left: Option<u32>,
}

impl PackWriter {
    /// Opens the writer's packs ([`PackRange::Writer`]) for appending, given the committed
    /// length of each pack; see [`PackWriter::open_in`].
    pub fn open(storage: Arc<dyn Storage>, committed: &[(u32, u64)]) -> Result<Self> {
        PackWriter::open_in(storage, committed, PackRange::Writer)
    }

    /// Opens the packs of `range` for appending, given the committed length of each pack
    /// (of any range). Pack files of `range` past its last committed one (what unfinished
    /// commits created, or a rewind purged) are removed: the caller is that range's only
    /// appender. Where locks outlive their process (an object store, whose readers publish
    /// no leases) they are left in place instead, for a reader that may still read them,
    /// and new packs are numbered above them; log cleaning retires them once a newer pack
    /// is committed.
    pub fn open_in(
        storage: Arc<dyn Storage>,
        committed: &[(u32, u64)],
        range: PackRange,
    ) -> Result<Self> {
        let committed: Vec<(u32, u64)> = committed
            .iter()
            .copied()
            .filter(|(id, _)| range.contains(*id))
            .collect();
        let left = remove_unfinished(storage.as_ref(), &committed, range)?;
        Ok(PackWriter {
            left,
            storage,
            range,
            index: HashMap::new(),
            pending: Vec::new(),
            committed,
            active: None,
            created_pending: false,
            max_pack_len: DEFAULT_MAX_PACK_LEN,
            appended: (0, 0),
            reuse_last: true,
        })
    }

    /// A writer that appends only to new packs of `range`, knowing no existing record: log
    /// cleaning copies live records with it, so every copy lands in a pack the old ones can
    /// be retired beside.
    pub fn fresh(
        storage: Arc<dyn Storage>,
        committed: &[(u32, u64)],
        range: PackRange,
    ) -> Result<Self> {
        let mut w = PackWriter::open_in(storage, committed, range)?;
        w.reuse_last = false;
        Ok(w)
    }

    /// The range this writer appends to.
    pub fn range(&self) -> PackRange {
        self.range
    }

    /// The id of the next pack this writer creates.
    pub fn next_pack_id(&self) -> u32 {
        self.range.next_after(
            self.active
                .iter()
                .map(|(id, _)| *id)
                .chain(self.committed.iter().map(|(id, _)| *id))
                .chain(self.left),
        )
    }

    /// Starts a new, empty pack now and commits it at its header's length, so the range's
    /// ids keep rising past it even when no record is written (log cleaning lists one such
    /// pack in a range it empties). Returns its id.
    pub fn start_empty_pack(&mut self) -> Result<u32> {
        let id = self.next_pack_id();
        self.new_pack(id)?;
        Ok(id)
    }

    /// Sets the length past which a pack is sealed (tests use small packs).
    pub fn set_max_pack_len(&mut self, len: u64) {
        self.max_pack_len = len.max(PACK_HEADER_LEN + 1);
    }

    /// Tells the writer a record that already exists, so equal content is not written again.
    pub fn remember(&mut self, r: RecordRef) {
        self.index.entry(r.hash).or_insert(r);
    }

    /// Column blocks and bytes (of records of any kind) appended since this writer opened,
    /// committed or not.
    pub fn appended(&self) -> (u64, u64) {
        self.appended
    }

    /// Stores `raw` as a record of `kind` unless equal content is already stored; returns
    /// where it is.
    pub fn put(&mut self, kind: RecordKind, raw: &[u8], hash: ContentHash) -> Result<RecordRef> {
        if let Some(r) = self.index.get(&hash) {
            return Ok(*r);
        }
        if raw.len() as u64 > u64::from(crate::format::MAX_RECORD_LEN) {
            return Err(Error::TooLarge {
                what: format!("a {kind:?} record"),
                size: raw.len() as u64,
                limit: u64::from(crate::format::MAX_RECORD_LEN),
            });
        }
        let framed = record::encode(kind, raw, hash);
        let (pack, file) = self.active_pack()?;
        let offset = file.append(&framed)?;
        let r = RecordRef {
            pack,
            offset,
            len: framed.len() as u32,
            hash,
        };
        self.index.insert(hash, r);
        self.pending.push(hash);
        if kind == RecordKind::ColumnBlock {
            self.appended.0 += 1;
        }
        self.appended.1 += framed.len() as u64;
        Ok(r)
    }

    fn active_pack(&mut self) -> Result<(u32, &mut Box<dyn AppendFile>)> {
        let full = self
            .active
            .as_ref()
            .is_none_or(|(_, f)| f.len() >= self.max_pack_len);
        if full {
            let last = self.committed.last().copied();
            let reuse = match (&self.active, last) {
                (None, Some((id, len))) if self.reuse_last && len < self.max_pack_len => {
                    // Only a pack that ends where its last commit ended takes more records.
                    (self.storage.len(&pack_path(id))? == len).then_some(id)
                }
                _ => None,
            };
            let id = match reuse {
                Some(id) => id,
                None => {
                    let next = self.next_pack_id();
                    self.new_pack(next)?;
                    next
                }
            };
            if reuse.is_some() {
                let file = self.storage.open_append(&pack_path(id))?;
                self.active = Some((id, file));
            }
        }
        match self.active.as_mut() {
            Some((id, f)) => Ok((*id, f)),
            None => Err(Error::corrupt(
                PACK_DIR,
                0,
                "no active pack after opening one",
            )),
        }
    }

    fn new_pack(&mut self, id: u32) -> Result<()> {
        if let Some((old, mut f)) = self.active.take() {
            f.sync()?;
            let len = f.len();
            self.set_committed(old, len);
        }
        let path = pack_path(id);
        let mut file = self.storage.open_append(&path)?;
        let mut e = Encoder::new();
        e.raw(&PACK_MAGIC).u32(FORMAT_VERSION).u32(id);
        file.append(&e.finish())?;
        self.created_pending = true;
        self.active = Some((id, file));
        Ok(())
    }

    fn set_committed(&mut self, id: u32, len: u64) {
        match self.committed.iter_mut().find(|(p, _)| *p == id) {
            Some(e) => e.1 = len,
            None => self.committed.push((id, len)),
        }
    }

    /// Ends the pending records' commit: makes them durable (unless `durable` is false, for
    /// rebuilds that trade durability for speed) and returns the length of every pack of this
    /// writer's range, which the caller records in the commit that references them.
    pub fn sync(&mut self, durable: bool) -> Result<Vec<(u32, u64)>> {
        if let Some((id, f)) = self.active.as_mut() {
            if durable {
                f.sync()?;
            }
            let (id, len) = (*id, f.len());
            self.set_committed(id, len);
        }
        if self.created_pending && durable {
            self.storage.sync_dir(Path::new(PACK_DIR))?;
        }
        self.created_pending = false;
        self.pending.clear();
        Ok(self.committed.clone())
    }

    /// The pack lengths of this writer's range as of the last [`PackWriter::sync`].
    pub fn committed(&self) -> &[(u32, u64)] {
        &self.committed
    }

    /// Forgets every pending record. Their bytes stay, unreferenced, past the committed length;
    /// the next record goes to a new pack.
    pub fn abort(&mut self) {
        for h in self.pending.drain(..) {
            self.index.remove(&h);
        }
        self.active = None;
        self.created_pending = false;
    }
}

/// The pack files that no commit lists, below the last committed one of their range: retired
/// by log cleaning. (Those past it are unfinished commits' packs, perhaps being written.)
pub fn retired(storage: &dyn Storage, committed: &[(u32, u64)]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for name in storage.list(Path::new(PACK_DIR))? {
        if let Some(id) = pack_id_of(&name)
            && PackRange::of(id)
                .max_in(committed)
                .is_some_and(|max| id < max)
            && !committed.iter().any(|(p, _)| *p == id)
        {
            out.push(id);
        }
    }
    Ok(out)
}

/// Checks that every committed pack of `range` holds its committed length and removes the
/// pack files of `range` past its last committed one (what unfinished commits created;
/// no committed version references them), or on an object store leaves them (see
/// [`PackWriter::open_in`]) and returns the highest id left. `committed` holds only packs
/// of `range`.
fn remove_unfinished(
    storage: &dyn Storage,
    committed: &[(u32, u64)],
    range: PackRange,
) -> Result<Option<u32>> {
    storage.create_dir_all(Path::new(PACK_DIR))?;
    let max_committed = range.max_in(committed).unwrap_or(0);
    let mut changed_dir = false;
    let mut left = None;
    for name in storage.list(Path::new(PACK_DIR))? {
        let path = Path::new(PACK_DIR).join(&name);
        if !pack_id_of(&name).is_some_and(|id| range.contains(id)) {
            continue;
        }
        match pack_id_of(&name).and_then(|id| committed.iter().find(|(p, _)| *p == id)) {
            Some(&(_, len)) => {
                let on_disk = storage.len(&path)?;
                if on_disk < len {
                    return Err(Error::corrupt(
                        path,
                        on_disk,
                        format!("pack is shorter than its committed length {len}"),
                    ));
                }
            }
            // Packs past every committed one are what unfinished commits left; packs below
            // are retired by log cleaning and deleted once no reader can reach them.
            None if pack_id_of(&name).is_some_and(|id| id < max_committed) => {}
            // Where readers publish no leases (an object store), one may still read a pack a
            // rewind purged: it stays, below the next pack created, until log cleaning
            // retires it for the retention (its id is never used again).
            None if storage.locks_outlive_their_process() => {
                left = left.max(pack_id_of(&name));
            }
            None => {
                storage.remove(&path)?;
                changed_dir = true;
            }
        }
    }
    for &(id, _) in committed {
        if !storage.exists(&pack_path(id))? {
            return Err(Error::corrupt(
                pack_path(id),
                0,
                "committed pack file is missing",
            ));
        }
    }
    if changed_dir {
        storage.sync_dir(Path::new(PACK_DIR))?;
    }
    Ok(left)
}

/// Checks a pack header.
pub fn check_header(bytes: &[u8], id: u32) -> std::result::Result<(), String> {
    let mut d = Decoder::new(bytes.get(..PACK_HEADER_LEN as usize).unwrap_or(bytes));
    let magic: [u8; 8] = d.fixed().map_err(|e| e.0)?;
    if magic != PACK_MAGIC {
        return Err("bad pack magic".into());
    }
    let v = d.u32().map_err(|e| e.0)?;
    if v != FORMAT_VERSION {
        return Err(format!("pack format version {v} is not supported"));
    }
    let found = d.u32().map_err(|e| e.0)?;
    if found != id {
        return Err(format!("pack header says id {found}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::content_hash;
    use crate::storage::LocalStorage;

    fn writer(dir: &Path) -> (Arc<dyn Storage>, PackWriter) {
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
        let w = PackWriter::open(storage.clone(), &[]).unwrap();
        (storage, w)
    }

    #[test]
    fn equal_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut w) = writer(dir.path());
        let a = w
            .put(
                RecordKind::ColumnBlock,
                b"same bytes",
                content_hash(b"same bytes"),
            )
            .unwrap();
        let b = w
            .put(
                RecordKind::ColumnBlock,
                b"same bytes",
                content_hash(b"same bytes"),
            )
            .unwrap();
        assert_eq!(a, b);
        let lens = w.sync(true).unwrap();
        assert_eq!(lens, vec![(1, PACK_HEADER_LEN + a.len as u64)]);
        let reader = PackReader::new(storage);
        assert_eq!(
            reader.read(&a, RecordKind::ColumnBlock).unwrap(),
            b"same bytes"
        );
    }

    #[test]
    fn abort_forgets_pending_records_and_moves_on_to_a_new_pack() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut w) = writer(dir.path());
        let kept = w
            .put(RecordKind::Leaf, b"kept", content_hash(b"kept"))
            .unwrap();
        let committed = w.sync(true).unwrap();
        w.put(RecordKind::Leaf, b"dropped", content_hash(b"dropped"))
            .unwrap();
        let tail = storage.len(&pack_path(1)).unwrap();
        w.abort();
        assert_eq!(
            storage.len(&pack_path(1)).unwrap(),
            tail,
            "a pack a reader may map is never cut back"
        );
        // The aborted content is written afresh, in a new pack.
        let again = w
            .put(RecordKind::Leaf, b"dropped", content_hash(b"dropped"))
            .unwrap();
        assert_eq!((again.pack, again.offset), (2, PACK_HEADER_LEN));
        assert_eq!(
            w.put(RecordKind::Leaf, b"kept", content_hash(b"kept"))
                .unwrap(),
            kept
        );
        assert_eq!(w.sync(true).unwrap()[0], committed[0]);
    }

    #[test]
    fn a_writer_opening_over_a_dead_tail_starts_a_new_pack() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut w) = writer(dir.path());
        w.put(RecordKind::Leaf, b"kept", content_hash(b"kept"))
            .unwrap();
        let committed = w.sync(true).unwrap();
        w.put(RecordKind::Leaf, b"crashed", content_hash(b"crashed"))
            .unwrap();
        drop(w);
        let mut w = PackWriter::open(storage.clone(), &committed).unwrap();
        let r = w
            .put(RecordKind::Leaf, b"next", content_hash(b"next"))
            .unwrap();
        assert_eq!(r.pack, 2);
        assert!(storage.len(&pack_path(1)).unwrap() > committed[0].1);
    }

    #[test]
    fn a_full_pack_is_sealed_and_a_new_one_started() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut w) = writer(dir.path());
        w.set_max_pack_len(100);
        let mut refs = Vec::new();
        for i in 0..5u8 {
            let raw = vec![i; 80];
            refs.push(
                w.put(RecordKind::ColumnBlock, &raw, content_hash(&raw))
                    .unwrap(),
            );
        }
        let lens = w.sync(true).unwrap();
        assert!(lens.len() >= 3, "{lens:?}");
        let reader = PackReader::new(storage.clone());
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(
                reader.read(r, RecordKind::ColumnBlock).unwrap(),
                vec![i as u8; 80]
            );
        }
        // Reopening with the committed lengths keeps every pack.
        drop(w);
        PackWriter::open(storage.clone(), &lens).unwrap();
        assert_eq!(storage.list(Path::new(PACK_DIR)).unwrap().len(), lens.len());
    }

    #[test]
    fn a_reference_past_the_end_or_of_the_wrong_kind_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, mut w) = writer(dir.path());
        let r = w
            .put(RecordKind::Leaf, b"node", content_hash(b"node"))
            .unwrap();
        w.sync(true).unwrap();
        let reader = PackReader::new(storage);
        assert!(matches!(
            reader.read(&r, RecordKind::Internal),
            Err(Error::Corrupt { .. })
        ));
        let far = RecordRef {
            offset: r.offset + 1000,
            ..r
        };
        assert!(matches!(
            reader.read(&far, RecordKind::Leaf),
            Err(Error::Corrupt { .. })
        ));
    }
}
