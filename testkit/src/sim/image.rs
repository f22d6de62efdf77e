//! The images a failure leaves: after the process is killed (everything visible survives),
//! after a power loss that kept nothing unsynced, and after a power loss at a random point of
//! the unsynced operations (see the module documentation of `sim`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SimStorage;
use super::disk::{Disk, Entry, FileState, Inode, Pending, apply_write};

impl SimStorage {
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
}

/// Every inode a namespace links.
fn linked(names: &BTreeMap<PathBuf, Entry>) -> impl Iterator<Item = Inode> + '_ {
    names.values().filter_map(|e| match e {
        Entry::File(ino) => Some(*ino),
        Entry::Dir => None,
    })
}

/// True if every directory above `path` is in `names`.
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
