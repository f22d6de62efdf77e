//! `FROM t VERSION AS OF n` and `FROM t TIMESTAMP AS OF '...'`: a DataFusion relation
//! planner that reads the named table at the version asked for. Parsing needs
//! [`ReelDialect`](crate::sql::ReelDialect); tables without a clause are left to DataFusion,
//! which reads them at the session's version.

use std::sync::Arc;

use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::sql::sqlparser::ast::{self, TableFactor, TableVersion};

use crate::error::Error;
use crate::sql::provider::ReelTable;
use crate::sql::to_datafusion;
use crate::store::Store;
use crate::timestamp::parse_timestamp;

/// Plans `VERSION AS OF` / `TIMESTAMP AS OF` table references against a store.
#[derive(Debug)]
pub struct TimeTravelPlanner {
    store: Store,
}

impl TimeTravelPlanner {
    /// A planner reading versions of `store`.
    pub fn new(store: Store) -> Self {
        TimeTravelPlanner { store }
    }

    /// The version a clause names.
    fn version_of(&self, clause: &TableVersion) -> crate::Result<u64> {
        match clause {
            TableVersion::VersionAsOf(expr) => match literal(expr) {
                Some(text) => text.parse::<u64>().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "VERSION AS OF takes a version number, got {text}"
                    ))
                }),
                None => Err(Error::InvalidArgument(format!(
                    "VERSION AS OF takes a version number, got {expr}"
                ))),
            },
            TableVersion::TimestampAsOf(expr) | TableVersion::ForSystemTimeAsOf(expr) => {
                let text = literal(expr).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "TIMESTAMP AS OF takes a timestamp string such as \
                         '2026-01-01T00:00:00Z', got {expr}"
                    ))
                })?;
                let time = parse_timestamp(&text)?;
                Ok(self.store.snapshot_as_of(time)?.version())
            }
            other => Err(Error::InvalidArgument(format!(
                "unsupported table version clause {other}: use VERSION AS OF n or \
                 TIMESTAMP AS OF '...'"
            ))),
        }
    }
}

/// The text of a number or string literal (also `TIMESTAMP '...'`).
fn literal(expr: &ast::Expr) -> Option<String> {
    let value = match expr {
        ast::Expr::Value(v) => &v.value,
        ast::Expr::TypedString(t) => &t.value.value,
        _ => return None,
    };
    match value {
        ast::Value::Number(n, _) => Some(n.to_string()),
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Some(s.clone()),
        _ => None,
    }
}

impl RelationPlanner for TimeTravelPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> DfResult<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            version: Some(clause),
            args: None,
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let reference = context.object_name_to_table_reference(name.clone())?;
        if reference.schema().is_some() {
            return Err(DataFusionError::Plan(format!(
                "{reference}: time travel reads the store's own tables; name one without a schema"
            )));
        }
        let table = reference.table();
        let version = self.version_of(clause).map_err(to_datafusion)?;
        let snapshot = self.store.snapshot(version).map_err(to_datafusion)?;
        let read = snapshot.table(table).map_err(|e| match e {
            Error::UnknownTable { .. } => to_datafusion(Error::InvalidArgument(format!(
                "table {table} does not exist at version {version} (tables there: {})",
                list(&snapshot.table_names())
            ))),
            e => to_datafusion(e),
        })?;
        let provider = Arc::new(ReelTable::new(read, version));
        let plan = LogicalPlanBuilder::scan(table, provider_as_source(provider), None)?.build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// Names for an error message: comma-separated, or "none".
pub fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
