//! A small store with fuzzed patches to its files, opened, read at every version and
//! verified (see `reeldb_fuzz::damaged_store`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    reeldb_fuzz::damaged_store(data);
});
