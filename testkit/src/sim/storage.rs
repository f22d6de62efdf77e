//! [`Storage`] over the simulated disk: each operation counted against the fault plan and the
//! crash state, and carried out as the steps `LocalStorage` takes; [`AppendFile`]s on it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use reeldb_keyframe::storage::{AppendFile, LockGuard, Storage};
use reeldb_keyframe::{Error, Result};

use super::SimStorage;
use super::disk::{Entry, Inode, NsOp, not_found};
use crate::plan::OpKind;

/// A file of the simulated disk opened for appending.
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
