//! One table's overlay at one version: its trie root, its deletion vector (the keyframe
//! ordinals it shadows: updated or deleted since the keyframe) and its live rows (the overlay
//! rows that are current), and [`apply`], which turns one commit's changes into the next
//! version. A scan is then the keyframe minus the deletion vector plus the live rows; a get
//! asks the trie first and the keyframe only for keys the trie does not know.

use bytes::Bytes;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::entry::{RowLocation, key_hash};
use crate::error::{Error, Result};
use crate::hamt::{Edit, Outcome, update};
use crate::log::{BlobKind, NodeLog, NodeLogWriter};
use crate::node::NodeRef;

/// An overlay version, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverlayVersion {
    /// Root of the trie (`None`: nothing changed since the keyframe).
    pub root: Option<NodeRef>,
    /// Keyframe ordinals shadowed at this version.
    pub shadowed: RoaringTreemap,
    /// Generation row ids of the overlay rows that are current at this version.
    pub live: RoaringBitmap,
    /// Keys the trie holds (rows and tombstones).
    pub entries: u64,
}

/// Where an overlay version's parts are in its node log, as a version record keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayRefs {
    /// Root of the trie.
    pub root: Option<NodeRef>,
    /// The deletion-vector blob.
    pub shadowed: NodeRef,
    /// The live-rows blob.
    pub live: NodeRef,
    /// Keys the trie holds.
    pub entries: u64,
}

/// One change to one key: its new row, or `None` to delete it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The memcomparable key.
    pub key: &'a [u8],
    /// Where the key's new row is, or `None` for a delete.
    pub row: Option<RowLocation>,
    /// The key's ordinal in the generation's keyframe, if the keyframe holds it (the row the
    /// key shadows; the same at every version of the generation).
    pub shadows: Option<u64>,
}

fn bitmap_error(log: &NodeLog, r: NodeRef, e: std::io::Error) -> Error {
    Error::Corrupt {
        path: log.path().to_path_buf(),
        offset: r.offset,
        reason: format!("undecodable bitmap: {e}"),
    }
}

impl OverlayVersion {
    /// Reads a version's bitmaps from its log.
    pub fn load(log: &NodeLog, refs: &OverlayRefs) -> Result<Self> {
        let dv: Bytes = log.read_blob(refs.shadowed, BlobKind::DeletionVector)?;
        let live: Bytes = log.read_blob(refs.live, BlobKind::LiveRows)?;
        Ok(OverlayVersion {
            root: refs.root,
            shadowed: RoaringTreemap::deserialize_from(&dv[..])
                .map_err(|e| bitmap_error(log, refs.shadowed, e))?,
            live: RoaringBitmap::deserialize_from(&live[..])
                .map_err(|e| bitmap_error(log, refs.live, e))?,
            entries: refs.entries,
        })
    }

    /// Appends the version's bitmaps to the log (its trie is already there).
    pub fn store(&self, log: &mut NodeLogWriter) -> Result<OverlayRefs> {
        let mut dv = Vec::with_capacity(self.shadowed.serialized_size());
        let mut live = Vec::with_capacity(self.live.serialized_size());
        // Writing into a Vec does not fail; the error path is mapped rather than unwrapped.
        let io =
            |e: std::io::Error| Error::Keyframe(reeldb_keyframe::Error::io(log.reader().path(), e));
        self.shadowed.serialize_into(&mut dv).map_err(io)?;
        self.live.serialize_into(&mut live).map_err(io)?;
        Ok(OverlayRefs {
            root: self.root,
            shadowed: log.append_blob(BlobKind::DeletionVector, &dv)?,
            live: log.append_blob(BlobKind::LiveRows, &live)?,
            entries: self.entries,
        })
    }
}

/// Applies one commit's changes (each key at most once) to `prev` and returns the next
/// version, appending the changed trie paths to `log` (the caller then stores the bitmaps
/// and syncs). `row_id` numbers overlay rows across the generation's batches. A delete of a
/// key neither the keyframe nor the overlay holds changes nothing.
pub fn apply<'a>(
    log: &mut NodeLogWriter,
    prev: &OverlayVersion,
    changes: impl IntoIterator<Item = Change<'a>>,
    row_id: &dyn Fn(RowLocation) -> u32,
) -> Result<OverlayVersion> {
    let edits: Vec<Edit<'a>> = changes
        .into_iter()
        .map(|c| Edit {
            hash: key_hash(c.key),
            key: c.key,
            row: c.row,
            shadows: c.shadows,
            only_if_present: c.row.is_none() && c.shadows.is_none(),
        })
        .collect();
    let updated = update(log, prev.root, &edits)?;
    let mut next = prev.clone();
    next.root = updated.root;
    for (edit, outcome) in edits.iter().zip(&updated.outcomes) {
        match outcome {
            Outcome::Skipped => continue,
            Outcome::Added => next.entries += 1,
            Outcome::Replaced(old) => {
                if let Some(loc) = old.row {
                    next.live.remove(row_id(loc));
                }
            }
        }
        if let Some(loc) = edit.row {
            next.live.insert(row_id(loc));
        }
        if let Some(s) = edit.shadows {
            next.shadowed.insert(s);
        }
    }
    Ok(next)
}
