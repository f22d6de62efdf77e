//! A transaction's schema changes and table lifecycle: [`Transaction::alter`] and the
//! column and table operations built on it, each validated in full when called (see
//! [`crate::writer::schema_change`]) and written by the commit as a new table definition.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};

use super::{AlteredTable, Transaction};
use crate::catalog::version::TableDef;
use crate::error::{Error, Result};
use crate::writer::schema_change::{self, ColumnChange};

impl Transaction<'_> {
    /// Changes `table`'s columns (see [`ColumnChange`]) in this commit. Versions before it
    /// keep reading their own schema; no stored block is rewritten. The table may take rows
    /// in the new schema later in the same transaction, but not before the change.
    pub fn alter(&mut self, table: &str, change: ColumnChange) -> Result<&mut Self> {
        self.before_rows(table, "change its schema")?;
        let (from, def, schema) = self.current_def(table)?;
        let (def, _) = schema_change::alter(table, &def, &schema, &change)?;
        self.put_altered(from, table.to_string(), def)
    }

    /// Adds `field` as the table's last column; rows written before read as `default` (a
    /// literal of the field's type, cast as [`Value`](crate::Value)s are), or as nulls.
    pub fn add_column(
        &mut self,
        table: &str,
        field: Field,
        default: Option<&str>,
    ) -> Result<&mut Self> {
        self.alter(
            table,
            ColumnChange::Add {
                field,
                default: default.map(str::to_string),
            },
        )
    }

    /// Drops a column that is not part of the key.
    pub fn drop_column(&mut self, table: &str, column: &str) -> Result<&mut Self> {
        self.alter(table, ColumnChange::Drop(column.to_string()))
    }

    /// Renames a column.
    pub fn rename_column(&mut self, table: &str, from: &str, to: &str) -> Result<&mut Self> {
        self.alter(
            table,
            ColumnChange::Rename {
                from: from.to_string(),
                to: to.to_string(),
            },
        )
    }

    /// Widens a non-key column's type (see [`ColumnChange::Widen`]).
    pub fn widen_column(&mut self, table: &str, column: &str, to: DataType) -> Result<&mut Self> {
        self.alter(
            table,
            ColumnChange::Widen {
                column: column.to_string(),
                to,
            },
        )
    }

    /// Drops a table. Versions before this commit still read it; its space is reclaimed once
    /// no kept version does (expiry, then log cleaning).
    pub fn drop_table(&mut self, table: &str) -> Result<&mut Self> {
        self.before_rows(table, "drop it")?;
        let (from, _, _) = self.current_def(table)?;
        self.definitions.altered.retain(|a| a.name != table);
        self.definitions.dropped.push(from);
        Ok(self)
    }

    /// Renames a table. Versions before this commit still read it under its old name.
    pub fn rename_table(&mut self, from: &str, to: &str) -> Result<&mut Self> {
        if to.is_empty() || to.chars().any(|c| c.is_control()) {
            return Err(Error::InvalidArgument(format!("bad table name {to:?}")));
        }
        self.before_rows(from, "rename it")?;
        if self.layout(to).is_ok() {
            return Err(Error::TableExists(to.to_string()));
        }
        let (head_name, mut def, _) = self.current_def(from)?;
        def.name = to.to_string();
        self.definitions.altered.retain(|a| a.name != from);
        self.put_altered(head_name, to.to_string(), def)
    }

    /// Fails when `table` already has rows in this transaction: what is asked (`what`) must
    /// come before them.
    fn before_rows(&self, table: &str, what: &str) -> Result<()> {
        if self.changes.contains_key(table) {
            return Err(Error::InvalidArgument(format!(
                "table {table} already has rows in this commit; {what} before writing to it"
            )));
        }
        Ok(())
    }

    /// Table `table`'s name at the latest version, and its definition and schema as this
    /// transaction has them so far.
    fn current_def(&self, table: &str) -> Result<(String, TableDef, SchemaRef)> {
        if self.definitions.creates.iter().any(|p| p.name == table) {
            return Err(Error::InvalidArgument(format!(
                "table {table} is created in this commit; create it as it should be"
            )));
        }
        if let Some(a) = self.definitions.altered.iter().find(|a| a.name == table) {
            return Ok((a.from.clone(), a.def.clone(), a.layout.schema.clone()));
        }
        let entry = self.writer.head_entry(table, &self.definitions)?;
        let loaded = self.writer.store.load_def(entry.def)?;
        Ok((
            table.to_string(),
            loaded.def.clone(),
            loaded.layout.schema.clone(),
        ))
    }

    fn put_altered(&mut self, from: String, name: String, def: TableDef) -> Result<&mut Self> {
        let layout = Arc::new(def.layout(0)?);
        self.definitions.altered.retain(|a| a.name != name);
        self.definitions.altered.push(AlteredTable {
            from,
            name,
            def,
            layout,
        });
        Ok(self)
    }
}
