//! B-tree nodes and the references between them, with their explicit little-endian layouts.
//!
//! ```text
//! RecordRef (32 bytes): pack u32, offset u64, len u32, hash [16]
//!
//! Leaf node:
//!   row_count u32, column_count u16,
//!   first_key (u32 len, bytes), last_key (u32 len, bytes),
//!   per column slot: flag u8 (0 empty, 1 block, 2 derived, 3 derived sharing a set),
//!               [RecordRef, raw_len u32, epoch u16, null_count u32,
//!                has_bounds u8, [min (u32 len, bytes), max (u32 len, bytes)],
//!                flag 2: RemovedRows | flag 3: slot u16 whose set it shares]
//!
//! Internal node:
//!   level u8 (1 = children are leaves), child_count u32,
//!   per child: first_key (u32 len, bytes), RecordRef, rows u64, raw_bytes u64, leaves u64
//! ```

use std::sync::Arc;

use crate::format::{ContentHash, DecodeError, Decoder, Encoder};
use crate::removed::RemovedRows;
use crate::zonemap::ZoneMap;

/// Where a record lives and what it must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// Pack file number.
    pub pack: u32,
    /// Offset of the record in the pack.
    pub offset: u64,
    /// Framed length of the record.
    pub len: u32,
    /// Content address of the record's uncompressed payload.
    pub hash: ContentHash,
}

/// Encoded size of a [`RecordRef`].
pub const RECORD_REF_LEN: usize = 32;

impl RecordRef {
    /// Appends the 32-byte encoding.
    pub fn encode(&self, e: &mut Encoder) {
        e.u32(self.pack)
            .u64(self.offset)
            .u32(self.len)
            .raw(&self.hash.0);
    }

    /// Reads the 32-byte encoding.
    pub fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RecordRef {
            pack: d.u32()?,
            offset: d.u64()?,
            len: d.u32()?,
            hash: ContentHash(d.fixed()?),
        })
    }
}

/// One column of a leaf: its block and zone map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChunk {
    /// The column block.
    pub block: RecordRef,
    /// Uncompressed length of the block (its logical size).
    pub raw_len: u32,
    /// The column's type epoch when the block was written: how many times its type had been
    /// widened. Zone maps compare only under the epoch they were computed in.
    pub epoch: u16,
    /// Min, max and null count.
    pub zone: ZoneMap,
    /// For a derived chunk, the rows of `block` it leaves out: the chunk reads the block's
    /// other rows, in order (`raw_len` is then the block's length, not the chunk's).
    pub removed: Option<Arc<RemovedRows>>,
}

/// A leaf: a contiguous key range, one block per column slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafNode {
    /// Number of rows.
    pub rows: u32,
    /// Encoded key of the first row.
    pub first_key: Vec<u8>,
    /// Encoded key of the last row.
    pub last_key: Vec<u8>,
    /// One entry per column slot of the table as it was when the leaf was written (see
    /// [`crate::tree::TableLayout`]); `None` where the slot holds nothing (a dropped
    /// column's). Slots past the end hold nothing either (columns added later).
    pub columns: Vec<Option<ColumnChunk>>,
}

impl LeafNode {
    /// The node's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u32(self.rows)
            .u16(self.columns.len() as u16)
            .bytes(&self.first_key)
            .bytes(&self.last_key);
        for (slot, c) in self.columns.iter().enumerate() {
            let Some(c) = c else {
                e.u8(0);
                continue;
            };
            // A derived chunk whose set an earlier slot already holds names that slot.
            let shared = c.removed.as_ref().and_then(|r| {
                self.columns[..slot]
                    .iter()
                    .position(|o| o.as_ref().and_then(|o| o.removed.as_ref()) == Some(r))
            });
            e.u8(match (&c.removed, shared) {
                (None, _) => 1,
                (Some(_), None) => 2,
                (Some(_), Some(_)) => 3,
            });
            c.block.encode(&mut e);
            e.u32(c.raw_len).u16(c.epoch).u32(c.zone.null_count);
            match &c.zone.bounds {
                Some((lo, hi)) => {
                    e.u8(1).bytes(lo).bytes(hi);
                }
                None => {
                    e.u8(0);
                }
            }
            match (&c.removed, shared) {
                (Some(_), Some(j)) => {
                    e.u16(j as u16);
                }
                (Some(r), None) => r.encode(&mut e),
                (None, _) => {}
            }
        }
        e.finish()
    }

    /// Parses a node's bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(buf);
        let rows = d.u32()?;
        let ncols = d.u16()? as usize;
        let first_key = d.bytes()?.to_vec();
        let last_key = d.bytes()?.to_vec();
        let mut columns: Vec<Option<ColumnChunk>> = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let flag = d.u8()?;
            match flag {
                0 => {
                    columns.push(None);
                    continue;
                }
                1..=3 => {}
                f => return Err(DecodeError(format!("bad slot flag {f}"))),
            }
            let block = RecordRef::decode(&mut d)?;
            let raw_len = d.u32()?;
            let epoch = d.u16()?;
            let null_count = d.u32()?;
            let bounds = match d.u8()? {
                0 => None,
                1 => Some((d.bytes()?.to_vec(), d.bytes()?.to_vec())),
                f => return Err(DecodeError(format!("bad zone flag {f}"))),
            };
            let removed = match flag {
                2 => Some(RemovedRows::decode(&mut d)?),
                3 => {
                    let j = d.u16()? as usize;
                    let shared = columns
                        .get(j)
                        .and_then(|c| c.as_ref())
                        .and_then(|c| c.removed.clone());
                    Some(shared.ok_or_else(|| {
                        DecodeError(format!(
                            "slot names slot {j}'s removed rows, which it lacks"
                        ))
                    })?)
                }
                _ => None,
            };
            if let Some(r) = &removed
                && r.live() != rows as usize
            {
                return Err(DecodeError(format!(
                    "derived chunk reads {} rows of a {rows}-row leaf",
                    r.live()
                )));
            }
            columns.push(Some(ColumnChunk {
                block,
                raw_len,
                epoch,
                zone: ZoneMap { null_count, bounds },
                removed,
            }));
        }
        d.finish()?;
        if rows == 0 {
            return Err(DecodeError("leaf with no rows".into()));
        }
        Ok(LeafNode {
            rows,
            first_key,
            last_key,
            columns,
        })
    }

    /// Sum of the uncompressed lengths of the leaf's blocks.
    pub fn raw_bytes(&self) -> u64 {
        self.columns
            .iter()
            .flatten()
            .map(|c| u64::from(c.raw_len))
            .sum()
    }
}

/// A child entry of an internal node, also the summary of any subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEntry {
    /// Encoded key of the subtree's first row.
    pub first_key: Vec<u8>,
    /// The child node.
    pub node: RecordRef,
    /// Rows in the subtree.
    pub rows: u64,
    /// Uncompressed bytes of the subtree's column blocks.
    pub raw_bytes: u64,
    /// Leaves in the subtree.
    pub leaves: u64,
}

/// An internal node: fence keys and the subtree summaries of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalNode {
    /// Height above the leaves (1 = children are leaves).
    pub level: u8,
    /// Children in key order.
    pub children: Vec<ChildEntry>,
}

impl InternalNode {
    /// The node's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(self.level).u32(self.children.len() as u32);
        for c in &self.children {
            e.bytes(&c.first_key);
            c.node.encode(&mut e);
            e.u64(c.rows).u64(c.raw_bytes).u64(c.leaves);
        }
        e.finish()
    }

    /// Parses a node's bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(buf);
        let level = d.u8()?;
        let n = d.u32()? as usize;
        if level == 0 || n == 0 || n > d.remaining() / RECORD_REF_LEN {
            return Err(DecodeError(format!(
                "bad internal node: level {level}, {n} children"
            )));
        }
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            let first_key = d.bytes()?.to_vec();
            let node = RecordRef::decode(&mut d)?;
            children.push(ChildEntry {
                first_key,
                node,
                rows: d.u64()?,
                raw_bytes: d.u64()?,
                leaves: d.u64()?,
            });
        }
        d.finish()?;
        if children
            .windows(2)
            .any(|w| w[0].first_key >= w[1].first_key)
        {
            return Err(DecodeError("internal node fence keys out of order".into()));
        }
        Ok(InternalNode { level, children })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rref(n: u8) -> RecordRef {
        RecordRef {
            pack: 1,
            offset: u64::from(n) * 100,
            len: 40,
            hash: ContentHash([n; 16]),
        }
    }

    #[test]
    fn leaf_and_internal_nodes_round_trip() {
        let leaf = LeafNode {
            rows: 3,
            first_key: b"a".to_vec(),
            last_key: b"c".to_vec(),
            columns: vec![
                Some(ColumnChunk {
                    block: rref(1),
                    raw_len: 10,
                    epoch: 0,
                    zone: ZoneMap {
                        null_count: 0,
                        bounds: Some((b"a".to_vec(), b"c".to_vec())),
                    },
                    removed: None,
                }),
                None,
                Some(ColumnChunk {
                    block: rref(2),
                    raw_len: 20,
                    epoch: 3,
                    zone: ZoneMap::default(),
                    removed: None,
                }),
            ],
        };
        assert_eq!(LeafNode::decode(&leaf.encode()).unwrap(), leaf);
    }

    #[test]
    fn derived_chunks_round_trip_and_share_one_encoded_set() {
        let set = RemovedRows::new(5, vec![1, 3]).unwrap();
        let derived = |n: u8, removed: Option<Arc<RemovedRows>>| {
            Some(ColumnChunk {
                block: rref(n),
                raw_len: 10,
                epoch: 0,
                zone: ZoneMap::default(),
                removed,
            })
        };
        let leaf = LeafNode {
            rows: 3,
            first_key: b"a".to_vec(),
            last_key: b"c".to_vec(),
            columns: vec![
                derived(1, Some(set.clone())),
                derived(2, None),
                derived(3, Some(set.clone())),
            ],
        };
        let bytes = leaf.encode();
        let back = LeafNode::decode(&bytes).unwrap();
        assert_eq!(back, leaf);
        let sets: Vec<_> = back
            .columns
            .iter()
            .flatten()
            .filter_map(|c| c.removed.clone())
            .collect();
        assert!(
            Arc::ptr_eq(&sets[0], &sets[1]),
            "the second slot shares the first's set"
        );
        for cut in 0..bytes.len() {
            assert!(LeafNode::decode(&bytes[..cut]).is_err());
        }
        // A set that does not leave the leaf's row count is corrupt.
        let wrong = LeafNode { rows: 4, ..leaf };
        assert!(LeafNode::decode(&wrong.encode()).is_err());
        let node = InternalNode {
            level: 1,
            children: vec![
                ChildEntry {
                    first_key: b"a".to_vec(),
                    node: rref(3),
                    rows: 3,
                    raw_bytes: 30,
                    leaves: 1,
                },
                ChildEntry {
                    first_key: b"d".to_vec(),
                    node: rref(4),
                    rows: 5,
                    raw_bytes: 50,
                    leaves: 1,
                },
            ],
        };
        assert_eq!(InternalNode::decode(&node.encode()).unwrap(), node);
    }

    #[test]
    fn a_truncated_node_is_an_error() {
        let node = InternalNode {
            level: 1,
            children: vec![ChildEntry {
                first_key: b"a".to_vec(),
                node: rref(3),
                rows: 3,
                raw_bytes: 30,
                leaves: 1,
            }],
        };
        let bytes = node.encode();
        for cut in 0..bytes.len() {
            assert!(InternalNode::decode(&bytes[..cut]).is_err());
        }
    }
}
