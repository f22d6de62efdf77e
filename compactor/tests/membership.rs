//! A span's membership (births and deaths) on disk: any membership round-trips, and any
//! damaged payload is an error, never a panic or a wrong bitmap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use reeldb_compactor::Membership;

fn membership() -> impl Strategy<Value = Membership> {
    membership_in(0..1 << 40)
}

/// A membership whose hidden ordinals lie in `ordinals`.
fn membership_in(ordinals: std::ops::Range<u64>) -> impl Strategy<Value = Membership> {
    (1u32..40).prop_flat_map(move |frames| {
        let stretch = (0..frames).prop_flat_map(move |from| (Just(from), from + 1..=frames));
        (
            Just(frames),
            prop::collection::vec(stretch.clone(), 0..60),
            prop::collection::vec((ordinals.clone(), stretch), 0..60),
        )
            .prop_map(|(frames, live, hidden)| {
                let mut hidden: Vec<(u64, u32, u32)> =
                    hidden.into_iter().map(|(o, (f, t))| (o, f, t)).collect();
                hidden.sort_unstable();
                // One stretch per ordinal keeps them disjoint and apart.
                hidden.dedup_by_key(|h| h.0);
                Membership {
                    frames,
                    live,
                    hidden,
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn any_membership_round_trips_and_counts_its_frames(m in membership()) {
        prop_assert_eq!(Membership::decode(&m.encode()), Ok(m.clone()));
        let counts: Vec<(u64, u64)> = (0..m.frames)
            .map(|i| { let f = m.frame(i); (f.hidden.len(), f.live.len()) })
            .collect();
        prop_assert_eq!(m.counts(), counts);
    }

    #[test]
    fn a_frames_bitmaps_hold_exactly_the_rows_live_and_hidden_there(
        m in prop_oneof![
            membership(),
            // Dense ordinals, and dense ordinals across a 2^32 boundary.
            membership_in(0..300),
            membership_in((1 << 32) - 150..(1 << 32) + 150),
        ]
    ) {
        for i in 0..m.frames {
            let f = m.frame(i);
            let live: Vec<u32> = (0..m.live.len() as u32).filter(|r| m.is_live(*r, i)).collect();
            let mut hidden: Vec<u64> = m.hidden.iter().map(|h| h.0).filter(|o| m.hides(*o, i)).collect();
            hidden.dedup();
            prop_assert_eq!(f.live.iter().collect::<Vec<_>>(), live, "live at frame {}", i);
            prop_assert_eq!(f.hidden.iter().collect::<Vec<_>>(), hidden, "hidden at frame {}", i);
        }
    }

    #[test]
    fn a_damaged_payload_is_an_error_or_another_valid_membership(
        m in membership(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = m.encode();
        let cut_at = cut.index(bytes.len());
        prop_assert!(Membership::decode(&bytes[..cut_at]).is_err(), "a cut at {}", cut_at);
        let mut flipped = bytes.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 1 << bit;
        if let Ok(other) = Membership::decode(&flipped) {
            // Whatever decodes is well formed: stretches within the frames.
            prop_assert!(other.live.iter().all(|(f, t)| f < t && *t <= other.frames));
            prop_assert!(other.hidden.iter().all(|(_, f, t)| f < t && *t <= other.frames));
        }
    }
}

#[test]
fn a_stretch_past_the_span_is_refused() {
    let m = Membership {
        frames: 3,
        live: vec![(1, 3)],
        hidden: vec![],
    };
    let mut bytes = m.encode();
    bytes[0] = 2; // two frames now: the stretch 1..3 ends past them
    assert!(Membership::decode(&bytes).unwrap_err().contains("outside"));
}

#[test]
fn a_frame_count_past_the_limit_is_refused_before_anything_is_sized_by_it() {
    // A fuzzer's find: 1.1 billion frames and nothing else made `counts` allocate 18 GB.
    let bytes = [41, 0, 184, 67, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(Membership::decode(&bytes).unwrap_err().contains("limit"));
}
