//! The persistent hash array mapped trie over a node log: lookups and iteration at any
//! committed root, and [`HamtBuilder`], which applies a commit's changes in memory (loading
//! only the nodes on the paths it touches) and then appends just those paths, so every other
//! node stays shared with the earlier versions of the generation.

use std::collections::BTreeMap;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::log::{NodeLog, NodeLogWriter};
use crate::node::{MAX_DEPTH, Node, NodeRef, chunk};

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

/// A slot of an in-memory branch.
#[derive(Debug)]
enum Slot {
    Entry(Entry),
    Child(Child),
}

/// A child: still on disk, or loaded (and possibly changed) in memory.
#[derive(Debug)]
enum Child {
    Stored(NodeRef),
    Loaded(Box<MemNode>),
}

#[derive(Debug)]
enum MemNode {
    Branch(BTreeMap<u32, Slot>),
    Collision(Vec<Entry>),
}

impl MemNode {
    fn from_node(node: &Node) -> MemNode {
        match node {
            Node::Collision(entries) => MemNode::Collision(entries.clone()),
            Node::Branch {
                datamap,
                nodemap,
                entries,
                children,
            } => {
                let (datamap, nodemap) = (*datamap, *nodemap);
                let mut slots = BTreeMap::new();
                let (mut entries, mut children) =
                    (entries.iter().cloned(), children.iter().copied());
                for c in 0..32u32 {
                    let bit = 1u32 << c;
                    if datamap & bit != 0
                        && let Some(e) = entries.next()
                    {
                        slots.insert(c, Slot::Entry(e));
                    } else if nodemap & bit != 0
                        && let Some(r) = children.next()
                    {
                        slots.insert(c, Slot::Child(Child::Stored(r)));
                    }
                }
                MemNode::Branch(slots)
            }
        }
    }
}

fn load<'c>(child: &'c mut Child, log: &NodeLog) -> Result<&'c mut MemNode> {
    if let Child::Stored(r) = child {
        *child = Child::Loaded(Box::new(MemNode::from_node(&*log.read(*r)?)));
    }
    match child {
        Child::Loaded(node) => Ok(node),
        Child::Stored(r) => Err(too_deep(log, Some(*r))),
    }
}

fn insert(node: &mut MemNode, depth: u32, entry: Entry, log: &NodeLog) -> Result<Option<Entry>> {
    if depth > MAX_DEPTH + 1 {
        return Err(too_deep(log, None));
    }
    if let MemNode::Collision(entries) = node {
        if entries[0].hash == entry.hash {
            return Ok(match entries.binary_search_by(|e| e.key.cmp(&entry.key)) {
                Ok(i) => Some(std::mem::replace(&mut entries[i], entry)),
                Err(i) => {
                    entries.insert(i, entry);
                    None
                }
            });
        }
        // A different hash reached this collision: it becomes a branch holding the collision
        // one level down.
        let hash = entries[0].hash;
        let collision = std::mem::replace(node, MemNode::Branch(BTreeMap::new()));
        if let MemNode::Branch(slots) = node {
            slots.insert(
                chunk(hash, depth),
                Slot::Child(Child::Loaded(Box::new(collision))),
            );
        }
    }
    let MemNode::Branch(slots) = node else {
        return Err(too_deep(log, None));
    };
    let c = chunk(entry.hash, depth);
    match slots.remove(&c) {
        None => {
            slots.insert(c, Slot::Entry(entry));
            Ok(None)
        }
        Some(Slot::Entry(old)) if old.key == entry.key => {
            slots.insert(c, Slot::Entry(entry));
            Ok(Some(old))
        }
        Some(Slot::Entry(old)) => {
            let sub = if old.hash == entry.hash {
                let mut pair = vec![old, entry];
                pair.sort_by(|a, b| a.key.cmp(&b.key));
                MemNode::Collision(pair)
            } else {
                let mut b = MemNode::Branch(BTreeMap::from([(
                    chunk(old.hash, depth + 1),
                    Slot::Entry(old),
                )]));
                insert(&mut b, depth + 1, entry, log)?;
                b
            };
            slots.insert(c, Slot::Child(Child::Loaded(Box::new(sub))));
            Ok(None)
        }
        Some(Slot::Child(mut child)) => {
            let result = insert(load(&mut child, log)?, depth + 1, entry, log);
            slots.insert(c, Slot::Child(child));
            result
        }
    }
}

fn mem_get(
    node: &MemNode,
    depth: u32,
    hash: u64,
    key: &[u8],
    log: &NodeLog,
) -> Result<Option<Entry>> {
    match node {
        MemNode::Collision(entries) => Ok(entries.iter().find(|e| e.key == key).cloned()),
        MemNode::Branch(slots) => match slots.get(&chunk(hash, depth)) {
            None => Ok(None),
            Some(Slot::Entry(e)) => Ok((e.key == key).then(|| e.clone())),
            Some(Slot::Child(Child::Loaded(n))) => mem_get(n, depth + 1, hash, key, log),
            // An unchanged subtree: continue from its root, which sits at depth + 1.
            Some(Slot::Child(Child::Stored(r))) => mem_get(
                &MemNode::from_node(&*log.read(*r)?),
                depth + 1,
                hash,
                key,
                log,
            ),
        },
    }
}

fn write(node: MemNode, out: &mut NodeLogWriter) -> Result<NodeRef> {
    match node {
        MemNode::Collision(entries) => out.append(Node::Collision(entries)),
        MemNode::Branch(slots) => {
            let (mut datamap, mut nodemap) = (0u32, 0u32);
            let (mut entries, mut children) = (Vec::new(), Vec::new());
            for (c, slot) in slots {
                match slot {
                    Slot::Entry(e) => {
                        datamap |= 1 << c;
                        entries.push(e);
                    }
                    Slot::Child(Child::Stored(r)) => {
                        nodemap |= 1 << c;
                        children.push(r);
                    }
                    Slot::Child(Child::Loaded(n)) => {
                        nodemap |= 1 << c;
                        children.push(write(*n, out)?);
                    }
                }
            }
            out.append(Node::Branch {
                datamap,
                nodemap,
                entries,
                children,
            })
        }
    }
}

/// Applies one commit's changes to the trie at a committed root.
#[derive(Debug)]
pub struct HamtBuilder {
    root: Option<Child>,
}

impl HamtBuilder {
    /// A builder starting from `root` (`None`: an empty trie).
    pub fn new(root: Option<NodeRef>) -> Self {
        HamtBuilder {
            root: root.map(Child::Stored),
        }
    }

    /// The entry for `key` as the builder stands (changes so far included).
    pub fn get(&self, log: &NodeLog, hash: u64, key: &[u8]) -> Result<Option<Entry>> {
        match &self.root {
            None => Ok(None),
            Some(Child::Stored(r)) => get(log, Some(*r), hash, key),
            Some(Child::Loaded(n)) => mem_get(n, 0, hash, key, log),
        }
    }

    /// Inserts or replaces the entry for `entry.key`; returns the entry it replaced.
    pub fn insert(&mut self, log: &NodeLog, entry: Entry) -> Result<Option<Entry>> {
        let root = self
            .root
            .get_or_insert_with(|| Child::Loaded(Box::new(MemNode::Branch(BTreeMap::new()))));
        insert(load(root, log)?, 0, entry, log)
    }

    /// Appends the changed paths to `out` and returns the new root (shared with the old one
    /// where nothing changed).
    pub fn commit(self, out: &mut NodeLogWriter) -> Result<Option<NodeRef>> {
        match self.root {
            None => Ok(None),
            Some(Child::Stored(r)) => Ok(Some(r)),
            Some(Child::Loaded(n)) => write(*n, out).map(Some),
        }
    }
}
