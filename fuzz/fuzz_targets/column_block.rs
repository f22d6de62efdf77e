//! A column block's bytes (format 3: header, index and mini-blocks), decoded as one of the
//! storable types with a row count, whole and as a point read: an error or a column, never a
//! panic. When the flags byte asks, the block's checksums are recomputed first, so inputs
//! reach the decoders behind them instead of stopping at a checksum mismatch.
#![no_main]

use arrow::datatypes::{DataType, Field, TimeUnit};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    if data.len() < 4 {
        return;
    }
    let types = [
        DataType::Int64,
        DataType::Int32,
        DataType::UInt8,
        DataType::Float64,
        DataType::Float32,
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Boolean,
        DataType::Binary,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Decimal128(20, 2),
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
    ];
    let data_type = &types[data[0] as usize % types.len()];
    let rows = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let mut block = data[4..].to_vec();
    if data[3] & 1 == 1 {
        reeldb_fuzz::fix_block_checksums(&mut block);
    }
    let block = bytes::Bytes::from(block);
    let _ = reeldb_keyframe::block::decode(&block, data_type, rows);
    let at = usize::from(data[3] >> 1) % rows.max(1);
    let _ = reeldb_keyframe::encoding::decode_rows(&block, data_type, rows, at..(at + 1).min(rows));
});
