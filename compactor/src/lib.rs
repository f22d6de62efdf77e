//! # reeldb-compactor
//!
//! Compaction of closed generations. Once a table's next keyframe lands, the overlay versions
//! between it and the previous keyframe no longer need their node logs: each becomes a
//! **B-frame** over data that stays: the rows of the *next* keyframe hidden at that version,
//! and the rows of the generation's **residual** live at it. The residual holds,
//! once and sorted by key, every row version some version of the generation shows that the
//! next keyframe does not hold as it is: rows of the previous keyframe changed later in the
//! generation, and rows written and then overwritten or deleted within it. A B-frame reads
//! like an overlay of the next keyframe, so the previous keyframe is never read, and
//! thinning it away later costs nothing more.
//!
//! Which rows each version of a span sees is stored once for the span, as births and deaths
//! ([`membership`]): each residual row's stretch of versions, each hidden row's stretches.
//!
//! Modules: [`fingerprint`] (rows as key, ordinal and content hash), [`bframe`] (planning a
//! generation's B-frames and writing its residual), `gather` (storing a residual column as
//! picks into the next keyframe's blocks where that is smaller), [`distance`] (how many keys two
//! keyframes differ in, reading only the leaves they do not share), [`rebase`](mod@rebase) (re-expressing a span of
//! versions over a run of keyframes as versions over the keyframe after them alone: the step
//! keyframe thinning takes, in one pass however long the run).

pub mod bframe;
pub mod distance;
pub mod error;
pub mod fingerprint;
mod gather;
pub mod membership;
pub mod rebase;

pub use bframe::{
    BFrame, ClosedGeneration, Compacted, Fingerprints, RowBatch, compact, compact_with,
};
pub use distance::changed_keys;
pub use error::{Error, Result};
pub use membership::Membership;
pub use rebase::{Frame, Over, Span, rebase};
