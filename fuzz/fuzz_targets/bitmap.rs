//! A bitmap's bytes as ReelDB reads them (deletion vectors and B-frame hidden rows as
//! `RoaringTreemap`, live rows as `RoaringBitmap`): an error or a bitmap, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roaring::{RoaringBitmap, RoaringTreemap};

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let _ = RoaringTreemap::deserialize_from(bytes);
    } else {
        let _ = RoaringBitmap::deserialize_from(bytes);
    }
});
