//! # reeldb-overlay
//!
//! Interstitial versions as persistent on-disk hash array mapped tries over their
//! generation's keyframe. Each version of a table is a root in its generation's node log;
//! its entries say, for every key changed since the keyframe, where the key's current row is
//! (or that it was deleted) and which keyframe row it shadows. A commit appends only the
//! nodes on the paths it changes; everything else is shared with the generation's earlier
//! versions.
//!
//! Modules: [`entry`] (what is known of one key), [`node`] (node bytes), [`log`] (the
//! per-generation node log), [`hamt`] (lookups, iteration and the path-copying update),
//! [`version`] (a version's trie, deletion vector and live rows, and applying a commit), [`verify`]
//! (checking a version end to end).

pub mod entry;
pub mod error;
pub mod hamt;
pub mod log;
pub mod node;
pub mod verify;
pub mod version;

pub use entry::{Entry, KeyHasher, RowLocation, key_hash};
pub use error::{Error, Result};
pub use hamt::{Edit, Outcome, Updated, update};
pub use log::{NodeLog, NodeLogWriter};
pub use node::NodeRef;
pub use version::{Change, OverlayRefs, OverlayVersion, apply};
