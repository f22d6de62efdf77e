//! Writing a validated commit: each changed table as a keyframe or an overlay by the writer's
//! policy (`write_version`), then the catalog step under the catalog lock
//! (`append_to_catalog`): definitions and the version record placed at the end of the current
//! records file, the packs maintenance wrote listed too, and the index entry appended.

use super::validate::touched_fraction;
use super::*;

pub(super) fn write_version(
    writer: &mut Writer,
    definitions: Definitions,
    prepared: Vec<(String, Arc<TableLayout>, Option<SortedChanges>)>,
    meta: Vec<(String, String)>,
    source_offset: Option<u64>,
    force_keyframe: bool,
) -> Result<u64> {
    // A writer whose lock lapsed writes nothing, not even data past the committed ends of
    // the files (on an object store, where they would be in the next writer's way).
    writer.lock.check()?;
    let prev = writer.head.as_ref().map(|(e, r)| (*e, r));
    let version = prev.map_or(1, |(e, _)| e.version + 1);
    let now = chrono::Utc::now().timestamp_micros();
    let committed_at = prev.map_or(now, |(e, _)| now.max(e.committed_at + 1));
    let mut tables: BTreeMap<String, TableEntry> = prev
        .map(|(_, r)| {
            r.tables
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect()
        })
        .unwrap_or_default();
    let blocks_before = writer.packs.appended();
    // New definitions, framed, by table name: their offsets in records.log are known only
    // under the catalog lock, and filled in there.
    let mut new_defs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut next_table_id = prev.map_or(1, |(_, r)| r.next_table_id);
    for name in &definitions.dropped {
        tables.remove(name);
    }
    // Every renamed or altered entry is taken out before any is put back, so names swapped
    // within one commit cannot overwrite each other.
    let mut taken = Vec::with_capacity(definitions.altered.len());
    for a in &definitions.altered {
        taken.push(tables.remove(&a.from));
    }
    for (a, entry) in definitions.altered.iter().zip(taken) {
        let Some(mut entry) = entry else {
            return Err(Error::Internal(format!(
                "table {} to alter is not at the latest version",
                a.from
            )));
        };
        let framed = records::frame(CatalogKind::TableDef, &version::encode(&a.def));
        entry.def = CatalogRef {
            file: 0,
            offset: 0,
            len: framed.len() as u32,
        };
        new_defs.push((a.name.clone(), framed));
        entry.name = a.name.clone();
        entry.columns = u32::from(a.def.slots);
        entry.changed_at = version;
        tables.insert(a.name.clone(), entry);
    }
    for p in &definitions.creates {
        let id = next_table_id;
        next_table_id = id
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("every table id has been used".into()))?;
        let mut def = p.def.clone();
        def.id = id;
        let framed = records::frame(CatalogKind::TableDef, &version::encode(&def));
        let def = CatalogRef {
            file: 0,
            offset: 0,
            len: framed.len() as u32,
        };
        new_defs.push((p.name.clone(), framed));
        tables.insert(
            p.name.clone(),
            TableEntry {
                id,
                name: p.name.clone(),
                def,
                columns: p.layout.schema.fields().len() as u32,
                root: None,
                changed_at: version,
                keyframe_at: version,
                overlay: None,
                bframe: None,
            },
        );
    }
    let durable = writer.options.sync;
    let mut kind = 0u8;
    for (name, layout, sorted) in prepared {
        let Some(sorted) = sorted else { continue };
        let Some(t) = tables.get_mut(&name) else {
            continue;
        };
        let tree = Tree::new(
            writer.store.inner.source.clone(),
            layout.clone(),
            t.root.as_ref().map(Root::from),
        );
        let changed = (sorted.upserts.num_rows() + sorted.deletes.len()) as f64;
        let policy = writer.options.policy_of(&name);
        let as_keyframe = match &t.overlay {
            _ if force_keyframe => true,
            // A B-frame (the store was rewound into a compacted generation) is folded into
            // a keyframe by the next change.
            None if t.bframe.is_some() => true,
            None if t.root.is_none() => true,
            None => policy.every <= 1 || touched_fraction(&tree, &sorted)? <= policy.touching,
            Some(o) => {
                o.commits() + 1 >= policy.every
                    || o.shadowed.max(o.live) as f64 + changed
                        > (policy.fraction * tree.rows() as f64)
                            .max(policy.min_overlay_rows.min(tree.rows()) as f64)
            }
        };
        if as_keyframe {
            let sorted = fold_into_keyframe(&writer.store, t, &tree, sorted)?;
            let root = builder::apply(&mut writer.packs, &writer.options.shape, &tree, &sorted)?;
            t.root = root.as_ref().map(RootRecord::from);
            t.overlay = None;
            t.bframe = None;
            t.keyframe_at = version;
        } else {
            kind = 1;
            t.overlay = Some(write_overlay(
                &mut writer.packs,
                &mut writer.logs,
                &writer.store,
                t,
                &tree,
                &sorted,
                durable,
            )?);
        }
        t.changed_at = version;
    }
    let packs = writer.packs.sync(durable)?;
    let blocks_after = writer.packs.appended();
    let (prev_blocks, prev_bytes) =
        prev.map_or((0, 0), |(_, r)| (r.blocks_stored, r.pack_bytes_appended));
    let carried_offset = match (source_offset, prev) {
        (Some(o), _) => o,
        (None, Some((e, _))) => e.carried_offset,
        (None, None) => NO_OFFSET,
    };
    let rec = VersionRecord {
        version,
        committed_at,
        source_offset,
        meta,
        kind,
        next_table_id,
        tables: tables.into_values().collect(),
        packs,
        blocks_stored: prev_blocks + (blocks_after.0 - blocks_before.0),
        pack_bytes_appended: prev_bytes + (blocks_after.1 - blocks_before.1),
    };
    let entry = IndexEntry {
        version,
        committed_at,
        carried_offset,
        own_offset: source_offset.is_some(),
        record_offset: 0,
        record_len: 0,
        record_checksum: 0,
        expired: false,
        records_file: 0,
    };
    let head = append_to_catalog(writer, new_defs, rec, entry, durable)?;
    writer.head = Some(head);
    Ok(version)
}

/// The catalog step of a commit, under the catalog lock: places the new definitions and the
/// version record at the end of the current records file (filling in their offsets), lists
/// the packs maintenance wrote beside the writer's own, and appends the index entry.
pub(super) fn append_to_catalog(
    writer: &Writer,
    new_defs: Vec<(String, Vec<u8>)>,
    mut rec: VersionRecord,
    mut entry: IndexEntry,
    durable: bool,
) -> Result<(IndexEntry, VersionRecord)> {
    let mut catalog = CatalogWriter::take(&writer.store.inner.storage)?;
    // The commit point comes next: everything written so far assumed this writer still
    // holds the store (its lock's lease on an object store).
    writer.lock.check()?;
    let file = catalog.records_file();
    let moved = latest_on_disk(writer, catalog.head())?;
    let none = VersionRecord::default();
    let latest = match (&moved, &writer.head) {
        (Some(m), _) => m,
        (None, Some((_, cached))) => cached,
        (None, None) => &none,
    };
    rec.packs.extend(
        latest
            .packs
            .iter()
            .copied()
            .filter(|(id, _)| PackRange::Maintenance.contains(*id)),
    );
    rec.packs.sort_unstable();
    // Tables whose definition this commit does not write keep the latest version's (which
    // a catalog rewrite may have moved to another records file).
    for t in rec
        .tables
        .iter_mut()
        .filter(|t| !new_defs.iter().any(|(name, _)| *name == t.name))
    {
        t.def = latest
            .tables
            .iter()
            .find(|l| l.id == t.id)
            .map(|l| l.def)
            .ok_or_else(|| Error::Internal(format!("table {} has no definition", t.name)))?;
    }
    let base = catalog.records_len();
    let mut pending = Vec::new();
    for (name, framed) in new_defs {
        let t = rec
            .tables
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::Internal(format!("new definition of {name}, not a table")))?;
        t.def.file = file;
        t.def.offset = base + pending.len() as u64;
        pending.extend_from_slice(&framed);
    }
    let framed = records::frame(CatalogKind::Version, &version::encode(&rec));
    entry.records_file = file;
    entry.record_offset = base + pending.len() as u64;
    entry.record_len = framed.len() as u32;
    entry.record_checksum = reeldb_keyframe::format::checksum(&framed);
    pending.extend_from_slice(&framed);
    catalog.append_version(&pending, &entry, durable)?;
    Ok((entry, rec))
}

/// The latest version's record as it is on disk now (`on_disk` is its index entry), when it
/// is not this writer's cached one (`None` when it is): maintenance replaced the index since
/// this writer's last commit and moved it (listing the packs maintenance wrote, or rewritten
/// into another records file); the moved record has the same tables, definitions aside.
/// [`Error::WriterConflict`] when the index holds another latest version than this writer's.
pub(super) fn latest_on_disk(
    writer: &Writer,
    on_disk: Option<IndexEntry>,
) -> Result<Option<VersionRecord>> {
    match (on_disk, &writer.head) {
        (None, None) => Ok(None),
        (Some(d), Some((cached, rec))) if d.version == cached.version => {
            if d == *cached {
                return Ok(None);
            }
            let moved = writer.store.read_record(&d)?;
            let without_defs = |r: &VersionRecord| -> Vec<TableEntry> {
                r.tables
                    .iter()
                    .map(|t| TableEntry {
                        def: CatalogRef::default(),
                        ..t.clone()
                    })
                    .collect()
            };
            if without_defs(&moved) != without_defs(rec) {
                return Err(Error::Internal(format!(
                    "version {} changed its tables under the writer",
                    d.version
                )));
            }
            Ok(Some(moved))
        }
        // Only another writer commits versions (maintenance rewrites them in place): this
        // one lost the store to it.
        _ => Err(Error::WriterConflict {
            store: writer.store.path().display().to_string(),
            version: writer.version() + 1,
        }),
    }
}
