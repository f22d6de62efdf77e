//! Bit-packing: unsigned values of a fixed bit width (0 to 64) laid end to end,
//! least-significant bit first, in little-endian byte order. Value `i` occupies bits
//! `i * width .. (i + 1) * width` of the stream; the last byte is padded with zero bits.

/// Bytes that `count` values of `width` bits take.
pub fn packed_len(count: usize, width: u8) -> usize {
    (count * usize::from(width)).div_ceil(8)
}

/// The number of bits needed for `v` (0 for 0).
pub fn width_of(v: u64) -> u8 {
    (64 - v.leading_zeros()) as u8
}

/// Appends `values`, each of which must fit in `width` bits, to `out`.
pub fn pack(values: impl IntoIterator<Item = u64>, width: u8, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let mut acc: u128 = 0;
    let mut bits: u32 = 0;
    for v in values {
        acc |= u128::from(v) << bits;
        bits += u32::from(width);
        while bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    let tail = (bits as usize).div_ceil(8);
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..tail]);
}

/// Reads `count` values of `width` bits from `src` and hands each to `sink` in order.
/// Fails (never panics) when `src` is shorter than the values need.
pub fn unpack(src: &[u8], width: u8, count: usize, sink: impl FnMut(u64)) -> Result<(), String> {
    unpack_range(src, width, count, 0..count, sink)
}

/// Of a stream of `count` values of `width` bits, writes values `range` to `out` (which
/// must hold `range.len()` values). What [`unpack_range`] does, faster for whole mini-blocks:
/// eight values of `width` bits take exactly `width` bytes, so each group of eight starts on
/// a byte and is read with one bounds check, its shifts constants of the width. Fails (never
/// panics) as [`unpack_range`] does, or when `out` is not `range.len()` long.
pub fn unpack_into(
    src: &[u8],
    width: u8,
    count: usize,
    range: std::ops::Range<usize>,
    out: &mut [u64],
) -> Result<(), String> {
    check_stream(src, width, count, &range)?;
    if out.len() != range.len() {
        return Err(format!("{} slots for values {range:?}", out.len()));
    }
    if width == 0 {
        // Every value is zero (a delta block of evenly spaced keys has zero-width gaps).
        out.fill(0);
        return Ok(());
    }
    let w = usize::from(width);
    // Whole groups of eight inside `range` whose bytes and an 8-byte window past them lie
    // inside `src` (the window lets each value load a whole word).
    // Widths over 56 may need 9 bytes a value; they take the slow path.
    let grouped = width <= 56;
    let first_group = range.start.div_ceil(8);
    let groups_in_src = match grouped {
        true => (src.len().saturating_sub(8) / w).min(count / 8),
        false => 0,
    };
    let last_group = (range.end / 8).min(groups_in_src).max(first_group);
    if !grouped || last_group == first_group {
        return unpack_range_into(src, width, count, range, out);
    }
    let (lo, hi) = (first_group * 8, last_group * 8);
    let (head, rest) = out.split_at_mut(lo - range.start);
    let (middle, tail) = rest.split_at_mut(hi - lo);
    unpack_range_into(src, width, count, range.start..lo, head)?;
    macro_rules! by_width {
        ($($n:literal)*) => {
            match w {
                $($n => groups::<$n>(src, first_group, middle),)*
                _ => unreachable!("widths 1 to 56 are matched"),
            }
        };
    }
    by_width!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28
        29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56);
    unpack_range_into(src, width, count, hi..range.end, tail)
}

/// [`unpack_range`] writing values `range` to `out`, which holds exactly as many.
fn unpack_range_into(
    src: &[u8],
    width: u8,
    count: usize,
    range: std::ops::Range<usize>,
    out: &mut [u64],
) -> Result<(), String> {
    let mut slots = out.iter_mut();
    unpack_range(src, width, count, range, |v| {
        if let Some(slot) = slots.next() {
            *slot = v;
        }
    })
}

/// Unpacks groups of eight `W`-bit values, from group `first` on, into `out` (a multiple of
/// eight long); the caller checked that every group and 8 bytes past it lie inside `src`.
#[inline(always)]
fn groups<const W: usize>(src: &[u8], first: usize, out: &mut [u64]) {
    let mask = (1u64 << W) - 1;
    for (k, chunk) in out.chunks_exact_mut(8).enumerate() {
        let at = (first + k) * W;
        let group = &src[at..at + W + 8];
        for (j, slot) in chunk.iter_mut().enumerate() {
            let bit = j * W;
            let mut word = [0u8; 8];
            word.copy_from_slice(&group[bit / 8..bit / 8 + 8]);
            *slot = (u64::from_le_bytes(word) >> (bit % 8)) & mask;
        }
    }
}

/// Fails unless `range` lies within `count` values of `width` bits (at most 64) and `src`
/// holds all `count` of them: what both readers check before reading any.
fn check_stream(
    src: &[u8],
    width: u8,
    count: usize,
    range: &std::ops::Range<usize>,
) -> Result<(), String> {
    if range.start > range.end || range.end > count {
        return Err(format!("values {range:?} asked of {count}"));
    }
    if width > 64 {
        return Err(format!("bit width {width} is over 64"));
    }
    let need = packed_len(count, width);
    if src.len() < need {
        return Err(format!(
            "{count} values of {width} bits need {need} bytes, {} remain",
            src.len()
        ));
    }
    Ok(())
}

/// Of a stream of `count` values of `width` bits, reads values `range` only (a point read
/// takes one value from a mini-block) and hands each to `sink` in order. Fails (never panics)
/// when `src` is shorter than `count` values need or `range` is past `count`.
pub fn unpack_range(
    src: &[u8],
    width: u8,
    count: usize,
    range: std::ops::Range<usize>,
    mut sink: impl FnMut(u64),
) -> Result<(), String> {
    check_stream(src, width, count, &range)?;
    if width == 0 {
        range.for_each(|_| sink(0));
        return Ok(());
    }
    let w = usize::from(width);
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    // Fast paths: every value whose 8-byte (widths up to 56, which fit in 8 bytes at any bit
    // offset) or 16-byte window lies inside `src` is read with one load.
    let window = if width <= 56 { 8 } else { 16 };
    let fast = if src.len() >= window {
        ((src.len() - window) * 8 / w + 1).min(count)
    } else {
        0
    };
    let fast = fast.clamp(range.start, range.end);
    if window == 8 {
        for i in range.start..fast {
            let bit = i * w;
            let at = bit / 8;
            let mut word = [0u8; 8];
            word.copy_from_slice(&src[at..at + 8]);
            sink((u64::from_le_bytes(word) >> (bit % 8)) & mask);
        }
    } else {
        for i in range.start..fast {
            let bit = i * w;
            let at = bit / 8;
            let mut word = [0u8; 16];
            word.copy_from_slice(&src[at..at + 16]);
            sink((u128::from_le_bytes(word) >> (bit % 8)) as u64 & mask);
        }
    }
    for i in fast..range.end {
        let bit = i * w;
        let at = bit / 8;
        let mut window = [0u8; 16];
        let end = src.len().min(at + 16);
        window[..end - at].copy_from_slice(&src[at..end]);
        sink((u128::from_le_bytes(window) >> (bit % 8)) as u64 & mask);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` scattered values of `width` bits, and their packed bytes.
    fn packed_values(width: u8, count: u64) -> (Vec<u64>, Vec<u8>) {
        let mask = if width == 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        let values: Vec<u64> = (0..count)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
            .collect();
        let mut packed = Vec::new();
        pack(values.iter().copied(), width, &mut packed);
        (values, packed)
    }

    #[test]
    fn values_of_every_width_round_trip() {
        for width in 0..=64u8 {
            let (values, packed) = packed_values(width, 100);
            assert_eq!(packed.len(), packed_len(values.len(), width));
            let mut back = Vec::new();
            unpack(&packed, width, values.len(), |v| back.push(v)).unwrap();
            assert_eq!(back, values, "width {width}");
        }
    }

    #[test]
    fn unpacking_into_a_slice_reads_what_a_sink_reads_at_every_width_and_range() {
        for width in 0..=64u8 {
            let (values, packed) = packed_values(width, 300);
            for range in [0..300, 0..0, 3..5, 5..299, 8..296, 1..8, 290..300, 16..17] {
                let mut out = vec![u64::MAX; range.len()];
                unpack_into(&packed, width, values.len(), range.clone(), &mut out).unwrap();
                assert_eq!(out, values[range.clone()], "width {width}, {range:?}");
            }
            assert!(unpack_into(&packed, width, 300, 0..301, &mut vec![0; 301]).is_err());
            assert!(unpack_into(&packed, width, 300, 0..3, &mut [0; 2]).is_err());
            if width > 0 {
                let short = &packed[..packed.len() - 1];
                assert!(unpack_into(short, width, 300, 0..300, &mut vec![0; 300]).is_err());
            }
        }
    }

    #[test]
    fn a_range_reads_exactly_those_values() {
        let values: Vec<u64> = (0..1000u64).map(|i| i * 7 % 1021).collect();
        for width in [10u8, 11, 57, 64] {
            let mut packed = Vec::new();
            pack(values.iter().copied(), width, &mut packed);
            for range in [0..0, 0..1, 999..1000, 3..900, 500..501] {
                let mut back = Vec::new();
                unpack_range(&packed, width, 1000, range.clone(), |v| back.push(v)).unwrap();
                assert_eq!(back, values[range].to_vec(), "width {width}");
            }
            assert!(unpack_range(&packed, width, 1000, 999..1001, |_| ()).is_err());
        }
    }

    #[test]
    fn a_short_stream_is_an_error() {
        let mut packed = Vec::new();
        pack([1, 2, 3], 7, &mut packed);
        assert!(unpack(&packed[..2], 7, 3, |_| ()).is_err());
        assert!(unpack(&packed, 65, 3, |_| ()).is_err());
    }

    #[test]
    fn widths_are_the_bits_of_the_largest_value() {
        assert_eq!(width_of(0), 0);
        assert_eq!(width_of(1), 1);
        assert_eq!(width_of(255), 8);
        assert_eq!(width_of(u64::MAX), 64);
    }
}
