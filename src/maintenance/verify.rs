//! `Store::verify`: reads everything the chosen versions reference (catalog entries and
//! records, keyframe nodes and column blocks, overlay bitmaps and row batches)
//! and checks checksums and structural invariants, then names the newest intact version.
//! Parts shared between versions (keyframe leaves, row batches) are checked once.

use crate::catalog::commit::CatalogWriter;
use crate::catalog::{head, tail};
use std::collections::HashSet;
use std::ops::RangeInclusive;

use reeldb_keyframe::RecordRef;
use reeldb_keyframe::format::ContentHash;
use reeldb_keyframe::tree::{Access, Tree};
use reeldb_keyframe::verify::Checked;
use reeldb_overlay::verify::{Bounds, verify as verify_overlay};

use crate::error::{Error, Result};
use crate::read::overlay_view::OverlayView;
use crate::store::Store;

/// What [`Store::verify`] found for one version.
#[derive(Debug)]
pub struct VersionCheck {
    /// The version.
    pub version: u64,
    /// The first problem found in it, if any.
    pub problem: Option<Error>,
}

/// What [`Store::verify`] found.
#[derive(Debug)]
pub struct VerifyReport {
    /// One check per version verified, oldest first.
    pub versions: Vec<VersionCheck>,
    /// The newest version verified without a problem.
    pub newest_intact: Option<u64>,
    /// Distinct keyframe leaves read and checked.
    pub leaves_checked: usize,
    /// What the index ends with that reads ignore, if anything: a partial entry or a last
    /// entry that fails its checksum without records.log proving it acknowledged. That is
    /// what a crash during a commit leaves (or damage no byte on disk tells from it); the next
    /// writer removes it.
    pub ignored_index_tail: Option<String>,
    /// Acknowledged versions (first, last) whose index entries are gone although records.log
    /// proves they were committed (an index cut short by damage; see `catalog::tail`).
    pub lost_versions: Option<(u64, u64)>,
    /// Versions verified whose head (on an object store, `catalog::head`) is there but not
    /// intact: opens pass it over and read versions.idx, so it costs speed, not rows. (A
    /// head that is intact but copies another entry than versions.idx holds would be read:
    /// that is its version's problem.)
    pub damaged_heads: Vec<u64>,
}

impl VerifyReport {
    /// True when no version had a problem and none is lost.
    pub fn is_intact(&self) -> bool {
        self.lost_versions.is_none() && self.versions.iter().all(|c| c.problem.is_none())
    }
}

impl Store {
    /// The acknowledged versions (first, last) the index lost, if records.log proves any (see
    /// [`VerifyReport::lost_versions`]). Also for a store whose index lost every entry, which
    /// has no versions to verify. On a local disk they are read under the catalog lock, so
    /// no commit is under way. On an object store, where a reader writes nothing (a lock is
    /// an object), a commit may be under way: its records may lie past an index entry that
    /// a commit after it has not yet written, so what looks lost counts only when the latest
    /// entry was the same before and after the records were read (tried five times; a
    /// writer committing through all of them leaves it unreported).
    pub fn lost_versions(&self) -> Result<Option<(u64, u64)>> {
        let storage = self.inner.storage.as_ref();
        let lost_after = |head: Option<&crate::catalog::index::IndexEntry>| {
            tail::lost_after(storage, head).map(|r| r.map(|r| (*r.start(), *r.end())))
        };
        if !storage.locks_outlive_their_process() {
            let _catalog = CatalogWriter::take(&self.inner.storage)?;
            return lost_after(self.latest_entry()?.as_ref());
        }
        for _ in 0..5 {
            let head = self.latest_entry()?;
            let lost = lost_after(head.as_ref())?;
            if lost.is_none() || self.latest_entry()? == head {
                return Ok(lost);
            }
        }
        Ok(None)
    }
}

/// What the checks of earlier versions already covered.
#[derive(Debug, Default)]
struct Covered {
    keyframes: Checked,
    blocks: HashSet<ContentHash>,
}

impl Store {
    /// Verifies the versions in `versions` (see the module docs), calling `progress` after
    /// each. Damage is reported per version in the report; only failing to read the list of
    /// versions itself is an error.
    pub fn verify(
        &self,
        versions: RangeInclusive<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<VerifyReport> {
        let latest = self.latest_version()?;
        let (first, last) = (*versions.start(), *versions.end());
        if first == 0 || last > latest || first > last {
            return Err(Error::UnknownVersion {
                version: if first == 0 || first > last {
                    first
                } else {
                    last
                },
                latest,
            });
        }
        let mut covered = Covered::default();
        let mut report = VerifyReport {
            versions: Vec::new(),
            newest_intact: None,
            leaves_checked: 0,
            ignored_index_tail: self.index().ignored_tail()?,
            lost_versions: self.lost_versions()?,
            damaged_heads: Vec::new(),
        };
        for version in first..=last {
            // An expired version is not read any more; nothing of it needs to be intact.
            if self.index().entry(version).is_ok_and(|e| e.expired) {
                progress(version);
                continue;
            }
            let problem = match self.check_head(version) {
                Ok(intact) => {
                    if !intact {
                        report.damaged_heads.push(version);
                    }
                    self.verify_version(version, &mut covered).err()
                }
                Err(e) => Some(e),
            };
            if problem.is_none() {
                report.newest_intact = Some(version);
            }
            report.versions.push(VersionCheck { version, problem });
            progress(version);
        }
        report.leaves_checked = covered.keyframes.leaves();
        Ok(report)
    }

    /// Whether version `version`'s head, on a store that keeps heads, is absent or an intact
    /// copy of its index entry (`true`), or there but damaged (`false`, passed over by
    /// opens); an intact head copying another entry than versions.idx holds, which opens
    /// would follow, is [`Error::Corruption`].
    fn check_head(&self, version: u64) -> Result<bool> {
        if !self.inner.heads {
            return Ok(true);
        }
        let path = head::head_path(version);
        let Some(bytes) = self.inner.storage.read_small(&path)? else {
            return Ok(true);
        };
        let Some(copy) = head::decode(&bytes, version) else {
            return Ok(false);
        };
        if copy.entry != self.index().entry(version)? {
            return Err(Error::Corruption {
                path: path.display().to_string(),
                offset: 0,
                reason: format!(
                    "the head of version {version} copies another index entry than \
                     versions.idx holds"
                ),
            });
        }
        Ok(true)
    }

    fn verify_version(&self, version: u64, covered: &mut Covered) -> Result<()> {
        let snapshot = self.snapshot(version)?;
        for name in snapshot.table_names() {
            let table = snapshot.table(&name)?;
            table.tree.verify(&mut covered.keyframes)?;
            match &table.overlay {
                Some(o) if o.is_bframe() => verify_rows(&table.tree, o, covered)?,
                Some(o) => verify_overlay_rows(&table.tree, o, covered)?,
                None => {}
            }
        }
        Ok(())
    }
}

/// Checks an overlay version: its bitmaps within bounds (see the overlay crate), then its
/// row batches and keys as for a B-frame ([`verify_rows`]).
fn verify_overlay_rows(tree: &Tree, overlay: &OverlayView, covered: &mut Covered) -> Result<()> {
    if let Some((log, deltas)) = overlay.log() {
        let bounds = Bounds {
            batch_rows: overlay.batches.iter().map(|b| b.rows).sum(),
            keyframe_rows: tree.rows(),
        };
        verify_overlay(log, deltas, bounds)?;
    }
    verify_rows(tree, overlay, covered)
}

/// Decodes every row batch of `overlay` (each block once per verification; the key columns
/// of every batch) and returns each batch's encoded keys.
fn batch_keys(
    tree: &Tree,
    overlay: &OverlayView,
    covered: &mut Covered,
) -> Result<Vec<arrow_row::Rows>> {
    let layout = tree.layout();
    let all: Vec<usize> = (0..layout.schema.fields().len()).collect();
    let mut batch_keys = Vec::with_capacity(overlay.batches.len());
    for (b, batch) in overlay.batches.iter().enumerate() {
        let fresh = batch
            .present()
            .any(|(_, c)| !covered.blocks.contains(&ContentHash(c.hash)));
        let keys = if fresh {
            // Every byte of each block, framing included (reads check only what they decode).
            for (_, c) in batch.present() {
                tree.verify_block(&RecordRef::from(c))?;
            }
            let columns = overlay.batch_columns(tree, b, &all, Access::Streaming)?;
            layout
                .key
                .columns()
                .iter()
                .map(|&k| columns[k].clone())
                .collect()
        } else {
            overlay.batch_columns(tree, b, layout.key.columns(), Access::Streaming)?
        };
        // Remembered only once read: a damaged block fails every version using it.
        covered
            .blocks
            .extend(batch.present().map(|(_, c)| ContentHash(c.hash)));
        batch_keys.push(layout.key.encode_columns(&keys)?);
    }
    Ok(batch_keys)
}

/// Checks the rows a B-frame or overlay adds to its keyframe: its bitmaps within bounds, its
/// batches decodable, each sorted by key (a B-frame's residual across its batches too,
/// starting each batch with the first key it records), and no key shown twice: every live
/// row's key is hidden in the keyframe or absent from it, and no two live rows share a key.
fn verify_rows(tree: &Tree, overlay: &OverlayView, covered: &mut Covered) -> Result<()> {
    let wrong = |reason: String| Error::Corruption {
        path: match overlay.log() {
            Some((log, _)) => log.path().display().to_string(),
            None => crate::catalog::RECORDS_LABEL.to_string(),
        },
        offset: 0,
        reason,
    };
    let (hidden, live) = overlay.hidden_and_live()?;
    let batch_rows: u64 = overlay.batches.iter().map(|b| u64::from(b.rows)).sum();
    if hidden.max().is_some_and(|m| m >= tree.rows()) {
        return Err(wrong(
            "a version hides rows its keyframe does not have".into(),
        ));
    }
    if live.max().is_some_and(|m| u64::from(m) >= batch_rows) {
        return Err(wrong("a version shows batch rows that do not exist".into()));
    }
    let batch_keys = batch_keys(tree, overlay, covered)?;
    if let Some(first_keys) = overlay.residual_first_keys() {
        for (b, keys) in batch_keys.iter().enumerate() {
            if first_keys.get(b).map(Vec::as_slice) != Some(keys.row(0).as_ref()) {
                return Err(wrong(format!(
                    "residual batch {b}'s first key is not the one recorded"
                )));
            }
        }
    }
    let mut previous: Option<Vec<u8>> = None;
    let mut shown: Vec<Vec<u8>> = Vec::new();
    for (b, keys) in batch_keys.iter().enumerate() {
        // An overlay's batches are each sorted; a residual is sorted across them.
        if !overlay.is_bframe() {
            previous = None;
        }
        for i in 0..keys.num_rows() {
            let key = keys.row(i).as_ref().to_vec();
            if previous.as_ref().is_some_and(|p| *p > key) {
                return Err(wrong(format!("row batch {b} is not sorted by key")));
            }
            let loc = reeldb_overlay::RowLocation {
                batch: b as u32,
                row: i as u32,
            };
            if live.contains(overlay.row_id(loc)) {
                shown.push(key.clone());
            }
            previous = Some(key);
        }
    }
    shown.sort_unstable();
    if shown.windows(2).any(|w| w[0] == w[1]) {
        return Err(wrong("a version shows two rows of one key".into()));
    }
    let keys: Vec<&[u8]> = shown.iter().map(Vec::as_slice).collect();
    let probe = tree.layout().key.decode(&keys)?;
    for (key, ordinal) in keys.iter().zip(tree.ordinals_of_sorted(&keys, &probe)?) {
        if let Some(o) = ordinal
            && !hidden.contains(o)
        {
            return Err(wrong(format!(
                "key {key:02x?} is both a live batch row and a visible keyframe row"
            )));
        }
    }
    Ok(())
}
