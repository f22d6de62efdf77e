//! Gathered column blocks: a column of a row batch (a B-frame residual's) whose values are
//! mostly a keyframe's, stored as picks into the column blocks of the keyframe leaves its
//! rows fall in, plus a block of its own values for the other rows, instead of every value
//! again (design/ARCHITECTURE.md, "Gathered residual columns"). A residual row is mostly an
//! earlier version of a key the next keyframe holds, so the columns its update did not
//! change are the keyframe's values.
//!
//! The payload is a column block record's (record kind 1), told apart by its first byte, which
//! no encoding uses:
//!
//! ```text
//! 0  encoding    u8   10 (GATHERED_ENCODING)
//! 1  reserved    [3]  0
//! 4  rows        u32  values the block reads
//! 8  base_count  u32, then per base: RecordRef (32), rows u32: the keyframe column blocks
//!                picked from, in order; their rows, concatenated, are the "base rows"
//! .. has_own     u8   0 or 1
//! .. own         RecordRef (32): column block of the own values (zeros when has_own = 0)
//! .. own_rows    u32  values of the own block (0 when has_own = 0)
//! .. picks_len   u32  bytes of the picks
//! .. picks       one LEB128 varint per row: 0 = the row's value is the next own value;
//!                p > 0 = it is base row (previous base row + p - 1), the previous base
//!                row starting at 0, so base rows never decrease
//! .. checksum    u64  xxh3-64 of every byte before it
//! ```

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};

use crate::cache::Decoded;
use crate::error::{Error, Result};
use crate::format::{DecodeError, Decoder, Encoder, checksum};
use crate::node::RecordRef;
use crate::pack::pack_path;
use crate::point::PointSource;
use crate::tree::Tree;

/// The tag deriving the cache key of a decoded gathered block from its hash.
const GATHERED_TAG: u64 = u64::MAX - 2;

/// The first byte of a gathered block's payload (encodings 1 to 9 are the mini-block ones).
pub const GATHERED_ENCODING: u8 = 10;

/// Whether a column block payload is a gathered block.
pub fn is_gathered(raw: &[u8]) -> bool {
    raw.first() == Some(&GATHERED_ENCODING)
}

/// Where one row of a gathered block reads its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Row `1` of base block `0`.
    Base(u32, u32),
    /// The own block's row.
    Own(u32),
}

/// A decoded gathered block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    /// The blocks its base rows come from, with their rows, in order.
    pub bases: Vec<(RecordRef, u32)>,
    /// The block of its own values and their number, if any row has one.
    pub own: Option<(RecordRef, u32)>,
    /// Each row's source, in row order; base rows never go back (by base, then row), own
    /// rows count up from 0.
    pub picks: Vec<Pick>,
}

impl Gathered {
    /// Rows the block reads.
    pub fn rows(&self) -> usize {
        self.picks.len()
    }

    /// The payload's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut starts = Vec::with_capacity(self.bases.len());
        let mut total = 0u64;
        for (_, rows) in &self.bases {
            starts.push(total);
            total += u64::from(*rows);
        }
        let mut picks = Encoder::new();
        let mut previous = 0u64;
        for pick in &self.picks {
            let v = match *pick {
                Pick::Own(_) => 0,
                Pick::Base(b, r) => {
                    let at = starts[b as usize] + u64::from(r);
                    let v = at - previous + 1;
                    previous = at;
                    v
                }
            };
            picks.varint(v);
        }
        let picks = picks.finish();
        let mut e = Encoder::new();
        e.u8(GATHERED_ENCODING)
            .raw(&[0; 3])
            .u32(self.picks.len() as u32)
            .u32(self.bases.len() as u32);
        for (base, rows) in &self.bases {
            base.encode(&mut e);
            e.u32(*rows);
        }
        match &self.own {
            Some((own, rows)) => {
                e.u8(1);
                own.encode(&mut e);
                e.u32(*rows);
            }
            None => {
                e.u8(0).raw(&[0; 32]).u32(0);
            }
        }
        e.u32(picks.len() as u32).raw(&picks);
        let mut bytes = e.finish();
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes
    }

    /// Parses and checks a payload: its checksum, and every pick within its blocks.
    pub fn decode(raw: &[u8]) -> Result<Self, DecodeError> {
        let body_len = raw
            .len()
            .checked_sub(8)
            .ok_or_else(|| DecodeError("gathered block shorter than its checksum".into()))?;
        let (body, sum) = raw.split_at(body_len);
        if checksum(body).to_le_bytes() != sum {
            return Err(DecodeError("gathered block checksum mismatch".into()));
        }
        let mut d = Decoder::new(body);
        if d.u8()? != GATHERED_ENCODING || d.fixed::<3>()? != [0; 3] {
            return Err(DecodeError("not a gathered block".into()));
        }
        let rows = d.u32()? as usize;
        let base_count = d.u32()? as usize;
        if base_count > d.remaining() / 36 {
            return Err(DecodeError(format!("{base_count} bases")));
        }
        let mut bases = Vec::with_capacity(base_count);
        let mut starts = Vec::with_capacity(base_count);
        let mut total = 0u64;
        for _ in 0..base_count {
            let base = RecordRef::decode(&mut d)?;
            let rows = d.u32()?;
            starts.push(total);
            total += u64::from(rows);
            bases.push((base, rows));
        }
        let has_own = d.u8()?;
        let own_ref = RecordRef::decode(&mut d)?;
        let own_rows = d.u32()?;
        let own = match has_own {
            0 if own_rows == 0 => None,
            1 => Some((own_ref, own_rows)),
            f => return Err(DecodeError(format!("bad own flag {f}"))),
        };
        let picks_bytes = d.bytes()?;
        d.finish()?;
        if rows > picks_bytes.len() {
            return Err(DecodeError(format!(
                "{rows} rows in {} bytes of picks",
                picks_bytes.len()
            )));
        }
        let mut picks = Vec::with_capacity(rows);
        // Where the next pick's varint starts; most picks take one byte, read in place.
        let mut at = 0usize;
        let (mut previous, mut owned) = (0u64, 0u32);
        // The base holding the previous base row: base rows never decrease, so each pick's
        // base is found by moving forward from there, not by a search per pick.
        let mut b = 0usize;
        for _ in 0..rows {
            let v = match picks_bytes.get(at) {
                Some(&byte) if byte < 0x80 => {
                    at += 1;
                    u64::from(byte)
                }
                _ => {
                    let mut p = Decoder::new(&picks_bytes[at..]);
                    let v = p.varint35()?;
                    at = picks_bytes.len() - p.remaining();
                    v
                }
            };
            if v == 0 {
                if owned >= own_rows {
                    return Err(DecodeError(format!("more own rows than {own_rows}")));
                }
                picks.push(Pick::Own(owned));
                owned += 1;
                continue;
            }
            let row = previous + v - 1;
            if row >= total {
                return Err(DecodeError(format!("base row {row} of {total}")));
            }
            // The last base starting at or before the row holds it (bases of no rows skipped).
            while b + 1 < starts.len() && starts[b + 1] <= row {
                b += 1;
            }
            picks.push(Pick::Base(b as u32, (row - starts[b]) as u32));
            previous = row;
        }
        if at != picks_bytes.len() {
            return Err(DecodeError(format!(
                "{} trailing bytes after the picks",
                picks_bytes.len() - at
            )));
        }
        if owned != own_rows {
            return Err(DecodeError(format!(
                "{owned} own rows picked of {own_rows}"
            )));
        }
        Ok(Gathered { bases, own, picks })
    }

    /// Approximate bytes held in memory (for the decoded cache).
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.picks.len() * std::mem::size_of::<Pick>()
    }
}

impl Tree {
    /// The own-values block of `block` if it is a gathered block (records a batch block
    /// references beside itself; its bases are keyframe leaves' blocks).
    pub fn own_block_of(&self, block: &RecordRef) -> Result<Option<RecordRef>> {
        let raw = self.source().packs.read_block(block)?;
        if !is_gathered(&raw) {
            return Ok(None);
        }
        let g = Gathered::decode(&raw)
            .map_err(|d| Error::corrupt(pack_path(block.pack), block.offset, d.0))?;
        Ok(g.own.map(|(own, _)| own))
    }

    /// The decoded gathered block `block` (bytes `raw`), which must read `rows` rows; kept
    /// in the cache, since a point read needs its picks each time.
    fn gathered(&self, block: &RecordRef, raw: &[u8], rows: usize) -> Result<Arc<Gathered>> {
        let corrupt = |reason: String| Error::corrupt(pack_path(block.pack), block.offset, reason);
        let cache = &self.source().cache;
        let key = block.hash.derived(&[GATHERED_TAG]);
        let cached = match cache.get(&key) {
            Some(Decoded::Opaque(any, _)) => any.downcast::<Gathered>().ok(),
            _ => None,
        };
        let g = match cached {
            Some(g) => g,
            None => {
                let g = Arc::new(Gathered::decode(raw).map_err(|d| corrupt(d.0))?);
                cache.insert(key, Decoded::Opaque(g.clone(), g.memory_size()));
                g
            }
        };
        if g.rows() != rows {
            return Err(corrupt(format!(
                "gathered block reads {} rows where its batch has {rows}",
                g.rows()
            )));
        }
        Ok(g)
    }

    /// The mini-block column block a gathered block picks from (a gathered block's base or
    /// own block is never itself gathered), through the cache: the residual batches of a
    /// span pick from the same keyframe blocks, so a pass over all of them (a scan, a
    /// rebase) decodes each block once while the cache holds it, not once per batch.
    fn picked_block(&self, block: &RecordRef, column: usize, rows: u32) -> Result<ArrayRef> {
        let t = self.layout().schema.field(column).data_type();
        let cache = &self.source().cache;
        if let Some(Decoded::Column(a)) = cache.get(&block.hash)
            && a.data_type() == t
            && a.len() == rows as usize
        {
            return Ok(a);
        }
        let raw = self.source().packs.read_block(block)?;
        if is_gathered(&raw) {
            return Err(Error::corrupt(
                pack_path(block.pack),
                block.offset,
                "a gathered block picks from a gathered block",
            ));
        }
        let array = self.decode_block(block, &raw, column, rows as usize)?;
        cache.insert(block.hash, Decoded::Column(array.clone()));
        Ok(array)
    }

    /// Decodes every row of the gathered block `block` (bytes `raw`, `rows` values of
    /// column `column`): its base and own blocks decoded whole, then interleaved.
    pub(crate) fn read_gathered(
        &self,
        block: &RecordRef,
        raw: &[u8],
        column: usize,
        rows: usize,
    ) -> Result<ArrayRef> {
        let g = self.gathered(block, raw, rows)?;
        // Own values first, then each base, decoded whole.
        let mut decoded = Vec::with_capacity(g.bases.len() + 1);
        decoded.push(match g.own {
            Some((own, n)) => self.picked_block(&own, column, n)?,
            None => arrow::array::new_empty_array(self.layout().schema.field(column).data_type()),
        });
        for (base, n) in &g.bases {
            decoded.push(self.picked_block(base, column, *n)?);
        }
        let sources: Vec<&dyn Array> = decoded.iter().map(|a| a.as_ref()).collect();
        let picks: Vec<(usize, usize)> = g
            .picks
            .iter()
            .map(|p| match *p {
                Pick::Own(r) => (0, r as usize),
                Pick::Base(b, r) => (b as usize + 1, r as usize),
            })
            .collect();
        Ok(arrow::compute::interleave(&sources, &picks)?)
    }

    /// Rows `want` of the gathered block `block` (bytes `raw`, `rows` values of column
    /// `column`), each read from the one mini-block of its base or own block it lies in.
    pub(crate) fn read_gathered_rows(
        &self,
        block: &RecordRef,
        raw: &[u8],
        column: usize,
        rows: usize,
        want: std::ops::Range<usize>,
    ) -> Result<ArrayRef> {
        let g = self.gathered(block, raw, rows)?;
        if want.end > rows {
            return Err(Error::corrupt(
                pack_path(block.pack),
                block.offset,
                format!("rows {want:?} of a {rows}-row gathered block"),
            ));
        }
        let one = |source: &RecordRef, source_rows: u32, r: u32| -> Result<ArrayRef> {
            let source_rows = source_rows as usize;
            let PointSource::Plain(index) = self.point_source(source, source_rows)? else {
                return Err(Error::corrupt(
                    pack_path(source.pack),
                    source.offset,
                    "a gathered block picks from a gathered block",
                ));
            };
            let r = r as usize;
            self.read_plain_block_rows(source, &index, column, source_rows, r..r + 1)
        };
        let parts = g.picks[want.clone()]
            .iter()
            .map(|p| match (*p, g.own) {
                (Pick::Base(b, r), _) => {
                    let (base, n) = g.bases[b as usize];
                    one(&base, n, r)
                }
                (Pick::Own(r), Some((own, n))) => one(&own, n, r),
                // Decoding checked that own picks have an own block.
                (Pick::Own(_), None) => Err(Error::corrupt(
                    pack_path(block.pack),
                    block.offset,
                    "own pick without own values",
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        if parts.is_empty() {
            let t = self.layout().schema.field(column).data_type();
            return Ok(arrow::array::new_empty_array(t));
        }
        let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        Ok(arrow::compute::concat(&parts)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ContentHash;
    use proptest::prelude::*;

    fn rref(n: u8) -> RecordRef {
        RecordRef {
            pack: 1,
            offset: u64::from(n) * 64,
            len: 100,
            hash: ContentHash([n; 16]),
        }
    }

    proptest! {
        #[test]
        fn a_gathered_block_round_trips_and_any_cut_or_flip_is_an_error(
            // Small steps take one byte; long jumps, several (the varint's slow path).
            steps in prop::collection::vec(
                prop::option::of(prop_oneof![0u32..5, 120u32..400]),
                1..200,
            ),
            // Bases of no rows are skipped over.
            base_rows in prop::collection::vec(prop_oneof![1u32..40, 0u32..1, 200u32..900], 1..6),
        ) {
            let total: u32 = base_rows.iter().sum();
            prop_assume!(total > 0);
            let (mut at, mut owned) = (0u32, 0u32);
            let picks: Vec<Pick> = steps
                .iter()
                .map(|s| match s {
                    Some(gap) => {
                        at = (at + gap).min(total - 1);
                        let (mut b, mut r) = (0usize, at);
                        while r >= base_rows[b] {
                            r -= base_rows[b];
                            b += 1;
                        }
                        Pick::Base(b as u32, r)
                    }
                    None => {
                        owned += 1;
                        Pick::Own(owned - 1)
                    }
                })
                .collect();
            let g = Gathered {
                bases: base_rows.iter().enumerate().map(|(i, n)| (rref(i as u8 + 3), *n)).collect(),
                own: (owned > 0).then(|| (rref(2), owned)),
                picks,
            };
            let bytes = g.encode();
            prop_assert!(is_gathered(&bytes));
            prop_assert_eq!(&Gathered::decode(&bytes).unwrap(), &g);
            for cut in 0..bytes.len() {
                prop_assert!(Gathered::decode(&bytes[..cut]).is_err());
            }
            let mut flipped = bytes.clone();
            flipped[bytes.len() / 2] ^= 1;
            prop_assert!(Gathered::decode(&flipped).is_err());
        }
    }

    #[test]
    fn picks_past_the_base_block_are_refused() {
        let g = Gathered {
            bases: vec![(rref(1), 3)],
            own: None,
            picks: vec![Pick::Base(0, 1), Pick::Base(0, 3)],
        };
        assert!(Gathered::decode(&g.encode()).is_err());
    }
}
