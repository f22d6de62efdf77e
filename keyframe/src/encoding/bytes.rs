//! Strings and binaries: a dictionary of the distinct values stored once per block with
//! bit-packed codes, when that is smaller; otherwise bit-packed lengths and the bytes, each
//! mini-block's bytes zstd-compressed where that saves a tenth or more.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, LargeBinaryArray, LargeStringArray, StringArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::DataType;

use super::bitpack::{pack, packed_len, unpack_into, width_of};
use super::{
    BlockHeader, BlockWriter, Encoding, MINI_BLOCK_BYTES, MINI_BLOCK_VALUES, ValidityBuilder,
    split_validity, write_validity,
};

/// Mini-blocks with more bytes than this are never compressed, and a compressed mini-block
/// claiming more is refused: it bounds what a corrupt length can make a reader allocate.
const MAX_COMPRESSED_MINI_BLOCK: usize = 1 << 20;
/// zstd level: fast to write, and small blocks gain little from more.
const ZSTD_LEVEL: i32 = 3;
const UNCOMPRESSED: u8 = 0;
const ZSTD: u8 = 1;

thread_local! {
    /// One zstd decompression context per thread, reused: a point read decompresses one
    /// small mini-block, where setting up a context would cost as much as the work.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a zstd mini-block that holds exactly `len` bytes (checked by the caller).
fn decompress(stored: &[u8], len: usize) -> Result<Vec<u8>, String> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(stored, len).map_err(|e| format!("zstd: {e}")),
            None => Err("zstd: no decompression context".into()),
        }
    })
}

/// True for the types this module stores.
pub(crate) fn handles(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// The values of a string or binary array as byte slices (empty for nulls).
fn values_of(array: &dyn Array) -> Vec<&[u8]> {
    fn each<'a>(array: &dyn Array, value: impl Fn(usize) -> &'a [u8]) -> Vec<&'a [u8]> {
        (0..array.len())
            .map(|i| if array.is_valid(i) { value(i) } else { &[][..] })
            .collect()
    }
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            each(array, |i| a.value(i).as_bytes())
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            each(array, |i| a.value(i).as_bytes())
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            each(array, |i| a.value(i).as_bytes())
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            each(array, |i| a.value(i))
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            each(array, |i| a.value(i))
        }
        _ => {
            let a = array.as_binary_view();
            each(array, |i| a.value(i))
        }
    }
}

/// Mini-block ranges of plain bytes: at most MINI_BLOCK_VALUES values, ending once the
/// bytes reach MINI_BLOCK_BYTES.
fn byte_ranges(values: &[&[u8]]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, v) in values.iter().enumerate() {
        bytes += v.len();
        if i + 1 - start == MINI_BLOCK_VALUES || bytes >= MINI_BLOCK_BYTES {
            out.push(start..i + 1);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < values.len() {
        out.push(start..values.len());
    }
    out
}

/// Encodes a string or binary column.
pub(crate) fn encode(array: &dyn Array) -> Vec<u8> {
    let values = values_of(array);
    let rows = values.len();
    let plain_bytes: usize = values.iter().map(|v| v.len()).sum();
    let max_len = values.iter().map(|v| v.len()).max().unwrap_or(0) as u64;
    let plain_cost = plain_bytes + rows * usize::from(width_of(max_len)) / 8;
    if let Some(block) = encode_dictionary(array, &values, plain_cost) {
        return block;
    }
    let ranges = byte_ranges(&values);
    let mut minis = Vec::with_capacity(ranges.len());
    let mut any_compressed = false;
    for r in ranges {
        let mut bytes = Vec::new();
        let nulls = write_validity(array, r.clone(), &mut bytes);
        let part = &values[r.clone()];
        let (lo, hi) = part.iter().fold((u64::MAX, 0), |(lo, hi), v| {
            (lo.min(v.len() as u64), hi.max(v.len() as u64))
        });
        let width = width_of(hi - lo);
        bytes.extend_from_slice(&lo.to_le_bytes());
        bytes.push(width);
        pack(part.iter().map(|v| v.len() as u64 - lo), width, &mut bytes);
        let joined: Vec<u8> = part.concat();
        let compressed = (joined.len() >= 64 && joined.len() <= MAX_COMPRESSED_MINI_BLOCK)
            .then(|| zstd::bulk::compress(&joined, ZSTD_LEVEL).ok())
            .flatten()
            .filter(|z| z.len() * 10 <= joined.len() * 9);
        match compressed {
            Some(z) => {
                any_compressed = true;
                bytes.push(ZSTD);
                bytes.extend_from_slice(&z);
            }
            None => {
                bytes.push(UNCOMPRESSED);
                bytes.extend_from_slice(&joined);
            }
        }
        minis.push((bytes, r.len(), nulls));
    }
    let encoding = if any_compressed {
        Encoding::ZstdBytes
    } else {
        Encoding::PlainBytes
    };
    let mut out = BlockWriter::new(encoding, 0, 0);
    for (bytes, n, nulls) in minis {
        out.push(&bytes, n, nulls, 0, 0);
    }
    out.finish()
}

/// The dictionary form, when it costs less than `plain_cost` bytes. The dictionary is sorted,
/// so codes order like the values.
fn encode_dictionary(array: &dyn Array, values: &[&[u8]], plain_cost: usize) -> Option<Vec<u8>> {
    let rows = values.len();
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    for (i, v) in values.iter().enumerate() {
        if array.is_valid(i) {
            let next = ids.len() as u32;
            ids.entry(v).or_insert(next);
            if ids.len() > rows / 2 {
                return None;
            }
        }
    }
    let mut distinct: Vec<&[u8]> = ids.keys().copied().collect();
    distinct.sort_unstable();
    let dict_bytes: usize = distinct.iter().map(|v| v.len()).sum();
    let width = width_of(distinct.len().saturating_sub(1) as u64);
    let cost = dict_bytes + 4 * (distinct.len() + 1) + rows * usize::from(width) / 8;
    if cost >= plain_cost {
        return None;
    }
    // Each value's code is its place in the sorted dictionary.
    for (c, v) in distinct.iter().enumerate() {
        ids.insert(v, c as u32);
    }
    // dictionary: count u32, count + 1 offsets u32, bytes
    let mut dict = Vec::with_capacity(4 * (distinct.len() + 2) + dict_bytes);
    dict.extend_from_slice(&(distinct.len() as u32).to_le_bytes());
    let mut at = 0u32;
    dict.extend_from_slice(&at.to_le_bytes());
    for v in &distinct {
        at += v.len() as u32;
        dict.extend_from_slice(&at.to_le_bytes());
    }
    for v in &distinct {
        dict.extend_from_slice(v);
    }
    let mut out = BlockWriter::new(Encoding::Dictionary, 0, 0);
    out.set_dictionary(dict);
    for s in (0..rows).step_by(MINI_BLOCK_VALUES) {
        let r = s..(s + MINI_BLOCK_VALUES).min(rows);
        let mut bytes = Vec::new();
        let nulls = write_validity(array, r.clone(), &mut bytes);
        let codes: Vec<u64> = r
            .clone()
            .map(|i| {
                if array.is_valid(i) {
                    u64::from(ids[values[i]])
                } else {
                    0
                }
            })
            .collect();
        let (lo, hi) = r
            .clone()
            .zip(&codes)
            .filter(|(i, _)| array.is_valid(*i))
            .fold((u64::MAX, 0), |(lo, hi), (_, &c)| (lo.min(c), hi.max(c)));
        let (lo, hi) = if lo > hi { (0, 0) } else { (lo, hi) };
        bytes.push(width);
        pack(codes.iter().copied(), width, &mut bytes);
        out.push(&bytes, r.len(), nulls, lo, hi);
    }
    Some(out.finish())
}

/// The parsed dictionary section: entry offsets into `bytes`.
struct Dictionary<'a> {
    offsets: Vec<usize>,
    bytes: &'a [u8],
}

impl<'a> Dictionary<'a> {
    fn parse(section: &'a [u8], utf8: bool) -> Result<Self, String> {
        let mut d = crate::format::Decoder::new(section);
        let err = |e: crate::format::DecodeError| format!("dictionary: {}", e.0);
        let count = d.u32().map_err(err)? as usize;
        if count == 0 || count > d.remaining() / 4 {
            return Err(format!("dictionary of {count} entries"));
        }
        let mut offsets = Vec::with_capacity(count + 1);
        for _ in 0..=count {
            offsets.push(d.u32().map_err(err)? as usize);
        }
        let bytes = &section[d.position()..];
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets[count] != bytes.len()
        {
            return Err("dictionary offsets out of order".into());
        }
        if utf8 {
            for w in offsets.windows(2) {
                std::str::from_utf8(&bytes[w[0]..w[1]])
                    .map_err(|e| format!("dictionary entry is not UTF-8: {e}"))?;
            }
        }
        Ok(Dictionary { offsets, bytes })
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The values of `codes` (each below [`Dictionary::len`]) back to back, pushing each
    /// one's end to `offsets`. Short values are copied 16 bytes at a time from a padded copy
    /// of the dictionary into a padded output, which is several times faster than a copy
    /// sized to each value.
    fn gather(&self, codes: &[u32], offsets: &mut Vec<i64>) -> Vec<u8> {
        const CHUNK: usize = 16;
        let entries: Vec<(usize, usize)> = self
            .offsets
            .windows(2)
            .map(|w| (w[0], w[1] - w[0]))
            .collect();
        let mut padded = Vec::with_capacity(self.bytes.len() + CHUNK);
        padded.extend_from_slice(self.bytes);
        padded.extend_from_slice(&[0; CHUNK]);
        let total: usize = codes.iter().map(|&c| entries[c as usize].1).sum();
        let mut out = vec![0u8; total + CHUNK];
        let mut at = 0usize;
        let base = offsets.last().copied().unwrap_or(0);
        for &c in codes {
            let (start, len) = entries[c as usize];
            if len <= CHUNK {
                out[at..at + CHUNK].copy_from_slice(&padded[start..start + CHUNK]);
            } else {
                out[at..at + len].copy_from_slice(&padded[start..start + len]);
            }
            at += len;
            offsets.push(base + at as i64);
        }
        out.truncate(total);
        out
    }
}

/// Decodes the picked rows of a string or binary block as `data_type`.
pub(crate) fn decode(
    raw: &[u8],
    header: &BlockHeader,
    picked: &[(usize, std::ops::Range<usize>)],
    data_type: &DataType,
) -> Result<ArrayRef, String> {
    let utf8 = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if header.value_width != 0 || header.flags != 0 {
        return Err("string block with a value width or flags".into());
    }
    let mut offsets: Vec<i64> =
        Vec::with_capacity(picked.iter().map(|(_, r)| r.len()).sum::<usize>() + 1);
    offsets.push(0);
    let mut data: Vec<u8> = Vec::new();
    let mut validity = ValidityBuilder::default();
    match header.encoding {
        Encoding::Dictionary => {
            let dict = Dictionary::parse(&raw[header.dictionary.clone()], utf8)?;
            let mut codes: Vec<u32> = Vec::with_capacity(offsets.capacity());
            let mut mini = Vec::with_capacity(offsets.capacity().min(MINI_BLOCK_VALUES));
            for (i, part) in picked {
                let m = &header.minis[*i];
                let bytes = header.mini_bytes(raw, *i)?;
                let (valid, body) = split_validity(bytes, m)?;
                let (&width, packed) = body.split_first().ok_or("empty dictionary mini-block")?;
                let n = m.values as usize;
                if packed.len() != packed_len(n, width) {
                    return Err("dictionary codes of the wrong length".into());
                }
                let picked =
                    dictionary_codes(packed, width, n, part.clone(), dict.len(), &mut mini)?;
                codes.extend(picked.iter().map(|&c| c as u32));
                validity.append_range(valid, part.clone(), n);
            }
            data = dict.gather(&codes, &mut offsets);
        }
        Encoding::PlainBytes | Encoding::ZstdBytes => {
            let mut lengths = Vec::with_capacity(MINI_BLOCK_VALUES);
            let mut raw_lengths: Vec<u64> = Vec::with_capacity(MINI_BLOCK_VALUES);
            for (i, part) in picked {
                let m = &header.minis[*i];
                let bytes = header.mini_bytes(raw, *i)?;
                let (valid, body) = split_validity(bytes, m)?;
                let n = m.values as usize;
                if body.len() < 9 {
                    return Err("bytes mini-block too short".into());
                }
                let lo = u64::from_le_bytes(body[..8].try_into().map_err(|_| "lengths")?);
                let width = body[8];
                let plen = packed_len(n, width);
                if body.len() < 9 + plen + 1 {
                    return Err("bytes mini-block shorter than its lengths".into());
                }
                raw_lengths.clear();
                raw_lengths.resize(n, 0);
                unpack_into(&body[9..9 + plen], width, n, 0..n, &mut raw_lengths)?;
                lengths.clear();
                let mut total = 0u64;
                let mut bad = false;
                lengths.extend(raw_lengths.iter().map(|&l| {
                    let (len, over) = l.overflowing_add(lo);
                    bad |= over;
                    total = total.saturating_add(len);
                    len as usize
                }));
                let flag = body[9 + plen];
                let stored = &body[10 + plen..];
                let owned = match flag {
                    UNCOMPRESSED => None,
                    ZSTD if header.encoding == Encoding::ZstdBytes
                        && total as usize <= MAX_COMPRESSED_MINI_BLOCK =>
                    {
                        Some(decompress(stored, total as usize)?)
                    }
                    f => return Err(format!("bytes mini-block compression {f}")),
                };
                let held = owned.as_ref().map_or(stored.len(), Vec::len);
                if bad || held as u64 != total {
                    return Err(format!(
                        "bytes mini-block holds {held} bytes where its lengths sum to {total}"
                    ));
                }
                let wanted = lengths.get(part.clone()).ok_or("rows past a mini-block")?;
                match owned {
                    // A whole decompressed mini-block read alone (what a point read caches):
                    // its bytes are the values' bytes, as they are.
                    Some(whole) if data.is_empty() && wanted.len() == n => {
                        data = whole;
                        let mut end = 0i64;
                        offsets.extend(wanted.iter().map(|&len| {
                            end += len as i64;
                            end
                        }));
                    }
                    owned => {
                        let joined = owned.as_deref().unwrap_or(stored);
                        let mut at: usize = lengths[..part.start].iter().sum();
                        data.reserve(wanted.iter().sum());
                        for &len in wanted {
                            data.extend_from_slice(&joined[at..at + len]);
                            offsets.push(data.len() as i64);
                            at += len;
                        }
                    }
                }
                validity.append_range(valid, part.clone(), n);
            }
        }
        e => return Err(format!("a {e:?} block cannot hold {data_type}")),
    }
    build(data_type, offsets, data, validity.finish())
}

/// A dictionary block as a `Dictionary(Int32, data_type)` array: its codes and its
/// dictionary as they are, no value gathered. What scans hand callers that ask for
/// dictionaries.
pub(crate) fn decode_dictionary(
    raw: &[u8],
    header: &BlockHeader,
    data_type: &DataType,
) -> Result<ArrayRef, String> {
    let utf8 = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if header.encoding != Encoding::Dictionary || header.value_width != 0 || header.flags != 0 {
        return Err("not a dictionary block".into());
    }
    let dict = Dictionary::parse(&raw[header.dictionary.clone()], utf8)?;
    let mut codes: Vec<i32> = Vec::with_capacity(header.rows);
    let mut mini: Vec<u64> = Vec::with_capacity(MINI_BLOCK_VALUES);
    let mut validity = ValidityBuilder::default();
    for (i, m) in header.minis.iter().enumerate() {
        let bytes = header.mini_bytes(raw, i)?;
        let (valid, body) = split_validity(bytes, m)?;
        let (&width, packed) = body.split_first().ok_or("empty dictionary mini-block")?;
        let n = m.values as usize;
        if packed.len() != packed_len(n, width) {
            return Err("dictionary codes of the wrong length".into());
        }
        let all = dictionary_codes(packed, width, n, 0..n, dict.len(), &mut mini)?;
        codes.extend(all.iter().map(|&c| c as i32));
        validity.append(valid, n);
    }
    let offsets: Vec<i64> = dict.offsets.iter().map(|&o| o as i64).collect();
    let values = build(data_type, offsets, dict.bytes.to_vec(), None)?;
    let keys = arrow::array::Int32Array::new(ScalarBuffer::from(codes), validity.finish());
    Ok(Arc::new(
        arrow::array::DictionaryArray::<arrow::datatypes::Int32Type>::try_new(keys, values)
            .map_err(|e| e.to_string())?,
    ))
}

/// Codes `range` of a dictionary mini-block of `n` codes of `width` bits (`packed`), unpacked
/// into `scratch`; every one must lie below `entries`, the dictionary's length.
fn dictionary_codes<'s>(
    packed: &[u8],
    width: u8,
    n: usize,
    range: std::ops::Range<usize>,
    entries: usize,
    scratch: &'s mut Vec<u64>,
) -> Result<&'s [u64], String> {
    scratch.clear();
    scratch.resize(range.len(), 0);
    unpack_into(packed, width, n, range, scratch)?;
    if scratch.iter().any(|&c| c >= entries as u64) {
        return Err(format!("a code past a dictionary of {entries}"));
    }
    Ok(scratch)
}

/// An array of `data_type` from value offsets, bytes and validity (UTF-8 checked for string
/// types; views cast from offsets).
fn build(
    data_type: &DataType,
    offsets: Vec<i64>,
    data: Vec<u8>,
    nulls: Option<arrow::buffer::NullBuffer>,
) -> Result<ArrayRef, String> {
    let utf8 = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    let values = Buffer::from_vec(data);
    let array: ArrayRef = match data_type {
        DataType::Utf8 | DataType::Binary | DataType::Utf8View | DataType::BinaryView => {
            let narrow: Vec<i32> = offsets
                .iter()
                .map(|&o| i32::try_from(o))
                .collect::<Result<_, _>>()
                .map_err(|_| "string data past 2 GiB")?;
            let offsets = OffsetBuffer::new(ScalarBuffer::from(narrow));
            if utf8 {
                Arc::new(StringArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?)
            } else {
                Arc::new(BinaryArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?)
            }
        }
        _ => {
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            if utf8 {
                Arc::new(
                    LargeStringArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?,
                )
            } else {
                Arc::new(
                    LargeBinaryArray::try_new(offsets, values, nulls).map_err(|e| e.to_string())?,
                )
            }
        }
    };
    match data_type {
        DataType::Utf8View | DataType::BinaryView => {
            arrow::compute::cast(&array, data_type).map_err(|e| e.to_string())
        }
        _ => Ok(array),
    }
}
