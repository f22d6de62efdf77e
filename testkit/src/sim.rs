//! [`SimStorage`]: an in-memory disk that tracks what is visible apart from what is durable,
//! and yields the images a power loss could leave.
//!
//! The model, stricter than any real file system:
//! - An append or overwrite is visible at once and durable only after `sync` of its file.
//!   A sync that fails loses the file's unsynced writes for good (as Linux marks the pages
//!   clean after a writeback error: "fsyncgate"); they stay visible until the power goes.
//! - A creation, rename or removal is visible at once and durable only after `sync_dir` of the
//!   directory holding the name (a rename, of the directory holding its target).
//! - A power-loss image ([`SimStorage::power_loss_image`]) keeps the durable state, a random
//!   prefix of the unsynced namespace operations (file systems journal them in order) and, per
//!   file, a random ordered subset of its unsynced writes, the last one torn: cut short, or
//!   with its tail zero-filled where it extended the file (where it overwrote bytes, they keep
//!   their old value). Bytes between the old end and a later applied write read as zeros.
//! - A crash ([`SimStorage::crash_after`]) freezes the disk after a number of mutating steps:
//!   every later operation fails, as if the process died there.
//!
//! `write_atomic`, `truncate` and `overwrite` are carried out as the steps `LocalStorage`
//! takes (create, write, sync, rename, sync of the directory), so a crash can fall between
//! them. Locks behave like `flock`: held per guard, even within one process.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::Bytes;
use reeldb_keyframe::storage::{AppendFile, LockGuard, Storage};
use reeldb_keyframe::{Error, Result};

use crate::plan::{FaultPlan, OpKind};

type Inode = u64;

/// A name in the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Inode),
}

/// A write not yet made durable.
#[derive(Debug, Clone)]
enum Pending {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileState {
    visible: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

/// A namespace operation not yet made durable.
#[derive(Debug, Clone)]
enum NsOp {
    Link(PathBuf, Entry),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl NsOp {
    /// The directory whose sync makes this operation durable.
    fn dir(&self) -> &Path {
        let name = match self {
            NsOp::Link(p, _) | NsOp::Unlink(p) | NsOp::Rename(_, p) => p,
        };
        name.parent().unwrap_or(Path::new(""))
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, Entry>) {
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

#[derive(Debug, Clone)]
struct Disk {
    visible: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    pending_ns: Vec<NsOp>,
    files: HashMap<Inode, FileState>,
    next_inode: Inode,
    /// Mutating steps taken.
    steps: u64,
    /// The step at which the simulated process dies, if any.
    crash_at: Option<u64>,
    crashed: bool,
    /// Bytes the disk holds at most (the visible length of every linked file).
    capacity: Option<u64>,
    /// Called with a frozen copy of the disk before every mutating step.
    observer: Option<Observer>,
}

/// A callback shown the disk before every mutating step: every crash point.
#[derive(Clone)]
struct Observer(Arc<dyn Fn(SimStorage) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Disk {
    fn empty() -> Self {
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
    fn settled(names: BTreeMap<PathBuf, Entry>, contents: HashMap<Inode, Vec<u8>>) -> Self {
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
    fn step(&mut self, path: &Path) -> Result<()> {
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
    fn frozen(&self) -> Disk {
        Disk {
            observer: None,
            crash_at: None,
            crashed: false,
            ..self.clone()
        }
    }

    fn alive(&self, path: &Path) -> Result<()> {
        if self.crashed {
            return Err(crashed(path));
        }
        Ok(())
    }

    fn file(&self, path: &Path) -> Result<Inode> {
        match self.visible.get(path) {
            Some(Entry::File(ino)) => Ok(*ino),
            Some(Entry::Dir) => Err(Error::io(path, std::io::Error::other("is a directory"))),
            None => Err(not_found(path)),
        }
    }

    fn parent_exists(&self, path: &Path) -> Result<()> {
        let parent = path.parent().unwrap_or(Path::new(""));
        match self.visible.get(parent) {
            Some(Entry::Dir) => Ok(()),
            _ => Err(not_found(parent)),
        }
    }

    fn link(&mut self, path: &Path, entry: Entry) {
        let op = NsOp::Link(path.to_path_buf(), entry);
        op.apply(&mut self.visible);
        self.pending_ns.push(op);
    }

    /// Creates an empty file at `path` (a mutating step).
    fn create(&mut self, path: &Path) -> Result<Inode> {
        self.parent_exists(path)?;
        self.step(path)?;
        let ino = self.next_inode;
        self.next_inode += 1;
        self.files.insert(ino, FileState::default());
        self.link(path, Entry::File(ino));
        Ok(ino)
    }

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
    fn write(&mut self, path: &Path, ino: Inode, at: u64, data: &[u8]) -> Result<()> {
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

    fn set_len(&mut self, path: &Path, ino: Inode, len: u64) -> Result<()> {
        self.step(path)?;
        let file = self.files.entry(ino).or_default();
        file.visible.resize(len as usize, 0);
        file.pending.push(Pending::SetLen(len));
        Ok(())
    }

    /// Makes file `ino`'s writes durable; `failed` drops them instead (a failed fdatasync).
    fn sync_file(&mut self, path: &Path, ino: Inode, failed: bool) -> Result<()> {
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

    fn sync_dir(&mut self, dir: &Path) -> Result<()> {
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
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Pending::Write { at, data: bytes } => apply_write(data, *at, bytes),
            Pending::SetLen(len) => data.resize(*len as usize, 0),
        }
    }
}

fn apply_write(file: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if file.len() < at + data.len() {
        file.resize(at + data.len(), 0);
    }
    file[at..at + data.len()].copy_from_slice(data);
}

fn crashed(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::other("simulated crash: the process is gone"),
    )
}

fn not_found(path: &Path) -> Error {
    Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound))
}

/// Which locks are held, by path.
#[derive(Debug, Default)]
struct Locks {
    exclusive: HashMap<PathBuf, bool>,
    shared: HashMap<PathBuf, usize>,
}

#[derive(Debug)]
struct Shared {
    disk: Mutex<Disk>,
    plan: FaultPlan,
    locks: Mutex<Locks>,
    released: Condvar,
}

/// An in-memory disk with power-loss semantics; see the module documentation. Clones share
/// the same disk.
#[derive(Debug, Clone)]
pub struct SimStorage {
    shared: Arc<Shared>,
}

impl Default for SimStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl SimStorage {
    /// An empty disk holding only the root directory.
    pub fn new() -> Self {
        Self::from_disk(Disk::empty())
    }

    fn from_disk(disk: Disk) -> Self {
        SimStorage {
            shared: Arc::new(Shared {
                disk: Mutex::new(disk),
                plan: FaultPlan::new(),
                locks: Mutex::new(Locks::default()),
                released: Condvar::new(),
            }),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // Only a panicking test assertion can poison this lock; the disk stays consistent
        // because every mutation completes under it.
        self.shared.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn locks(&self) -> MutexGuard<'_, Locks> {
        self.shared.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault plan: every operation is counted there, and the one it names fails. A failed
    /// sync loses the file's unsynced writes (see the module documentation).
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.plan
    }

    /// Mutating steps taken so far (each a possible crash point).
    pub fn steps(&self) -> u64 {
        self.disk().steps
    }

    /// Lets `steps` more mutating steps happen, then freezes the disk: that step and every
    /// later operation fail, as if the process died just before it.
    pub fn crash_after(&self, steps: u64) {
        let mut disk = self.disk();
        disk.crash_at = Some(disk.steps + steps);
    }

    /// Calls `observer` with a frozen copy of the disk before every mutating step from now on
    /// (so with every crash point); the copy is independent of this disk.
    pub fn observe(&self, observer: impl Fn(SimStorage) + Send + Sync + 'static) {
        self.disk().observer = Some(Observer(Arc::new(observer)));
    }

    /// The disk as it stands now, independent of this one (pending writes included).
    pub fn snapshot(&self) -> SimStorage {
        Self::from_disk(self.disk().frozen())
    }

    /// True once a planned crash has happened.
    pub fn is_crashed(&self) -> bool {
        self.disk().crashed
    }

    /// Limits the bytes the disk holds; writes past it fail with ENOSPC. `None` lifts it.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.disk().capacity = bytes;
    }

    /// Unsynced writes and namespace operations: what a power loss may drop.
    pub fn unsynced(&self) -> usize {
        let disk = self.disk();
        disk.pending_ns.len() + disk.files.values().map(|f| f.pending.len()).sum::<usize>()
    }

    /// The disk after the process is killed but the machine stays up: everything visible
    /// survives (the page cache is intact).
    pub fn process_crash_image(&self) -> SimStorage {
        let disk = self.disk();
        let contents = linked(&disk.visible)
            .map(|ino| (ino, disk.files[&ino].visible.clone()))
            .collect();
        Self::from_disk(Disk::settled(disk.visible.clone(), contents))
    }

    /// The disk after a power loss that kept nothing unsynced.
    pub fn durable_image(&self) -> SimStorage {
        let disk = self.disk();
        let contents = linked(&disk.durable)
            .map(|ino| (ino, disk.files[&ino].durable.clone()))
            .collect();
        Self::from_disk(Disk::settled(disk.durable.clone(), contents))
    }

    /// The disk after a power loss at this moment, drawn with `rng`: see the module
    /// documentation. Everything in the image is durable and no operation is planned to fail.
    pub fn power_loss_image(&self, rng: &mut fastrand::Rng) -> SimStorage {
        let disk = self.disk();
        let mut names = disk.durable.clone();
        let kept = rng.usize(0..=disk.pending_ns.len());
        for op in &disk.pending_ns[..kept] {
            op.apply(&mut names);
        }
        // A name survives only under a directory that survives.
        let orphans: Vec<PathBuf> = names
            .keys()
            .filter(|p| !has_ancestors(&names, p))
            .cloned()
            .collect();
        for p in orphans {
            names.remove(&p);
        }
        let contents = linked(&names)
            .map(|ino| {
                let file = &disk.files[&ino];
                (ino, lossy_contents(file, rng))
            })
            .collect();
        Self::from_disk(Disk::settled(names, contents))
    }

    /// A hash of everything visible (names and contents), to recognise identical images.
    pub fn digest(&self) -> u128 {
        let disk = self.disk();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (path, entry) in &disk.visible {
            h.update(path.as_os_str().as_encoded_bytes());
            match entry {
                Entry::Dir => h.update(&[0xFF]),
                Entry::File(ino) => {
                    let data = &disk.files[ino].visible;
                    h.update(&(data.len() as u64).to_le_bytes());
                    h.update(data);
                }
            }
        }
        h.digest128()
    }

    /// Every file the namespace shows, in path order.
    pub fn files(&self) -> Vec<PathBuf> {
        let disk = self.disk();
        disk.visible
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// What `path` holds as the next read would see it, if it is a file.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.disk();
        match disk.visible.get(path) {
            Some(Entry::File(ino)) => Some(disk.files[ino].visible.clone()),
            _ => None,
        }
    }

    /// Replaces what the file `path` holds with `data`, visible and durable at once, as damage
    /// on the medium would: no step is counted and no pending write survives. Panics if `path`
    /// is not a file (a test names the files it damages from [`Self::files`]).
    pub fn damage(&self, path: &Path, data: Vec<u8>) {
        let mut disk = self.disk();
        let Some(Entry::File(ino)) = disk.visible.get(path).copied() else {
            panic!("{} is not a file of the simulated disk", path.display());
        };
        let file = disk.files.entry(ino).or_default();
        file.visible = data.clone();
        file.durable = data;
        file.pending.clear();
    }

    /// Counts an operation against the fault plan and the crash state.
    fn begin(&self, kind: OpKind, path: &Path) -> Result<MutexGuard<'_, Disk>> {
        let disk = self.disk();
        disk.alive(path)?;
        self.shared.plan.check(kind, path)?;
        Ok(disk)
    }

    /// Like [`Self::begin`] for a sync: a failed sync still takes effect (it loses writes).
    fn begin_sync(&self, path: &Path) -> Result<(MutexGuard<'_, Disk>, Option<Error>)> {
        let disk = self.disk();
        disk.alive(path)?;
        let failed = self.shared.plan.check(OpKind::Sync, path).err();
        Ok((disk, failed))
    }

    fn sync_inode(&self, path: &Path, ino: Inode) -> Result<()> {
        let (mut disk, failed) = self.begin_sync(path)?;
        disk.sync_file(path, ino, failed.is_some())?;
        failed.map_or(Ok(()), Err)
    }

    fn take_lock(&self, path: &Path, exclusive: bool, wait: bool) -> Result<Box<dyn LockGuard>> {
        {
            let mut disk = self.begin(OpKind::Lock, path)?;
            if disk.file(path).is_err() {
                disk.create(path)?;
            }
        }
        let mut locks = self.locks();
        loop {
            let held_ex = locks.exclusive.get(path).copied().unwrap_or(false);
            let held_sh = locks.shared.get(path).copied().unwrap_or(0) > 0;
            let free = !held_ex && (!exclusive || !held_sh);
            if free {
                break;
            }
            if !wait {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            locks = self
                .shared
                .released
                .wait(locks)
                .unwrap_or_else(|e| e.into_inner());
        }
        if exclusive {
            locks.exclusive.insert(path.to_path_buf(), true);
        } else {
            *locks.shared.entry(path.to_path_buf()).or_default() += 1;
        }
        Ok(Box::new(SimLock {
            sim: self.clone(),
            path: path.to_path_buf(),
            exclusive,
        }))
    }
}

/// Every inode a namespace links.
fn linked(names: &BTreeMap<PathBuf, Entry>) -> impl Iterator<Item = Inode> + '_ {
    names.values().filter_map(|e| match e {
        Entry::File(ino) => Some(*ino),
        Entry::Dir => None,
    })
}

fn has_ancestors(names: &BTreeMap<PathBuf, Entry>, path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .all(|a| matches!(names.get(a), Some(Entry::Dir)))
}

/// A file's contents after a power loss: durable bytes plus a random ordered subset of its
/// unsynced writes, the last applied one torn (a prefix) or zero-filled half the time.
fn lossy_contents(file: &FileState, rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut data = file.durable.clone();
    let chosen: Vec<&Pending> = file.pending.iter().filter(|_| rng.bool()).collect();
    let Some((last, first)) = chosen.split_last() else {
        return data;
    };
    for write in first {
        write.apply(&mut data);
    }
    match last {
        Pending::Write { at, data: bytes } if rng.bool() => {
            let kept = rng.usize(0..=bytes.len());
            let torn: Vec<u8> = if rng.bool() {
                bytes[..kept].to_vec()
            } else {
                // Past the tear, bytes the file already had keep their old value (sectors are
                // overwritten whole or not at all); only space the write added reads as zeros.
                let mut zeroed = bytes.clone();
                for (i, b) in zeroed.iter_mut().enumerate().skip(kept) {
                    *b = data.get(*at as usize + i).copied().unwrap_or(0);
                }
                zeroed
            };
            apply_write(&mut data, *at, &torn);
        }
        whole => whole.apply(&mut data),
    }
    data
}

#[derive(Debug)]
struct SimLock {
    sim: SimStorage,
    path: PathBuf,
    exclusive: bool,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut locks = self.sim.locks();
        if self.exclusive {
            locks.exclusive.remove(&self.path);
        } else if let Some(n) = locks.shared.get_mut(&self.path) {
            *n = n.saturating_sub(1);
        }
        drop(locks);
        self.sim.shared.released.notify_all();
    }
}

#[derive(Debug)]
struct SimFile {
    sim: SimStorage,
    path: PathBuf,
    inode: Inode,
}

impl AppendFile for SimFile {
    fn append(&mut self, data: &[u8]) -> Result<u64> {
        let mut disk = self.sim.begin(OpKind::Write, &self.path)?;
        let at = disk.files.get(&self.inode).map_or(0, |f| f.visible.len()) as u64;
        disk.write(&self.path, self.inode, at, data)?;
        Ok(at)
    }

    fn sync(&mut self) -> Result<()> {
        self.sim.sync_inode(&self.path, self.inode)
    }

    fn len(&self) -> u64 {
        let disk = self.sim.disk();
        disk.files
            .get(&self.inode)
            .map_or(0, |f| f.visible.len() as u64)
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut disk = self.begin(OpKind::Write, path)?;
        let mut missing: Vec<&Path> = path
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !disk.visible.contains_key(*a))
            .collect();
        missing.reverse();
        for dir in missing {
            disk.step(dir)?;
            disk.link(dir, Entry::Dir);
        }
        match disk.visible.get(path) {
            Some(Entry::Dir) => Ok(()),
            _ => Err(Error::io(path, std::io::Error::other("not a directory"))),
        }
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let disk = self.begin(OpKind::Read, path)?;
        Ok(disk.visible.contains_key(path))
    }

    fn is_dir(&self, path: &Path) -> Result<bool> {
        let disk = self.begin(OpKind::Read, path)?;
        Ok(matches!(disk.visible.get(path), Some(Entry::Dir)))
    }

    fn len(&self, path: &Path) -> Result<u64> {
        let disk = self.begin(OpKind::Read, path)?;
        let ino = disk.file(path)?;
        Ok(disk.files[&ino].visible.len() as u64)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Bytes> {
        let disk = self.begin(OpKind::Read, path)?;
        let ino = disk.file(path)?;
        let data = &disk.files[&ino].visible;
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= data.len() as u64);
        match end {
            Some(end) => Ok(Bytes::copy_from_slice(&data[offset as usize..end as usize])),
            None => Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            )),
        }
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        let disk = self.begin(OpKind::Read, path)?;
        let ino = disk.file(path)?;
        Ok(Bytes::from(disk.files[&ino].visible.clone()))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn AppendFile>> {
        let mut disk = self.begin(OpKind::Write, path)?;
        let inode = match disk.file(path) {
            Ok(ino) => ino,
            Err(_) => disk.create(path)?,
        };
        Ok(Box::new(SimFile {
            sim: self.clone(),
            path: path.to_path_buf(),
            inode,
        }))
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let ino = {
            let mut disk = self.begin(OpKind::Write, &tmp)?;
            let ino = match disk.file(&tmp) {
                Ok(ino) => {
                    disk.set_len(&tmp, ino, 0)?;
                    ino
                }
                Err(_) => disk.create(&tmp)?,
            };
            disk.write(&tmp, ino, 0, data)?;
            ino
        };
        self.sync_inode(&tmp, ino)?;
        self.rename(&tmp, path)?;
        self.sync_dir(path.parent().unwrap_or(Path::new("")))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let ino = {
            let mut disk = self.begin(OpKind::Write, path)?;
            let ino = disk.file(path)?;
            disk.set_len(path, ino, len)?;
            ino
        };
        self.sync_inode(path, ino)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut disk = self.begin(OpKind::Write, path)?;
        disk.file(path)?;
        disk.step(path)?;
        let op = NsOp::Unlink(path.to_path_buf());
        op.apply(&mut disk.visible);
        disk.pending_ns.push(op);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let disk = self.begin(OpKind::Read, dir)?;
        if !matches!(disk.visible.get(dir), Some(Entry::Dir)) {
            return Err(not_found(dir));
        }
        // BTreeMap order is by path, so direct children come out sorted by name.
        Ok(disk
            .visible
            .keys()
            .filter(|p| p.parent() == Some(dir) && !p.as_os_str().is_empty())
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let (mut disk, failed) = self.begin_sync(dir)?;
        if let Some(e) = failed {
            // A failed directory sync keeps its operations pending: a later sync may succeed.
            disk.step(dir)?;
            return Err(e);
        }
        disk.sync_dir(dir)
    }

    fn try_lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.take_lock(path, true, false)
    }

    fn lock_shared(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.take_lock(path, false, true)
    }

    fn lock_exclusive(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.take_lock(path, true, true)
    }

    fn overwrite(&self, path: &Path, data: &[u8]) -> Result<()> {
        let mut disk = self.begin(OpKind::Write, path)?;
        let ino = match disk.file(path) {
            Ok(ino) => ino,
            Err(_) => disk.create(path)?,
        };
        disk.write(path, ino, 0, data)?;
        disk.set_len(path, ino, data.len() as u64)
    }

    fn rewrite_in_place(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        let ino = {
            let mut disk = self.begin(OpKind::Write, path)?;
            let ino = disk.file(path)?;
            let len = disk.files.get(&ino).map_or(0, |f| f.visible.len() as u64);
            if offset + data.len() as u64 > len {
                return Err(Error::io(
                    path,
                    std::io::Error::other("rewrite in place past the end of the file"),
                ));
            }
            disk.write(path, ino, offset, data)?;
            ino
        };
        self.sync_inode(path, ino)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut disk = self.begin(OpKind::Write, from)?;
        disk.file(from)?;
        disk.parent_exists(to)?;
        disk.step(from)?;
        let op = NsOp::Rename(from.to_path_buf(), to.to_path_buf());
        op.apply(&mut disk.visible);
        disk.pending_ns.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Fault;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn unsynced_appends_are_visible_but_lost_in_the_durable_image() {
        let sim = SimStorage::new();
        let mut f = sim.open_append(p("f")).unwrap();
        f.append(b"kept").unwrap();
        f.sync().unwrap();
        sim.sync_dir(p("")).unwrap();
        f.append(b" lost").unwrap();
        assert_eq!(&sim.map(p("f")).unwrap()[..], b"kept lost");
        assert_eq!(&sim.durable_image().map(p("f")).unwrap()[..], b"kept");
        assert_eq!(
            &sim.process_crash_image().map(p("f")).unwrap()[..],
            b"kept lost"
        );
    }

    #[test]
    fn a_created_file_survives_power_loss_only_after_its_directory_is_synced() {
        let sim = SimStorage::new();
        sim.create_dir_all(p("d")).unwrap();
        sim.sync_dir(p("")).unwrap();
        let mut f = sim.open_append(p("d/f")).unwrap();
        f.append(b"x").unwrap();
        f.sync().unwrap();
        assert!(!sim.durable_image().exists(p("d/f")).unwrap());
        sim.sync_dir(p("d")).unwrap();
        assert_eq!(&sim.durable_image().map(p("d/f")).unwrap()[..], b"x");
    }

    #[test]
    fn a_rename_is_durable_only_after_the_directory_sync() {
        let sim = SimStorage::new();
        sim.write_atomic(p("x"), b"one").unwrap();
        let mut f = sim.open_append(p("x.new")).unwrap();
        f.append(b"two").unwrap();
        f.sync().unwrap();
        sim.rename(p("x.new"), p("x")).unwrap();
        assert_eq!(&sim.map(p("x")).unwrap()[..], b"two");
        assert_eq!(&sim.durable_image().map(p("x")).unwrap()[..], b"one");
        sim.sync_dir(p("")).unwrap();
        assert_eq!(&sim.durable_image().map(p("x")).unwrap()[..], b"two");
    }

    #[test]
    fn power_loss_images_keep_a_subset_of_unsynced_writes_in_order() {
        let sim = SimStorage::new();
        let mut f = sim.open_append(p("f")).unwrap();
        f.append(b"base").unwrap();
        f.sync().unwrap();
        sim.sync_dir(p("")).unwrap();
        f.append(b"AAAA").unwrap();
        f.append(b"BBBB").unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            let data = sim.power_loss_image(&mut rng).map(p("f")).unwrap().to_vec();
            assert!(data.starts_with(b"base"), "synced bytes always survive");
            assert!(data.len() <= 12);
            seen.insert(data);
        }
        for expected in [
            &b"base"[..],
            b"baseAAAA",
            b"base\0\0\0\0BBBB",
            b"baseAAAABBBB",
        ] {
            assert!(seen.contains(expected), "{:?} never drawn", expected);
        }
        assert!(
            seen.iter().any(|d| d.len() > 4 && d.len() < 8),
            "a torn append"
        );
    }

    #[test]
    fn a_failed_sync_loses_the_writes_it_covered_even_if_a_later_sync_succeeds() {
        let sim = SimStorage::new();
        let mut f = sim.open_append(p("f")).unwrap();
        sim.sync_dir(p("")).unwrap();
        f.append(b"data").unwrap();
        let next = sim.plan().ops();
        sim.plan().fail_at(next, Fault::Eio, false);
        assert!(f.sync().is_err());
        f.sync().unwrap();
        assert_eq!(&sim.map(p("f")).unwrap()[..], b"data", "still visible");
        assert_eq!(
            &sim.durable_image().map(p("f")).unwrap()[..],
            b"",
            "never durable"
        );
    }

    #[test]
    fn a_crash_freezes_the_disk_at_the_chosen_step() {
        let sim = SimStorage::new();
        sim.crash_after(2);
        let mut f = sim.open_append(p("f")).unwrap(); // step 1: create
        f.append(b"a").unwrap(); // step 2
        assert!(f.append(b"b").is_err());
        assert!(sim.is_crashed());
        assert!(sim.map(p("f")).is_err(), "a dead process does nothing more");
        assert_eq!(&sim.process_crash_image().map(p("f")).unwrap()[..], b"a");
    }

    #[test]
    fn writes_past_the_capacity_fail_with_enospc_and_change_nothing() {
        let sim = SimStorage::new();
        sim.set_capacity(Some(6));
        let mut f = sim.open_append(p("f")).unwrap();
        f.append(b"1234").unwrap();
        let err = f.append(b"567").unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(sim.len(p("f")).unwrap(), 4);
    }

    #[test]
    fn locks_are_exclusive_per_guard() {
        let sim = SimStorage::new();
        let held = sim.try_lock(p("LOCK")).unwrap();
        assert!(matches!(sim.try_lock(p("LOCK")), Err(Error::Locked { .. })));
        drop(held);
        let _shared = sim.lock_shared(p("gate")).unwrap();
        let _again = sim.lock_shared(p("gate")).unwrap();
        assert!(sim.try_lock(p("gate")).is_err());
    }
}
