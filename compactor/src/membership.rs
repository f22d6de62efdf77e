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

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
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

impl Membership {
    /// The payload (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 3 * (self.live.len() + 2 * self.hidden.len()));
        out.extend_from_slice(&self.frames.to_le_bytes());
        out.extend_from_slice(&(self.live.len() as u32).to_le_bytes());
        for (from, to) in &self.live {
            put_varint(&mut out, u64::from(*from));
            put_varint(&mut out, u64::from(to - from));
        }
        out.extend_from_slice(&(self.hidden.len() as u64).to_le_bytes());
        let mut last = 0;
        for (ordinal, from, to) in &self.hidden {
            put_varint(&mut out, ordinal - last);
            put_varint(&mut out, u64::from(*from));
            put_varint(&mut out, u64::from(to - from));
            last = *ordinal;
        }
        out
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
        let mut live = Vec::with_capacity((rows as usize).min(bytes.len() / 2));
        for _ in 0..rows {
            live.push(r.stretch(frames, "a live")?);
        }
        let count = u64::from_le_bytes(r.fixed("hidden count")?);
        let mut hidden = Vec::with_capacity((count as usize).min(bytes.len() / 3));
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
        if r.at != bytes.len() {
            return Err(format!(
                "membership: {} bytes after the last stretch",
                bytes.len() - r.at
            ));
        }
        Ok(Membership {
            frames,
            live,
            hidden,
        })
    }

    /// The bitmaps of frame `i`: the keyframe rows hidden and the residual rows live there.
    /// The two are computed side by side (rayon), each in one pass.
    pub fn frame(&self, i: u32) -> BFrame {
        let (live, hidden) = rayon::join(
            || {
                RoaringBitmap::from_sorted_iter(
                    self.live
                        .iter()
                        .enumerate()
                        .filter(|(_, (from, to))| (*from..*to).contains(&i))
                        .map(|(r, _)| r as u32),
                )
            },
            // Sorted by ordinal, and a row hidden at `i` lies in one stretch of its ordinal.
            || {
                RoaringTreemap::from_sorted_iter(
                    self.hidden
                        .iter()
                        .filter(|(_, from, to)| (*from..*to).contains(&i))
                        .map(|(o, _, _)| *o),
                )
            },
        );
        BFrame {
            hidden: hidden.unwrap_or_default(),
            live: live.unwrap_or_default(),
        }
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
