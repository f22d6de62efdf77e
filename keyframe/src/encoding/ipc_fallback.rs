//! Types without an encoding of their own (lists, structs, maps, fixed-size binaries, nulls):
//! the column as one Arrow IPC stream holding a single one-column batch, lz4-compressed, in a
//! single mini-block: ipc_len u32, then the lz4 block. The general-purpose fallback.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;

use super::{BlockHeader, BlockWriter, Encoding};

/// Name of the single field inside the stream; the table's own name is applied on read.
const BLOCK_FIELD: &str = "c";
/// The largest IPC stream a block may claim, bounding a corrupt length's allocation.
const MAX_IPC_LEN: usize = crate::format::MAX_RECORD_LEN as usize;

/// Encodes `array` as a one-mini-block Arrow IPC block.
pub(crate) fn encode(array: &ArrayRef) -> crate::error::Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        BLOCK_FIELD,
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![array.clone()])?;
    let mut ipc = Vec::with_capacity(array.get_array_memory_size() + 256);
    {
        let mut w = StreamWriter::try_new(&mut ipc, &schema)?;
        w.write(&batch)?;
        w.finish()?;
    }
    let mut bytes = (ipc.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&lz4_flex::block::compress(&ipc));
    let mut out = BlockWriter::new(Encoding::ArrowIpc, 0, 0);
    // An IPC block is one mini-block whatever its length, so its row count is not bounded by
    // MINI_BLOCK_VALUES; the index records it as the block's rows.
    out.push(&bytes, array.len(), array.null_count(), 0, 0);
    Ok(out.finish())
}

/// Decodes an Arrow IPC block of `rows` values of `data_type`.
pub(crate) fn decode(
    raw: &[u8],
    header: &BlockHeader,
    data_type: &DataType,
    rows: usize,
) -> Result<ArrayRef, String> {
    if header.minis.len() != 1 || header.value_width != 0 || header.flags != 0 {
        return Err("an Arrow IPC block holds one mini-block, without value width or flags".into());
    }
    let bytes = header.mini_bytes(raw, 0)?;
    if bytes.len() < 4 {
        return Err("Arrow IPC mini-block too short".into());
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len > MAX_IPC_LEN {
        return Err(format!("Arrow IPC stream of {len} bytes"));
    }
    let ipc = lz4_flex::block::decompress(&bytes[4..], len).map_err(|e| format!("lz4: {e}"))?;
    if ipc.len() != len {
        return Err(format!(
            "lz4 gave {} bytes where the block says {len}",
            ipc.len()
        ));
    }
    crate::ipc::guarded(|| decode_stream(ipc, data_type, rows))
}

fn decode_stream(raw: Vec<u8>, data_type: &DataType, rows: usize) -> Result<ArrayRef, String> {
    crate::ipc::check_stream(&raw)?;
    let mut buffer = Buffer::from(raw);
    let mut decoder = StreamDecoder::new();
    let mut found: Option<RecordBatch> = None;
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer).map_err(|e| e.to_string())? {
            Some(batch) if found.is_none() => found = Some(batch),
            Some(_) => return Err("column block holds more than one batch".into()),
            None => {}
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    let batch = found.ok_or("column block holds no batch")?;
    if batch.num_columns() != 1 {
        return Err(format!(
            "column block holds {} columns",
            batch.num_columns()
        ));
    }
    let array = batch.column(0).clone();
    if array.data_type() != data_type {
        return Err(format!(
            "column block holds {} where {} was expected",
            array.data_type(),
            data_type
        ));
    }
    if array.len() != rows {
        return Err(format!(
            "column block holds {} rows where the leaf says {}",
            array.len(),
            rows
        ));
    }
    Ok(array)
}
