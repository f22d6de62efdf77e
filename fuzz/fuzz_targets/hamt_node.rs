//! A HAMT node body, parsed with the real key hash and with a constant one (so collision
//! nodes are reachable): an error or a node, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reeldb_overlay::key_hash;
use reeldb_overlay::node::Node;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    let _ = Node::decode(data, key_hash);
    let _ = Node::decode(data, |_| 7);
});
