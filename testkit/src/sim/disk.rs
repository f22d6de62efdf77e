//! The simulated disk's state: a namespace of names to files and directories, each as the
//! next read sees it (visible) and as a power loss would leave it (durable), with the writes
//! and namespace operations between the two; and its mutating steps, each a possible crash
//! point shown to the observer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reeldb_keyframe::{Error, Result};

use super::SimStorage;

/// A file's identity: what a name links to, and what outlives renames.
pub(super) type Inode = u64;

/// A name in the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    Dir,
    File(Inode),
}

/// A write not yet made durable.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

/// One file's bytes as the next read sees them, as they are durable, and the writes between.
#[derive(Debug, Clone, Default)]
pub(super) struct FileState {
    /// What the next read sees.
    pub(super) visible: Vec<u8>,
    /// What survives a power loss.
    pub(super) durable: Vec<u8>,
    /// Writes not yet synced, in order.
    pub(super) pending: Vec<Pending>,
}

/// A namespace operation not yet made durable.
#[derive(Debug, Clone)]
pub(super) enum NsOp {
    Link(PathBuf, Entry),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl NsOp {
    /// The directory whose sync makes this operation durable.
    pub(super) fn dir(&self) -> &Path {
        let name = match self {
            NsOp::Link(p, _) | NsOp::Unlink(p) | NsOp::Rename(_, p) => p,
        };
        name.parent().unwrap_or(Path::new(""))
    }

    /// Carries the operation out on `names`.
    pub(super) fn apply(&self, names: &mut BTreeMap<PathBuf, Entry>) {
        match self {
            NsOp::Link(p, e) => {
                names.insert(p.clone(), *e);
            }
            NsOp::Unlink(p) => {
                names.remove(p);
            }
            NsOp::Rename(from, to) => {
                if let Some(e) = names.remove(from) {
                    names.insert(to.clone(), e);
                }
            }
        }
    }
}

/// The whole simulated disk: its namespace and files, visible and durable, and the state of
/// the simulated process (steps taken, a planned crash, the capacity, the observer).
#[derive(Debug, Clone)]
pub(super) struct Disk {
    /// The namespace as the next operation sees it.
    pub(super) visible: BTreeMap<PathBuf, Entry>,
    /// The namespace as a power loss would leave it.
    pub(super) durable: BTreeMap<PathBuf, Entry>,
    /// Namespace operations not yet synced, in order.
    pub(super) pending_ns: Vec<NsOp>,
    /// Every file, linked or not.
    pub(super) files: HashMap<Inode, FileState>,
    next_inode: Inode,
    /// Mutating steps taken.
    pub(super) steps: u64,
    /// The step at which the simulated process dies, if any.
    pub(super) crash_at: Option<u64>,
    /// True once the simulated process has died.
    pub(super) crashed: bool,
    /// Bytes the disk holds at most (the visible length of every linked file).
    pub(super) capacity: Option<u64>,
    /// Called with a frozen copy of the disk before every mutating step.
    pub(super) observer: Option<Observer>,
}

/// A callback shown the disk before every mutating step: every crash point.
#[derive(Clone)]
pub(super) struct Observer(pub(super) Arc<dyn Fn(SimStorage) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Disk {
    /// A disk holding only the root directory.
    pub(super) fn empty() -> Self {
        let root = BTreeMap::from([(PathBuf::new(), Entry::Dir)]);
        Disk {
            visible: root.clone(),
            durable: root,
            pending_ns: Vec::new(),
            files: HashMap::new(),
            next_inode: 1,
            steps: 0,
            crash_at: None,
            crashed: false,
            capacity: None,
            observer: None,
        }
    }

    /// A disk holding exactly `names` and the durable contents `files`, all of it durable.
    pub(super) fn settled(
        names: BTreeMap<PathBuf, Entry>,
        contents: HashMap<Inode, Vec<u8>>,
    ) -> Self {
        let next_inode = contents.keys().max().map_or(1, |m| m + 1);
        Disk {
            visible: names.clone(),
            durable: names,
            files: contents
                .into_iter()
                .map(|(ino, data)| {
                    let file = FileState {
                        visible: data.clone(),
                        durable: data,
                        pending: Vec::new(),
                    };
                    (ino, file)
                })
                .collect(),
            next_inode,
            ..Disk::empty()
        }
    }

    /// Takes one mutating step, or fails if the simulated process has died.
    pub(super) fn step(&mut self, path: &Path) -> Result<()> {
        if self.crashed || self.crash_at == Some(self.steps) {
            self.crashed = true;
            return Err(crashed(path));
        }
        if let Some(observer) = &self.observer {
            (observer.0)(SimStorage::from_disk(self.frozen()));
        }
        self.steps += 1;
        Ok(())
    }

    /// This disk as it stands, with no observer and no planned crash.
    pub(super) fn frozen(&self) -> Disk {
        Disk {
            observer: None,
            crash_at: None,
            crashed: false,
            ..self.clone()
        }
    }

    /// Fails if the simulated process has died.
    pub(super) fn alive(&self, path: &Path) -> Result<()> {
        if self.crashed {
            return Err(crashed(path));
        }
        Ok(())
    }

    /// The file `path` names.
    pub(super) fn file(&self, path: &Path) -> Result<Inode> {
        match self.visible.get(path) {
            Some(Entry::File(ino)) => Ok(*ino),
            Some(Entry::Dir) => Err(Error::io(path, std::io::Error::other("is a directory"))),
            None => Err(not_found(path)),
        }
    }

    /// Fails unless the directory that would hold `path` exists.
    pub(super) fn parent_exists(&self, path: &Path) -> Result<()> {
        let parent = path.parent().unwrap_or(Path::new(""));
        match self.visible.get(parent) {
            Some(Entry::Dir) => Ok(()),
            _ => Err(not_found(parent)),
        }
    }

    /// Links `path` to `entry` (visible now, durable after a sync of its directory).
    pub(super) fn link(&mut self, path: &Path, entry: Entry) {
        let op = NsOp::Link(path.to_path_buf(), entry);
        op.apply(&mut self.visible);
        self.pending_ns.push(op);
    }

    /// Creates an empty file at `path` (a mutating step).
    pub(super) fn create(&mut self, path: &Path) -> Result<Inode> {
        self.parent_exists(path)?;
        self.step(path)?;
        let ino = self.next_inode;
        self.next_inode += 1;
        self.files.insert(ino, FileState::default());
        self.link(path, Entry::File(ino));
        Ok(ino)
    }

    /// Bytes held: the visible length of every linked file.
    fn used(&self) -> u64 {
        self.visible
            .values()
            .filter_map(|e| match e {
                Entry::File(ino) => self.files.get(ino).map(|f| f.visible.len() as u64),
                Entry::Dir => None,
            })
            .sum()
    }

    /// Writes `data` at `at` of file `ino` (visible now, durable after a sync).
    pub(super) fn write(&mut self, path: &Path, ino: Inode, at: u64, data: &[u8]) -> Result<()> {
        if let Some(capacity) = self.capacity {
            let len = self.files.get(&ino).map_or(0, |f| f.visible.len() as u64);
            let growth = (at + data.len() as u64).saturating_sub(len);
            if self.used() + growth > capacity {
                return Err(Error::io(path, crate::Fault::Enospc.io_error()));
            }
        }
        self.step(path)?;
        let file = self.files.entry(ino).or_default();
        apply_write(&mut file.visible, at, data);
        file.pending.push(Pending::Write {
            at,
            data: data.to_vec(),
        });
        Ok(())
    }

    /// Sets file `ino`'s length to `len` (visible now, durable after a sync).
    pub(super) fn set_len(&mut self, path: &Path, ino: Inode, len: u64) -> Result<()> {
        self.step(path)?;
        let file = self.files.entry(ino).or_default();
        file.visible.resize(len as usize, 0);
        file.pending.push(Pending::SetLen(len));
        Ok(())
    }

    /// Makes file `ino`'s writes durable; `failed` drops them instead (a failed fdatasync).
    pub(super) fn sync_file(&mut self, path: &Path, ino: Inode, failed: bool) -> Result<()> {
        self.step(path)?;
        let file = self.files.entry(ino).or_default();
        if failed {
            file.pending.clear();
        } else {
            for write in std::mem::take(&mut file.pending) {
                write.apply(&mut file.durable);
            }
        }
        Ok(())
    }

    /// Makes the namespace operations under `dir` durable.
    pub(super) fn sync_dir(&mut self, dir: &Path) -> Result<()> {
        self.step(dir)?;
        let (done, kept): (Vec<NsOp>, Vec<NsOp>) = std::mem::take(&mut self.pending_ns)
            .into_iter()
            .partition(|op| op.dir() == dir);
        for op in &done {
            op.apply(&mut self.durable);
        }
        self.pending_ns = kept;
        Ok(())
    }
}

impl Pending {
    /// Carries the write out on `data`.
    pub(super) fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Pending::Write { at, data: bytes } => apply_write(data, *at, bytes),
            Pending::SetLen(len) => data.resize(*len as usize, 0),
        }
    }
}

/// Writes `data` at `at` of `file`, extending it with zeros as needed.
pub(super) fn apply_write(file: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if file.len() < at + data.len() {
        file.resize(at + data.len(), 0);
    }
    file[at..at + data.len()].copy_from_slice(data);
}

/// The error every operation of a dead process fails with.
fn crashed(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::other("simulated crash: the process is gone"),
    )
}

/// The error for a name that does not exist.
pub(super) fn not_found(path: &Path) -> Error {
    Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound))
}
