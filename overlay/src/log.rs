//! Node logs: one append-only file per generation of framed blobs (each overlay commit's
//! version delta), memory-mapped by readers.
//!
//! ```text
//! header: magic "REELOLOG", format_version u32, reserved u32 = 0; then frames
//! frame:  len u32 (of body) | body | checksum u64 = xxh3-64(len ‖ body)
//! body:   kind u8 (5 version delta), reserved [3] = 0, payload
//! NodeRef (16 bytes): offset u64 of the frame, checksum u64 of the frame
//! ```
//! A version records the log's length when it committed; bytes past the latest such length are
//! the remains of an unfinished commit. They are never cut back (a reader may have the log
//! mapped): the writer appends after them, and nothing references them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use reeldb_keyframe::format::{Encoder, FORMAT_VERSION, checksum};
use reeldb_keyframe::storage::{AppendFile, Storage};

use crate::error::{Error, Result};

/// First bytes of a node log.
pub const LOG_MAGIC: [u8; 8] = *b"REELOLOG";
/// Length of the node-log header.
pub const LOG_HEADER_LEN: u64 = 16;
/// Largest frame body accepted on read (a deletion vector of 2^32 ordinals as a bitmap stays
/// below it).
pub const MAX_NODE_LEN: u32 = 1 << 30;
/// Bytes of a frame around its body.
pub const FRAME_OVERHEAD: usize = 12;

/// Where a frame is in its log, and the checksum it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// Offset of the frame.
    pub offset: u64,
    /// xxh3-64 of the frame's length and body.
    pub checksum: u64,
}

/// A frame around `body`: its length, the body, and the checksum of both.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + FRAME_OVERHEAD);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// What a frame holds (its body's first byte; 1 to 4 were HAMT nodes and whole per-version
/// bitmaps before format 5, and are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlobKind {
    /// One overlay commit's change to its generation's bitmaps: the keyframe ordinals it
    /// newly shadows and the overlay rows it retires ([`crate::VersionDelta`]).
    VersionDelta = 5,
}

/// Reads blobs from a node log through a shared memory map, verifying each one.
pub struct NodeLog {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    map: RwLock<Bytes>,
}

impl std::fmt::Debug for NodeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLog").field("path", &self.path).finish()
    }
}

impl NodeLog {
    /// A reader of the log at `path`.
    pub fn new(storage: Arc<dyn Storage>, path: &Path) -> Self {
        NodeLog {
            storage,
            path: path.to_path_buf(),
            map: RwLock::new(Bytes::new()),
        }
    }

    /// The log's path, relative to the store root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }

    /// A view of the log holding at least `need` bytes.
    fn view(&self, need: u64) -> Result<Bytes> {
        if let Ok(m) = self.map.read()
            && m.len() as u64 >= need
        {
            return Ok(m.clone());
        }
        let m = self.storage.map_prefix(&self.path, need)?;
        if (m.len() as u64) < need {
            return Err(self.corrupt(
                need,
                format!("reference past the end of the log ({} bytes)", m.len()),
            ));
        }
        if m.len() < LOG_HEADER_LEN as usize || m[..8] != LOG_MAGIC {
            return Err(self.corrupt(0, "bad node-log magic"));
        }
        let version = u32::from_le_bytes([m[8], m[9], m[10], m[11]]);
        if version != FORMAT_VERSION {
            return Err(self.corrupt(
                0,
                format!("node-log format version {version} is not supported"),
            ));
        }
        if m[12..16] != [0, 0, 0, 0] {
            return Err(self.corrupt(12, "reserved node-log header bytes are not zero"));
        }
        if let Ok(mut slot) = self.map.write() {
            *slot = m.clone();
        }
        Ok(m)
    }

    /// Reads and verifies the blob of `kind` at `r` and returns its payload.
    pub fn read_blob(&self, r: NodeRef, kind: BlobKind) -> Result<Bytes> {
        let (m, body) = self.read_frame(r)?;
        let body = m.slice(body);
        if body.len() < 4 || body[0] != kind as u8 || body[1..4] != [0, 0, 0] {
            return Err(self.corrupt(r.offset, format!("expected a {kind:?} blob")));
        }
        Ok(body.slice(4..))
    }

    /// Verifies the frame at `r`; returns the map and the range of its body. A map may come
    /// from what the storage learned of the log before ([`Storage::map_prefix`]), so when
    /// the check fails the log is forgotten and mapped again, and the frame checked once more.
    fn read_frame(&self, r: NodeRef) -> Result<(Bytes, std::ops::Range<usize>)> {
        self.read_frame_once(r).or_else(|first| {
            // Only a failed check: a failed read is the storage's error, not stale bytes.
            if r.offset < LOG_HEADER_LEN || !matches!(first, Error::Corrupt { .. }) {
                return Err(first);
            }
            self.storage.forget(&self.path);
            if let Ok(mut slot) = self.map.write() {
                *slot = Bytes::new();
            }
            self.read_frame_once(r)
        })
    }

    fn read_frame_once(&self, r: NodeRef) -> Result<(Bytes, std::ops::Range<usize>)> {
        if r.offset < LOG_HEADER_LEN {
            return Err(self.corrupt(r.offset, "frame reference into the header"));
        }
        let m = self.view(r.offset + 4)?;
        let len = frame_len(&m, r.offset);
        let m = self.view(r.offset + len.unwrap_or(0) + FRAME_OVERHEAD as u64)?;
        let body = self.frame_in(&m, r)?;
        let start = r.offset as usize + 4;
        Ok((m.clone(), start..start + body.len()))
    }

    /// Verifies the frame at `r` within `map` (a view of this log) and returns its body.
    pub fn frame_in<'m>(&self, map: &'m [u8], r: NodeRef) -> Result<&'m [u8]> {
        if r.offset < LOG_HEADER_LEN {
            return Err(self.corrupt(r.offset, "frame reference into the header"));
        }
        let len = frame_len(map, r.offset)
            .ok_or_else(|| self.corrupt(r.offset, "reference past the end of the log"))?;
        if len > u64::from(MAX_NODE_LEN) {
            return Err(self.corrupt(r.offset, format!("frame length {len} out of bounds")));
        }
        let at = r.offset as usize;
        let end = at + len as usize + FRAME_OVERHEAD;
        let frame = map
            .get(at..end)
            .ok_or_else(|| self.corrupt(r.offset, "frame runs past the end of the log"))?;
        let (covered, stored) = frame.split_at(frame.len() - 8);
        let sum = checksum(covered);
        if stored != sum.to_le_bytes() || sum != r.checksum {
            return Err(self.corrupt(r.offset, "frame checksum mismatch"));
        }
        Ok(&covered[4..])
    }
}

/// The body length stored at the start of the frame at `offset`, if the map holds it.
fn frame_len(map: &[u8], offset: u64) -> Option<u64> {
    let at = usize::try_from(offset).ok()?;
    let len: [u8; 4] = map.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(len)))
}

/// The header a node log starts with.
fn header() -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&LOG_MAGIC).u32(FORMAT_VERSION).u32(0);
    e.finish()
}

/// Appends blobs to a node log for the single writer. Appends are buffered and written at
/// [`NodeLogWriter::sync`]; nothing reads a blob before the commit that wrote it is synced.
#[derive(Debug)]
pub struct NodeLogWriter {
    log: NodeLog,
    file: Box<dyn AppendFile>,
    created: bool,
    buffer: Vec<u8>,
}

impl NodeLogWriter {
    /// Opens the log at `path` for appending: creates it (with its header) when `committed`
    /// is `None`, else appends at its end. Bytes past the committed length (an abandoned or
    /// crashed commit's) are never cut back, since a reader may have the log mapped; nothing
    /// references them.
    pub fn open(storage: Arc<dyn Storage>, path: &Path, committed: Option<u64>) -> Result<Self> {
        let created = committed.is_none();
        match committed {
            Some(len) => {
                let on_disk = storage.len(path)?;
                if on_disk < len {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        offset: on_disk,
                        reason: format!("node log is shorter than its committed length {len}"),
                    });
                }
            }
            None => {
                if storage.exists(path)? {
                    storage.remove(path)?;
                }
                storage.open_append(path)?.append(&header())?;
            }
        }
        let file = storage.open_append(path)?;
        Ok(NodeLogWriter {
            log: NodeLog::new(storage, path),
            file,
            created,
            buffer: Vec::new(),
        })
    }

    /// Opens the log at `path` for its generation's first commit without replacing a log
    /// already there whose header is sound: its bytes stay, referenced by nothing this
    /// generation writes, and the commit appends after them. Such a log is one a rewind
    /// purged (whose readers, where they publish no leases, may still be reading it) or one
    /// an unfinished commit created. A missing log is created, as [`NodeLogWriter::open`]
    /// does with no committed length; one too short for a header, or whose header is not
    /// this format's, is replaced (nothing can be read through it).
    pub fn open_keeping(storage: Arc<dyn Storage>, path: &Path) -> Result<Self> {
        let sound = storage.exists(path)?
            && storage.len(path)? >= LOG_HEADER_LEN
            && storage.read_at(path, 0, LOG_HEADER_LEN as usize)?.as_ref() == header();
        if !sound {
            return Self::open(storage, path, None);
        }
        let mut writer = Self::open(storage, path, Some(LOG_HEADER_LEN))?;
        // Its directory entry may not be durable yet (an unfinished commit created it).
        writer.created = true;
        Ok(writer)
    }

    /// The reader over this log (it sees appended, uncommitted blobs too).
    pub fn reader(&self) -> &NodeLog {
        &self.log
    }

    /// A view of everything appended so far: buffered appends are written (not synced) first.
    pub fn written(&mut self) -> Result<Bytes> {
        if !self.buffer.is_empty() {
            self.file.append(&self.buffer)?;
            self.buffer.clear();
        }
        self.log.view(self.file.len())
    }

    /// Appends a blob of `kind` and returns its reference.
    pub fn append_blob(&mut self, kind: BlobKind, payload: &[u8]) -> Result<NodeRef> {
        let mut body = Vec::with_capacity(payload.len() + 4);
        body.extend_from_slice(&[kind as u8, 0, 0, 0]);
        body.extend_from_slice(payload);
        self.append_frame(frame(&body))
    }

    fn append_frame(&mut self, frame: Vec<u8>) -> Result<NodeRef> {
        let sum = u64::from_le_bytes(
            frame[frame.len() - 8..]
                .try_into()
                .map_err(|_| self.log.corrupt(0, "frame shorter than its checksum"))?,
        );
        let offset = self.len();
        self.buffer.extend_from_slice(&frame);
        Ok(NodeRef {
            offset,
            checksum: sum,
        })
    }

    /// Bytes appended so far (header included), buffered or written.
    pub fn len(&self) -> u64 {
        self.file.len() + self.buffer.len() as u64
    }

    /// True when only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len() <= LOG_HEADER_LEN
    }

    /// Makes appended blobs durable (unless `durable` is false) and returns the length the
    /// commit records. A newly created log's directory entry is synced too.
    pub fn sync(&mut self, durable: bool) -> Result<u64> {
        if !self.buffer.is_empty() {
            self.file.append(&self.buffer)?;
            self.buffer.clear();
        }
        if durable {
            self.file.sync()?;
            if self.created
                && let Some(dir) = self.log.path.parent()
            {
                self.log.storage.sync_dir(dir)?;
            }
        }
        self.created = false;
        Ok(self.file.len())
    }

    /// Forgets the blobs of an abandoned commit: buffered ones are dropped and written ones
    /// stay as unreferenced bytes.
    pub fn abort(&mut self) {
        self.buffer.clear();
    }
}
