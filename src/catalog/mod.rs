//! The version catalog: which versions exist and what each one holds.
//!
//! Two append-only files under `catalog/`: `records.log` holds table definitions and one
//! record per version (its time, source offset, metadata and the root of every table), and
//! `versions.idx` holds one fixed-size entry per version, so version v is found at a computed
//! offset (O(1)) and versions by time or source offset by binary search (O(log versions)).
//! Appending a version's index entry, after everything it references is durable, is the commit
//! point: an entry that is torn or missing means the version does not exist.

pub mod index;
pub mod records;
pub mod version;

use std::path::Path;

/// Directory of the catalog files.
pub const CATALOG_DIR: &str = "catalog";

/// Path of the records log.
pub fn records_path() -> std::path::PathBuf {
    Path::new(CATALOG_DIR).join("records.log")
}

/// Path of the version index.
pub fn index_path() -> std::path::PathBuf {
    Path::new(CATALOG_DIR).join("versions.idx")
}
