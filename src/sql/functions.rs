//! The table functions `reel_changes('t', from, to)` (the rows of `t` that differ between two
//! versions, see [`Store::changes`]) and `reel_history('t', key...)` (every version at which
//! one row changed, see [`Store::history`]).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;

use crate::sql::pushdown::scalar_value;
use crate::sql::to_datafusion;
use crate::store::Store;
use crate::value::{Key, Value};

/// `reel_changes('table', from_version, to_version)`.
#[derive(Debug)]
pub struct ChangesFunction {
    store: Store,
}

impl ChangesFunction {
    /// The function over `store`.
    pub fn new(store: Store) -> Self {
        ChangesFunction { store }
    }
}

/// `reel_history('table', key_value, ...)`, one value per key column.
#[derive(Debug)]
pub struct HistoryFunction {
    store: Store,
}

impl HistoryFunction {
    /// The function over `store`.
    pub fn new(store: Store) -> Self {
        HistoryFunction { store }
    }
}

fn usage(function: &str, usage: &str, detail: String) -> DataFusionError {
    DataFusionError::Plan(format!("{function}: {detail} (usage: {usage})"))
}

/// The literal value of argument `i`.
fn argument(function: &str, help: &str, exprs: &[Expr], i: usize) -> DfResult<ScalarValue> {
    match exprs.get(i) {
        Some(Expr::Literal(v, _)) => Ok(v.clone()),
        Some(other) => Err(usage(
            function,
            help,
            format!("argument {} must be a literal, got {other}", i + 1),
        )),
        None => Err(usage(function, help, format!("missing argument {}", i + 1))),
    }
}

fn table_name(function: &str, help: &str, exprs: &[Expr]) -> DfResult<String> {
    match argument(function, help, exprs, 0)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Ok(s),
        other => Err(usage(
            function,
            help,
            format!("the table must be a string, got {other}"),
        )),
    }
}

fn version(function: &str, help: &str, exprs: &[Expr], i: usize) -> DfResult<u64> {
    let v = argument(function, help, exprs, i)?;
    match scalar_value(&v) {
        Some(Value::Int(n)) if n > 0 => Ok(n as u64),
        Some(Value::UInt(n)) if n > 0 => Ok(n),
        _ => Err(usage(
            function,
            help,
            format!("argument {} must be a version number, got {v}", i + 1),
        )),
    }
}

impl TableFunctionImpl for ChangesFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        const HELP: &str = "reel_changes('table', from_version, to_version)";
        let exprs = args.exprs();
        if exprs.len() != 3 {
            return Err(usage(
                "reel_changes",
                HELP,
                format!("takes 3 arguments, got {}", exprs.len()),
            ));
        }
        let table = table_name("reel_changes", HELP, exprs)?;
        let from = version("reel_changes", HELP, exprs, 1)?;
        let to = version("reel_changes", HELP, exprs, 2)?;
        let changes = self
            .store
            .changes(&table, from, to)
            .map_err(to_datafusion)?;
        Ok(Arc::new(MemTable::try_new(
            changes.schema,
            vec![changes.batches],
        )?))
    }
}

impl TableFunctionImpl for HistoryFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        const HELP: &str = "reel_history('table', key_value, ...)";
        let exprs = args.exprs();
        let table = table_name("reel_history", HELP, exprs)?;
        if exprs.len() < 2 {
            return Err(usage(
                "reel_history",
                HELP,
                "give the row's key, one value per key column".into(),
            ));
        }
        let key = (1..exprs.len())
            .map(|i| {
                let v = argument("reel_history", HELP, exprs, i)?;
                scalar_value(&v).ok_or_else(|| {
                    usage(
                        "reel_history",
                        HELP,
                        format!("key value {v} is null or of an unsupported type"),
                    )
                })
            })
            .collect::<DfResult<Vec<_>>>()?;
        let history = self
            .store
            .history(&table, Key(key))
            .map_err(to_datafusion)?;
        Ok(Arc::new(MemTable::try_new(
            history.schema(),
            vec![vec![history]],
        )?))
    }
}
