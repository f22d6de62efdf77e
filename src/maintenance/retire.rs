//! Retention on an object store: files maintenance no longer needs are retired, and deleted
//! only once a retention period has passed since.
//!
//! Readers on an object store publish no leases (they write nothing), so maintenance cannot
//! see which versions they hold. Instead, what compaction, log cleaning and a catalog
//! rewrite would delete (node logs, packs, records files) is listed in a **retirement
//! record**, `retired/{ms:016}-{nonce:016x}`, `ms` the retiring run's clock in milliseconds
//! since the Unix epoch, and deleted by a later maintenance run (each one looks at open)
//! once `ms` plus the retention (`Maintenance::set_retention`, [`DEFAULT_RETENTION`]) is
//! past, the record last. A reader that opened a version before its files were retired can
//! read it for the retention period; one that reads longer may find a file gone (an error,
//! never another version's rows). Names so retired are never written again: pack ids and
//! records-file numbers only grow, and a closed generation's node log is not reopened. A
//! rewind is the exception: a refill may write again the node log of a generation above its
//! target or of one the target holds, so the rewind takes their retirement back first
//! ([`unretire`]).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reeldb_keyframe::format::{Decoder, Encoder, checksum};
use reeldb_keyframe::storage::Storage;

use crate::error::{Error, Result};

/// Directory of the retirement records.
pub const RETIRED_DIR: &str = "retired";
const RECORD_MAGIC: [u8; 8] = *b"REELRTRD";

/// How long retired files stay readable unless a run is told otherwise: an hour.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// The files retired so far: when each was first retired (ms since the epoch), by path.
#[derive(Debug, Default)]
pub(crate) struct Retired {
    pub(crate) at: BTreeMap<PathBuf, u64>,
}

/// What deleting the files whose retention passed did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Retired files deleted.
    pub files_deleted: usize,
    /// Retired files kept: their retention has not passed.
    pub files_retained: usize,
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The time a retirement record's name holds, if it is one.
fn record_time(name: &str) -> Option<u64> {
    let (ms, nonce) = name.split_once('-')?;
    (ms.len() == 16 && nonce.len() == 16 && u64::from_str_radix(nonce, 16).is_ok())
        .then(|| ms.parse().ok())
        .flatten()
}

/// The bytes of a record retiring `paths`: magic, count (u32), then per path its length
/// (u32) and UTF-8 bytes, then the xxh3-64 of all before it.
fn encode(paths: &[PathBuf]) -> Result<Vec<u8>> {
    let mut e = Encoder::new();
    e.raw(&RECORD_MAGIC).u32(paths.len() as u32);
    for p in paths {
        let text = p
            .to_str()
            .ok_or_else(|| Error::Internal(format!("retiring a path not UTF-8: {p:?}")))?;
        e.bytes(text.as_bytes());
    }
    let mut out = e.finish();
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// The paths a record's bytes retire.
fn decode(bytes: &[u8], name: &str) -> Result<Vec<PathBuf>> {
    let bad = |reason: &str| Error::Corruption {
        path: Path::new(RETIRED_DIR).join(name).display().to_string(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < 20 {
        return Err(bad("shorter than a retirement record"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if checksum(body).to_le_bytes() != sum {
        return Err(bad("checksum mismatch"));
    }
    let mut d = Decoder::new(body);
    let magic: [u8; 8] = d.fixed().map_err(|_| bad("no magic"))?;
    if magic != RECORD_MAGIC {
        return Err(bad("bad magic"));
    }
    let n = d.u32().map_err(|_| bad("no count"))?;
    (0..n)
        .map(|_| {
            let text = d.bytes().map_err(|_| bad("cut short"))?;
            let text = std::str::from_utf8(text).map_err(|_| bad("a path not UTF-8"))?;
            Ok(PathBuf::from(text))
        })
        .collect()
}

/// Every retirement record: (name, time, paths).
fn records(storage: &dyn Storage) -> Result<Vec<(String, u64, Vec<PathBuf>)>> {
    let dir = Path::new(RETIRED_DIR);
    if !storage.is_dir(dir)? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in storage.list(dir)? {
        let Some(ms) = record_time(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let bytes = storage.read_at(&path, 0, storage.len(&path)? as usize)?;
        out.push((name.clone(), ms, decode(&bytes, &name)?));
    }
    Ok(out)
}

impl Retired {
    /// The files retired so far.
    pub(crate) fn read(storage: &dyn Storage) -> Result<Retired> {
        Ok(Retired::of(&records(storage)?))
    }

    /// The files `records` retire, each at the earliest time one of them does.
    fn of(records: &[(String, u64, Vec<PathBuf>)]) -> Retired {
        let mut at = BTreeMap::new();
        for (_, ms, paths) in records {
            for p in paths {
                let first = at.entry(p.clone()).or_insert(*ms);
                *first = (*first).min(*ms);
            }
        }
        Retired { at }
    }

    /// Retires those of `paths` not retired yet, in one new record; returns how many.
    pub(crate) fn retire(&mut self, storage: &dyn Storage, paths: &[PathBuf]) -> Result<usize> {
        let new: Vec<PathBuf> = paths
            .iter()
            .filter(|p| !self.at.contains_key(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let ms = now_ms();
        let nonce = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let name = format!("{ms:016}-{nonce:016x}");
        storage.create_dir_all(Path::new(RETIRED_DIR))?;
        storage.write_atomic(&Path::new(RETIRED_DIR).join(name), &encode(&new)?)?;
        for p in &new {
            self.at.insert(p.clone(), ms);
        }
        Ok(new.len())
    }
}

/// Takes back the retirement of every retired path `again` accepts (a name a later commit
/// will write again, which reclaim must then not delete): each record naming one is
/// written again without it, or removed when nothing else is left in it. Returns how many
/// paths were taken back.
pub(crate) fn unretire(storage: &dyn Storage, again: impl Fn(&Path) -> bool) -> Result<usize> {
    let mut taken = 0;
    for (name, _, paths) in records(storage)? {
        let (back, kept): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(|p| again(p));
        if back.is_empty() {
            continue;
        }
        let path = Path::new(RETIRED_DIR).join(&name);
        match kept.is_empty() {
            true => storage.remove(&path)?,
            false => storage.write_atomic(&path, &encode(&kept)?)?,
        }
        taken += back.len();
    }
    Ok(taken)
}

/// Deletes the files retired at least `retention` ago, then the records all of whose files
/// are gone; returns what it did and the files still retired.
pub(crate) fn reclaim(storage: &dyn Storage, retention: Duration) -> Result<(Reclaimed, Retired)> {
    let now = now_ms();
    let due = |ms: u64| ms.saturating_add(retention.as_millis() as u64) <= now;
    let all = records(storage)?;
    let mut report = Reclaimed::default();
    let mut retired = Retired::of(&all);
    for (path, &ms) in &retired.at {
        if !due(ms) {
            report.files_retained += 1;
            continue;
        }
        match storage.remove(path) {
            Ok(()) => report.files_deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (name, _, paths) in &all {
        if paths
            .iter()
            .all(|p| retired.at.get(p).is_some_and(|&ms| due(ms)))
        {
            storage.remove(&Path::new(RETIRED_DIR).join(name))?;
        }
    }
    retired.at.retain(|_, ms| !due(*ms));
    Ok((report, retired))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_damage_is_corruption() {
        let paths = vec![
            PathBuf::from("packs/00000001.pack"),
            PathBuf::from("overlays/t1-g5.olog"),
        ];
        let bytes = encode(&paths).unwrap();
        assert_eq!(decode(&bytes, "r").unwrap(), paths);
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(matches!(decode(&bad, "r"), Err(Error::Corruption { .. })));
    }

    #[test]
    fn record_names_carry_their_time() {
        assert_eq!(
            record_time("0000001733500000-00000000000000ff"),
            Some(1_733_500_000)
        );
        assert_eq!(record_time("notes"), None);
    }
}
