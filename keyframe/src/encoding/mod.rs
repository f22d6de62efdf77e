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
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

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
#[derive(Debug)]
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
    /// Which mini-blocks' checksums this header has seen match: a header kept between reads
    /// ([`PointIndex`]) verifies each mini-block once.
    verified: Vec<AtomicBool>,
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
        let verified = minis.iter().map(|_| AtomicBool::new(false)).collect();
        Ok(BlockHeader {
            encoding,
            value_width,
            flags,
            rows,
            dictionary,
            minis,
            data_start,
            verified,
        })
    }

    /// The verified bytes of mini-block `i` of `raw`.
    pub fn mini_bytes<'a>(&self, raw: &'a [u8], i: usize) -> Result<&'a [u8], String> {
        let m = &self.minis[i];
        let start = self.data_start + m.offset as usize;
        let bytes = &raw[start..start + m.len as usize];
        if self.verified[i].load(AtomicOrdering::Relaxed) {
            return Ok(bytes);
        }
        if checksum(bytes) != m.checksum {
            return Err(format!("mini-block {i} checksum mismatch"));
        }
        self.verified[i].store(true, AtomicOrdering::Relaxed);
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
/// of each that is wanted, given the first row of each mini-block and the rows in all
/// (`starts`, as [`BlockHeader::starts`] lists them).
fn selection(starts: &[usize], rows: Range<usize>) -> Vec<(usize, Range<usize>)> {
    let minis = starts.len().saturating_sub(1);
    // The first mini-block ending after `rows.start`; those before it hold none of `rows`.
    let first = starts[1..].partition_point(|end| *end <= rows.start);
    (first..minis)
        .take_while(|&i| starts[i] < rows.end)
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

/// The verified header of `raw`, which must hold `rows` values.
fn header_of(raw: &[u8], rows: usize) -> Result<BlockHeader, String> {
    let header = BlockHeader::parse(raw)?;
    if header.rows != rows {
        return Err(format!(
            "column block holds {} rows where the leaf says {rows}",
            header.rows
        ));
    }
    Ok(header)
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
    let header = header_of(raw, rows)?;
    decode_picked(raw, &header, &header.starts(), data_type, want)
}

/// A block's bytes, its verified header and the first row of each of its mini-blocks: what
/// point reads of a block keep between reads, so that each reads and verifies only its
/// mini-block, without finding the block in its pack again.
#[derive(Debug)]
pub struct PointIndex {
    raw: ::bytes::Bytes,
    header: BlockHeader,
    starts: Vec<usize>,
}

impl PointIndex {
    /// Parses and verifies the header of `raw`, which must hold `rows` values, and keeps
    /// `raw` (a reference to the same bytes, not a copy).
    pub fn new(raw: &::bytes::Bytes, rows: usize) -> Result<Self, String> {
        let header = header_of(raw, rows)?;
        let starts = header.starts();
        Ok(PointIndex {
            raw: raw.clone(),
            header,
            starts,
        })
    }

    /// The rows of the block.
    pub fn rows(&self) -> usize {
        self.header.rows
    }

    /// The mini-block holding row `row` and the rows it holds; `None` past the last row or
    /// for an Arrow IPC block (one stream, no mini-blocks to read apart).
    pub fn mini_of(&self, row: usize) -> Option<(usize, Range<usize>)> {
        if self.header.encoding == Encoding::ArrowIpc || row >= self.header.rows {
            return None;
        }
        let i = self.starts.partition_point(|s| *s <= row) - 1;
        Some((i, self.starts[i]..self.starts[i + 1]))
    }

    /// True when reading any row of a mini-block decompresses it whole (zstd-compressed
    /// strings or binaries), so keeping it decoded saves later reads that work.
    pub fn whole_minis(&self) -> bool {
        self.header.encoding == Encoding::ZstdBytes
    }

    /// Decodes rows `want` of the block, verifying and decoding only the mini-blocks they
    /// fall in.
    pub fn decode(&self, data_type: &DataType, want: Range<usize>) -> Result<ArrayRef, String> {
        decode_picked(&self.raw, &self.header, &self.starts, data_type, want)
    }

    /// Bytes it holds in memory, for caches (the block's bytes are mapped, not held).
    pub fn memory_size(&self) -> usize {
        96 + self.header.minis.len() * (std::mem::size_of::<MiniBlock>() + 8)
    }
}

/// Decodes rows `want` of the block `raw` whose verified header is `header`, given the first
/// row of each of its mini-blocks (`starts`, as [`BlockHeader::starts`] lists them).
fn decode_picked(
    raw: &::bytes::Bytes,
    header: &BlockHeader,
    starts: &[usize],
    data_type: &DataType,
    want: Range<usize>,
) -> Result<ArrayRef, String> {
    let rows = header.rows;
    if want.start > want.end || want.end > rows {
        return Err(format!("rows {want:?} asked of a block of {rows}"));
    }
    if let Some(stored) = written_as(data_type, header) {
        // A block written before the column's type was widened (or, read at a version
        // before the widening, after it): decoded as written, then cast.
        let array = decode_picked(raw, header, starts, &stored, want)?;
        return arrow::compute::cast(&array, data_type).map_err(|e| e.to_string());
    }
    let picked = selection(starts, want.clone());
    let array = match (fixed::kind_of(data_type), header.encoding) {
        (Some(kind), _) => fixed::decode(raw, header, &picked, data_type, kind)?,
        (None, Encoding::Bitmap) if *data_type == DataType::Boolean => {
            boolean::decode(raw, header, &picked)?
        }
        (None, Encoding::ArrowIpc) => {
            let whole = ipc_fallback::decode(raw, header, data_type, rows)?;
            return Ok(whole.slice(want.start, want.len()));
        }
        (None, _) if bytes::handles(data_type) => bytes::decode(raw, header, &picked, data_type)?,
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

/// The type a fixed-width block was written as when it is a column's other width than
/// `data_type` (a column's type widened since or later): an integer of the same signedness or
/// a float, by the block's value width. `None` when `data_type` is how it was written, or
/// when no widening leads from one to the other (then decoding reports the mismatch).
fn written_as(data_type: &DataType, header: &BlockHeader) -> Option<DataType> {
    use DataType::*;
    let width = fixed::kind_of(data_type)?.width();
    if header.value_width == width || header.value_width == 0 {
        return None;
    }
    Some(match (data_type, header.value_width) {
        (Int8 | Int16 | Int32 | Int64, 1) => Int8,
        (Int8 | Int16 | Int32 | Int64, 2) => Int16,
        (Int8 | Int16 | Int32 | Int64, 4) => Int32,
        (Int8 | Int16 | Int32 | Int64, 8) => Int64,
        (UInt8 | UInt16 | UInt32 | UInt64, 1) => UInt8,
        (UInt8 | UInt16 | UInt32 | UInt64, 2) => UInt16,
        (UInt8 | UInt16 | UInt32 | UInt64, 4) => UInt32,
        (UInt8 | UInt16 | UInt32 | UInt64, 8) => UInt64,
        (Float16 | Float32 | Float64, 2) => Float16,
        (Float16 | Float32 | Float64, 4) => Float32,
        (Float16 | Float32 | Float64, 8) => Float64,
        _ => return None,
    })
}

/// Decodes the whole block `raw` (`rows` values of the string or binary type `data_type`)
/// as a `Dictionary(Int32, data_type)` array: a dictionary block hands over its codes and
/// dictionary without gathering values; any other block is decoded and dictionary-encoded.
pub fn decode_dictionary(
    raw: &::bytes::Bytes,
    data_type: &DataType,
    rows: usize,
) -> Result<ArrayRef, String> {
    let header = header_of(raw, rows)?;
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
mod tests;
