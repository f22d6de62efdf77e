//! Scan plans: which columns a scan decodes (and which as dictionaries), which filters it
//! applies, and the per-unit work every kind of scan shares: read one keyframe leaf or
//! overlay batch, mask what the version hides, filter, project.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::boolean::and;
use arrow::datatypes::SchemaRef;
use reeldb_keyframe::removed::RemovedRows;
use reeldb_keyframe::tree::{Access, LeafEntry, TableLayout, Tree};
use reeldb_keyframe::{BoundPredicate, RecordRef};

use crate::error::{Error, Result};
use crate::read::overlay_view::OverlayView;
use crate::read::snapshot::ScanOptions;

/// A unit of scan work: a keyframe leaf or an overlay row batch.
#[derive(Debug, Clone)]
pub(crate) enum Unit {
    /// A keyframe leaf.
    Leaf(LeafEntry),
    /// An overlay or residual row batch, by index.
    Batch(usize),
}

/// A resolved scan: leaves to read, columns to decode, filter to apply.
#[derive(Debug, Clone)]
pub(crate) struct ScanPlan {
    pub(crate) layout: Arc<TableLayout>,
    pub(crate) output: SchemaRef,
    /// Columns to decode: the output columns, then the filter columns not among them.
    pub(crate) read: Vec<usize>,
    pub(crate) outputs: usize,
    /// The filters, each with the position of its column in `read`.
    pub(crate) predicates: Vec<(BoundPredicate, usize)>,
    /// Per position in `read`: decode as a dictionary ([`crate::read::snapshot::ScanOptions::dictionaries`]).
    pub(crate) as_dictionary: Vec<bool>,
}

impl ScanPlan {
    pub(crate) fn new(layout: &Arc<TableLayout>, opts: &ScanOptions) -> Result<Self> {
        let schema = &layout.schema;
        let mut read: Vec<usize> = match &opts.columns {
            None => (0..schema.fields().len()).collect(),
            Some(cols) => cols
                .iter()
                .map(|c| {
                    schema
                        .index_of(c)
                        .map_err(|_| Error::InvalidArgument(format!("unknown column {c}")))
                })
                .collect::<Result<_>>()?,
        };
        let outputs = read.len();
        let output = Arc::new(schema.project(&read)?);
        let mut predicates = Vec::with_capacity(opts.filters.len());
        for f in &opts.filters {
            let bound = f.bind(schema)?;
            let pos = match read.iter().position(|&c| c == bound.column()) {
                Some(p) => p,
                None => {
                    read.push(bound.column());
                    read.len() - 1
                }
            };
            predicates.push((bound, pos));
        }
        let is_bytes = |c: usize| {
            use arrow::datatypes::DataType::*;
            matches!(
                schema.field(c).data_type(),
                Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView
            )
        };
        let as_dictionary: Vec<bool> = read
            .iter()
            .enumerate()
            .map(|(pos, &c)| {
                // Filter-only string columns are always read as dictionaries: a predicate is
                // evaluated once per distinct value, not once per row (see `matches`).
                let filter_only = pos >= outputs;
                let asked = opts.dictionaries && !predicates.iter().any(|(_, p)| *p == pos);
                is_bytes(c) && (filter_only || asked)
            })
            .collect();
        let output = if as_dictionary.iter().any(|d| *d) {
            let fields: Vec<arrow::datatypes::Field> = output
                .fields()
                .iter()
                .zip(&as_dictionary)
                .map(|(f, d)| {
                    let f = f.as_ref().clone();
                    if *d {
                        let t = f.data_type().clone();
                        f.with_data_type(arrow::datatypes::DataType::Dictionary(
                            Box::new(arrow::datatypes::DataType::Int32),
                            Box::new(t),
                        ))
                    } else {
                        f
                    }
                })
                .collect();
            Arc::new(arrow::datatypes::Schema::new_with_metadata(
                fields,
                output.metadata().clone(),
            ))
        } else {
            output
        };
        Ok(ScanPlan {
            layout: layout.clone(),
            output,
            read,
            outputs,
            predicates,
            as_dictionary,
        })
    }

    /// Decodes the `read` columns of a leaf or batch of `rows` rows whose column `c` is the
    /// block `block(c)` (with the rows a derived chunk leaves out), dictionaries where asked.
    fn read_columns(
        &self,
        tree: &Tree,
        rows: usize,
        block: impl Fn(usize) -> Option<(RecordRef, Option<Arc<RemovedRows>>)>,
    ) -> Result<Vec<ArrayRef>> {
        self.read
            .iter()
            .zip(&self.as_dictionary)
            .map(|(&c, &dictionary)| {
                Ok(match (block(c), dictionary) {
                    (Some((b, removed)), true) => {
                        tree.read_block_as_dictionary(&b, removed.as_deref(), c, rows)?
                    }
                    (Some((b, removed)), false) => {
                        tree.read_block(&b, removed.as_deref(), c, rows, Access::Streaming)?
                    }
                    // Rows written before the column was added: its default.
                    (None, dictionary) => {
                        let filled = tree.layout().fill(c, rows)?;
                        if dictionary {
                            let t = filled.data_type().clone();
                            let as_dictionary = arrow::datatypes::DataType::Dictionary(
                                Box::new(arrow::datatypes::DataType::Int32),
                                Box::new(t),
                            );
                            arrow::compute::cast(&filled, &as_dictionary)?
                        } else {
                            filled
                        }
                    }
                })
            })
            .collect()
    }

    /// Reads one unit: `None` when no row of it is visible and matches.
    pub(crate) fn unit(
        &self,
        tree: &Tree,
        overlay: Option<&OverlayView>,
        unit: &Unit,
    ) -> Result<Option<RecordBatch>> {
        match unit {
            Unit::Leaf(leaf) => {
                let keep = match overlay {
                    Some(o) => match o.keyframe_mask(leaf.ordinal, leaf.entry.rows)? {
                        Some(mask) => mask,
                        None => return Ok(None),
                    },
                    None => None,
                };
                let node = tree.read_leaf(&leaf.entry)?;
                for (p, _) in &self.predicates {
                    let t = self.layout.schema.field(p.column()).data_type();
                    if let Some(zone) = tree.layout().zone(&node, p.column())
                        && !p.may_match(zone, t)
                    {
                        return Ok(None);
                    }
                }
                let cols = self.read_columns(tree, node.rows as usize, |c| {
                    tree.layout()
                        .chunk(&node, c)
                        .map(|chunk| (chunk.block, chunk.removed.clone()))
                })?;
                self.finish(cols, node.rows as usize, keep)
            }
            Unit::Batch(b) => {
                let Some(o) = overlay else { return Ok(None) };
                let Some(keep) = o.live_mask(*b)? else {
                    return Ok(None);
                };
                let batch = &o.batches[*b];
                let blocks = batch.blocks();
                let cols = self.read_columns(tree, batch.rows as usize, |c| {
                    tree.layout().block_of(&blocks, c).map(|b| (b, None))
                })?;
                self.finish(cols, batch.rows as usize, Some(keep))
            }
        }
    }

    /// Applies visibility and the filter to decoded columns and projects them.
    pub(crate) fn finish(
        &self,
        mut cols: Vec<ArrayRef>,
        rows: usize,
        keep: Option<BooleanArray>,
    ) -> Result<Option<RecordBatch>> {
        let mut mask = keep;
        for (p, pos) in &self.predicates {
            let matched = matches(p, &cols[*pos])?;
            mask = Some(match mask {
                Some(k) => and(&k, &matched)?,
                None => matched,
            });
        }
        cols.truncate(self.outputs);
        // Columns read as values where dictionaries were asked (the key-ordered merge reads
        // whole rows) are dictionary-encoded here.
        for (col, field) in cols.iter_mut().zip(self.output.fields()) {
            if col.data_type() != field.data_type() {
                *col = arrow::compute::cast(col, field.data_type())?;
            }
        }
        let batch = RecordBatch::try_new_with_options(
            self.output.clone(),
            cols,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let batch = match mask {
            Some(m) => filter_record_batch(&batch, &m)?,
            None => batch,
        };
        Ok((batch.num_rows() > 0).then_some(batch))
    }
}

/// Which rows of `column` match `p`. A dictionary column is tested once per dictionary
/// value and the answers are taken by its keys (a null key matches nothing).
fn matches(p: &BoundPredicate, column: &ArrayRef) -> Result<BooleanArray> {
    match column.as_any_dictionary_opt() {
        Some(d) => {
            let on_values = p.evaluate(d.values())?;
            let taken = arrow::compute::take(&on_values, d.keys(), None)?;
            Ok(taken.as_boolean().clone())
        }
        None => Ok(p.evaluate(column)?),
    }
}
