//! Magic numbers, format versions and little-endian encoding helpers shared by every
//! structure this crate writes. design/FORMAT.md is the prose form of what is here.

/// First bytes of a pack file.
pub const PACK_MAGIC: [u8; 8] = *b"REELPACK";
/// Length of a pack file header: magic, format version (u32), pack id (u32).
pub const PACK_HEADER_LEN: u64 = 16;
/// First four bytes of every record in a pack file ("RREC").
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RREC");
/// Bytes before a record's payload.
pub const RECORD_HEADER_LEN: usize = 32;
/// Bytes after a record's payload (the xxh3-64 checksum).
pub const RECORD_TRAILER_LEN: usize = 8;
/// The on-disk format version this build writes.
pub const FORMAT_VERSION: u32 = 7;
/// The oldest on-disk format version this build reads.
pub const OLDEST_SUPPORTED_VERSION: u32 = 7;
/// The largest record payload accepted on read, bounding allocations from corrupt lengths.
pub const MAX_RECORD_LEN: u32 = 1 << 30;

/// Appends little-endian fields to a byte vector.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Encoder::default()
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Appends a u32 length followed by the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Keys and zone-map values are bounded far below 4 GiB by the leaf builder.
        self.u32(v.len() as u32);
        self.raw(v)
    }
    /// Appends `v` as a LEB128 varint: 7 bits a byte, lowest first, the high bit set on every
    /// byte but the last.
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                return self.u8(byte);
            }
            self.u8(byte | 0x80);
        }
    }
    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian fields from a byte slice, failing (not panicking) past its end.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A decode went past the end of its input or found an impossible value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl<'a> Decoder<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }
    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// The bytes read since `start` (an earlier [`Decoder::position`]).
    pub fn consumed_since(&self, start: usize) -> &'a [u8] {
        &self.buf[start.min(self.pos)..self.pos]
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "needs {n} bytes at {} but only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// Reads a byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    /// Reads a little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Reads `N` raw bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.array()
    }
    /// Reads a u32 length and that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Reads a LEB128 varint ([`Encoder::varint`]) of at most 5 bytes: a value below 2^35.
    pub fn varint35(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError(format!(
            "varint longer than 5 bytes at {}",
            self.pos
        )))
    }
    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }
    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

/// xxh3-64 of `data`: the checksum of records and index entries.
pub fn checksum(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

/// xxh3-128 of `data` as 16 little-endian bytes: the content address of a record.
pub fn content_hash(data: &[u8]) -> ContentHash {
    ContentHash(xxhash_rust::xxh3::xxh3_128(data).to_le_bytes())
}

/// The xxh3-128 content address of a record's uncompressed bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 16]);

impl ContentHash {
    /// A hash derived from this one and `parts`, naming something computed from the content
    /// this hash names (a cache key for a part of it, or for it at one place on disk): the
    /// xxh3-128 of the hash and the parts.
    pub fn derived(&self, parts: &[u64]) -> ContentHash {
        let mut bytes = Vec::with_capacity(16 + 8 * parts.len());
        bytes.extend_from_slice(&self.0);
        for p in parts {
            bytes.extend_from_slice(&p.to_le_bytes());
        }
        content_hash(&bytes)
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_in_little_endian() {
        let mut e = Encoder::new();
        e.u8(7).u16(0x0102).u32(0x03040506).u64(9).bytes(b"key");
        let buf = e.finish();
        assert_eq!(&buf[1..3], &[0x02, 0x01]);
        let mut d = Decoder::new(&buf);
        assert_eq!(d.u8(), Ok(7));
        assert_eq!(d.u16(), Ok(0x0102));
        assert_eq!(d.u32(), Ok(0x03040506));
        assert_eq!(d.u64(), Ok(9));
        assert_eq!(d.bytes(), Ok(&b"key"[..]));
        assert!(d.finish().is_ok());
    }

    #[test]
    fn reading_past_the_end_is_an_error_not_a_panic() {
        let mut d = Decoder::new(&[1, 2, 3]);
        assert!(d.u64().is_err());
        let mut d = Decoder::new(&[255, 255, 255, 255]);
        assert!(d.bytes().is_err());
    }
}
