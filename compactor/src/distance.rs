//! How far apart two keyframes of a table are: the number of keys whose row differs between
//! them (in content, or present in one only). Leaves are content-addressed and their
//! boundaries content-defined, so a leaf both keyframes hold (equal node hash) holds the
//! same rows in both and is skipped unread; only the leaves one of them lacks are decoded
//! and compared row by row. Thinning uses this to estimate the residual a run of keyframes
//! would leave behind.

use std::collections::HashSet;

use reeldb_keyframe::tree::{LeafEntry, Tree};

use crate::error::Result;
use crate::fingerprint::{KeyedRow, RowHasher, rows_of_leaves};

/// The keys whose row differs between `a` and `b` (two keyframes of one table layout).
pub fn changed_keys(a: &Tree, b: &Tree, hasher: &RowHasher) -> Result<u64> {
    let (leaves_a, leaves_b) = (a.leaves()?, b.leaves()?);
    let hashes =
        |l: &[LeafEntry]| -> HashSet<[u8; 16]> { l.iter().map(|e| e.entry.node.hash.0).collect() };
    let (in_a, in_b) = (hashes(&leaves_a), hashes(&leaves_b));
    // A key of an unshared leaf of one keyframe is either absent from the other or in one of
    // its unshared leaves: a shared leaf would hold it in both, and keys are unique.
    let rows_a = unshared_rows(a, &leaves_a, &in_b, hasher)?;
    let rows_b = unshared_rows(b, &leaves_b, &in_a, hasher)?;
    let (mut i, mut j, mut changed) = (0, 0, 0u64);
    while i < rows_a.len() || j < rows_b.len() {
        match (rows_a.get(i), rows_b.get(j)) {
            (Some(x), Some(y)) if x.key == y.key => {
                changed += u64::from(x.hash != y.hash);
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.key < y.key => {
                changed += 1;
                i += 1;
            }
            (Some(_), None) => {
                changed += 1;
                i += 1;
            }
            _ => {
                changed += 1;
                j += 1;
            }
        }
    }
    Ok(changed)
}

/// Every row of `tree`'s leaves not in `shared`, fingerprinted, in key order.
fn unshared_rows(
    tree: &Tree,
    leaves: &[LeafEntry],
    shared: &HashSet<[u8; 16]>,
    hasher: &RowHasher,
) -> Result<Vec<KeyedRow>> {
    let unshared: Vec<LeafEntry> = leaves
        .iter()
        .filter(|l| !shared.contains(&l.entry.node.hash.0))
        .cloned()
        .collect();
    rows_of_leaves(tree, &unshared, hasher)
}
