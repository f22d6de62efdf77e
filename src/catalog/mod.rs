//! The version catalog: which versions exist and what each one holds.
//!
//! Two append-only files under `catalog/`: `records.log` holds table definitions and one
//! record per version (its time, source offset, metadata and the root of every table), and
//! `versions.idx` holds one fixed-size entry per version, so version v is found at a computed
//! offset (O(1)) and versions by time or source offset by binary search (O(log versions)).
//! Appending a version's index entry, after everything it references is durable, is the commit
//! point: an entry that is torn or missing means the version does not exist. On an object
//! store each version also gets a head (`catalog/heads/`, module `head`): a copy of what an
//! open reads, so that it costs a constant number of requests.

pub mod commit;
pub mod head;
pub mod index;
pub mod records;
pub mod tail;
pub mod version;

use std::path::Path;

use bytes::Bytes;

use reeldb_keyframe::format::{FORMAT_VERSION, OLDEST_SUPPORTED_VERSION};
use reeldb_keyframe::storage::Storage;

use crate::error::{Error, Result};

/// Directory of the catalog files.
pub const CATALOG_DIR: &str = "catalog";

/// Path of records file `file`: `catalog/records.log` for file 0, the store's first, and
/// `catalog/records-{file}.log` for each one a catalog rewrite started since (see
/// `maintenance::catalog`). Every index entry names the file its record lies in.
pub fn records_path(file: u64) -> std::path::PathBuf {
    match file {
        0 => Path::new(CATALOG_DIR).join("records.log"),
        n => Path::new(CATALOG_DIR).join(format!("records-{n}.log")),
    }
}

/// The records file a file name in `catalog/` stands for, if it is one.
pub fn records_file_of(name: &str) -> Option<u64> {
    if name == "records.log" {
        return Some(0);
    }
    name.strip_prefix("records-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// How errors name the records files when the file is not known.
pub const RECORDS_LABEL: &str = "catalog records";

/// Directory of the overlay node logs.
pub const OVERLAY_DIR: &str = "overlays";

/// Path of the node log of the generation whose keyframe version `keyframe_at` wrote, for
/// the table with id `table`.
pub fn overlay_log_path(table: u32, keyframe_at: u64) -> std::path::PathBuf {
    Path::new(OVERLAY_DIR).join(format!("t{table}-g{keyframe_at}.olog"))
}

/// Path of the version index.
pub fn index_path() -> std::path::PathBuf {
    Path::new(CATALOG_DIR).join("versions.idx")
}

/// Reads `len` bytes at `offset` of the catalog file `path`. Every catalog read is of bytes a
/// header or a committed entry vouches for, so a file that ends before them, or is missing,
/// is corrupt (truncated or lost), not an I/O failure.
pub fn read_exact(storage: &dyn Storage, path: &Path, offset: u64, len: usize) -> Result<Bytes> {
    storage.read_at(path, offset, len).map_err(|e| match e {
        reeldb_keyframe::Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Error::Corruption {
                path: path.display().to_string(),
                offset,
                reason: format!("the file ends before the {len} bytes at this offset"),
            }
        }
        reeldb_keyframe::Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Error::Corruption {
                path: path.display().to_string(),
                offset,
                reason: "the file is missing".into(),
            }
        }
        other => Error::from(other),
    })
}

/// Checks that a catalog file starts with `magic` followed by this build's format version,
/// and that its header's `reserved` bytes are zero.
pub fn check_header(
    storage: &dyn Storage,
    path: &Path,
    magic: &[u8; 8],
    reserved: std::ops::Range<usize>,
) -> Result<()> {
    let h = read_exact(storage, path, 0, reserved.end.max(12))?;
    if h[..8] != magic[..] {
        return Err(Error::Corruption {
            path: path.display().to_string(),
            offset: 0,
            reason: format!("bad magic (expected {:?})", String::from_utf8_lossy(magic)),
        });
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found: version,
            oldest: OLDEST_SUPPORTED_VERSION,
            current: FORMAT_VERSION,
        });
    }
    if h[reserved.clone()].iter().any(|&b| b != 0) {
        return Err(Error::Corruption {
            path: path.display().to_string(),
            offset: reserved.start as u64,
            reason: format!("reserved header bytes {reserved:?} are not zero"),
        });
    }
    Ok(())
}
