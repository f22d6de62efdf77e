//! A B-tree node's bytes (the first byte picks leaf or internal): an error or a node, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reeldb_keyframe::node::{InternalNode, LeafNode};

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let _ = LeafNode::decode(bytes);
    } else {
        let _ = InternalNode::decode(bytes);
    }
});
