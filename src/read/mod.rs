//! The read side: a version opened as a [`snapshot::Snapshot`] and its tables scanned,
//! filtered and looked up ([`snapshot`], [`scan_plan`], [`filter`]), overlay and B-frame
//! versions read over their keyframe ([`overlay_view`]), and what changed between two
//! versions ([`changes`]). It reads through the store and the catalog, never the writer.

pub mod changes;
pub mod filter;
mod open;
pub mod overlay_view;
pub mod range;
pub(crate) mod scan_plan;
pub mod snapshot;
