//! Checking one overlay version end to end: every trie node reachable from its root read and
//! verified (checksums, entry hashes, structure), every entry found again by a lookup (so
//! none sits off its hash path), and the version's bitmaps equal to what its entries say:
//! the deletion vector is exactly the shadowed keyframe ordinals, the live rows exactly the
//! entries' rows.

use std::collections::HashSet;

use roaring::{RoaringBitmap, RoaringTreemap};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::hamt::{for_each, get};
use crate::log::NodeLog;
use crate::node::NodeRef;
use crate::version::{OverlayRefs, OverlayVersion};

/// The shape of the data an overlay version refers to, for [`verify`].
#[derive(Debug, Clone, Copy)]
pub struct Bounds<'a> {
    /// Rows of each of the generation's row batches.
    pub batch_rows: &'a [u32],
    /// Rows of the generation's keyframe.
    pub keyframe_rows: u64,
}

fn wrong(log: &NodeLog, at: NodeRef, reason: String) -> Error {
    Error::Corrupt {
        path: log.path().to_path_buf(),
        offset: at.offset,
        reason,
    }
}

/// Verifies the version at `refs` (see the module docs) and returns its entries.
pub fn verify(log: &NodeLog, refs: &OverlayRefs, bounds: Bounds<'_>) -> Result<Vec<Entry>> {
    let version = OverlayVersion::load(log, refs)?;
    let mut entries = Vec::new();
    for_each(log, refs.root, &mut |e| entries.push(e))?;
    let root = refs.root.unwrap_or(refs.shadowed);
    if entries.len() as u64 != refs.entries {
        return Err(wrong(
            log,
            root,
            format!(
                "trie holds {} entries, its version says {}",
                entries.len(),
                refs.entries
            ),
        ));
    }
    let mut starts = Vec::with_capacity(bounds.batch_rows.len());
    let mut total = 0u32;
    for rows in bounds.batch_rows {
        starts.push(total);
        total = total.saturating_add(*rows);
    }
    let mut keys = HashSet::with_capacity(entries.len());
    let (mut live, mut shadowed) = (RoaringBitmap::new(), RoaringTreemap::new());
    for e in &entries {
        if !keys.insert(e.key.as_slice()) {
            return Err(wrong(
                log,
                root,
                format!("key {:02x?} is in the trie twice", e.key),
            ));
        }
        if get(log, refs.root, e.hash, &e.key)?.as_ref() != Some(e) {
            return Err(wrong(
                log,
                root,
                format!("key {:02x?} is off its hash path", e.key),
            ));
        }
        if let Some(loc) = e.row {
            let batch = loc.batch as usize;
            if batch >= bounds.batch_rows.len() || loc.row >= bounds.batch_rows[batch] {
                return Err(wrong(
                    log,
                    root,
                    format!("entry points at missing row {} of batch {batch}", loc.row),
                ));
            }
            if !live.insert(starts[batch] + loc.row) {
                return Err(wrong(log, root, format!("row {loc:?} is claimed twice")));
            }
        }
        if let Some(s) = e.shadows {
            if s >= bounds.keyframe_rows {
                return Err(wrong(
                    log,
                    root,
                    format!(
                        "entry shadows ordinal {s} of a {}-row keyframe",
                        bounds.keyframe_rows
                    ),
                ));
            }
            if !shadowed.insert(s) {
                return Err(wrong(log, root, format!("ordinal {s} is shadowed twice")));
            }
        }
    }
    if shadowed != version.shadowed {
        return Err(wrong(
            log,
            refs.shadowed,
            "deletion vector disagrees with the trie".into(),
        ));
    }
    if live != version.live {
        return Err(wrong(
            log,
            refs.live,
            "live rows disagree with the trie".into(),
        ));
    }
    Ok(entries)
}
