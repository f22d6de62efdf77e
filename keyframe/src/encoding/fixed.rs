//! Fixed-width values: integers (and the types stored as integers: dates, times,
//! timestamps, durations, small decimals) as frame-of-reference or delta bit-packing, floats
//! as decimal-scaled integers where exact, and everything else of fixed width as plain
//! little-endian values.
//!
//! Integers are mapped to order keys (u64): unsigned values as they are, signed values
//! sign-extended to 64 bits with the top bit flipped, so keys order like the values.
//! Floats' order keys are the IEEE bits with negative values inverted (total order).

use arrow::array::{Array, ArrayData, ArrayRef};
use arrow::buffer::{Buffer, MutableBuffer};
use arrow::datatypes::{DataType, IntervalUnit};

use super::bitpack::{pack, packed_len, unpack_into, width_of};
use super::{
    BlockHeader, BlockWriter, Encoding, MINI_BLOCK_VALUES, ValidityBuilder, split_validity,
};

/// Header flag: integer keys are sign-flipped.
const SIGNED: u8 = 1;
/// The largest decimal exponent tried for floats.
const MAX_DECIMAL_EXPONENT: u8 = 6;

/// How a fixed-width type is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FixedKind {
    /// An integer of `width` bytes.
    Integer { width: u8, signed: bool },
    /// An IEEE float of `width` bytes (4 or 8).
    Float { width: u8 },
    /// Any other fixed-width value, stored as it is.
    Plain { width: u8 },
}

impl FixedKind {
    pub(crate) fn width(self) -> u8 {
        match self {
            FixedKind::Integer { width, .. }
            | FixedKind::Float { width }
            | FixedKind::Plain { width } => width,
        }
    }
}

/// How `t` is stored, if it is a fixed-width type.
pub(crate) fn kind_of(t: &DataType) -> Option<FixedKind> {
    use DataType::*;
    let int = |width, signed| Some(FixedKind::Integer { width, signed });
    match t {
        Int8 => int(1, true),
        Int16 => int(2, true),
        Int32 | Date32 | Time32(_) | Decimal32(..) | Interval(IntervalUnit::YearMonth) => {
            int(4, true)
        }
        Int64 | Date64 | Time64(_) | Timestamp(..) | Duration(_) | Decimal64(..) => int(8, true),
        UInt8 => int(1, false),
        UInt16 => int(2, false),
        UInt32 => int(4, false),
        UInt64 => int(8, false),
        Float32 => Some(FixedKind::Float { width: 4 }),
        Float64 => Some(FixedKind::Float { width: 8 }),
        Float16 => Some(FixedKind::Plain { width: 2 }),
        Decimal128(..) | Interval(IntervalUnit::MonthDayNano) => {
            Some(FixedKind::Plain { width: 16 })
        }
        Interval(IntervalUnit::DayTime) => Some(FixedKind::Plain { width: 8 }),
        Decimal256(..) => Some(FixedKind::Plain { width: 32 }),
        _ => None,
    }
}

/// The little-endian value bytes of `array`: its own slice of its buffer, not a copy.
fn value_bytes(array: &dyn Array, width: usize) -> Buffer {
    let data = array.to_data();
    data.buffers().first().map_or_else(Buffer::default, |b| {
        b.slice_with_length(data.offset() * width, data.len() * width)
    })
}

fn integer_key(bytes: &[u8], signed: bool) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    let raw = u64::from_le_bytes(word);
    if !signed {
        return raw;
    }
    let shift = 64 - 8 * bytes.len() as u32;
    // Sign-extend, then flip the sign bit so keys order like the values.
    (((raw << shift) as i64 >> shift) as u64) ^ (1 << 63)
}

fn float_key(bits: u64, width: u8) -> u64 {
    let bits = if width == 4 { bits << 32 } else { bits };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The row ranges of the mini-blocks of a block of `rows` fixed-width values.
fn mini_ranges(rows: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..rows)
        .step_by(MINI_BLOCK_VALUES)
        .map(move |s| s..(s + MINI_BLOCK_VALUES).min(rows))
}

/// Encodes a fixed-width column.
pub(crate) fn encode(array: &dyn Array, kind: FixedKind) -> Vec<u8> {
    let width = usize::from(kind.width());
    let raw = value_bytes(array, width);
    let rows = array.len();
    let valid = |i: usize| array.is_valid(i);
    match kind {
        FixedKind::Integer { signed, .. } => {
            let keys: Vec<u64> = raw
                .chunks_exact(width)
                .map(|b| integer_key(b, signed))
                .collect();
            encode_integers(
                array,
                &keys,
                kind.width(),
                if signed { SIGNED } else { 0 },
                &valid,
            )
        }
        FixedKind::Float { width: w } => match decimal_scale(&raw, w, array) {
            Some((exponent, ints)) => {
                let keys: Vec<u64> = ints.iter().map(|&i| (i as u64) ^ (1 << 63)).collect();
                let mut out = BlockWriter::new(Encoding::DecimalFloat, w, SIGNED);
                for r in mini_ranges(rows) {
                    let mut bytes = Vec::new();
                    let nulls = super::write_validity(array, r.clone(), &mut bytes);
                    bytes.push(exponent);
                    let (lo, hi) = write_for(&keys[r.clone()], &r, &valid, &mut bytes);
                    out.push(&bytes, r.len(), nulls, lo, hi);
                }
                out.finish()
            }
            None => encode_plain(array, &raw, kind.width(), |b| {
                let mut word = [0u8; 8];
                word[..b.len()].copy_from_slice(b);
                Some(float_key(u64::from_le_bytes(word), w))
            }),
        },
        FixedKind::Plain { width: w } => encode_plain(array, &raw, w, |_| None),
    }
}

fn encode_plain(
    array: &dyn Array,
    raw: &[u8],
    width: u8,
    key: impl Fn(&[u8]) -> Option<u64>,
) -> Vec<u8> {
    let w = usize::from(width);
    let mut out = BlockWriter::new(Encoding::Plain, width, 0);
    for r in mini_ranges(array.len()) {
        let mut bytes = Vec::new();
        let nulls = super::write_validity(array, r.clone(), &mut bytes);
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for i in r.clone() {
            let v = &raw[i * w..(i + 1) * w];
            if array.is_valid(i) {
                bytes.extend_from_slice(v);
                if let Some(k) = key(v) {
                    lo = lo.min(k);
                    hi = hi.max(k);
                }
            } else {
                bytes.extend(std::iter::repeat_n(0, w));
            }
        }
        if lo > hi {
            (lo, hi) = (0, 0);
        }
        out.push(&bytes, r.len(), nulls, lo, hi);
    }
    out.finish()
}

/// Writes the non-null `keys` of rows `r` as frame-of-reference (reference u64, width u8,
/// packed offsets; nulls as offset 0) and returns the min and max key.
fn write_for(
    keys: &[u64],
    r: &std::ops::Range<usize>,
    valid: &dyn Fn(usize) -> bool,
    out: &mut Vec<u8>,
) -> (u64, u64) {
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for (k, i) in keys.iter().zip(r.clone()) {
        if valid(i) {
            lo = lo.min(*k);
            hi = hi.max(*k);
        }
    }
    if lo > hi {
        (lo, hi) = (0, 0);
    }
    let width = width_of(hi - lo);
    out.extend_from_slice(&lo.to_le_bytes());
    out.push(width);
    pack(
        keys.iter()
            .zip(r.clone())
            .map(|(k, i)| if valid(i) { k - lo } else { 0 }),
        width,
        out,
    );
    (lo, hi)
}

fn encode_integers(
    array: &dyn Array,
    keys: &[u64],
    width: u8,
    flags: u8,
    valid: &dyn Fn(usize) -> bool,
) -> Vec<u8> {
    let rows = keys.len();
    // Delta pays where values are sorted (keys are): compare its packed bits with FOR's.
    let sorted = array.null_count() == 0 && keys.windows(2).all(|w| w[0] <= w[1]);
    let use_delta = sorted && {
        let (mut for_bits, mut delta_bits) = (0usize, 0usize);
        for r in mini_ranges(rows) {
            let part = &keys[r.clone()];
            let span = part[part.len() - 1] - part[0];
            for_bits += usize::from(width_of(span)) * part.len();
            let (dlo, dhi) = delta_bounds(part);
            delta_bits += usize::from(width_of(dhi - dlo)) * (part.len() - 1);
        }
        delta_bits + 64 * rows.div_ceil(MINI_BLOCK_VALUES) < for_bits
    };
    let mut out = BlockWriter::new(
        if use_delta {
            Encoding::Delta
        } else {
            Encoding::FrameOfReference
        },
        width,
        flags,
    );
    for r in mini_ranges(rows) {
        let part = &keys[r.clone()];
        let mut bytes = Vec::new();
        if use_delta {
            // first u64, smallest gap u64, width u8, packed (gap - smallest) for values 1..
            let (dlo, dhi) = delta_bounds(part);
            let w = width_of(dhi - dlo);
            bytes.extend_from_slice(&part[0].to_le_bytes());
            bytes.extend_from_slice(&dlo.to_le_bytes());
            bytes.push(w);
            pack(part.windows(2).map(|p| p[1] - p[0] - dlo), w, &mut bytes);
            out.push(&bytes, r.len(), 0, part[0], part[part.len() - 1]);
        } else {
            let nulls = super::write_validity(array, r.clone(), &mut bytes);
            let (lo, hi) = write_for(part, &r, valid, &mut bytes);
            out.push(&bytes, r.len(), nulls, lo, hi);
        }
    }
    out.finish()
}

fn delta_bounds(sorted: &[u64]) -> (u64, u64) {
    let mut lo = u64::MAX;
    let mut hi = 0;
    for p in sorted.windows(2) {
        let d = p[1] - p[0];
        lo = lo.min(d);
        hi = hi.max(d);
    }
    if lo > hi { (0, 0) } else { (lo, hi) }
}

/// True when `v` is finite and within 2^52, where every integer converts to f64 exactly
/// (false for NaN).
fn fits_exactly(v: f64) -> bool {
    v.abs() < (1u64 << 52) as f64
}

fn pow10(exponent: u8) -> f64 {
    10f64.powi(i32::from(exponent))
}

/// The bits of the float `i / divisor` (divisor = 10^exponent) of `width` bytes: what a
/// decimal-float value decodes to.
#[inline(always)]
fn decimal_value(i: i64, divisor: f64, width: u8) -> u64 {
    if width == 4 {
        u64::from(((i as f32) / (divisor as f32)).to_bits())
    } else {
        ((i as f64) / divisor).to_bits()
    }
}

/// The smallest exponent e for which every non-null float is exactly an integer divided by
/// 10^e (with integers within 2^52, so they convert exactly), and those integers; `None` when
/// there is none or it would not save space.
fn decimal_scale(raw: &[u8], width: u8, array: &dyn Array) -> Option<(u8, Vec<i64>)> {
    let w = usize::from(width);
    let bits: Vec<u64> = raw
        .chunks_exact(w)
        .map(|b| {
            let mut word = [0u8; 8];
            word[..w].copy_from_slice(b);
            u64::from_le_bytes(word)
        })
        .collect();
    let value = |b: u64| {
        if width == 4 {
            f64::from(f32::from_bits(b as u32))
        } else {
            f64::from_bits(b)
        }
    };
    let first = (0..bits.len()).find(|&i| array.is_valid(i))?;
    'exponent: for e in 0..=MAX_DECIMAL_EXPONENT {
        let scale = pow10(e);
        // Test one value first: most exponents fail on it.
        let probe = value(bits[first]) * scale;
        if !fits_exactly(probe) {
            return None;
        }
        if decimal_value(probe.round() as i64, scale, width) != bits[first] {
            continue;
        }
        let mut ints = Vec::with_capacity(bits.len());
        for (i, &b) in bits.iter().enumerate() {
            if !array.is_valid(i) {
                ints.push(0);
                continue;
            }
            let scaled = value(b) * scale;
            if !fits_exactly(scaled) {
                return None;
            }
            let n = scaled.round() as i64;
            if decimal_value(n, scale, width) != b {
                continue 'exponent;
            }
            ints.push(n);
        }
        let (lo, hi) = ints
            .iter()
            .enumerate()
            .filter(|(i, _)| array.is_valid(*i))
            .fold((i64::MAX, i64::MIN), |(lo, hi), (_, &v)| {
                (lo.min(v), hi.max(v))
            });
        let span = (hi as i128 - lo as i128) as u64;
        return (width_of(span) < 8 * width - 4).then_some((e, ints));
    }
    None
}

/// Decodes the picked rows of a fixed-width block.
pub(crate) fn decode(
    raw: &[u8],
    header: &BlockHeader,
    picked: &[(usize, std::ops::Range<usize>)],
    data_type: &DataType,
    kind: FixedKind,
) -> Result<ArrayRef, String> {
    let width = kind.width();
    if header.value_width != width {
        return Err(format!(
            "block of {}-byte values read as {data_type}",
            header.value_width
        ));
    }
    let expected_flags = match (kind, header.encoding) {
        (FixedKind::Integer { signed: true, .. }, _) | (_, Encoding::DecimalFloat) => SIGNED,
        _ => 0,
    };
    let allowed = match kind {
        FixedKind::Integer { .. } => {
            matches!(
                header.encoding,
                Encoding::FrameOfReference | Encoding::Delta
            )
        }
        FixedKind::Float { .. } => {
            matches!(header.encoding, Encoding::Plain | Encoding::DecimalFloat)
        }
        FixedKind::Plain { .. } => header.encoding == Encoding::Plain,
    };
    if !allowed || header.flags != expected_flags {
        return Err(format!(
            "a {:?} block (flags {}) cannot hold {data_type}",
            header.encoding, header.flags
        ));
    }
    let w = usize::from(width);
    let total: usize = picked.iter().map(|(_, r)| r.len()).sum();
    let mut out = MutableBuffer::with_capacity(total * w);
    let mut validity = ValidityBuilder::default();
    // Sized for what is asked: a point read wants one value, a scan whole mini-blocks.
    let mut keys: Vec<u64> = Vec::with_capacity(total.min(MINI_BLOCK_VALUES));
    // Signed integers' keys have their sign bit flipped (decimal floats flip it themselves).
    let flip = if header.flags & SIGNED != 0 {
        1u64 << 63
    } else {
        0
    };
    for (i, part) in picked {
        let m = &header.minis[*i];
        let bytes = header.mini_bytes(raw, *i)?;
        let (valid, body) = split_validity(bytes, m)?;
        let n = m.values as usize;
        match header.encoding {
            Encoding::Plain => {
                if body.len() != n * w {
                    return Err(format!(
                        "plain mini-block of {} bytes for {n} values",
                        body.len()
                    ));
                }
                out.extend_from_slice(&body[part.start * w..part.end * w]);
            }
            Encoding::FrameOfReference => {
                keys.clear();
                read_for(body, n, part.clone(), &mut keys)?;
                push_words(&mut out, keys.iter().map(|&k| k ^ flip), width);
            }
            Encoding::Delta => {
                if m.nulls != 0 {
                    return Err("delta mini-block with nulls".into());
                }
                keys.clear();
                read_delta(body, n, part.clone(), &mut keys)?;
                push_words(&mut out, keys.iter().map(|&k| k ^ flip), width);
            }
            Encoding::DecimalFloat => {
                let (&e, rest) = body.split_first().ok_or("empty decimal mini-block")?;
                if e > MAX_DECIMAL_EXPONENT {
                    return Err(format!("decimal exponent {e}"));
                }
                keys.clear();
                read_for(rest, n, part.clone(), &mut keys)?;
                let divisor = pow10(e);
                let ints = keys.iter().map(|&k| (k ^ (1 << 63)) as i64);
                // The width chosen once, not per value (what `decimal_value` does, hoisted).
                match width {
                    4 => push_words(&mut out, ints.map(|i| decimal_value(i, divisor, 4)), 4),
                    _ => push_words(&mut out, ints.map(|i| decimal_value(i, divisor, 8)), width),
                }
            }
            e => return Err(format!("{e:?} is not a fixed-width encoding")),
        }
        validity.append_range(valid, part.clone(), n);
    }
    let nulls = validity.finish();
    let data = ArrayData::builder(data_type.clone())
        .len(total)
        .add_buffer(Buffer::from(out))
        .nulls(nulls)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(arrow::array::make_array(data))
}

fn push_words(out: &mut MutableBuffer, values: impl Iterator<Item = u64>, width: u8) {
    match width {
        8 => {
            // Collected first: a slice copies in one call, where extending from an
            // iterator writes a value at a time.
            let words: Vec<u64> = values.collect();
            out.extend_from_slice(&words);
        }
        1 => out.extend(values.map(|v| v as u8)),
        2 => out.extend(values.map(|v| v as u16)),
        4 => out.extend(values.map(|v| v as u32)),
        _ => out.extend(values),
    }
}

/// Appends to `keys` values `part` of a frame-of-reference mini-block of `n` values.
fn read_for(
    body: &[u8],
    n: usize,
    part: std::ops::Range<usize>,
    keys: &mut Vec<u64>,
) -> Result<(), String> {
    if body.len() < 9 {
        return Err("frame-of-reference mini-block too short".into());
    }
    let reference = u64::from_le_bytes(body[..8].try_into().map_err(|_| "reference")?);
    let width = body[8];
    let packed = &body[9..];
    if packed.len() != packed_len(n, width) {
        return Err(format!(
            "{} packed bytes for {n} values of {width} bits",
            packed.len()
        ));
    }
    let start = keys.len();
    keys.resize(start + part.len(), 0);
    unpack_into(packed, width, n, part, &mut keys[start..])?;
    let mut bad = false;
    for k in &mut keys[start..] {
        let (v, over) = reference.overflowing_add(*k);
        bad |= over;
        *k = v;
    }
    if bad {
        return Err("frame-of-reference value past 64 bits".into());
    }
    Ok(())
}

/// Appends to `keys` values `part` of a delta mini-block of `n` values (decoding every gap
/// before them: each value is the sum of those before).
fn read_delta(
    body: &[u8],
    n: usize,
    part: std::ops::Range<usize>,
    keys: &mut Vec<u64>,
) -> Result<(), String> {
    if body.len() < 17 {
        return Err("delta mini-block too short".into());
    }
    let first = u64::from_le_bytes(body[..8].try_into().map_err(|_| "first")?);
    let base = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "gap")?);
    let width = body[16];
    let packed = &body[17..];
    if packed.len() != packed_len(n - 1, width) {
        return Err(format!(
            "{} packed bytes for {} gaps of {width} bits",
            packed.len(),
            n - 1
        ));
    }
    let base_len = keys.len();
    keys.push(first);
    // The gaps before the last value asked for, unpacked at once, then summed in place.
    let gaps = part.end.saturating_sub(1);
    keys.resize(base_len + 1 + gaps, 0);
    unpack_into(packed, width, n - 1, 0..gaps, &mut keys[base_len + 1..])?;
    let mut at = first;
    let mut bad = false;
    for k in &mut keys[base_len + 1..] {
        let (step, o1) = k.overflowing_add(base);
        let (next, o2) = at.overflowing_add(step);
        bad |= o1 | o2;
        at = next;
        *k = at;
    }
    if bad {
        return Err("delta value past 64 bits".into());
    }
    keys.truncate(base_len + part.end);
    keys.drain(base_len..base_len + part.start);
    Ok(())
}
