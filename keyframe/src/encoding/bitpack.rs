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

    #[test]
    fn values_of_every_width_round_trip() {
        for width in 0..=64u8 {
            let mask = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            let values: Vec<u64> = (0..100u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
                .collect();
            let mut packed = Vec::new();
            pack(values.iter().copied(), width, &mut packed);
            assert_eq!(packed.len(), packed_len(values.len(), width));
            let mut back = Vec::new();
            unpack(&packed, width, values.len(), |v| back.push(v)).unwrap();
            assert_eq!(back, values, "width {width}");
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
