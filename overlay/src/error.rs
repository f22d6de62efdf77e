//! The overlay crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the overlay layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Storage errors (I/O, locking) from the layer below.
    #[error(transparent)]
    Keyframe(#[from] reeldb_keyframe::Error),
    /// A node log holds bytes that do not verify.
    #[error("corrupt overlay node log {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The node log.
        path: PathBuf,
        /// Offset of the bad node.
        offset: u64,
        /// What failed.
        reason: String,
    },
    /// One update named a key twice.
    #[error("a trie update names key {key:02x?} twice")]
    DuplicateKey {
        /// The memcomparable key.
        key: Vec<u8>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
