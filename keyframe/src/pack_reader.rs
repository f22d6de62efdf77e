//! [`PackReader`]: reads records from pack files for every reader of a store. On a local disk
//! it maps each pack whole (the page cache does the rest); on storage that reads in windows
//! ([`Storage::read_window`], an object store) it gets the aligned windows of a pack that
//! the records read fall in, one request per run of missing windows, and keeps them, so a
//! point read of a large pack fetches a window or two, not the pack. A pack's header is
//! checked when the window holding it is read; every record is checked by its own framing
//! and content hash, wherever it is read from.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::format::PACK_HEADER_LEN;
use crate::node::RecordRef;
use crate::pack::{check_header, pack_path};
use crate::record::{self, RecordKind};
use crate::storage::Storage;

/// Reads records from pack files through maps or windows shared by every reader of a store.
#[derive(Debug)]
pub struct PackReader {
    storage: Arc<dyn Storage>,
    /// The size of the windows packs are read in, `None` to map them whole.
    window: Option<u64>,
    maps: RwLock<HashMap<u32, Bytes>>,
    windows: RwLock<HashMap<u32, PackWindows>>,
    /// Held while windows are read, so that readers on several threads wanting the same
    /// window (a parallel scan) read it once.
    reading: Mutex<()>,
}

/// What was read of one pack in windows.
#[derive(Debug, Default)]
struct PackWindows {
    /// The pack's length when last measured.
    len: u64,
    /// Its windows read so far, by number (window `n` starts at `n` times the window size;
    /// the last of a pack may be shorter, and is read again when a record runs past it).
    read: HashMap<u64, Bytes>,
}

impl PackReader {
    /// A reader over the packs of `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        PackReader {
            window: storage.read_window(),
            storage,
            maps: RwLock::new(HashMap::new()),
            windows: RwLock::new(HashMap::new()),
            reading: Mutex::new(()),
        }
    }

    /// A reader over the packs of `storage` that reads them in windows of `window` bytes.
    #[cfg(test)]
    fn with_window(storage: Arc<dyn Storage>, window: u64) -> Self {
        PackReader {
            window: Some(window),
            ..PackReader::new(storage)
        }
    }

    /// Drops every map and window, so the next read of each pack reads the file as it is now
    /// (after a rewind removed packs and their ids may be used again).
    pub fn forget_maps(&self) {
        if let Ok(mut maps) = self.maps.write() {
            maps.clear();
        }
        if let Ok(mut windows) = self.windows.write() {
            windows.clear();
        }
    }

    /// Reads, verifies and decompresses the record `r`, which must be of `kind`.
    pub fn read(&self, r: &RecordRef, kind: RecordKind) -> Result<Vec<u8>> {
        self.checked(r, |bytes| record::decode(bytes, kind, r.hash))
    }

    /// The payload of the column block `r`, as a slice of the pack's map or window (no copy
    /// unless the record spans two windows), after checking its framing and content address;
    /// see [`record::payload_of_block`].
    pub fn read_block(&self, r: &RecordRef) -> Result<Bytes> {
        self.checked(r, |record| {
            record::payload_of_block(record, r.hash).map(|range| record.slice(range))
        })
    }

    /// `check` of the bytes of record `r`. A map may come from what the storage learned of
    /// the pack before ([`Storage::map_prefix`]), and maps and windows kept here may be of
    /// a pack removed and written again since (on an object store, by a rewind another
    /// process made): when the check fails, the pack is forgotten (here and by the
    /// storage) and read again, and the record checked once more.
    fn checked<T>(
        &self,
        r: &RecordRef,
        check: impl Fn(&Bytes) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let range = r.offset..r.offset + u64::from(r.len);
        let corrupt = |reason| Error::corrupt(pack_path(r.pack), r.offset, reason);
        let first = check(&self.bytes(r.pack, range.clone())?);
        if first.is_ok() {
            return first.map_err(corrupt);
        }
        self.storage.forget(&pack_path(r.pack));
        if let Ok(mut maps) = self.maps.write() {
            maps.remove(&r.pack);
        }
        if let Ok(mut windows) = self.windows.write() {
            windows.remove(&r.pack);
        }
        check(&self.bytes(r.pack, range)?).map_err(corrupt)
    }

    /// Bytes `range` of pack `pack`.
    fn bytes(&self, pack: u32, range: Range<u64>) -> Result<Bytes> {
        match self.window {
            None => {
                let map = self.mapped(pack, range.end)?;
                Ok(map.slice(range.start as usize..range.end as usize))
            }
            Some(window) => self.windowed(pack, range, window),
        }
    }

    fn mapped(&self, pack: u32, need: u64) -> Result<Bytes> {
        if let Ok(maps) = self.maps.read()
            && let Some(m) = maps.get(&pack)
            && m.len() as u64 >= need
        {
            return Ok(m.clone());
        }
        let path = pack_path(pack);
        let map = self.storage.map_prefix(&path, need)?;
        if (map.len() as u64) < need {
            return Err(past_end(pack, need, map.len() as u64));
        }
        check_header(&map[..PACK_HEADER_LEN as usize], pack)
            .map_err(|reason| Error::corrupt(&path, 0, reason))?;
        if let Ok(mut maps) = self.maps.write() {
            maps.insert(pack, map.clone());
        }
        Ok(map)
    }

    /// Bytes `range` of pack `pack` from its windows of `window` bytes, reading those
    /// missing first.
    fn windowed(&self, pack: u32, range: Range<u64>, window: u64) -> Result<Bytes> {
        if let Some(bytes) = self.held_in_windows(pack, &range, window) {
            return Ok(bytes);
        }
        // Another thread may be reading them: once it is done, only what is still missing.
        let _reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bytes) = self.held_in_windows(pack, &range, window) {
            return Ok(bytes);
        }
        self.read_windows(pack, &range, window)?;
        self.held_in_windows(pack, &range, window).ok_or_else(|| {
            let len = self
                .windows
                .read()
                .ok()
                .and_then(|all| Some(all.get(&pack)?.len));
            past_end(pack, range.end, len.unwrap_or(0))
        })
    }

    /// Bytes `range` of pack `pack` when the windows read so far hold them (no copy unless
    /// the range spans windows).
    fn held_in_windows(&self, pack: u32, range: &Range<u64>, window: u64) -> Option<Bytes> {
        let all = self.windows.read().unwrap_or_else(|p| p.into_inner());
        let read = &all.get(&pack)?.read;
        let piece = |n: u64| -> Option<Bytes> {
            let (w, base) = (read.get(&n)?, n * window);
            let (from, to) = (range.start.max(base), range.end.min(base + window));
            (base + w.len() as u64 >= to)
                .then(|| w.slice((from - base) as usize..(to - base) as usize))
        };
        let numbers = window_numbers(range, window);
        if numbers.end - numbers.start == 1 {
            return piece(numbers.start);
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for n in numbers {
            out.extend_from_slice(&piece(n)?);
        }
        Some(out.freeze())
    }

    /// Reads the windows of pack `pack` that `range` needs and the windows read so far do
    /// not hold, each run of them in one read.
    fn read_windows(&self, pack: u32, range: &Range<u64>, window: u64) -> Result<()> {
        let path = pack_path(pack);
        // Per window missing or short: what was read of it (empty when nothing).
        let (wanted, mut known_len) = {
            let all = self.windows.read().unwrap_or_else(|p| p.into_inner());
            let p = all.get(&pack);
            let wanted: Vec<(u64, Bytes)> = window_numbers(range, window)
                .map(|n| {
                    (
                        n,
                        p.and_then(|p| p.read.get(&n).cloned()).unwrap_or_default(),
                    )
                })
                .filter(|(n, w)| n * window + (w.len() as u64) < range.end.min((n + 1) * window))
                .collect();
            (wanted, p.map_or(0, |p| p.len))
        };
        if known_len < range.end {
            known_len = self.storage.len(&path)?;
            if known_len < range.end {
                return Err(past_end(pack, range.end, known_len));
            }
        }
        let numbers: Vec<u64> = wanted.iter().map(|(n, _)| *n).collect();
        let mut got = Vec::new();
        for run in runs(&numbers) {
            // A window read short before (it ran to a segment's end) is read on from there.
            let had = wanted
                .iter()
                .find(|(n, _)| *n == run.start)
                .map(|(_, w)| w.clone())
                .unwrap_or_default();
            let start = run.start * window + had.len() as u64;
            let end = (run.end * window).min(known_len);
            let need = range.end.min(end).max(start);
            // At least what the range needs; the rest of the run where it costs nothing.
            let bytes = self.storage.read_at_least(
                &path,
                start,
                (need - start) as usize,
                (end - start) as usize,
            )?;
            let read_to = start + bytes.len() as u64;
            for n in run {
                let (from, to) = ((n * window).max(start), ((n + 1) * window).min(read_to));
                if from >= to {
                    break;
                }
                let piece = bytes.slice((from - start) as usize..(to - start) as usize);
                let whole = match n * window < start {
                    true => Bytes::from([&had[..], &piece[..]].concat()),
                    false => piece,
                };
                got.push((n, whole));
            }
        }
        if let Some((_, first)) = got.iter().find(|(n, _)| *n == 0) {
            let header = first.get(..PACK_HEADER_LEN as usize).unwrap_or(first);
            check_header(header, pack).map_err(|reason| Error::corrupt(&path, 0, reason))?;
        }
        let mut all = self.windows.write().unwrap_or_else(|p| p.into_inner());
        let p = all.entry(pack).or_default();
        p.len = p.len.max(known_len);
        p.read.extend(got);
        Ok(())
    }
}

/// The numbers of the windows of `window` bytes that `range` falls in (at least one).
fn window_numbers(range: &Range<u64>, window: u64) -> Range<u64> {
    let first = range.start / window;
    first..range.end.div_ceil(window).max(first + 1)
}

/// The error for a record reaching `need` in pack `pack`, which is `len` bytes long.
fn past_end(pack: u32, need: u64, len: u64) -> Error {
    Error::corrupt(
        pack_path(pack),
        need,
        format!("reference past the end of the pack ({len} bytes)"),
    )
}

/// `numbers` (ascending) as runs of consecutive numbers.
fn runs(numbers: &[u64]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some(r) if r.end == n => r.end += 1,
            _ => runs.push(n..n + 1),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::content_hash;
    use crate::pack::PackWriter;
    use crate::storage::LocalStorage;

    /// Records of 1 to 300 bytes appended to a pack and synced: their refs and payloads.
    fn write_records(storage: &Arc<dyn Storage>, n: usize) -> Vec<(RecordRef, Vec<u8>)> {
        let mut w = PackWriter::open(storage.clone(), &[]).unwrap();
        let out: Vec<_> = (0..n)
            .map(|i| {
                let raw: Vec<u8> = (0..1 + (i * 37) % 300).map(|b| (b ^ i) as u8).collect();
                let r = w
                    .put(RecordKind::ColumnBlock, &raw, content_hash(&raw))
                    .unwrap();
                (r, raw)
            })
            .collect();
        w.sync(true).unwrap();
        out
    }

    #[test]
    fn records_read_in_windows_are_the_records_read_from_a_map() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let records = write_records(&storage, 200);
        let mapped = PackReader::new(storage.clone());
        for window in [64, 100, 4096, 1 << 20] {
            let windowed = PackReader::with_window(storage.clone(), window);
            // Backwards, so windows are read out of order and records span ones read before.
            for (r, raw) in records.iter().rev() {
                assert_eq!(&windowed.read(r, RecordKind::ColumnBlock).unwrap(), raw);
                assert_eq!(
                    windowed.read_block(r).unwrap(),
                    mapped.read_block(r).unwrap()
                );
            }
        }
    }

    #[test]
    fn a_window_read_short_at_the_end_of_a_pack_is_read_again_once_the_pack_grew() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let mut w = PackWriter::open(storage.clone(), &[]).unwrap();
        let first = w
            .put(RecordKind::ColumnBlock, b"first", content_hash(b"first"))
            .unwrap();
        let committed = w.sync(true).unwrap();
        let reader = PackReader::with_window(storage.clone(), 1 << 20);
        assert_eq!(
            reader.read(&first, RecordKind::ColumnBlock).unwrap(),
            b"first"
        );
        let mut w = PackWriter::open(storage.clone(), &committed).unwrap();
        let second = w
            .put(RecordKind::ColumnBlock, b"second", content_hash(b"second"))
            .unwrap();
        w.sync(true).unwrap();
        assert_eq!(second.pack, first.pack, "appended to the same pack");
        assert_eq!(
            reader.read(&second, RecordKind::ColumnBlock).unwrap(),
            b"second"
        );
    }

    #[cfg(feature = "object-store")]
    #[test]
    fn on_an_object_store_a_window_stops_at_the_segment_a_record_ends_in_and_goes_on_later() {
        use crate::object_storage::ObjectStorage;
        use object_store::memory::InMemory;
        let memory = Arc::new(InMemory::new());
        let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::new(memory.clone(), "s").unwrap());
        // Two commits' records: two segments of the pack.
        let mut w = PackWriter::open(storage.clone(), &[]).unwrap();
        let first = w
            .put(RecordKind::ColumnBlock, &[7; 500], content_hash(&[7; 500]))
            .unwrap();
        let committed = w.sync(true).unwrap();
        let mut w = PackWriter::open(storage.clone(), &committed).unwrap();
        let second = w
            .put(RecordKind::ColumnBlock, &[8; 300], content_hash(&[8; 300]))
            .unwrap();
        w.sync(true).unwrap();
        let first_segment = committed[0].1;

        // A reader of its own, as another process: nothing of the writer's kept.
        let objects = ObjectStorage::new(memory, "s").unwrap();
        let reader = PackReader::new(Arc::new(objects.clone()));
        let before = objects.requests();
        assert_eq!(
            reader.read(&first, RecordKind::ColumnBlock).unwrap(),
            [7; 500]
        );
        let asked = objects.requests().since(&before);
        assert_eq!((asked.gets, asked.bytes_read), (1, first_segment));
        assert_eq!(
            reader.read(&second, RecordKind::ColumnBlock).unwrap(),
            [8; 300]
        );
        let asked = objects.requests().since(&before);
        let pack_len = storage.len(&pack_path(first.pack)).unwrap();
        assert_eq!(
            (asked.gets, asked.bytes_read),
            (2, pack_len),
            "the window goes on from where it stopped"
        );
    }

    #[test]
    fn a_reference_past_the_end_or_a_damaged_header_is_corruption_in_windows_too() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let records = write_records(&storage, 3);
        let (r, _) = records[2];
        let past = RecordRef {
            offset: r.offset + 1000,
            ..r
        };
        let reader = PackReader::with_window(storage.clone(), 64);
        let err = reader.read(&past, RecordKind::ColumnBlock).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("past the end of the pack"),
            "{err}"
        );

        let path = pack_path(r.pack);
        let mut bytes = storage.map(&path).unwrap().to_vec();
        bytes[0] ^= 0xff;
        storage.write_atomic(&path, &bytes).unwrap();
        // The header is checked when the window holding it is read; a record in another
        // window is checked by its own framing and content hash.
        let reader = PackReader::with_window(storage.clone(), 64);
        let (first, _) = records[0];
        let err = reader.read(&first, RecordKind::ColumnBlock).unwrap_err();
        assert!(matches!(err, Error::Corrupt { offset: 0, .. }), "{err}");
    }
}
