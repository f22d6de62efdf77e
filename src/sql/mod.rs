//! SQL over ReelDB through Apache DataFusion (feature `sql`).
//!
//! [`register`] puts a store's tables, read at one version, into a DataFusion
//! `SessionContext`, with the table functions `reel_changes` and `reel_history` and the
//! time-travel clauses. [`sql`] parses a query in [`ReelDialect`] (DataFusion's generic
//! dialect plus `VERSION AS OF` / `TIMESTAMP AS OF`) and plans it in that context;
//! [`SqlSession`] does both and runs queries to completion without async code.
//!
//! ```
//! # fn main() -> Result<(), reeldb::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let store = reeldb::Store::create(dir.path().join("s"))?;
//! # let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
//! #     arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
//! # ]));
//! # let mut w = store.writer()?;
//! # let mut tx = w.begin();
//! # tx.create_table("orders", schema.clone(), &["id"])?;
//! # tx.upsert("orders", arrow::array::RecordBatch::try_new(schema.clone(),
//! #     vec![std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2]))])?)?;
//! # tx.commit()?;
//! # let mut tx = w.begin();
//! # tx.upsert("orders", arrow::array::RecordBatch::try_new(schema.clone(),
//! #     vec![std::sync::Arc::new(arrow::array::Int64Array::from(vec![3]))])?)?;
//! # tx.commit()?;
//! let session = reeldb::sql::SqlSession::open(&store, None)?; // the latest version
//! let batches = session.query(
//!     "SELECT count(*) AS now, (SELECT count(*) FROM orders VERSION AS OF 1) AS before \
//!      FROM orders",
//! )?;
//! assert_eq!(arrow::util::pretty::pretty_format_batches(&batches)?.to_string().lines().nth(3),
//!     Some("| 3   | 2      |"));
//! # Ok(())
//! # }
//! ```

mod dialect;
mod functions;
mod provider;
mod pushdown;
mod time_travel;

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::sql::parser::DFParserBuilder;

pub use crate::timestamp::parse_timestamp;
pub use dialect::ReelDialect;
pub use functions::{ChangesFunction, HistoryFunction};
pub use provider::{ReelScanExec, ReelTable};
pub use pushdown::{scalar_value, to_filter};
pub use time_travel::TimeTravelPlanner;

use crate::error::{Error, Result};
use crate::store::Store;

/// Registers in `ctx` every table of `store` at `version` under its own name, the table
/// functions `reel_changes` and `reel_history`, and the planner for `VERSION AS OF` /
/// `TIMESTAMP AS OF` (queries using those must be parsed with [`sql`]).
pub fn register(ctx: &SessionContext, store: &Store, version: u64) -> Result<()> {
    let snapshot = store.snapshot(version)?;
    for name in snapshot.table_names() {
        let table = snapshot.table(&name)?;
        ctx.register_table(name.as_str(), Arc::new(ReelTable::new(table, version)))
            .map_err(from_datafusion)?;
    }
    ctx.register_udtf(
        "reel_changes",
        Arc::new(ChangesFunction::new(store.clone())),
    );
    ctx.register_udtf(
        "reel_history",
        Arc::new(HistoryFunction::new(store.clone())),
    );
    ctx.register_relation_planner(Arc::new(TimeTravelPlanner::new(store.clone())))
        .map_err(from_datafusion)?;
    Ok(())
}

/// Plans one SQL statement in `ctx`, parsed in [`ReelDialect`] so time-travel clauses work.
pub async fn sql(ctx: &SessionContext, query: &str) -> Result<DataFrame> {
    let dialect = ReelDialect::default();
    let mut parser = DFParserBuilder::new(query)
        .with_dialect(&dialect)
        .build()
        .map_err(from_datafusion)?;
    let mut statements = parser.parse_statements().map_err(from_datafusion)?;
    let statement = match (statements.pop_front(), statements.is_empty()) {
        (Some(s), true) => s,
        (None, _) => return Err(Error::InvalidArgument("no SQL statement given".into())),
        (Some(_), false) => {
            return Err(Error::InvalidArgument(
                "give one SQL statement at a time".into(),
            ));
        }
    };
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(from_datafusion)?;
    ctx.execute_logical_plan(plan)
        .await
        .map_err(from_datafusion)
}

/// A DataFusion session over a store at one version, with its own runtime: queries run to
/// completion from synchronous code.
pub struct SqlSession {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    version: u64,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession")
            .field("session", &self.ctx.session_id())
            .field("version", &self.version)
            .finish()
    }
}

impl SqlSession {
    /// A session reading `store` at `version` (`None`: the latest).
    pub fn open(store: &Store, version: Option<u64>) -> Result<SqlSession> {
        let version = match version {
            Some(v) => v,
            None => store.latest()?.version(),
        };
        let ctx = SessionContext::new();
        register(&ctx, store, version)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Sql(format!("cannot start the query runtime: {e}")))?;
        Ok(SqlSession {
            ctx,
            runtime,
            version,
        })
    }

    /// The version queries without a time-travel clause read.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The DataFusion context, to register more tables or functions.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans `query` (see [`sql`]).
    pub fn dataframe(&self, query: &str) -> Result<DataFrame> {
        self.runtime
            .block_on(sql(&self.ctx, query))
            .map_err(|e| self.name_tables(e))
    }

    /// Runs `query` and returns its result.
    pub fn query(&self, query: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.query_with_schema(query)?.1)
    }

    /// Runs `query`; returns its schema and result.
    pub fn query_with_schema(
        &self,
        query: &str,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        self.runtime
            .block_on(async {
                let df = sql(&self.ctx, query).await?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await.map_err(from_datafusion)?;
                Ok((schema, batches))
            })
            .map_err(|e| self.name_tables(e))
    }

    /// DataFusion's "table not found" with the tables there are at the session's version.
    fn name_tables(&self, e: Error) -> Error {
        match e {
            Error::Sql(message) if message.contains("not found") => {
                let mut tables = Vec::new();
                if let Some(schema) = self
                    .ctx
                    .catalog("datafusion")
                    .and_then(|c| c.schema("public"))
                {
                    tables = schema.table_names();
                    tables.sort();
                }
                Error::Sql(format!(
                    "{message} (tables at version {}: {})",
                    self.version,
                    time_travel::list(&tables)
                ))
            }
            e => e,
        }
    }
}

/// A ReelDB error carried through DataFusion (recovered by [`from_datafusion`]).
pub(crate) fn to_datafusion(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A DataFusion error as a ReelDB error: the ReelDB error it carries, if any, else
/// [`Error::Sql`] with DataFusion's message.
pub fn from_datafusion(e: DataFusionError) -> Error {
    let message = e.to_string();
    let mut at = e;
    loop {
        at = match at {
            DataFusionError::External(inner) => {
                return match inner.downcast::<Error>() {
                    Ok(ours) => *ours,
                    Err(_) => Error::Sql(message),
                };
            }
            DataFusionError::Context(_, inner) => *inner,
            DataFusionError::Shared(inner) => match Arc::try_unwrap(inner) {
                Ok(inner) => inner,
                Err(_) => return Error::Sql(message),
            },
            _ => return Error::Sql(message),
        };
    }
}
