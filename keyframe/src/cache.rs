//! A bounded cache of decoded nodes, column blocks and higher layers' decoded records (a
//! B-frame span's membership), shared by every reader of a store; point reads also keep
//! blocks' verified headers and decoded zstd string mini-blocks here, under keys derived from
//! the block's hash (`ContentHash::derived`).
//! Keys are content hashes, so an entry can never go stale: equal hash, equal bytes. Full
//! scans read column blocks around it (a scan touches each block once and would only evict
//! what point lookups and range scans reuse); nodes are always cached.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::format::ContentHash;
use crate::node::{InternalNode, LeafNode};

/// Default capacity of a store's cache, in bytes of decoded data.
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// A decoded record.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// A leaf node.
    Leaf(Arc<LeafNode>),
    /// An internal node.
    Internal(Arc<InternalNode>),
    /// A column block.
    Column(ArrayRef),
    /// A record a higher layer decodes (a B-frame span's membership), with the bytes it
    /// holds in memory.
    Opaque(Arc<dyn std::any::Any + Send + Sync>, usize),
}

#[derive(Debug, Clone, Copy)]
struct ByMemory;

impl Weighter<ContentHash, Decoded> for ByMemory {
    fn weight(&self, _key: &ContentHash, val: &Decoded) -> u64 {
        let bytes = match val {
            Decoded::Leaf(l) => l.first_key.len() * 2 + l.columns.len() * 96,
            Decoded::Internal(n) => n.children.len() * 96,
            Decoded::Column(a) => a.get_array_memory_size(),
            Decoded::Opaque(_, bytes) => *bytes,
        };
        bytes as u64 + 64
    }
}

/// The cache; see the module docs.
pub struct DecodedCache {
    inner: Cache<ContentHash, Decoded, ByMemory>,
}

impl std::fmt::Debug for DecodedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedCache")
            .field("entries", &self.inner.len())
            .field("bytes", &self.inner.weight())
            .finish()
    }
}

impl DecodedCache {
    /// A cache holding up to `bytes` of decoded data.
    pub fn new(bytes: u64) -> Self {
        DecodedCache {
            inner: Cache::with_weighter((bytes / (64 << 10)).max(64) as usize, bytes, ByMemory),
        }
    }

    /// The decoded record with content `hash`, if cached.
    pub fn get(&self, hash: &ContentHash) -> Option<Decoded> {
        self.inner.get(hash)
    }

    /// Caches a decoded record.
    pub fn insert(&self, hash: ContentHash, value: Decoded) {
        self.inner.insert(hash, value);
    }
}

impl Default for DecodedCache {
    fn default() -> Self {
        DecodedCache::new(DEFAULT_CACHE_BYTES)
    }
}
