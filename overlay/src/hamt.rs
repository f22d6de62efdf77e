//! The persistent hash array mapped trie over a node log: lookups and iteration at any
//! committed root, and [`update`], which applies a commit's changes by appending just the
//! nodes on the paths they touch, so every other node stays shared with the earlier versions
//! of the generation.

use reeldb_keyframe::format::Encoder;

use crate::entry::{Entry, EntryView, RowLocation, encode_entry};
use crate::error::{Error, Result};
use crate::log::{NodeLog, NodeLogWriter};
use crate::node::{
    MAX_DEPTH, Node, NodeRef, NodeView, chunk, encode_branch_header, encode_child,
    encode_collision_header,
};

fn too_deep(log: &NodeLog, r: Option<NodeRef>) -> Error {
    Error::Corrupt {
        path: log.path().to_path_buf(),
        offset: r.map_or(0, |r| r.offset),
        reason: "trie deeper than a 64-bit hash allows".into(),
    }
}

/// The entry for `key` (hashed to `hash`) in the trie at `root`.
pub fn get(log: &NodeLog, root: Option<NodeRef>, hash: u64, key: &[u8]) -> Result<Option<Entry>> {
    let Some(mut r) = root else {
        return Ok(None);
    };
    for depth in 0..=MAX_DEPTH + 1 {
        let node = log.read(r)?;
        match &*node {
            Node::Collision(entries) => {
                return Ok(entries
                    .binary_search_by(|e| e.key.as_slice().cmp(key))
                    .ok()
                    .map(|i| entries[i].clone()));
            }
            Node::Branch {
                datamap,
                nodemap,
                entries,
                children,
            } => {
                if depth > MAX_DEPTH {
                    break;
                }
                let bit = 1u32 << chunk(hash, depth);
                if datamap & bit != 0 {
                    let e = &entries[(datamap & (bit - 1)).count_ones() as usize];
                    return Ok((e.key == key).then(|| e.clone()));
                }
                if nodemap & bit == 0 {
                    return Ok(None);
                }
                r = children[(nodemap & (bit - 1)).count_ones() as usize];
            }
        }
    }
    Err(too_deep(log, Some(r)))
}

/// Calls `f` on every entry of the trie at `root` (in no particular order).
pub fn for_each(log: &NodeLog, root: Option<NodeRef>, f: &mut dyn FnMut(Entry)) -> Result<()> {
    fn walk(log: &NodeLog, r: NodeRef, depth: u32, f: &mut dyn FnMut(Entry)) -> Result<()> {
        if depth > MAX_DEPTH + 1 {
            return Err(too_deep(log, Some(r)));
        }
        match &*log.read(r)? {
            Node::Collision(entries) => entries.iter().cloned().for_each(&mut *f),
            Node::Branch {
                entries, children, ..
            } => {
                entries.iter().cloned().for_each(&mut *f);
                for c in children {
                    walk(log, *c, depth + 1, f)?;
                }
            }
        }
        Ok(())
    }
    match root {
        Some(r) => walk(log, r, 0, f),
        None => Ok(()),
    }
}

/// Calls `f` with every entry of the trie at `new` that the trie at `old` does not hold as it
/// is: the keys a later version of a generation added or changed. `new` must descend from
/// `old` by [`update`] (entries are never removed), so subtrees both share are skipped
/// unread, and the cost is that of the paths that changed.
pub fn diff(
    log: &NodeLog,
    old: Option<NodeRef>,
    new: Option<NodeRef>,
    f: &mut dyn FnMut(Entry),
) -> Result<()> {
    match (old, new) {
        (_, None) => Ok(()),
        (None, Some(n)) => for_each(log, Some(n), f),
        (Some(o), Some(n)) => diff_nodes(log, o, n, 0, f),
    }
}

fn diff_nodes(
    log: &NodeLog,
    old: NodeRef,
    new: NodeRef,
    depth: u32,
    f: &mut dyn FnMut(Entry),
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    if depth > MAX_DEPTH + 1 {
        return Err(too_deep(log, Some(new)));
    }
    let (a, b) = (log.read(old)?, log.read(new)?);
    let (
        Node::Branch {
            datamap: da,
            nodemap: na,
            entries: ea,
            children: ca,
        },
        Node::Branch {
            datamap: db,
            nodemap: nb,
            entries: eb,
            children: cb,
        },
    ) = (&*a, &*b)
    else {
        // A collision node on either side: compare the two subtrees' entries directly.
        return diff_against(log, &subtree_entries(log, old)?, new, f);
    };
    let (mut ia, mut ja, mut ib, mut jb) = (0, 0, 0, 0);
    for c in 0..32u32 {
        let bit = 1u32 << c;
        let old_entry = (da & bit != 0).then(|| {
            ia += 1;
            &ea[ia - 1]
        });
        let old_child = (na & bit != 0).then(|| {
            ja += 1;
            ca[ja - 1]
        });
        if db & bit != 0 {
            ib += 1;
            let e = &eb[ib - 1];
            if old_entry != Some(e) {
                f(e.clone());
            }
        } else if nb & bit != 0 {
            jb += 1;
            let child = cb[jb - 1];
            match (old_entry, old_child) {
                (_, Some(oc)) => diff_nodes(log, oc, child, depth + 1, f)?,
                // The old entry was pushed down into the new child.
                (Some(oe), None) => diff_against(log, std::slice::from_ref(oe), child, f)?,
                (None, None) => for_each(log, Some(child), f)?,
            }
        }
    }
    Ok(())
}

fn subtree_entries(log: &NodeLog, r: NodeRef) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for_each(log, Some(r), &mut |e| out.push(e))?;
    Ok(out)
}

/// Emits the entries under `new` that are not in `old` as they are.
fn diff_against(
    log: &NodeLog,
    old: &[Entry],
    new: NodeRef,
    f: &mut dyn FnMut(Entry),
) -> Result<()> {
    for_each(log, Some(new), &mut |e| {
        if !old.contains(&e) {
            f(e);
        }
    })
}

/// One key's change for [`update`].
#[derive(Debug, Clone, Copy)]
pub struct Edit<'a> {
    /// The key's hash.
    pub hash: u64,
    /// The memcomparable key.
    pub key: &'a [u8],
    /// The key's new row, or `None` for a tombstone.
    pub row: Option<RowLocation>,
    /// The keyframe ordinal the key shadows, if any.
    pub shadows: Option<u64>,
    /// Apply the edit only if the trie already holds the key (else it is skipped).
    pub only_if_present: bool,
}

/// What [`update`] did with one edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The key was new to the trie.
    Added,
    /// The key's entry replaced this one.
    Replaced(Entry),
    /// The edit asked for a present key and the key was absent: nothing changed.
    Skipped,
}

/// A trie after [`update`]: its root and what happened to each edit, in input order.
#[derive(Debug)]
pub struct Updated {
    /// The new root (the old one if nothing changed).
    pub root: Option<NodeRef>,
    /// One outcome per edit.
    pub outcomes: Vec<Outcome>,
}

/// The order in which the trie lays out hashes: by chunk 0 (the low five bits), then
/// chunk 1, and so on. Sorted this way, the keys under any node are contiguous.
fn trie_order(hash: u64) -> u64 {
    let high = (0..MAX_DEPTH).fold(0u64, |k, d| (k << 5) | u64::from(chunk(hash, d)));
    (high << 4) | u64::from(chunk(hash, MAX_DEPTH))
}

/// An entry on its way into a rewritten node: an edit, or an old entry copied as it is.
#[derive(Debug, Clone, Copy)]
struct Pending<'a> {
    hash: u64,
    key: &'a [u8],
    source: Source<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Edit(usize),
    Old(EntryView<'a>),
}

impl<'a> Pending<'a> {
    fn old(e: &EntryView<'a>) -> Self {
        Pending {
            hash: e.hash,
            key: e.key,
            source: Source::Old(*e),
        }
    }
}

/// The state of one [`update`]: the log's bytes as of its start, the edits and their
/// outcomes, and the writer new nodes go to.
struct Rewrite<'a, 'w> {
    map: &'a [u8],
    edits: &'a [Edit<'a>],
    outcomes: Vec<Outcome>,
    out: &'w mut NodeLogWriter,
}

impl<'a> Rewrite<'a, '_> {
    fn too_deep(&self, r: Option<NodeRef>) -> Error {
        too_deep(self.out.reader(), r)
    }

    /// Settles `edits` against the entries `old` holds for one slot: an edit of a held key
    /// replaces it, an edit asking for a present key that is absent is skipped, the rest are
    /// added. Returns the slot's entries and whether any edit took effect.
    fn settle(
        &mut self,
        mut old: Vec<Pending<'a>>,
        edits: &[Pending<'a>],
    ) -> (Vec<Pending<'a>>, bool) {
        let mut changed = false;
        // Only the slot's old entries can share a key with an edit: edit keys are distinct.
        let held_before = old.len();
        for p in edits {
            let Source::Edit(i) = p.source else { continue };
            if let Some(held) = old[..held_before].iter_mut().find(|o| o.key == p.key) {
                if let Source::Old(entry) = held.source {
                    self.outcomes[i] = Outcome::Replaced(entry.to_entry());
                }
                *held = *p;
                changed = true;
            } else if self.edits[i].only_if_present {
                self.outcomes[i] = Outcome::Skipped;
            } else {
                old.push(*p);
                changed = true;
            }
        }
        (old, changed)
    }

    fn encode(&self, e: &mut Encoder, p: &Pending<'_>) {
        match p.source {
            Source::Old(entry) => {
                e.raw(entry.bytes);
            }
            Source::Edit(i) => {
                let x = &self.edits[i];
                encode_entry(e, x.hash, x.key, x.row, x.shadows);
            }
        }
    }

    /// Writes the node at `r` with `edits` (sorted in trie order, all under `r`) applied;
    /// `None` when no edit took effect.
    fn rewrite(
        &mut self,
        r: NodeRef,
        depth: u32,
        edits: &[Pending<'a>],
    ) -> Result<Option<NodeRef>> {
        if depth > MAX_DEPTH + 1 {
            return Err(self.too_deep(Some(r)));
        }
        let (datamap, nodemap, entries, children) = match self.out.reader().view_in(self.map, r)? {
            NodeView::Collision(entries) => {
                let old = entries.iter().map(Pending::old).collect();
                let (all, changed) = self.settle(old, edits);
                return if changed {
                    self.build(depth, all).map(Some)
                } else {
                    Ok(None)
                };
            }
            NodeView::Branch {
                datamap,
                nodemap,
                entries,
                children,
            } => (datamap, nodemap, entries, children),
        };
        let (mut new_datamap, mut new_nodemap) = (0u32, 0u32);
        let mut new_entries: Vec<Pending<'a>> = Vec::with_capacity(entries.len() + 1);
        let mut new_children: Vec<NodeRef> = Vec::with_capacity(children.len() + 1);
        let (mut next_entry, mut next_child, mut at) = (0, 0, 0);
        let mut changed = false;
        for c in 0..32u32 {
            let bit = 1u32 << c;
            let start = at;
            while at < edits.len() && chunk(edits[at].hash, depth) == c {
                at += 1;
            }
            let group = &edits[start..at];
            let old: Vec<Pending<'a>> = if datamap & bit != 0 {
                next_entry += 1;
                match entries.get(next_entry - 1) {
                    Some(e) => vec![Pending::old(e)],
                    None => return Err(self.too_deep(Some(r))),
                }
            } else if nodemap & bit != 0 {
                next_child += 1;
                let Some(&child) = children.get(next_child - 1) else {
                    return Err(self.too_deep(Some(r)));
                };
                let child = match group.is_empty() {
                    true => child,
                    false => match self.rewrite(child, depth + 1, group)? {
                        Some(new) => {
                            changed = true;
                            new
                        }
                        None => child,
                    },
                };
                new_nodemap |= bit;
                new_children.push(child);
                continue;
            } else {
                Vec::new()
            };
            let (slot, took) = if group.is_empty() {
                (old, false)
            } else {
                self.settle(old, group)
            };
            changed |= took;
            match slot.len() {
                0 => {}
                1 => {
                    new_datamap |= bit;
                    new_entries.push(slot[0]);
                }
                _ => {
                    new_nodemap |= bit;
                    new_children.push(self.build(depth + 1, slot)?);
                }
            }
        }
        if !changed {
            return Ok(None);
        }
        self.write_branch(new_datamap, new_nodemap, &new_entries, &new_children)
            .map(Some)
    }

    /// Writes a new subtree at `depth` holding `all` (two or more entries with distinct keys).
    fn build(&mut self, depth: u32, mut all: Vec<Pending<'a>>) -> Result<NodeRef> {
        if all.windows(2).all(|w| w[0].hash == w[1].hash) && all.len() > 1 {
            all.sort_unstable_by(|a, b| a.key.cmp(b.key));
            let mut e = Encoder::new();
            encode_collision_header(&mut e, all.len());
            for p in &all {
                self.encode(&mut e, p);
            }
            return self.out.append_node(&e.finish());
        }
        self.build_branch(depth, all)
    }

    /// Writes a new branch at `depth` holding `all` (one or more entries with distinct keys).
    fn build_branch(&mut self, depth: u32, mut all: Vec<Pending<'a>>) -> Result<NodeRef> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep(None));
        }
        all.sort_unstable_by_key(|p| chunk(p.hash, depth));
        let (mut datamap, mut nodemap) = (0u32, 0u32);
        let (mut entries, mut children) = (Vec::new(), Vec::new());
        let mut at = 0;
        while at < all.len() {
            let c = chunk(all[at].hash, depth);
            let end = at
                + all[at..]
                    .iter()
                    .take_while(|p| chunk(p.hash, depth) == c)
                    .count();
            if end - at == 1 {
                datamap |= 1 << c;
                entries.push(all[at]);
            } else {
                nodemap |= 1 << c;
                children.push(self.build(depth + 1, all[at..end].to_vec())?);
            }
            at = end;
        }
        self.write_branch(datamap, nodemap, &entries, &children)
    }

    fn write_branch(
        &mut self,
        datamap: u32,
        nodemap: u32,
        entries: &[Pending<'_>],
        children: &[NodeRef],
    ) -> Result<NodeRef> {
        let mut e = Encoder::new();
        encode_branch_header(&mut e, datamap, nodemap);
        for p in entries {
            self.encode(&mut e, p);
        }
        for c in children {
            encode_child(&mut e, *c);
        }
        self.out.append_node(&e.finish())
    }
}

/// Applies `edits` (at most one per key) to the trie at `root`, appending to `out` only the
/// nodes on the paths they change, and returns the new root and each edit's outcome.
///
/// The edits are sorted in trie order and applied top-down in one pass: each node on a
/// changed path is read once, in place, and written once, with its unchanged entries copied
/// byte for byte.
pub fn update(
    out: &mut NodeLogWriter,
    root: Option<NodeRef>,
    edits: &[Edit<'_>],
) -> Result<Updated> {
    let mut sorted: Vec<Pending<'_>> = edits
        .iter()
        .enumerate()
        .map(|(i, e)| Pending {
            hash: e.hash,
            key: e.key,
            source: Source::Edit(i),
        })
        .collect();
    sorted.sort_unstable_by(|a, b| {
        trie_order(a.hash)
            .cmp(&trie_order(b.hash))
            .then_with(|| a.key.cmp(b.key))
    });
    if let Some(w) = sorted.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(Error::DuplicateKey {
            key: w[0].key.to_vec(),
        });
    }
    let map = out.written()?;
    let mut rewrite = Rewrite {
        map: &map,
        edits,
        outcomes: vec![Outcome::Added; edits.len()],
        out,
    };
    let root = match root {
        Some(r) => rewrite.rewrite(r, 0, &sorted)?.or(Some(r)),
        None => {
            let (all, _) = rewrite.settle(Vec::new(), &sorted);
            match all.len() {
                0 => None,
                1 => Some(rewrite.build_branch(0, all)?),
                _ => Some(rewrite.build(0, all)?),
            }
        }
    };
    Ok(Updated {
        root,
        outcomes: rewrite.outcomes,
    })
}
