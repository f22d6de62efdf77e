//! Which versions of a compacted span see which rows, stored as births and deaths: every
//! residual row is live over one stretch of consecutive frames (a B-frame span's versions, in
//! order), and every hidden row of the kept keyframe is hidden over a few stretches. So a
//! span stores one [`Membership`] for all its versions, instead of two bitmaps per version:
//! bytes in proportion to the residual, not to versions times the rows each hides.
//!
//! A version's bitmaps are computed from it when the version is first read ([`frame`]), in
//! one pass over the stretches.
//!
//! Payload (design/FORMAT.md, "B-frame membership"), every varint unsigned LEB128:
//!
//! ```text
//! frames        u32
//! residual rows u32, then per residual row: varint from, varint (to - from)
//! hidden count  u64, then per stretch, sorted by (ordinal, from):
//!               varint (ordinal - previous ordinal), varint from, varint (to - from)
//! ```
//!
//! [`frame`]: Membership::frame

use reeldb_keyframe::format::Encoder;
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::bframe::BFrame;

/// The most frames a span may have (16Mi versions over one keyframe): a larger count in a
/// payload is damage, refused before anything is sized by it.
pub const MAX_SPAN_FRAMES: u32 = 1 << 24;

/// The births and deaths of a B-frame span (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Frames (versions) of the span.
    pub frames: u32,
    /// Per residual row, in residual order: the frames `from..to` it is live at.
    pub live: Vec<(u32, u32)>,
    /// Keyframe ordinals hidden over frames `from..to`, sorted by (ordinal, from), stretches
    /// of one ordinal disjoint and not adjacent.
    pub hidden: Vec<(u64, u32, u32)>,
}

/// Reads the payload, failing with a description on anything malformed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let end = self.at + N;
        let b = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| format!("membership truncated in {what}"))?;
        self.at = end;
        // The slice is exactly N bytes long.
        Ok(b.try_into().unwrap_or([0; N]))
    }

    #[inline]
    fn varint(&mut self, what: &str) -> Result<u64, String> {
        // Most values (frames of a span, gaps between hidden ordinals) fit one byte.
        if let Some(&b) = self.bytes.get(self.at)
            && b < 0x80
        {
            self.at += 1;
            return Ok(u64::from(b));
        }
        self.long_varint(what)
    }

    fn long_varint(&mut self, what: &str) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| format!("membership truncated in {what}"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(v);
            }
        }
        Err(format!("membership: varint too long in {what}"))
    }

    #[inline]
    fn stretch(&mut self, frames: u32, what: &str) -> Result<(u32, u32), String> {
        // Within a span of under 128 frames both varints are one byte: read as a pair.
        if let (Some(&from), Some(&len)) = (self.bytes.get(self.at), self.bytes.get(self.at + 1))
            && (from | len) < 0x80
            && len > 0
            && u32::from(from) + u32::from(len) <= frames
        {
            self.at += 2;
            return Ok((u32::from(from), u32::from(from) + u32::from(len)));
        }
        let from = self.varint(what)?;
        let len = self.varint(what)?;
        let to = from
            .checked_add(len)
            .filter(|to| len > 0 && *to <= u64::from(frames));
        match to {
            Some(to) => Ok((from as u32, to as u32)),
            None => Err(format!(
                "membership: {what} stretch {from}+{len} outside the span's {frames} frames"
            )),
        }
    }
}

/// Payload bytes from which a decode, or a frame of as many stretches over two, is worth a
/// second thread.
const SIDE_BY_SIDE_BYTES: usize = 1 << 16;

/// Runs `a` and `b`, on a second scoped thread when `parallel`, and returns both results.
/// Not rayon's `join`: a reader decodes a membership while the scan's other threads wait for
/// it (`OverlayView` computes it once), and a rayon worker waiting in `join` steals work,
/// which may be one of those waiting scans: it would wait on itself (rayon-rs/rayon#592).
fn side_by_side<A: Send, B>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if !parallel {
        return (a(), b());
    }
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        match a.join() {
            Ok(a) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Where the first `n` varints of `bytes` end: after the `n`th byte below 0x80 (each ends a
/// varint), counted 64 bytes at a time; `None` if `bytes` holds fewer.
fn end_of_varints(bytes: &[u8], n: usize) -> Option<usize> {
    let (mut seen, mut at) = (0usize, 0usize);
    for chunk in bytes.chunks(64) {
        let ends = chunk.iter().filter(|b| **b < 0x80).count();
        if seen + ends >= n {
            return match n - seen {
                0 => Some(at),
                k => chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b < 0x80)
                    .nth(k - 1)
                    .map(|(i, _)| at + i + 1),
            };
        }
        seen += ends;
        at += chunk.len();
    }
    (n == seen).then_some(at)
}

/// The hidden section: its count, then its stretches, sorted by (ordinal, from) and those of
/// one ordinal apart.
fn decode_hidden(r: &mut Reader<'_>, frames: u32) -> Result<Vec<(u64, u32, u32)>, String> {
    let count = u64::from_le_bytes(r.fixed("hidden count")?);
    let mut hidden = Vec::with_capacity((count as usize).min(r.bytes.len() / 3));
    let mut last: Option<(u64, u32)> = None;
    for _ in 0..count {
        let delta = r.varint("a hidden ordinal")?;
        let ordinal = last
            .map_or(Some(delta), |(o, _)| o.checked_add(delta))
            .ok_or_else(|| "membership: hidden ordinal overflows".to_string())?;
        let (from, to) = r.stretch(frames, "a hidden")?;
        if let Some((o, end)) = last
            && o == ordinal
            && from <= end
        {
            return Err(format!(
                "membership: hidden stretches of ordinal {ordinal} overlap or touch"
            ));
        }
        hidden.push((ordinal, from, to));
        last = Some((ordinal, to));
    }
    Ok(hidden)
}

impl Membership {
    /// The payload (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u32(self.frames).u32(self.live.len() as u32);
        for (from, to) in &self.live {
            e.varint(u64::from(*from)).varint(u64::from(to - from));
        }
        e.u64(self.hidden.len() as u64);
        let mut last = 0;
        for (ordinal, from, to) in &self.hidden {
            e.varint(ordinal - last)
                .varint(u64::from(*from))
                .varint(u64::from(to - from));
            last = *ordinal;
        }
        e.finish()
    }

    /// Decodes a payload, checking every stretch lies within the span's frames, hidden
    /// stretches are sorted and disjoint per ordinal, and nothing follows.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let frames = u32::from_le_bytes(r.fixed("frames")?);
        if frames > MAX_SPAN_FRAMES {
            return Err(format!(
                "membership: {frames} frames, above the limit of {MAX_SPAN_FRAMES}"
            ));
        }
        let rows = u32::from_le_bytes(r.fixed("residual rows")?);
        // The live section is 2 x rows varints: it ends after that many bytes below 0x80. Both
        // sections are then decoded side by side.
        let live_end = r.at
            + end_of_varints(&bytes[r.at..], 2 * rows as usize)
                .ok_or_else(|| "membership truncated in a live".to_string())?;
        let (live, hidden) = side_by_side(
            bytes.len() >= SIDE_BY_SIDE_BYTES,
            || {
                let mut r = Reader {
                    bytes: &bytes[..live_end],
                    at: r.at,
                };
                let live = (0..rows)
                    .map(|_| r.stretch(frames, "a live"))
                    .collect::<Result<Vec<_>, _>>()?;
                match r.at == live_end {
                    true => Ok(live),
                    false => Err("membership: the live section overruns".to_string()),
                }
            },
            || {
                let mut r = Reader {
                    bytes,
                    at: live_end,
                };
                let hidden = decode_hidden(&mut r, frames)?;
                match r.at == bytes.len() {
                    true => Ok(hidden),
                    false => Err(format!(
                        "membership: {} bytes after the last stretch",
                        bytes.len() - r.at
                    )),
                }
            },
        );
        Ok(Membership {
            frames,
            live: live?,
            hidden: hidden?,
        })
    }

    /// The bitmaps of frame `i`: the keyframe rows hidden and the residual rows live there.
    /// The two are computed side by side, each in one pass.
    pub fn frame(&self, i: u32) -> BFrame {
        let large = self.live.len() + self.hidden.len() >= SIDE_BY_SIDE_BYTES / 2;
        let (live, hidden) = side_by_side(large, || self.live_at(i), || self.hidden_at(i));
        BFrame { hidden, live }
    }

    /// The residual rows live at frame `i`: one bit per row set in one pass over the rows,
    /// then made a bitmap (a scan reads most of the residual's rows, so the set is dense).
    fn live_at(&self, i: u32) -> RoaringBitmap {
        let words = self.live.chunks(64).map(|rows| {
            rows.iter().enumerate().fold(0u64, |w, (k, &(from, to))| {
                w | (u64::from((from <= i) & (i < to)) << k)
            })
        });
        let bits: Vec<u8> = words.flat_map(u64::to_le_bytes).collect();
        RoaringBitmap::from_lsb0_bytes(0, &bits)
    }

    /// The keyframe ordinals hidden at frame `i`, a bitmap per 2^32 ordinals: set as bits
    /// where the stretches are dense in the ordinals they span, else pushed in order (an
    /// ordinal hidden at `i` lies in one stretch of it, so they come ascending).
    fn hidden_at(&self, i: u32) -> RoaringTreemap {
        let mut bitmaps = Vec::new();
        let mut rest = self.hidden.as_slice();
        while let Some(&(first, _, _)) = rest.first() {
            let high = first >> 32;
            let (group, after) = rest.split_at(rest.partition_point(|(o, _, _)| o >> 32 == high));
            rest = after;
            let hidden_here = group
                .iter()
                .filter(|(_, from, to)| *from <= i && i < *to)
                .map(|(o, _, _)| *o as u32);
            let (low, last) = (first as u32, group[group.len() - 1].0 as u32);
            let base = low & !7;
            let bitmap = if ((last - base) / 8) as usize <= 16 * group.len() {
                let mut bits = vec![0u8; (last - base) as usize / 8 + 1];
                for o in hidden_here {
                    let b = (o - base) as usize;
                    bits[b / 8] |= 1 << (b % 8);
                }
                RoaringBitmap::from_lsb0_bytes(base, &bits)
            } else {
                RoaringBitmap::from_sorted_iter(hidden_here).unwrap_or_default()
            };
            if !bitmap.is_empty() {
                bitmaps.push((high as u32, bitmap));
            }
        }
        RoaringTreemap::from_bitmaps(bitmaps)
    }

    /// True when residual row `row` is live at frame `i` (one lookup).
    pub fn is_live(&self, row: u32, i: u32) -> bool {
        self.live
            .get(row as usize)
            .is_some_and(|(from, to)| (*from..*to).contains(&i))
    }

    /// True when keyframe ordinal `ordinal` is hidden at frame `i` (a binary search).
    pub fn hides(&self, ordinal: u64, i: u32) -> bool {
        let first = self.hidden.partition_point(|(o, _, _)| *o < ordinal);
        self.hidden[first..]
            .iter()
            .take_while(|(o, _, _)| *o == ordinal)
            .any(|(_, from, to)| (*from..*to).contains(&i))
    }

    /// Bytes it holds in memory, for caches.
    pub fn memory_size(&self) -> usize {
        64 + self.live.len() * 8 + self.hidden.len() * 16
    }

    /// The number of hidden rows and of live rows at every frame, in one pass.
    pub fn counts(&self) -> Vec<(u64, u64)> {
        let frames = self.frames as usize;
        let mut hidden = vec![0i64; frames + 1];
        let mut live = vec![0i64; frames + 1];
        for (_, from, to) in &self.hidden {
            hidden[*from as usize] += 1;
            hidden[*to as usize] -= 1;
        }
        for (from, to) in &self.live {
            live[*from as usize] += 1;
            live[*to as usize] -= 1;
        }
        let (mut h, mut l) = (0i64, 0i64);
        (0..frames)
            .map(|i| {
                h += hidden[i];
                l += live[i];
                (h as u64, l as u64)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_n_varints_is_found_across_chunks_and_long_varints() {
        let values: Vec<u64> = (0..200u64).map(|i| i * i * 977).collect();
        let (mut bytes, mut ends) = (Vec::new(), vec![0]);
        for v in &values {
            let mut e = Encoder::new();
            e.varint(*v);
            bytes.extend(e.finish());
            ends.push(bytes.len());
        }
        for (n, end) in ends.iter().enumerate() {
            assert_eq!(end_of_varints(&bytes, n), Some(*end), "{n} varints");
        }
        assert_eq!(end_of_varints(&bytes, values.len() + 1), None);
        assert_eq!(end_of_varints(&[], 0), Some(0));
    }
}
