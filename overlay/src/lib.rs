//! # reeldb-overlay
//!
//! Interstitial versions over their generation's keyframe. Each overlay commit stores its
//! upserted rows as one row batch sorted by key (in the packs, written by the `reeldb`
//! crate); this crate keeps which keyframe rows each version shadows (a roaring deletion
//! vector) and which overlay rows are live (a roaring bitmap over the generation's row ids).
//! A commit appends one delta to the generation's node log: the ordinals it newly shadows and
//! the rows it retires. What it writes is proportional to what it changes, never to the
//! generation's earlier commits; a version's bitmaps are the fold of its generation's
//! deltas up to it.
//!
//! Modules: [`log`] (the per-generation node log of framed blobs), [`version`] (a version's
//! bitmaps, a commit's delta, applying a commit), [`verify`] (checking a version's deltas).

pub mod error;
pub mod log;
pub mod verify;
pub mod version;

pub use error::{Error, Result};
pub use log::{NodeLog, NodeLogWriter, NodeRef};
pub use version::{Change, OverlayVersion, RowLocation, VersionDelta, apply};
