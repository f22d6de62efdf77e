//! Column blocks (format 3): one column of one leaf (or of an overlay or residual batch) as
//! mini-blocks of at most [`MINI_BLOCK_VALUES`] values behind a small index, each mini-block
//! checksummed on its own so a point read decodes and verifies one mini-block, and a scan
//! decodes them straight into Arrow buffers. One encoding per block, chosen from the values
//! by a cheap cost estimate; design/FORMAT.md gives every byte.
//!
//! ```text
//! 0  encoding     u8   see [`Encoding`]
//! 1  value_width  u8   bytes per value of fixed-width types, else 0
//! 2  flags        u8   bit 0: integer keys are sign-flipped (signed types, decimal floats)
//! 3  reserved     u8   0
//! 4  rows         u32
//! 8  mini_count   u32
//! 12 dict_len     u32  bytes of the dictionary section (0 unless encoding = dictionary)
//! 16 dictionary   [dict_len]
//! .. index        mini_count x 40 bytes: offset u32, len u32, values u32, nulls u32,
//!                 min u64, max u64, checksum u64 (xxh3-64 of the mini-block's bytes)
//! .. header_sum   u64  xxh3-64 of every byte before it
//! .. data         the mini-blocks back to back, each starting 8-byte aligned
//! ```

pub mod bitpack;
mod boolean;
mod bytes;
mod fixed;
mod ipc_fallback;

use std::ops::Range;

use arrow::array::{Array, ArrayRef};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;

use crate::format::{Decoder, Encoder, checksum};

/// The most values a mini-block holds.
pub const MINI_BLOCK_VALUES: usize = 4096;
/// A mini-block of variable-width values ends once its value bytes reach this many.
pub const MINI_BLOCK_BYTES: usize = 8192;
/// Bytes of one mini-block index entry.
const INDEX_ENTRY_LEN: usize = 40;
/// Bytes of the fixed block header before the dictionary.
const HEADER_LEN: usize = 16;

/// How a block's values are encoded; one per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Encoding {
    /// Fixed-width values as they are, little-endian.
    Plain = 1,
    /// Integers as offsets from the mini-block's minimum, bit-packed.
    FrameOfReference = 2,
    /// Sorted integers as the first value and bit-packed gaps above the smallest gap.
    Delta = 3,
    /// Floats that are exact decimals with few digits, as frame-of-reference integers.
    DecimalFloat = 4,
    /// Strings or binaries as bit-packed codes into a dictionary stored once per block.
    Dictionary = 5,
    /// Strings or binaries as bit-packed lengths and the bytes as they are.
    PlainBytes = 6,
    /// As [`Encoding::PlainBytes`], with each mini-block's bytes zstd-compressed where that wins.
    ZstdBytes = 7,
    /// Booleans as a bitmap.
    Bitmap = 8,
    /// Types without an encoding of their own (nested types and the rare rest): one Arrow
    /// IPC stream, lz4-compressed, as a single mini-block.
    ArrowIpc = 9,
}

impl Encoding {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Encoding::Plain,
            2 => Encoding::FrameOfReference,
            3 => Encoding::Delta,
            4 => Encoding::DecimalFloat,
            5 => Encoding::Dictionary,
            6 => Encoding::PlainBytes,
            7 => Encoding::ZstdBytes,
            8 => Encoding::Bitmap,
            9 => Encoding::ArrowIpc,
            _ => return None,
        })
    }

    /// The encoding's name, as `reel stats` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::FrameOfReference => "frame-of-reference",
            Encoding::Delta => "delta",
            Encoding::DecimalFloat => "decimal-float",
            Encoding::Dictionary => "dictionary",
            Encoding::PlainBytes => "plain-bytes",
            Encoding::ZstdBytes => "zstd-bytes",
            Encoding::Bitmap => "bitmap",
            Encoding::ArrowIpc => "arrow-ipc-lz4",
        }
    }
}

/// One mini-block's index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniBlock {
    /// Offset of its bytes within the data area.
    pub offset: u32,
    /// Length of its bytes.
    pub len: u32,
    /// Values it holds.
    pub values: u32,
    /// Null values among them.
    pub nulls: u32,
    /// Smallest non-null value in the encoding's order key (see FORMAT.md), 0 when unused.
    pub min: u64,
    /// Largest non-null value in the encoding's order key, 0 when unused.
    pub max: u64,
    /// xxh3-64 of its bytes.
    pub checksum: u64,
}

/// Builds a block: the encoders push mini-blocks, then `finish` frames them.
#[derive(Debug)]
pub(crate) struct BlockWriter {
    encoding: Encoding,
    value_width: u8,
    flags: u8,
    dictionary: Vec<u8>,
    minis: Vec<MiniBlock>,
    data: Vec<u8>,
}

impl BlockWriter {
    pub(crate) fn new(encoding: Encoding, value_width: u8, flags: u8) -> Self {
        BlockWriter {
            encoding,
            value_width,
            flags,
            dictionary: Vec::new(),
            minis: Vec::new(),
            data: Vec::new(),
        }
    }

    pub(crate) fn set_dictionary(&mut self, dictionary: Vec<u8>) {
        self.dictionary = dictionary;
    }

    /// Appends a mini-block of `values` values, `nulls` of them null, with order keys
    /// `min..=max` of its non-null values.
    pub(crate) fn push(&mut self, bytes: &[u8], values: usize, nulls: usize, min: u64, max: u64) {
        let pad = self.data.len().next_multiple_of(8) - self.data.len();
        self.data.extend(std::iter::repeat_n(0, pad));
        // Leaf, overlay and residual batches are bounded far below 4 GiB by the builders and
        // MAX_RECORD_LEN, so offsets, lengths and counts fit in u32.
        self.minis.push(MiniBlock {
            offset: self.data.len() as u32,
            len: bytes.len() as u32,
            values: values as u32,
            nulls: nulls as u32,
            min,
            max,
            checksum: checksum(bytes),
        });
        self.data.extend_from_slice(bytes);
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        let rows: u64 = self.minis.iter().map(|m| u64::from(m.values)).sum();
        let mut e = Encoder::new();
        e.u8(self.encoding as u8)
            .u8(self.value_width)
            .u8(self.flags)
            .u8(0)
            .u32(rows as u32)
            .u32(self.minis.len() as u32)
            .u32(self.dictionary.len() as u32)
            .raw(&self.dictionary);
        for m in &self.minis {
            e.u32(m.offset)
                .u32(m.len)
                .u32(m.values)
                .u32(m.nulls)
                .u64(m.min)
                .u64(m.max)
                .u64(m.checksum);
        }
        let mut out = e.finish();
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        let pad = out.len().next_multiple_of(8) - out.len();
        out.extend(std::iter::repeat_n(0, pad));
        out.extend_from_slice(&self.data);
        out
    }
}

/// A parsed block header: the encoding, the dictionary and the mini-block index, checked
/// against the header checksum and against each other.
#[derive(Debug, Clone)]
pub struct BlockHeader {
    /// The block's encoding.
    pub encoding: Encoding,
    /// Bytes per value of fixed-width types.
    pub value_width: u8,
    /// Header flags.
    pub flags: u8,
    /// Rows in the block.
    pub rows: usize,
    /// The dictionary section's range within the block.
    pub dictionary: Range<usize>,
    /// The mini-blocks, in row order.
    pub minis: Vec<MiniBlock>,
    /// Offset of the data area within the block.
    pub data_start: usize,
}

impl BlockHeader {
    /// Parses and verifies the header of `raw`.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let mut d = Decoder::new(raw);
        let err = |e: crate::format::DecodeError| format!("column block header: {}", e.0);
        let enc = d.u8().map_err(err)?;
        let encoding = Encoding::from_u8(enc).ok_or_else(|| format!("unknown encoding {enc}"))?;
        let value_width = d.u8().map_err(err)?;
        let flags = d.u8().map_err(err)?;
        if d.u8().map_err(err)? != 0 || flags > 1 {
            return Err("column block header: reserved bits set".into());
        }
        let rows = d.u32().map_err(err)? as usize;
        let mini_count = d.u32().map_err(err)? as usize;
        let dict_len = d.u32().map_err(err)? as usize;
        if dict_len > d.remaining() {
            return Err(format!(
                "dictionary of {dict_len} bytes past the block's end"
            ));
        }
        let dictionary = HEADER_LEN..HEADER_LEN + dict_len;
        d.skip(dict_len).map_err(err)?;
        if mini_count > d.remaining() / INDEX_ENTRY_LEN {
            return Err(format!("{mini_count} mini-blocks past the block's end"));
        }
        let mut minis = Vec::with_capacity(mini_count);
        for _ in 0..mini_count {
            minis.push(MiniBlock {
                offset: d.u32().map_err(err)?,
                len: d.u32().map_err(err)?,
                values: d.u32().map_err(err)?,
                nulls: d.u32().map_err(err)?,
                min: d.u64().map_err(err)?,
                max: d.u64().map_err(err)?,
                checksum: d.u64().map_err(err)?,
            });
        }
        let summed = d.position();
        let sum = d.u64().map_err(err)?;
        if checksum(&raw[..summed]) != sum {
            return Err("column block header checksum mismatch".into());
        }
        let data_start = d.position().next_multiple_of(8);
        if data_start > raw.len() {
            return Err("column block ends inside its header".into());
        }
        let data_len = raw.len() - data_start;
        // Padding is zeros, so no byte of a block goes unchecked.
        let zeros = |r: Range<usize>| raw[r].iter().all(|b| *b == 0);
        if !zeros(d.position()..data_start) {
            return Err("column block header padding is not zero".into());
        }
        let mut total = 0usize;
        let mut end = 0usize;
        for m in &minis {
            let start = m.offset as usize;
            if start < end || start - end >= 8 || start + m.len as usize > data_len {
                return Err(format!(
                    "mini-block at {start} (+{}) out of place in {data_len} data bytes",
                    m.len
                ));
            }
            let most = if encoding == Encoding::ArrowIpc {
                rows
            } else {
                MINI_BLOCK_VALUES
            };
            if m.nulls > m.values || m.values == 0 || m.values as usize > most {
                return Err(format!(
                    "mini-block with {} values and {} nulls",
                    m.values, m.nulls
                ));
            }
            if !zeros(data_start + end..data_start + start) {
                return Err("column block padding is not zero".into());
            }
            end = start + m.len as usize;
            total += m.values as usize;
        }
        if end != data_len || total != rows {
            return Err(format!(
                "mini-blocks cover {end} of {data_len} data bytes and {total} of {rows} rows"
            ));
        }
        Ok(BlockHeader {
            encoding,
            value_width,
            flags,
            rows,
            dictionary,
            minis,
            data_start,
        })
    }

    /// The verified bytes of mini-block `i` of `raw`.
    pub fn mini_bytes<'a>(&self, raw: &'a [u8], i: usize) -> Result<&'a [u8], String> {
        let m = &self.minis[i];
        let start = self.data_start + m.offset as usize;
        let bytes = &raw[start..start + m.len as usize];
        if checksum(bytes) != m.checksum {
            return Err(format!("mini-block {i} checksum mismatch"));
        }
        Ok(bytes)
    }

    /// The first row of each mini-block, and the rows in all, as one list.
    fn starts(&self) -> Vec<usize> {
        let mut at = 0;
        let mut out = Vec::with_capacity(self.minis.len() + 1);
        for m in &self.minis {
            out.push(at);
            at += m.values as usize;
        }
        out.push(at);
        out
    }
}

/// A mini-block's validity bitmap and the bytes after it. Mini-blocks with nulls begin with
/// a bitmap of one bit per value (1 = valid), padded with zeros to a multiple of 8 bytes.
pub(crate) fn split_validity<'a>(
    bytes: &'a [u8],
    m: &MiniBlock,
) -> Result<(Option<&'a [u8]>, &'a [u8]), String> {
    if m.nulls == 0 {
        return Ok((None, bytes));
    }
    let len = (m.values as usize).div_ceil(8);
    let padded = len.next_multiple_of(8);
    if bytes.len() < padded {
        return Err("mini-block shorter than its validity bitmap".into());
    }
    let valid = BooleanBuffer::new(
        arrow::buffer::Buffer::from(&bytes[..len]),
        0,
        m.values as usize,
    );
    if m.values - valid.count_set_bits() as u32 != m.nulls {
        return Err("mini-block validity disagrees with its null count".into());
    }
    Ok((Some(&bytes[..len]), &bytes[padded..]))
}

/// Appends the padded validity bitmap of `array[range]` to `out` when it has nulls.
pub(crate) fn write_validity(array: &dyn Array, range: Range<usize>, out: &mut Vec<u8>) -> usize {
    let Some(nulls) = array.logical_nulls() else {
        return 0;
    };
    let part = nulls.slice(range.start, range.len());
    if part.null_count() == 0 {
        return 0;
    }
    let start = out.len();
    let mut bits = vec![0u8; range.len().div_ceil(8)];
    for (i, valid) in part.iter().enumerate() {
        if valid {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&bits);
    let pad = (out.len() - start).next_multiple_of(8) - (out.len() - start);
    out.extend(std::iter::repeat_n(0, pad));
    part.null_count()
}

/// Collects the validity of decoded mini-blocks into one null buffer.
#[derive(Debug, Default)]
pub(crate) struct ValidityBuilder {
    bits: Option<arrow::array::BooleanBufferBuilder>,
    len: usize,
}

impl ValidityBuilder {
    pub(crate) fn append(&mut self, validity: Option<&[u8]>, values: usize) {
        match (validity, &mut self.bits) {
            (None, None) => {}
            (None, Some(b)) => b.append_n(values, true),
            (Some(v), bits) => {
                let b = bits.get_or_insert_with(|| {
                    let mut b = arrow::array::BooleanBufferBuilder::new(self.len + values);
                    b.append_n(self.len, true);
                    b
                });
                b.append_packed_range(0..values, v);
            }
        }
        self.len += values;
    }

    /// Appends values `part` of a mini-block of `n` values with bitmap `validity`.
    pub(crate) fn append_range(&mut self, validity: Option<&[u8]>, part: Range<usize>, n: usize) {
        match validity {
            Some(bits) if part.start == 0 && part.end == n => self.append(Some(bits), n),
            Some(bits) => {
                let mut sub = arrow::array::BooleanBufferBuilder::new(part.len());
                sub.append_packed_range(part.clone(), bits);
                let b = sub.finish();
                self.append(Some(b.values()), part.len());
            }
            None => self.append(None, part.len()),
        }
    }

    pub(crate) fn finish(self) -> Option<NullBuffer> {
        self.bits.map(|mut b| NullBuffer::new(b.finish()))
    }
}

/// Rows `range` of each selected mini-block: which mini-blocks overlap `rows`, and the part
/// of each that is wanted.
fn selection(header: &BlockHeader, rows: Range<usize>) -> Vec<(usize, Range<usize>)> {
    let starts = header.starts();
    (0..header.minis.len())
        .filter_map(|i| {
            let (s, e) = (starts[i], starts[i + 1]);
            let lo = rows.start.max(s);
            let hi = rows.end.min(e);
            (lo < hi).then(|| (i, lo - s..hi - s))
        })
        .collect()
}

/// Encodes `array` as the bytes of a column block.
pub fn encode(array: &ArrayRef) -> crate::error::Result<Vec<u8>> {
    let t = array.data_type();
    Ok(match fixed::kind_of(t) {
        Some(kind) => fixed::encode(array.as_ref(), kind),
        None => match t {
            DataType::Boolean => boolean::encode(array.as_ref()),
            _ if bytes::handles(t) => bytes::encode(array.as_ref()),
            _ => ipc_fallback::encode(array)?,
        },
    })
}

/// Decodes the whole block `raw`, which must hold `rows` values of `data_type`, verifying
/// the header and every mini-block.
pub fn decode(raw: &::bytes::Bytes, data_type: &DataType, rows: usize) -> Result<ArrayRef, String> {
    decode_rows(raw, data_type, rows, 0..rows)
}

/// Decodes rows `want` of the block `raw` (which holds `rows` values of `data_type`),
/// verifying and decoding only the mini-blocks they fall in.
pub fn decode_rows(
    raw: &::bytes::Bytes,
    data_type: &DataType,
    rows: usize,
    want: Range<usize>,
) -> Result<ArrayRef, String> {
    let header = BlockHeader::parse(raw)?;
    if header.rows != rows {
        return Err(format!(
            "column block holds {} rows where the leaf says {rows}",
            header.rows
        ));
    }
    if want.start > want.end || want.end > rows {
        return Err(format!("rows {want:?} asked of a block of {rows}"));
    }
    let picked = selection(&header, want.clone());
    let array = match (fixed::kind_of(data_type), header.encoding) {
        (Some(kind), _) => fixed::decode(raw, &header, &picked, data_type, kind)?,
        (None, Encoding::Bitmap) if *data_type == DataType::Boolean => {
            boolean::decode(raw, &header, &picked)?
        }
        (None, Encoding::ArrowIpc) => {
            let whole = ipc_fallback::decode(raw, &header, data_type, rows)?;
            return Ok(whole.slice(want.start, want.len()));
        }
        (None, _) if bytes::handles(data_type) => bytes::decode(raw, &header, &picked, data_type)?,
        (None, e) => {
            return Err(format!(
                "a {e:?} block cannot hold values of type {data_type}"
            ));
        }
    };
    if array.len() != want.len() {
        return Err(format!(
            "decoded {} rows where {} were asked",
            array.len(),
            want.len()
        ));
    }
    Ok(array)
}

/// Decodes the whole block `raw` (`rows` values of the string or binary type `data_type`)
/// as a `Dictionary(Int32, data_type)` array: a dictionary block hands over its codes and
/// dictionary without gathering values; any other block is decoded and dictionary-encoded.
pub fn decode_dictionary(
    raw: &::bytes::Bytes,
    data_type: &DataType,
    rows: usize,
) -> Result<ArrayRef, String> {
    let header = BlockHeader::parse(raw)?;
    if header.rows != rows {
        return Err(format!(
            "column block holds {} rows where the leaf says {rows}",
            header.rows
        ));
    }
    if header.encoding == Encoding::Dictionary && bytes::handles(data_type) {
        return bytes::decode_dictionary(raw, &header, data_type);
    }
    let values = decode(raw, data_type, rows)?;
    let as_dictionary =
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(data_type.clone()));
    arrow::compute::cast(&values, &as_dictionary).map_err(|e| e.to_string())
}

/// Fails unless the keyframe layer can store `data_type`: every Arrow type but
/// dictionary-encoded ones, whose blocks would depend on dictionary state outside them. The
/// writer stores dictionary-encoded input as its value type, so a table's schema never holds
/// one.
pub fn check_storable(column: &str, data_type: &DataType) -> crate::error::Result<()> {
    let bad = match data_type {
        DataType::Dictionary(..) => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            matches!(f.data_type(), DataType::Dictionary(..))
        }
        _ => false,
    };
    if bad {
        return Err(crate::error::Error::UnsupportedType {
            column: column.to_string(),
            data_type: data_type.to_string(),
        });
    }
    Ok(())
}

/// The encoding of the block `raw`, from its verified header.
pub fn encoding_of(raw: &[u8]) -> Result<Encoding, String> {
    Ok(BlockHeader::parse(raw)?.encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::*;
    use arrow::datatypes::{Field, Int32Type, TimeUnit};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn round_trip(a: &ArrayRef) -> Encoding {
        let raw = ::bytes::Bytes::from(encode(a).unwrap());
        let back = decode(&raw, a.data_type(), a.len()).unwrap();
        assert_eq!(back.as_ref(), a.as_ref(), "{:?}", a.data_type());
        encoding_of(&raw).unwrap()
    }

    fn sample_columns(n: usize) -> Vec<ArrayRef> {
        let ids: Vec<i64> = (0..n as i64).map(|i| i * 3 + 1_000_000).collect();
        let words = [
            "new",
            "paid",
            "shipped",
            "delivered",
            "cancelled",
            "returned",
        ];
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int32Array::from_iter(
                (0..n).map(|i| (i % 7 != 0).then_some((i % 20) as i32 - 5)),
            )),
            Arc::new(UInt64Array::from_iter_values(
                (0..n as u64).map(|i| u64::MAX - i * 977),
            )),
            Arc::new(Int8Array::from_iter_values(
                (0..n).map(|i| (i as i8).wrapping_mul(37)),
            )),
            Arc::new(Float64Array::from_iter((0..n).map(|i| {
                (i % 11 != 0).then_some((i * 7919 % 100_000) as f64 / 100.0)
            }))),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| (i as f64).sqrt()),
            )),
            Arc::new(Float32Array::from_iter_values(
                (0..n).map(|i| (i % 1000) as f32 / 10.0),
            )),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 13 != 0).then_some(words[i * 7 % 6])),
            )),
            Arc::new(LargeStringArray::from_iter_values((0..n).map(|i| {
                format!(
                    "note-{}-{}",
                    i * 2_654_435_761 % 1_000_003,
                    "x".repeat(i % 30)
                )
            }))),
            Arc::new(BinaryArray::from_iter(
                (0..n).map(|i| (i % 5 != 0).then(|| vec![(i % 251) as u8; i % 9])),
            )),
            Arc::new(StringViewArray::from_iter_values(
                (0..n).map(|i| words[i % 6]),
            )),
            Arc::new(BooleanArray::from_iter(
                (0..n).map(|i| (i % 3 != 0).then_some(i % 2 == 0)),
            )),
            Arc::new(Date32Array::from_iter_values(
                (0..n as i32).map(|i| 19_000 + i / 100),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                (0..n as i64).map(|i| 1_700_000_000_000 + i * 1_000),
            )),
            Arc::new(
                Decimal128Array::from_iter_values((0..n as i128).map(|i| i * 1_000_000_007))
                    .with_precision_and_scale(38, 4)
                    .unwrap(),
            ),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..n).map(|i| Some(vec![Some(i as i32), None])),
            )),
            Arc::new(NullArray::new(n)),
        ]
    }

    #[test]
    fn every_supported_type_round_trips_in_blocks_of_any_length() {
        for n in [1, 2, 7, 4095, 4096, 4097, 10_000] {
            for a in sample_columns(n) {
                round_trip(&a);
                // A slice encodes like the values it holds.
                if n > 3 {
                    let s = a.slice(1, n - 2);
                    round_trip(&s);
                }
            }
        }
    }

    #[test]
    fn each_column_shape_gets_the_encoding_its_cost_estimate_favours() {
        let cols = sample_columns(20_000);
        let kinds: Vec<Encoding> = cols.iter().map(round_trip).collect();
        assert_eq!(kinds[0], Encoding::Delta, "sorted keys");
        assert_eq!(kinds[1], Encoding::FrameOfReference);
        assert_eq!(kinds[4], Encoding::DecimalFloat, "cents");
        assert_eq!(kinds[5], Encoding::Plain, "irrational floats");
        assert_eq!(kinds[7], Encoding::Dictionary, "six statuses");
        assert_eq!(kinds[10], Encoding::Dictionary, "views");
        assert_eq!(kinds[11], Encoding::Bitmap);
        assert_eq!(kinds[15], Encoding::ArrowIpc, "lists fall back");
        // Sorted ids in steps of 3 take no bits at all beyond each mini-block's header.
        let ids = encode(&cols[0]).unwrap();
        assert!(ids.len() < 20_000 / 8, "{} bytes", ids.len());
    }

    #[test]
    fn random_text_is_zstd_compressed_and_short_text_is_not() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        let alnum = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let text: ArrayRef = Arc::new(StringArray::from_iter_values((0..5000).map(|_| {
            (0..24)
                .map(|_| alnum[next() % alnum.len()] as char)
                .collect::<String>()
        })));
        assert_eq!(round_trip(&text), Encoding::ZstdBytes);
        let raw = encode(&text).unwrap();
        assert!(raw.len() < 5000 * 24 * 85 / 100, "{} bytes", raw.len());
        let tiny: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert_eq!(round_trip(&tiny), Encoding::PlainBytes);
    }

    #[test]
    fn floats_that_are_not_exact_decimals_keep_their_bits() {
        let odd: ArrayRef = Arc::new(Float64Array::from(vec![
            0.1,
            -0.0,
            0.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            12.34,
            f64::MIN_POSITIVE,
        ]));
        let raw = ::bytes::Bytes::from(encode(&odd).unwrap());
        let back = decode(&raw, &DataType::Float64, 8).unwrap();
        let bits = |a: &ArrayRef| -> Vec<u64> {
            a.as_primitive::<arrow::datatypes::Float64Type>()
                .values()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&back), bits(&odd));
    }

    #[test]
    fn a_point_read_decodes_exactly_the_rows_asked() {
        for a in sample_columns(10_000) {
            let raw = ::bytes::Bytes::from(encode(&a).unwrap());
            for want in [0..1, 4095..4097, 9_999..10_000, 100..8_200, 5..5] {
                let part = decode_rows(&raw, a.data_type(), 10_000, want.clone()).unwrap();
                assert_eq!(part.as_ref(), a.slice(want.start, want.len()).as_ref());
            }
            assert!(decode_rows(&raw, a.data_type(), 10_000, 9_999..10_001).is_err());
        }
    }

    #[test]
    fn every_flipped_byte_of_a_block_is_reported_never_read_as_data() {
        let cols = sample_columns(300);
        for a in cols.iter().filter(|a| a.data_type() != &DataType::Null) {
            let good = encode(a).unwrap();
            for at in 0..good.len() {
                let mut bad = good.clone();
                bad[at] ^= 0x10;
                let raw = ::bytes::Bytes::from(bad);
                match decode(&raw, a.data_type(), 300) {
                    Err(_) => {}
                    Ok(back) => panic!(
                        "{:?}: flip at {at} of {} read as data (equal: {})",
                        a.data_type(),
                        good.len(),
                        back.as_ref() == a.as_ref()
                    ),
                }
            }
        }
    }

    #[test]
    fn a_block_read_as_a_dictionary_holds_the_same_values() {
        for a in sample_columns(9000) {
            if !bytes::handles(a.data_type()) {
                continue;
            }
            let raw = ::bytes::Bytes::from(encode(&a).unwrap());
            let d = decode_dictionary(&raw, a.data_type(), 9000).unwrap();
            assert!(matches!(d.data_type(), DataType::Dictionary(..)));
            let back = arrow::compute::cast(&d, a.data_type()).unwrap();
            assert_eq!(back.as_ref(), a.as_ref());
        }
    }

    #[test]
    fn a_block_read_as_another_type_is_refused() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let raw = ::bytes::Bytes::from(encode(&a).unwrap());
        for t in [
            DataType::Int32,
            DataType::UInt64,
            DataType::Float64,
            DataType::Utf8,
            DataType::Boolean,
        ] {
            assert!(decode(&raw, &t, 3).is_err(), "{t}");
        }
        assert!(decode(&raw, &DataType::Timestamp(TimeUnit::Second, None), 3).is_ok());
        let _ = Field::new("unused", DataType::Null, true);
    }

    proptest! {
        #[test]
        fn integers_with_nulls_round_trip(values in proptest::collection::vec(proptest::option::of(any::<i64>()), 1..9000)) {
            let a: ArrayRef = Arc::new(Int64Array::from(values));
            round_trip(&a);
        }

        #[test]
        fn strings_with_nulls_round_trip(values in proptest::collection::vec(proptest::option::of("[a-c]{0,3}|.{0,40}"), 1..3000)) {
            let a: ArrayRef = Arc::new(StringArray::from(values));
            round_trip(&a);
        }

        #[test]
        fn floats_round_trip_bit_for_bit(values in proptest::collection::vec(proptest::option::of(any::<f64>()), 1..5000), cents in any::<bool>()) {
            let values: Vec<Option<f64>> = if cents {
                values.into_iter().map(|v| v.map(|f| ((f % 1e6) * 100.0).round() / 100.0)).collect()
            } else { values };
            let a: ArrayRef = Arc::new(Float64Array::from(values.clone()));
            let raw = ::bytes::Bytes::from(encode(&a).unwrap());
            let back = decode(&raw, &DataType::Float64, values.len()).unwrap();
            let back = back.as_primitive::<arrow::datatypes::Float64Type>();
            for (i, v) in values.iter().enumerate() {
                match v {
                    Some(f) => prop_assert_eq!(back.value(i).to_bits(), f.to_bits()),
                    None => prop_assert!(back.is_null(i)),
                }
            }
        }

        #[test]
        fn hostile_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), rows in 0usize..50) {
            let raw = ::bytes::Bytes::from(bytes);
            for t in [DataType::Int64, DataType::Utf8, DataType::Float64, DataType::Boolean] {
                let _ = decode(&raw, &t, rows);
            }
        }
    }
}
