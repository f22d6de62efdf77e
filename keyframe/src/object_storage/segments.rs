//! How a file's bytes lie in segment objects: the objects' names, and which of them make up
//! the file now.
//!
//! File `F` is a run of segment objects `F/NAME` back to back from offset 0. A segment of
//! **generation 0** is named by its start offset alone, 16 lowercase hex digits; one of
//! generation `g` ≥ 1 by `g` in 8 hex digits, `-`, then its start. A file written whole
//! while it has several segments (or a later generation) gets a new generation, whose first
//! segment's conditional creation is the rewrite's commit point; the file is its newest
//! generation's segments, and objects of older generations are ignored until deleted.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// What is stored directly under a path: objects (name, size, ETag) and folders (names).
pub(super) struct Listing {
    pub(super) objects: Vec<(String, u64, Option<Arc<str>>)>,
    pub(super) folders: Vec<String>,
}

/// One segment of a file: its generation, where it starts, how long it is, and its ETag
/// when the object store gave one (it names the segment's bytes in the local cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    pub(super) generation: u32,
    pub(super) start: u64,
    pub(super) len: u64,
    pub(super) e_tag: Option<Arc<str>>,
}

/// The object name of the segment of generation `generation` starting at `start`.
pub(super) fn name_of(generation: u32, start: u64) -> String {
    match generation {
        0 => format!("{start:016x}"),
        g => format!("{g:08x}-{start:016x}"),
    }
}

/// The generation and start of the segment named `name`, if `name` is a segment's.
pub(super) fn parse_name(name: &str) -> Option<(u32, u64)> {
    let hex16 = |s: &str| {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    match name.split_once('-') {
        None => Some((0, hex16(name)?)),
        Some((g, start)) if g.len() == 8 && g.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let g = u32::from_str_radix(g, 16).ok().filter(|&g| g > 0)?;
            Some((g, hex16(start)?))
        }
        Some(_) => None,
    }
}

/// The length of a file made of `segments` (in order).
pub(super) fn end_of(segments: &[Segment]) -> u64 {
    segments.last().map_or(0, |s| s.start + s.len)
}

/// Every segment object `listing` names, of any generation, in no particular order.
pub(super) fn all_in(listing: &Listing) -> Vec<Segment> {
    listing
        .objects
        .iter()
        .filter_map(|(name, len, e_tag)| {
            let (generation, start) = parse_name(name)?;
            Some(Segment {
                generation,
                start,
                len: *len,
                e_tag: e_tag.clone(),
            })
        })
        .collect()
}

/// The segments of `path` that `listing` names: its newest generation's, in order, checked
/// to run back to back from 0.
pub(super) fn current_in(path: &Path, listing: &Listing) -> Result<Vec<Segment>> {
    let all = all_in(listing);
    let newest = all.iter().map(|s| s.generation).max().unwrap_or(0);
    let mut segments: Vec<Segment> = all.into_iter().filter(|s| s.generation == newest).collect();
    segments.sort_by_key(|s| s.start);
    let mut end = 0;
    for s in &segments {
        if s.start != end {
            return Err(Error::corrupt(
                path,
                end,
                format!("segments end at {end} but the next starts at {}", s.start),
            ));
        }
        end = s.start + s.len;
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_either_generation_read_back() {
        for (g, start) in [(0, 0), (0, 0x40), (1, 0), (0xabc, 1 << 40)] {
            assert_eq!(parse_name(&name_of(g, start)), Some((g, start)));
        }
        assert_eq!(name_of(0, 64), "0000000000000040");
        assert_eq!(name_of(2, 64), "00000002-0000000000000040");
        for other in [
            "lock",
            "00000000-0000000000000000",
            "0040",
            "0000000g00000000",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn the_file_is_its_newest_generation() {
        let object = |name: &str, len: u64| (name.to_string(), len, None);
        let listing = Listing {
            objects: vec![
                object(&name_of(0, 0), 64),
                object(&name_of(0, 64), 64),
                object(&name_of(1, 0), 192),
                object(&name_of(1, 192), 64),
                object("lock", 40),
            ],
            folders: Vec::new(),
        };
        let current = current_in(Path::new("f"), &listing).unwrap();
        assert_eq!(
            current
                .iter()
                .map(|s| (s.generation, s.start))
                .collect::<Vec<_>>(),
            vec![(1, 0), (1, 192)]
        );
        assert_eq!(end_of(&current), 256);
        assert_eq!(all_in(&listing).len(), 4);
    }
}
