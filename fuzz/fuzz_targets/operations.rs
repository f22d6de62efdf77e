//! Random operation sequences over a simulated disk with a failing operation, checked against
//! the model (see `reeldb_fuzz::operations`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    reeldb_fuzz::operations(data);
});
