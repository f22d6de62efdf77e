//! A B-frame span's membership record as ReelDB reads it: an error or a membership whose
//! every frame and count can be computed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reeldb_compactor::Membership;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    if let Ok(m) = Membership::decode(data) {
        let counts = m.counts();
        assert_eq!(counts.len(), m.frames as usize);
        for i in [0, m.frames / 2, m.frames.saturating_sub(1)] {
            if i < m.frames {
                let f = m.frame(i);
                assert_eq!((f.hidden.len(), f.live.len()), counts[i as usize]);
            }
        }
    }
});
