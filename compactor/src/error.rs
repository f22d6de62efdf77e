//! The compactor crate's one error type.

/// Everything that can go wrong while compacting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Storage, format or corruption errors from the keyframe layer.
    #[error(transparent)]
    Keyframe(#[from] reeldb_keyframe::Error),
    /// Errors from the overlay layer (node logs).
    #[error(transparent)]
    Overlay(#[from] reeldb_overlay::Error),
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The inputs do not describe one closed generation.
    #[error("not a closed generation: {0}")]
    Inconsistent(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
