//! A column block's bytes (an Arrow IPC stream of one single-column batch), decoded as one of
//! the storable types with a row count: an error or a column, never a panic.
#![no_main]

use arrow::datatypes::{DataType, TimeUnit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    reeldb_fuzz::let_guarded_panics_unwind();
    if data.len() < 3 {
        return;
    }
    let types = [
        DataType::Int64,
        DataType::Int32,
        DataType::Float64,
        DataType::Utf8,
        DataType::Boolean,
        DataType::Binary,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Decimal128(20, 2),
    ];
    let data_type = &types[data[0] as usize % types.len()];
    let rows = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let _ = reeldb_keyframe::block::decode(data[3..].to_vec(), data_type, rows);
});
