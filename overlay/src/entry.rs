//! HAMT entries: what an overlay knows about one key changed since its generation's keyframe.
//!
//! ```text
//! hash u64, key (u32 len, bytes), flags u8 (bit 0: row present, bit 1: shadows present),
//! [batch u32, row u32] if bit 0, [shadowed keyframe ordinal u64] if bit 1
//! ```

use reeldb_keyframe::format::{DecodeError, Decoder, Encoder};

/// Where an overlay row lives: the commit's row batch and the row within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowLocation {
    /// Row batch (one per commit of the generation).
    pub batch: u32,
    /// Row within the batch.
    pub row: u32,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 64-bit hash of the key ([`key_hash`]).
    pub hash: u64,
    /// The memcomparable key.
    pub key: Vec<u8>,
    /// The key's current row, or `None` for a tombstone (deleted since the keyframe).
    pub row: Option<RowLocation>,
    /// Ordinal of the keyframe row this key shadows, if the keyframe holds the key.
    pub shadows: Option<u64>,
}

const HAS_ROW: u8 = 1;
const HAS_SHADOW: u8 = 2;

/// A function from memcomparable key to the 64-bit hash it is filed under.
pub type KeyHasher = fn(&[u8]) -> u64;

/// The hash keys are filed under: xxh3-64 of the memcomparable key.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// One entry read in place from a node's bytes: its fields, and the bytes that encode it
/// (which the writer copies unchanged into a rewritten node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// 64-bit hash of the key.
    pub hash: u64,
    /// The memcomparable key.
    pub key: &'a [u8],
    /// The key's current row, or `None` for a tombstone.
    pub row: Option<RowLocation>,
    /// Ordinal of the keyframe row this key shadows, if any.
    pub shadows: Option<u64>,
    /// The entry's whole encoding.
    pub bytes: &'a [u8],
}

/// Appends the encoding of an entry with these fields.
pub fn encode_entry(
    e: &mut Encoder,
    hash: u64,
    key: &[u8],
    row: Option<RowLocation>,
    shadows: Option<u64>,
) {
    let flags =
        if row.is_some() { HAS_ROW } else { 0 } | if shadows.is_some() { HAS_SHADOW } else { 0 };
    e.u64(hash).bytes(key).u8(flags);
    if let Some(r) = row {
        e.u32(r.batch).u32(r.row);
    }
    if let Some(s) = shadows {
        e.u64(s);
    }
}

impl<'a> EntryView<'a> {
    /// Reads one entry, checking its hash with `hasher`.
    pub fn decode(d: &mut Decoder<'a>, hasher: KeyHasher) -> Result<Self, DecodeError> {
        let start = d.position();
        let hash = d.u64()?;
        let key = d.bytes()?;
        let flags = d.u8()?;
        if flags & !(HAS_ROW | HAS_SHADOW) != 0 {
            return Err(DecodeError(format!("bad entry flags {flags:#x}")));
        }
        let row = if flags & HAS_ROW != 0 {
            Some(RowLocation {
                batch: d.u32()?,
                row: d.u32()?,
            })
        } else {
            None
        };
        let shadows = if flags & HAS_SHADOW != 0 {
            Some(d.u64()?)
        } else {
            None
        };
        if hasher(key) != hash {
            return Err(DecodeError("entry hash does not match its key".into()));
        }
        Ok(EntryView {
            hash,
            key,
            row,
            shadows,
            bytes: d.consumed_since(start),
        })
    }

    /// The entry, owning its key.
    pub fn to_entry(&self) -> Entry {
        Entry {
            hash: self.hash,
            key: self.key.to_vec(),
            row: self.row,
            shadows: self.shadows,
        }
    }
}
