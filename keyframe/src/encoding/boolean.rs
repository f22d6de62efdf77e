//! Booleans: each mini-block is its validity (when it has nulls) and a bitmap of the values,
//! one bit per value, least-significant bit first.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder};

use super::{
    BlockHeader, BlockWriter, Encoding, MINI_BLOCK_VALUES, ValidityBuilder, split_validity,
    write_validity,
};

/// Encodes a boolean column.
pub(crate) fn encode(array: &dyn Array) -> Vec<u8> {
    let values = array.as_boolean();
    let rows = values.len();
    let mut out = BlockWriter::new(Encoding::Bitmap, 0, 0);
    for s in (0..rows).step_by(MINI_BLOCK_VALUES) {
        let r = s..(s + MINI_BLOCK_VALUES).min(rows);
        let mut bytes = Vec::new();
        let nulls = write_validity(array, r.clone(), &mut bytes);
        let mut bits = vec![0u8; r.len().div_ceil(8)];
        let (mut lo, mut hi) = (1u64, 0u64);
        for (j, i) in r.clone().enumerate() {
            if values.is_valid(i) {
                let v = values.value(i);
                lo = lo.min(u64::from(v));
                hi = hi.max(u64::from(v));
                if v {
                    bits[j / 8] |= 1 << (j % 8);
                }
            }
        }
        if lo > hi {
            (lo, hi) = (0, 0);
        }
        bytes.extend_from_slice(&bits);
        out.push(&bytes, r.len(), nulls, lo, hi);
    }
    out.finish()
}

/// Decodes the picked rows of a boolean block.
pub(crate) fn decode(
    raw: &[u8],
    header: &BlockHeader,
    picked: &[(usize, std::ops::Range<usize>)],
) -> Result<ArrayRef, String> {
    if header.value_width != 0 || header.flags != 0 {
        return Err("boolean block with a value width or flags".into());
    }
    let total: usize = picked.iter().map(|(_, r)| r.len()).sum();
    let mut values = BooleanBufferBuilder::new(total);
    let mut validity = ValidityBuilder::default();
    for (i, part) in picked {
        let m = &header.minis[*i];
        let bytes = header.mini_bytes(raw, *i)?;
        let (valid, body) = split_validity(bytes, m)?;
        let n = m.values as usize;
        if body.len() != n.div_ceil(8) {
            return Err("boolean mini-block of the wrong length".into());
        }
        values.append_packed_range(part.clone(), body);
        validity.append_range(valid, part.clone(), n);
    }
    Ok(Arc::new(BooleanArray::new(
        values.finish(),
        validity.finish(),
    )))
}
