//! HAMT nodes on disk, and the references between them.
//!
//! ```text
//! frame:  len u32 (of body) | body | checksum u64 = xxh3-64(len ‖ body)
//! body:   kind u8 (1 branch, 2 collision), reserved [3] = 0,
//!         datamap u32, nodemap u32 (both 0 for a collision node), entry count u32,
//!         entries (see entry.rs), then per set bit of nodemap: child NodeRef
//! NodeRef (16 bytes): offset u64 of the child's frame, checksum u64 of the child's frame
//! ```
//! A branch holds the entry or child for each 5-bit chunk of the hash at its depth; bit c of
//! `datamap` (entry) and `nodemap` (child) are never both set, entries and children are in
//! chunk order. A collision node holds two or more entries with one hash, sorted by key.
//! Parents carry their children's checksums, so a lost or misdirected write is detected.

use reeldb_keyframe::format::{DecodeError, Decoder, Encoder, checksum};

use crate::entry::{Entry, EntryView, KeyHasher};

/// Where a node is in its log, and the checksum its frame must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// Offset of the node's frame.
    pub offset: u64,
    /// xxh3-64 of the frame's length and body.
    pub checksum: u64,
}

/// Bytes of a frame around its body.
pub const FRAME_OVERHEAD: usize = 12;
/// Bytes of a branch or collision header.
const BODY_HEADER: usize = 16;
const KIND_BRANCH: u8 = 1;
const KIND_COLLISION: u8 = 2;
/// The fewest bytes an entry takes (hash, key length, flags).
const MIN_ENTRY_LEN: usize = 13;

/// A decoded node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Up to 32 slots, by the hash's 5-bit chunk at this depth.
    Branch {
        /// Chunks holding an entry.
        datamap: u32,
        /// Chunks holding a child node.
        nodemap: u32,
        /// The entries, in chunk order.
        entries: Vec<Entry>,
        /// The children, in chunk order.
        children: Vec<NodeRef>,
    },
    /// Entries whose keys share one full hash.
    Collision(Vec<Entry>),
}

/// A node read in place, its entries borrowing the node's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeView<'a> {
    /// A branch (see [`Node::Branch`]).
    Branch {
        /// Chunks holding an entry.
        datamap: u32,
        /// Chunks holding a child node.
        nodemap: u32,
        /// The entries, in chunk order.
        entries: Vec<EntryView<'a>>,
        /// The children, in chunk order.
        children: Vec<NodeRef>,
    },
    /// A collision node (see [`Node::Collision`]).
    Collision(Vec<EntryView<'a>>),
}

impl<'a> NodeView<'a> {
    /// Parses a node body (the frame already verified), checking every entry's hash and the
    /// node's structure.
    pub fn parse(body: &'a [u8], hasher: KeyHasher) -> Result<Self, DecodeError> {
        if body.len() < BODY_HEADER {
            return Err(DecodeError(format!("node body of {} bytes", body.len())));
        }
        let mut d = Decoder::new(body);
        let kind = d.u8()?;
        let _reserved = d.fixed::<3>()?;
        let datamap = d.u32()?;
        let nodemap = d.u32()?;
        let count = d.u32()? as usize;
        // Bound the allocation by what the body can hold.
        if count > d.remaining() / MIN_ENTRY_LEN {
            return Err(DecodeError(format!("{count} entries cannot fit")));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(EntryView::decode(&mut d, hasher)?);
        }
        let node = match kind {
            KIND_BRANCH => {
                if datamap & nodemap != 0 || datamap.count_ones() as usize != count {
                    return Err(DecodeError(
                        "branch bitmaps disagree with its entries".into(),
                    ));
                }
                let mut children = Vec::with_capacity(nodemap.count_ones() as usize);
                for _ in 0..nodemap.count_ones() {
                    children.push(NodeRef {
                        offset: d.u64()?,
                        checksum: d.u64()?,
                    });
                }
                NodeView::Branch {
                    datamap,
                    nodemap,
                    entries,
                    children,
                }
            }
            KIND_COLLISION => {
                let same_hash = entries.windows(2).all(|w| w[0].hash == w[1].hash);
                let sorted = entries.windows(2).all(|w| w[0].key < w[1].key);
                if datamap != 0 || nodemap != 0 || count < 2 || !same_hash || !sorted {
                    return Err(DecodeError("malformed collision node".into()));
                }
                NodeView::Collision(entries)
            }
            k => return Err(DecodeError(format!("unknown node kind {k}"))),
        };
        d.finish()?;
        Ok(node)
    }
}

impl Node {
    /// Parses a node body (the frame already verified), checking every entry's hash.
    pub fn decode(body: &[u8], hasher: KeyHasher) -> Result<Self, DecodeError> {
        let owned = |entries: Vec<EntryView<'_>>| entries.iter().map(EntryView::to_entry).collect();
        Ok(match NodeView::parse(body, hasher)? {
            NodeView::Branch {
                datamap,
                nodemap,
                entries,
                children,
            } => Node::Branch {
                datamap,
                nodemap,
                entries: owned(entries),
                children,
            },
            NodeView::Collision(entries) => Node::Collision(owned(entries)),
        })
    }
}

/// Appends a branch's header; its `datamap.count_ones()` entries and then its children follow.
pub fn encode_branch_header(e: &mut Encoder, datamap: u32, nodemap: u32) {
    e.u8(KIND_BRANCH)
        .raw(&[0; 3])
        .u32(datamap)
        .u32(nodemap)
        .u32(datamap.count_ones());
}

/// Appends a collision node's header; its `count` entries follow, sorted by key.
pub fn encode_collision_header(e: &mut Encoder, count: usize) {
    // A collision holds keys sharing one 64-bit hash: far fewer than 2^32.
    e.u8(KIND_COLLISION)
        .raw(&[0; 3])
        .u32(0)
        .u32(0)
        .u32(count as u32);
}

/// Appends a reference to a child node.
pub fn encode_child(e: &mut Encoder, r: NodeRef) {
    e.u64(r.offset).u64(r.checksum);
}

/// Frames a body: its length, the body, and the xxh3-64 of both.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + FRAME_OVERHEAD);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The 5-bit chunk of `hash` that picks a slot at `depth`.
pub fn chunk(hash: u64, depth: u32) -> u32 {
    ((hash >> (5 * depth)) & 31) as u32
}

/// Depths 0..=12 consume all 64 bits of a hash; two different hashes differ by then.
pub const MAX_DEPTH: u32 = 12;
