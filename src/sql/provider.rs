//! [`ReelTable`]: one table at one version as a DataFusion table, and [`ReelScanExec`], its
//! scan: projection, filters and limit pushed into ReelDB's scan, one partition per group of
//! keyframe leaves (and overlay batches), statistics from the row count and zone maps.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow_row::{RowConverter, SortField};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::scalar::ScalarValue;

use crate::read::snapshot::{ColumnZone, ScanOptions, Table};
use crate::sql::pushdown::to_filter;
use crate::sql::to_datafusion;

/// A table at one version, for DataFusion.
#[derive(Debug, Clone)]
pub struct ReelTable {
    table: Table,
    version: u64,
}

impl ReelTable {
    /// The table `table`, read at `version`.
    pub fn new(table: Table, version: u64) -> Self {
        ReelTable { table, version }
    }

    /// The version the table is read at.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Row count and per-column statistics of the whole table: exact at a keyframe version
    /// (from the leaves' zone maps); at an overlay or B-frame version the row count is exact
    /// and the column statistics unknown, since overlay rows have no zone maps.
    fn statistics_of(&self) -> crate::Result<Statistics> {
        let schema = self.table.schema();
        let rows = Precision::Exact(self.table.num_rows() as usize);
        let columns = if self.table.at_keyframe() {
            let zones = self.table.keyframe_zones()?;
            schema
                .fields()
                .iter()
                .zip(zones)
                .map(|(f, z)| column_statistics(f.data_type(), &z))
                .collect::<crate::Result<Vec<_>>>()?
        } else {
            Statistics::unknown_column(&schema)
        };
        Ok(Statistics {
            num_rows: rows,
            total_byte_size: Precision::Absent,
            column_statistics: columns,
        })
    }
}

/// A column's statistics from its zones. Floats' bounds are inexact: zone maps order NaN
/// and signed zeros by bits, SQL's min and max do not.
fn column_statistics(t: &DataType, zone: &ColumnZone) -> crate::Result<ColumnStatistics> {
    let mut stats = ColumnStatistics::new_unknown();
    stats.null_count = Precision::Exact(zone.null_count as usize);
    let Some(Some((lo, hi))) = &zone.bounds else {
        return Ok(stats);
    };
    let converter = RowConverter::new(vec![SortField::new(t.clone())])?;
    let parser = converter.parser();
    let rows = [parser.parse(lo), parser.parse(hi)];
    let decoded = converter.convert_rows(rows)?;
    let (min, max) = match (
        ScalarValue::try_from_array(&decoded[0], 0),
        ScalarValue::try_from_array(&decoded[0], 1),
    ) {
        (Ok(min), Ok(max)) => (min, max),
        _ => return Ok(stats),
    };
    let exact = !t.is_floating();
    let wrap = |v: ScalarValue| {
        if exact {
            Precision::Exact(v)
        } else {
            Precision::Inexact(v)
        }
    };
    stats.min_value = wrap(min);
    stats.max_value = wrap(max);
    Ok(stats)
}

#[async_trait]
impl TableProvider for ReelTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let schema = self.table.schema();
        Ok(filters
            .iter()
            .map(|f| match to_filter(f, &schema) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        self.statistics_of().ok()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.table.schema();
        let mut options = ScanOptions::new();
        if let Some(p) = projection {
            let names: Vec<&str> = p.iter().map(|&i| schema.field(i).name().as_str()).collect();
            options = options.columns(&names);
        }
        for f in filters {
            // DataFusion passes only the filters reported Exact above.
            let filter = to_filter(f, &schema).ok_or_else(|| {
                DataFusionError::Internal(format!("filter {f} was not pushed down"))
            })?;
            options = options.filter(filter);
        }
        let output = self.table.scan_schema(&options).map_err(to_datafusion)?;
        let mut stats = self.statistics_of().map_err(to_datafusion)?;
        if let Some(p) = projection {
            stats = stats.project(Some(p));
        }
        if !filters.is_empty() {
            stats = stats.to_inexact();
        }
        if let Some(limit) = limit {
            stats.num_rows = match stats.num_rows {
                Precision::Exact(n) if filters.is_empty() => Precision::Exact(n.min(limit)),
                other => other.map(|n| n.min(limit)).to_inexact(),
            };
        }
        let partitions = state.config().target_partitions().max(1);
        let parts = self
            .table
            .scan_partitions(&options, partitions)
            .map_err(to_datafusion)?
            .len()
            .max(1);
        Ok(Arc::new(ReelScanExec {
            table: self.table.clone(),
            version: self.version,
            options,
            requested: partitions,
            limit,
            stats: Arc::new(stats),
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(output),
                Partitioning::UnknownPartitioning(parts),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
        }))
    }
}

/// The physical scan of a [`ReelTable`]: partition `i` reads the `i`-th group of leaves.
#[derive(Debug)]
pub struct ReelScanExec {
    table: Table,
    version: u64,
    options: ScanOptions,
    /// Partitions asked for when the groups were made (the same grouping on every execute).
    requested: usize,
    limit: Option<usize>,
    stats: Arc<Statistics>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for ReelScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ReelScanExec: table={} version={} partitions={}",
            self.table.name(),
            self.version,
            self.properties.partitioning.partition_count()
        )?;
        if let Some(c) = &self.options.columns {
            write!(f, " columns=[{}]", c.join(", "))?;
        }
        if !self.options.filters.is_empty() {
            write!(f, " filters={:?}", self.options.filters)?;
        }
        if let Some(l) = self.limit {
            write!(f, " limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ReelScanExec {
    fn name(&self) -> &str {
        "ReelScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "ReelScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut parts = self
            .table
            .scan_partitions(&self.options, self.requested)
            .map_err(to_datafusion)?;
        let schema = self.properties.eq_properties.schema().clone();
        if partition >= parts.len() {
            // Only an empty table has fewer groups than reported partitions.
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        }
        let scan = parts.swap_remove(partition);
        let mut left = self.limit;
        let batches = scan.map_while(move |batch| {
            if left == Some(0) {
                return None;
            }
            Some(match batch {
                Ok(b) => {
                    let b = match left {
                        Some(n) if b.num_rows() > n => b.slice(0, n),
                        _ => b,
                    };
                    left = left.map(|n| n - b.num_rows());
                    Ok(b)
                }
                Err(e) => Err(to_datafusion(e)),
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        )))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        Ok(match partition {
            None => self.stats.clone(),
            Some(_) => Arc::new(Statistics::new_unknown(&self.schema())),
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }
}
