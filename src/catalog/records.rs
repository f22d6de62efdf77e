//! `records.log`: a 16-byte header, then framed catalog records back to back.
//!
//! ```text
//! header: magic "REELRECS", format_version u32, reserved u32
//! record:
//!  0 magic     u32  "RCAT"
//!  4 kind      u8   1 table definition, 2 version, 3 rewind marker
//!  5 reserved  [3]  0
//!  8 len       u32  payload length
//! 12 payload   [len] little-endian fields (see version.rs)
//! .. checksum  u64  xxh3-64 of bytes 0 .. 12 + len
//! ```

use std::path::Path;

use reeldb_keyframe::format::{Decoder, Encoder, FORMAT_VERSION, MAX_RECORD_LEN, checksum};
use reeldb_keyframe::storage::Storage;

use crate::error::{Error, Result};

/// First bytes of the records log.
pub const RECORDS_MAGIC: [u8; 8] = *b"REELRECS";
/// Length of the records-log header.
pub const RECORDS_HEADER_LEN: u64 = 16;
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RCAT");
const FRAME_HEADER: usize = 12;

/// What a catalog record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CatalogKind {
    /// A table definition (name, schema, key columns).
    TableDef = 1,
    /// A version record.
    Version = 2,
    /// A rewind marker: appended before a rewind's commit point, it says that the version
    /// records before it numbered above its target were purged (see `catalog::tail`).
    Rewind = 3,
}

/// One framed record found by walking records.log (see [`walk`]).
#[derive(Debug, Clone)]
pub struct Found {
    /// Where the frame starts.
    pub offset: u64,
    /// The whole frame: header, payload, checksum.
    pub framed: Vec<u8>,
    /// The frame's kind byte.
    pub kind: u8,
}

impl Found {
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.framed[FRAME_HEADER..self.framed.len() - 8]
    }
}

/// Every intact frame of records.log from `from` on, in order. Bytes that are not an intact
/// frame (a cut-off append, damage) are skipped to the next place an intact frame starts.
pub fn walk(storage: &dyn Storage, path: &Path, from: u64) -> Result<Vec<Found>> {
    if !storage.exists(path)? {
        return Ok(Vec::new());
    }
    let len = storage.len(path)?;
    let mut out = Vec::new();
    if from >= len {
        return Ok(out);
    }
    let buf = super::read_exact(storage, path, from, (len - from) as usize)?;
    let mut at = 0usize;
    while buf.len() - at >= FRAME_HEADER + 8 {
        let mut d = Decoder::new(&buf[at..at + FRAME_HEADER]);
        let (Ok(magic), Ok(kind), Ok(_), Ok(n)) = (d.u32(), d.u8(), d.fixed::<3>(), d.u32()) else {
            break;
        };
        let end = at + FRAME_HEADER + n as usize + 8;
        let intact = magic == RECORD_MAGIC
            && n <= MAX_RECORD_LEN
            && end <= buf.len()
            && checksum(&buf[at..end - 8]) == u64::from_le_bytes(tail_sum(&buf[end - 8..end]));
        if !intact {
            at += 1;
            continue;
        }
        out.push(Found {
            offset: from + at as u64,
            framed: buf[at..end].to_vec(),
            kind,
        });
        at = end;
    }
    Ok(out)
}

/// The bytes of an empty records log.
pub fn header() -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(&RECORDS_MAGIC).u32(FORMAT_VERSION).u32(0);
    e.finish()
}

/// Frames a payload as a catalog record.
pub fn frame(kind: CatalogKind, payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.u32(RECORD_MAGIC)
        .u8(kind as u8)
        .raw(&[0, 0, 0])
        .u32(payload.len() as u32)
        .raw(payload);
    let mut out = e.finish();
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads the record of `kind` framed in `len` bytes at `offset` and returns its payload.
/// `whole_checksum`, when given, is the xxh3-64 of the whole framed record that the version
/// index recorded for it.
pub fn read(
    storage: &dyn Storage,
    path: &Path,
    offset: u64,
    len: u32,
    kind: CatalogKind,
    whole_checksum: Option<u64>,
) -> Result<Vec<u8>> {
    if (len as usize) < FRAME_HEADER + 8 || len > MAX_RECORD_LEN {
        return Err(Error::Corruption {
            path: path.display().to_string(),
            offset,
            reason: format!("record length {len} out of bounds"),
        });
    }
    let buf = super::read_exact(storage, path, offset, len as usize)?;
    unframe(&buf, path, offset, kind, whole_checksum)
}

/// The payload of `buf`, the framed record of `kind` read from `offset` of `path`, after
/// checking its frame (and, when given, `whole_checksum`: see [`read`]).
pub fn unframe(
    buf: &[u8],
    path: &Path,
    offset: u64,
    kind: CatalogKind,
    whole_checksum: Option<u64>,
) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::Corruption {
        path: path.display().to_string(),
        offset,
        reason,
    };
    if buf.len() < FRAME_HEADER + 8 || buf.len() > MAX_RECORD_LEN as usize {
        return Err(corrupt(format!(
            "record length {} out of bounds",
            buf.len()
        )));
    }
    let body = buf.len() - 8;
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&buf[body..]);
    if checksum(&buf[..body]) != u64::from_le_bytes(sum) {
        return Err(corrupt("record checksum mismatch".into()));
    }
    if whole_checksum.is_some_and(|c| c != checksum(buf)) {
        return Err(corrupt(
            "record does not match its index entry's checksum".into(),
        ));
    }
    let mut d = Decoder::new(&buf[..FRAME_HEADER]);
    let bad = |e: reeldb_keyframe::format::DecodeError| corrupt(e.0);
    if d.u32().map_err(bad)? != RECORD_MAGIC {
        return Err(corrupt("bad record magic".into()));
    }
    let k = d.u8().map_err(bad)?;
    if k != kind as u8 {
        return Err(corrupt(format!(
            "record of kind {k}, expected {}",
            kind as u8
        )));
    }
    let _ = d.fixed::<3>().map_err(bad)?;
    let n = d.u32().map_err(bad)? as usize;
    if FRAME_HEADER + n != body {
        return Err(corrupt("record length disagrees with its frame".into()));
    }
    Ok(buf[FRAME_HEADER..body].to_vec())
}

fn tail_sum(bytes: &[u8]) -> [u8; 8] {
    let mut sum = [0u8; 8];
    sum.copy_from_slice(bytes);
    sum
}

/// Checks the header of the records log.
pub fn check_header(storage: &dyn Storage, path: &Path) -> Result<()> {
    super::check_header(storage, path, &RECORDS_MAGIC, 12..16)
}
