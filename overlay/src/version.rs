//! One table's overlay at one version: its deletion vector (the keyframe ordinals it
//! shadows: updated or deleted since the keyframe) and its live rows (the generation's
//! overlay rows that are current), and [`apply`], which turns one commit's changes into the
//! next version.
//!
//! Each commit stores only its [`VersionDelta`]: the ordinals it newly shadows and the
//! overlay rows it retires (a row is born live in its commit's batch and retired at most
//! once, by the commit that next upserts or deletes its key). A version's bitmaps are the
//! fold of its generation's deltas up to it: the deletion vector is the union of the
//! shadowed ordinals, the live rows are every row of its batches minus the retired ones. So
//! a commit writes bytes in proportion to what it changes, never to the generation so far.
//!
//! A scan is the keyframe minus the deletion vector plus the live rows; a get looks for a
//! live row of its key in the generation's row batches (each sorted by key) and otherwise in
//! the keyframe, where a shadowed ordinal means the key is gone.

use roaring::{RoaringBitmap, RoaringTreemap};

use crate::error::{Error, Result};
use crate::log::{BlobKind, NodeLog, NodeLogWriter, NodeRef};

/// Where an overlay row lives: its row batch (one per commit of the generation, or a
/// residual batch of a B-frame) and the row within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowLocation {
    /// Row batch.
    pub batch: u32,
    /// Row within the batch.
    pub row: u32,
}

/// An overlay version's bitmaps, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverlayVersion {
    /// Keyframe ordinals shadowed at this version.
    pub shadowed: RoaringTreemap,
    /// Generation row ids of the overlay rows that are current at this version.
    pub live: RoaringBitmap,
}

/// What one overlay commit changes in its generation's bitmaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionDelta {
    /// Keyframe ordinals this commit shadows that no earlier commit of the generation did.
    pub shadowed: RoaringTreemap,
    /// Overlay rows (generation row ids) that were live before this commit and are not after.
    pub retired: RoaringBitmap,
}

/// One commit's change to one key, as row ids and a keyframe ordinal: the writer finds them
/// (the ordinal in the keyframe, the previous row among the generation's batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The key's new row (its generation row id), or `None` for a delete.
    pub row: Option<u32>,
    /// The key's live overlay row before this commit, if it has one.
    pub replaces: Option<u32>,
    /// The key's ordinal in the generation's keyframe, if the keyframe holds it (the row the
    /// key shadows; the same at every version of the generation).
    pub shadows: Option<u64>,
}

fn corrupt(log: &NodeLog, r: NodeRef, reason: String) -> Error {
    Error::Corrupt {
        path: log.path().to_path_buf(),
        offset: r.offset,
        reason,
    }
}

impl VersionDelta {
    /// Reads the delta blob at `r`.
    pub fn load(log: &NodeLog, r: NodeRef) -> Result<Self> {
        let body = log.read_blob(r, BlobKind::VersionDelta)?;
        let bad = |e: std::io::Error| corrupt(log, r, format!("undecodable bitmap: {e}"));
        let len = body
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .filter(|len| 4 + len <= body.len())
            .ok_or_else(|| corrupt(log, r, "version delta shorter than its lengths".into()))?;
        let mut rest = &body[4 + len..];
        let delta = VersionDelta {
            shadowed: RoaringTreemap::deserialize_from(&body[4..4 + len]).map_err(bad)?,
            retired: RoaringBitmap::deserialize_from(&mut rest).map_err(bad)?,
        };
        if !rest.is_empty() {
            return Err(corrupt(log, r, "bytes after a version delta".into()));
        }
        Ok(delta)
    }

    /// Appends the delta to the log and returns its reference.
    pub fn store(&self, log: &mut NodeLogWriter) -> Result<NodeRef> {
        let shadowed_len = self.shadowed.serialized_size();
        let mut body = Vec::with_capacity(4 + shadowed_len + self.retired.serialized_size());
        body.extend_from_slice(&(shadowed_len as u32).to_le_bytes());
        // Writing into a Vec does not fail; the error path is mapped rather than unwrapped.
        let io =
            |e: std::io::Error| Error::Keyframe(reeldb_keyframe::Error::io(log.reader().path(), e));
        self.shadowed.serialize_into(&mut body).map_err(io)?;
        self.retired.serialize_into(&mut body).map_err(io)?;
        log.append_blob(BlobKind::VersionDelta, &body)
    }
}

impl OverlayVersion {
    /// The version after `deltas` (its generation's, oldest first), whose batches hold
    /// `rows` rows in all.
    pub fn fold<'d>(deltas: impl IntoIterator<Item = &'d VersionDelta>, rows: u32) -> Self {
        let mut version = OverlayVersion::default();
        version.live.insert_range(0..rows);
        for d in deltas {
            version.shadowed |= &d.shadowed;
            version.live -= &d.retired;
        }
        version
    }

    /// Reads a version's bitmaps from its log: the deltas at `deltas` folded.
    pub fn load(log: &NodeLog, deltas: &[NodeRef], rows: u32) -> Result<Self> {
        let read: Vec<VersionDelta> = deltas
            .iter()
            .map(|&r| VersionDelta::load(log, r))
            .collect::<Result<_>>()?;
        Ok(OverlayVersion::fold(&read, rows))
    }
}

/// Applies one commit's changes (each key at most once) to `prev` and returns the next
/// version and the delta that records it: a key's previous overlay row is retired, its new
/// row (if any) becomes live, and the keyframe row it shadows (if any) joins the deletion
/// vector. A delete of a key neither the keyframe nor the overlay holds changes nothing.
pub fn apply(
    prev: &OverlayVersion,
    changes: impl IntoIterator<Item = Change>,
) -> (OverlayVersion, VersionDelta) {
    let mut next = prev.clone();
    let mut delta = VersionDelta::default();
    for c in changes {
        if let Some(old) = c.replaces
            && next.live.remove(old)
        {
            delta.retired.insert(old);
        }
        if let Some(new) = c.row {
            next.live.insert(new);
        }
        if let Some(s) = c.shadows
            && next.shadowed.insert(s)
        {
            delta.shadowed.insert(s);
        }
    }
    (next, delta)
}
