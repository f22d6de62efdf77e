//! # reeldb-keyframe
//!
//! Keyframes: each table version as a sorted columnar B-tree whose leaves hold one encoded
//! block per column (mini-blocks of bit-packed integers, dictionary-coded or zstd-compressed
//! strings, decimal-scaled or plain floats: [`encoding`]). Blocks and nodes are content-addressed by xxh3-128
//! and stored once in append-only pack files, however many keyframes and tables use them;
//! leaf boundaries are content-defined on the key, so untouched key ranges dedup.
//!
//! Layers, bottom up: [`storage`] (the one I/O trait), [`format`] and [`record`] (bytes on
//! disk), [`pack`] (pack files), [`encoding`] and [`block`] (column blocks), [`gather`] (residual
//! columns as picks into keyframe blocks), [`node`] (tree nodes) and [`removed`] (the rows a
//! derived leaf chunk leaves out of its block), [`tree`]
//! (reading), [`builder`] (writing), [`copy`] (copying trees into new packs), [`verify`] (checking a tree end to end), with [`key`], [`zonemap`] and [`predicate`] beside them.

pub mod block;
pub mod builder;
pub mod cache;
pub mod copy;
mod derive;
pub mod encoding;
pub mod error;
pub mod format;
pub mod gather;
pub mod gather_plan;
pub mod ipc;
pub mod key;
pub mod node;
#[cfg(feature = "object-store")]
pub mod object_storage;
pub mod pack;
mod pack_reader;
mod point;
pub mod predicate;
pub mod record;
pub mod removed;
pub mod search;
pub mod storage;
pub mod tree;
pub mod verify;
pub mod zonemap;

pub use builder::{Op, SortedChanges, TreeShape};
pub use cache::DecodedCache;
pub use error::{Error, Result};
pub use key::KeyCodec;
pub use node::{ChildEntry, LeafNode, RecordRef};
pub use pack::{PackReader, PackWriter};
pub use predicate::{BoundPredicate, CmpOp, Predicate};
pub use storage::{LocalStorage, Storage};
pub use tree::{Access, LeafEntry, Root, Source, TableLayout, Tree};
