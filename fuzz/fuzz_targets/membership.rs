//! A B-frame span's membership record as ReelDB reads it: an error or a membership whose
//! every frame and count can be computed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reeldb_compactor::Membership;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    if let Ok(m) = Membership::decode(data) {
        // Counting every frame takes memory in proportion to the frames (a writer counts
        // spans it built); a frame's bitmaps take none.
        let counts = (m.frames <= 1 << 12).then(|| m.counts());
        for i in [0, m.frames / 2, m.frames.saturating_sub(1)] {
            if i < m.frames {
                let f = m.frame(i);
                if let Some(c) = &counts {
                    assert_eq!((f.hidden.len(), f.live.len()), c[i as usize]);
                }
            }
        }
    }
});
