//! Records: the unit stored in pack files. A record frames one column block, tree node or
//! B-frame membership with its kind, codec, lengths, content hash and a checksum. Nodes and
//! memberships are verified whole on every read; a column block's reads check its framing and leave its
//! bytes to the block's own checksums ([`payload_of_block`]).
//!
//! ```text
//! 0  magic      u32  "RREC"
//! 4  kind       u8   1 column block, 2 leaf node, 3 internal node, 5 B-frame membership
//! 5  codec      u8   0 stored raw (always for column blocks), 1 lz4 block
//! 6  reserved   u16  0
//! 8  raw_len    u32  uncompressed payload length
//! 12 stored_len u32  payload length on disk
//! 16 hash       [16] xxh3-128 of the uncompressed payload (the content address)
//! 32 payload    [stored_len]
//! .. checksum   u64  xxh3-64 of bytes 0 .. 32 + stored_len
//! ```

use crate::format::{
    ContentHash, Decoder, Encoder, MAX_RECORD_LEN, RECORD_HEADER_LEN, RECORD_MAGIC,
    RECORD_TRAILER_LEN, checksum,
};

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// One column of one leaf (design/FORMAT.md, "Column blocks"); always stored raw.
    ColumnBlock = 1,
    /// A B-tree leaf node.
    Leaf = 2,
    /// A B-tree internal node.
    Internal = 3,
    /// A B-frame span's membership: which versions see which residual and keyframe rows, as
    /// births and deaths (`reeldb_compactor::Membership`). Kind 4, the per-version roaring
    /// bitmaps of formats up to 5, is no longer written or read.
    Membership = 5,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(RecordKind::ColumnBlock),
            2 => Some(RecordKind::Leaf),
            3 => Some(RecordKind::Internal),
            5 => Some(RecordKind::Membership),
            _ => None,
        }
    }
}

const CODEC_RAW: u8 = 0;
const CODEC_LZ4: u8 = 1;

/// Frames `raw` (whose content hash is `hash`) as a record, lz4-compressing it when that
/// helps. Column blocks are always stored raw: their encodings compress where it pays, and a
/// reader takes their mini-blocks straight from the pack's memory map.
pub fn encode(kind: RecordKind, raw: &[u8], hash: ContentHash) -> Vec<u8> {
    let compressed = (kind != RecordKind::ColumnBlock)
        .then(|| lz4_flex::block::compress(raw))
        .filter(|c| c.len() < raw.len());
    let (codec, payload): (u8, &[u8]) = match &compressed {
        Some(c) => (CODEC_LZ4, c),
        None => (CODEC_RAW, raw),
    };
    let mut e = Encoder::new();
    e.u32(RECORD_MAGIC)
        .u8(kind as u8)
        .u8(codec)
        .u16(0)
        .u32(raw.len() as u32)
        .u32(payload.len() as u32)
        .raw(&hash.0)
        .raw(payload);
    let mut out = e.finish();
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The fixed fields of a record header.
#[derive(Debug, Clone, Copy)]
pub struct RecordHeader {
    /// What the record holds.
    pub kind: RecordKind,
    /// Uncompressed payload length.
    pub raw_len: u32,
    /// Payload length on disk.
    pub stored_len: u32,
    /// Content address of the uncompressed payload.
    pub hash: ContentHash,
    codec: u8,
}

impl RecordHeader {
    /// Total framed length: header, payload and trailer.
    pub fn framed_len(&self) -> usize {
        RECORD_HEADER_LEN + self.stored_len as usize + RECORD_TRAILER_LEN
    }
}

/// Parses the header at the start of `bytes`.
pub fn decode_header(bytes: &[u8]) -> Result<RecordHeader, String> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err(format!("record header truncated: {} bytes", bytes.len()));
    }
    let mut d = Decoder::new(&bytes[..RECORD_HEADER_LEN]);
    let magic = d.u32().map_err(|e| e.0)?;
    if magic != RECORD_MAGIC {
        return Err(format!("bad record magic {magic:#010x}"));
    }
    let kind_byte = d.u8().map_err(|e| e.0)?;
    let kind =
        RecordKind::from_u8(kind_byte).ok_or_else(|| format!("unknown record kind {kind_byte}"))?;
    let codec = d.u8().map_err(|e| e.0)?;
    if codec != CODEC_RAW && codec != CODEC_LZ4 {
        return Err(format!("unknown codec {codec}"));
    }
    let _reserved = d.u16().map_err(|e| e.0)?;
    let raw_len = d.u32().map_err(|e| e.0)?;
    let stored_len = d.u32().map_err(|e| e.0)?;
    if raw_len > MAX_RECORD_LEN || stored_len > MAX_RECORD_LEN {
        return Err(format!(
            "record length {raw_len}/{stored_len} out of bounds"
        ));
    }
    if codec == CODEC_RAW && raw_len != stored_len {
        return Err("raw record with differing lengths".into());
    }
    let hash = ContentHash(d.fixed().map_err(|e| e.0)?);
    Ok(RecordHeader {
        kind,
        raw_len,
        stored_len,
        hash,
        codec,
    })
}

/// The header of the record that `bytes` holds exactly (its length matches the header's).
fn framed_header(bytes: &[u8]) -> Result<RecordHeader, String> {
    let h = decode_header(bytes)?;
    if bytes.len() != h.framed_len() {
        return Err(format!(
            "record length {} does not match its header ({})",
            bytes.len(),
            h.framed_len()
        ));
    }
    Ok(h)
}

/// Verifies the framed record in `bytes` (exactly one record) against the expected kind and
/// content hash, and returns its uncompressed payload.
pub fn decode(
    bytes: &[u8],
    expect_kind: RecordKind,
    expect_hash: ContentHash,
) -> Result<Vec<u8>, String> {
    let h = framed_header(bytes)?;
    let body_end = RECORD_HEADER_LEN + h.stored_len as usize;
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[body_end..]);
    if checksum(&bytes[..body_end]) != u64::from_le_bytes(sum) {
        return Err("record checksum mismatch".into());
    }
    if h.kind != expect_kind {
        return Err(format!(
            "expected a {expect_kind:?} record, found {:?}",
            h.kind
        ));
    }
    if h.hash != expect_hash {
        return Err(format!(
            "record holds content {:?}, expected {:?} (misdirected reference)",
            h.hash, expect_hash
        ));
    }
    let payload = &bytes[RECORD_HEADER_LEN..body_end];
    match h.codec {
        CODEC_LZ4 => {
            let out = lz4_flex::block::decompress(payload, h.raw_len as usize)
                .map_err(|e| format!("lz4: {e}"))?;
            if out.len() != h.raw_len as usize {
                return Err(format!(
                    "lz4 gave {} bytes where the record says {}",
                    out.len(),
                    h.raw_len
                ));
            }
            Ok(out)
        }
        _ => Ok(payload.to_vec()),
    }
}

/// Checks the framed column block in `bytes` against its expected content hash and returns
/// the range of its payload, leaving the payload's bytes to the block's own checksums (a
/// header checksum and one per mini-block, verified as each is read): a point read verifies
/// only what it decodes. The whole-record checksum is verified by [`decode`] (verify, copy).
pub fn payload_of_block(
    bytes: &[u8],
    expect_hash: ContentHash,
) -> Result<std::ops::Range<usize>, String> {
    let h = framed_header(bytes)?;
    if h.kind != RecordKind::ColumnBlock || h.codec != CODEC_RAW {
        return Err(format!(
            "expected a raw ColumnBlock record, found {:?} (codec {})",
            h.kind, h.codec
        ));
    }
    if h.hash != expect_hash {
        return Err(format!(
            "record holds content {:?}, expected {:?} (misdirected reference)",
            h.hash, expect_hash
        ));
    }
    Ok(RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.stored_len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::content_hash;

    #[test]
    fn a_record_round_trips_compressed_and_raw() {
        for raw in [vec![7u8; 4096], (0..=255u8).collect::<Vec<_>>()] {
            let h = content_hash(&raw);
            let framed = encode(RecordKind::ColumnBlock, &raw, h);
            assert_eq!(decode(&framed, RecordKind::ColumnBlock, h).unwrap(), raw);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let raw: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        let h = content_hash(&raw);
        let framed = encode(RecordKind::Leaf, &raw, h);
        for byte in 0..framed.len() {
            for bit in 0..8 {
                let mut bad = framed.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode(&bad, RecordKind::Leaf, h).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_reference_to_other_content_is_refused() {
        let framed = encode(RecordKind::Leaf, b"abc", content_hash(b"abc"));
        let err = decode(&framed, RecordKind::Leaf, content_hash(b"abd")).unwrap_err();
        assert!(err.contains("misdirected"), "{err}");
    }
}
