//! `Maintenance::rewrite_catalog`: keeping the catalog bounded. Records of expired versions,
//! records maintenance replaced and definitions no live version uses stay in the records file
//! (it is append-only) until a rewrite copies what live versions read into a new records file
//! (`catalog/records-{n}.log`): the table definitions live versions use, then every live
//! version's record in version order, with the definitions' references remapped. Expired
//! versions keep their index entries (times and source offsets, so versions stay dense and
//! time lookups work) but lose their records (`record_len` 0). Under the catalog lock the new
//! file is written and synced, then versions.idx is replaced atomically by one whose entries
//! all name the new file: the commit point. A writer in another process finds its latest
//! record moved at its next commit and takes the definitions from there.
//!
//! The old records file is retired: deleted once no live reader pins a version and no
//! writer is open (a writer may still read definitions from it until its next commit);
//! otherwise a later maintenance run deletes it. The first rewrite sets the store
//! descriptor's `FEATURE_RECORDS_FILES` bit, so builds that only know records.log refuse the
//! store.

use std::collections::BTreeMap;
use std::path::Path;

use crate::catalog::commit::CatalogWriter;
use crate::catalog::index::{IndexEntry, header_with};
use crate::catalog::records::{self, CatalogKind, RECORDS_HEADER_LEN};
use crate::catalog::version::{self, CatalogRef};
use crate::catalog::{CATALOG_DIR, records_file_of, records_path};
use crate::error::{Error, Result};
use crate::lease::ReaderCensus;
use crate::maintenance::Maintenance;
use crate::store::FEATURE_RECORDS_FILES;

/// What a catalog rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogRewrite {
    /// False when too little of the records file was dead to be worth rewriting.
    pub rewritten: bool,
    /// Bytes of the records file before.
    pub bytes_before: u64,
    /// Bytes of the records file live versions read (the new file's size when rewritten).
    pub bytes_after: u64,
    /// Retired records files deleted.
    pub files_deleted: usize,
    /// Retired records files kept for a live reader or an open writer.
    pub files_held: usize,
}

/// The fraction of the records file no live version reads past which `reel compact` and
/// `reel expire` rewrite the catalog.
pub const REWRITE_AT_DEAD: f64 = 0.5;

impl Maintenance {
    /// Rewrites the catalog (see the module docs) when at least `min_dead` (a fraction) of
    /// the records file is read by no live version; retired records files no reader or
    /// writer needs are deleted either way.
    pub fn rewrite_catalog(&mut self, min_dead: f64) -> Result<CatalogRewrite> {
        let store = self.store().clone();
        let storage = store.inner.storage.clone();
        let mut report = CatalogRewrite::default();
        {
            let mut catalog = CatalogWriter::take(&storage)?;
            let Some(head) = catalog.head() else {
                drop(catalog);
                self.delete_retired_records(&mut report)?;
                return Ok(report);
            };
            // A rewrite copies versions up to the latest only: records proving versions the
            // index lost would be left behind in the retired file.
            if let Some(lost) = crate::catalog::tail::lost_after(storage.as_ref(), Some(&head))? {
                return Err(crate::catalog::tail::lost_error(&lost));
            }
            let index = store.index();
            let entries = index.entries(head.version)?;
            let live: Vec<(IndexEntry, version::VersionRecord)> = entries
                .iter()
                .filter(|e| !e.expired)
                .map(|e| Ok((*e, store.read_record(e)?)))
                .collect::<Result<_>>()?;
            let mut defs: BTreeMap<u64, CatalogRef> = BTreeMap::new();
            for (_, rec) in &live {
                for t in &rec.tables {
                    defs.insert(t.def.offset, t.def);
                }
            }
            report.bytes_before = storage.len(&records_path(catalog.records_file()))?;
            report.bytes_after = RECORDS_HEADER_LEN
                + defs.values().map(|d| u64::from(d.len)).sum::<u64>()
                + live
                    .iter()
                    .map(|(e, _)| u64::from(e.record_len))
                    .sum::<u64>();
            let dead = 1.0 - report.bytes_after as f64 / report.bytes_before.max(1) as f64;
            if dead >= min_dead {
                let file = next_records_file(&store)?;
                let mut bytes = records::header();
                let mut moved: BTreeMap<u64, CatalogRef> = BTreeMap::new();
                for (offset, d) in &defs {
                    let payload = records::read(
                        storage.as_ref(),
                        &records_path(d.file),
                        d.offset,
                        d.len,
                        CatalogKind::TableDef,
                        None,
                    )?;
                    let framed = records::frame(CatalogKind::TableDef, &payload);
                    moved.insert(
                        *offset,
                        CatalogRef {
                            file,
                            offset: bytes.len() as u64,
                            len: framed.len() as u32,
                        },
                    );
                    bytes.extend_from_slice(&framed);
                }
                let mut live = live.into_iter().peekable();
                let mut new_index = header_with(index.rewinds()?);
                for e in &entries {
                    let entry = match live.next_if(|(l, _)| l.version == e.version) {
                        Some((_, mut rec)) => {
                            for t in &mut rec.tables {
                                t.def = *moved.get(&t.def.offset).ok_or_else(|| {
                                    Error::Internal(format!("definition of {} not copied", t.name))
                                })?;
                            }
                            let framed =
                                records::frame(CatalogKind::Version, &version::encode(&rec));
                            let at = bytes.len() as u64;
                            bytes.extend_from_slice(&framed);
                            IndexEntry {
                                record_offset: at,
                                record_len: framed.len() as u32,
                                record_checksum: reeldb_keyframe::format::checksum(&framed),
                                records_file: file,
                                ..*e
                            }
                        }
                        None => IndexEntry {
                            record_offset: 0,
                            record_len: 0,
                            record_checksum: 0,
                            records_file: file,
                            ..*e
                        },
                    };
                    new_index.extend_from_slice(&entry.encode());
                }
                store.require_feature(FEATURE_RECORDS_FILES)?;
                storage.write_atomic(&records_path(file), &bytes)?;
                // The commit point.
                catalog.replace_index(&[], &new_index)?;
                report.rewritten = true;
                report.bytes_after = bytes.len() as u64;
            }
        }
        self.delete_retired_records(&mut report)?;
        Ok(report)
    }

    /// Deletes the records files the latest version's entry does not name, unless a live
    /// reader pins a version or a writer is open (on an object store: retires them, see
    /// `retire`).
    fn delete_retired_records(&mut self, report: &mut CatalogRewrite) -> Result<()> {
        let store = self.store().clone();
        let storage = store.inner.storage.clone();
        let current = store.latest_entry()?.map_or(0, |e| e.records_file);
        let retired: Vec<String> = storage
            .list(Path::new(CATALOG_DIR))?
            .into_iter()
            .filter(|name| records_file_of(name).is_some_and(|f| f != current))
            .collect();
        if retired.is_empty() {
            return Ok(());
        }
        let census = ReaderCensus::take(storage.as_ref())?;
        let writer = match self.writer_quiet {
            // The caller's writer reloads when this run ends.
            true => None,
            false => match super::try_writer_lock(&store)? {
                Some(lock) => Some(lock),
                None => {
                    report.files_held += retired.len();
                    return Ok(());
                }
            },
        };
        if !census.pinned.is_empty() {
            report.files_held += retired.len();
            return Ok(());
        }
        let paths: Vec<_> = retired
            .iter()
            .map(|name| Path::new(CATALOG_DIR).join(name))
            .collect();
        match self.delete_or_retire(&paths)? {
            true => {
                report.files_deleted += paths.len();
                storage.sync_dir(Path::new(CATALOG_DIR))?;
            }
            false => report.files_held += paths.len(),
        }
        drop((census, writer));
        Ok(())
    }
}

/// The number of the next records file: above every records file in `catalog/` and every
/// one a retirement record still lists (on an object store, see `retire`), so a number is
/// not used again while a record could still delete the file by it.
fn next_records_file(store: &crate::store::Store) -> Result<u64> {
    let storage = store.inner.storage.as_ref();
    let names = storage.list(Path::new(CATALOG_DIR))?;
    let retired = match storage.locks_outlive_their_process() {
        true => super::retire::Retired::read(storage)?
            .at
            .into_keys()
            .collect(),
        false => Vec::new(),
    };
    let retired_names = retired
        .iter()
        .filter(|p| p.parent() == Some(Path::new(CATALOG_DIR)))
        .filter_map(|p| p.file_name()?.to_str());
    Ok(names
        .iter()
        .map(String::as_str)
        .chain(retired_names)
        .filter_map(records_file_of)
        .max()
        .unwrap_or(0)
        + 1)
}
