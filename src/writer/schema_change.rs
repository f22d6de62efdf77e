//! Schema changes: a table's definition rewritten for an added, dropped, renamed or widened
//! column, validated in full before anything is written. Each change keeps every column's
//! slot, so data written under the old definition reads under the new one (and the other way
//! round) without being rewritten: see `reeldb_keyframe::tree::TableLayout`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::catalog::version::{ColumnDef, TableDef, literal, schema_to_ipc};
use crate::error::{Error, Result};

/// One change to a table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnChange {
    /// Adds `field` as the last column. Rows written before read as `default` (a literal of
    /// the field's type), or as nulls without one; a non-nullable field needs a default.
    Add {
        /// The new column.
        field: Field,
        /// Its default, as a literal of its type.
        default: Option<String>,
    },
    /// Drops a column that is not part of the key.
    Drop(String),
    /// Renames a column (key columns too).
    Rename {
        /// The column's name.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Widens a column's type: a signed integer to a wider signed one, an unsigned to a wider
    /// unsigned one, float32 to float64, utf8 to large_utf8, binary to large_binary, or a
    /// decimal128 to a larger precision with the same scale. Key columns keep their type.
    Widen {
        /// The column's name.
        column: String,
        /// Its new type.
        to: DataType,
    },
}

/// True when a column of type `from` may be widened to `to` (see [`ColumnChange::Widen`]).
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let signed = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(4),
        Int64 => Some(8),
        _ => None,
    };
    let unsigned = |t: &DataType| match t {
        UInt8 => Some(1),
        UInt16 => Some(2),
        UInt32 => Some(4),
        UInt64 => Some(8),
        _ => None,
    };
    match (from, to) {
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (Utf8, LargeUtf8) | (Binary, LargeBinary) => true,
        (Decimal128(p, s), Decimal128(q, t)) => q > p && s == t,
        _ => match (signed(from), signed(to), unsigned(from), unsigned(to)) {
            (Some(a), Some(b), _, _) | (_, _, Some(a), Some(b)) => b > a,
            _ => false,
        },
    }
}

/// Parses a lower-case Arrow type name as pyarrow prints it: `int8` .. `int64`, `uint8` ..
/// `uint64`, `float16`/`halffloat`, `float32`/`float`, `float64`/`double`, `bool`/`boolean`,
/// `utf8`/`string`, `large_utf8`/`large_string`, `binary`, `large_binary`,
/// `date32`/`date32[day]`, `date64`/`date64[ms]`, `timestamp[s|ms|us|ns]` (optionally
/// `timestamp[us, tz=UTC]`) and `decimal128(p, s)`.
pub fn parse_type(text: &str) -> Result<DataType> {
    use arrow::datatypes::TimeUnit;
    let t = text.trim().to_ascii_lowercase();
    let bad = || {
        Error::InvalidArgument(format!(
            "unknown type {text:?} (use an Arrow type name such as int64, float64, utf8, bool,              date32, timestamp[us] or decimal128(12, 2))"
        ))
    };
    Ok(match t.as_str() {
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float16" | "halffloat" => DataType::Float16,
        "float32" | "float" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "utf8" | "string" => DataType::Utf8,
        "large_utf8" | "large_string" => DataType::LargeUtf8,
        "binary" => DataType::Binary,
        "large_binary" => DataType::LargeBinary,
        "date32" | "date32[day]" => DataType::Date32,
        "date64" | "date64[ms]" => DataType::Date64,
        _ => {
            if let Some(inner) = t
                .strip_prefix("timestamp[")
                .and_then(|r| r.strip_suffix(']'))
            {
                let (unit, tz) = match inner.split_once(',') {
                    Some((u, tz)) => {
                        let tz = tz.trim().strip_prefix("tz=").ok_or_else(bad)?;
                        // Time zone names keep their case.
                        let at = text.find("tz=").map_or(tz.len(), |i| i + 3);
                        let original = text[at..].trim_end().trim_end_matches(']').trim();
                        (u.trim(), Some(original.to_string()))
                    }
                    None => (inner.trim(), None),
                };
                let unit = match unit {
                    "s" => TimeUnit::Second,
                    "ms" => TimeUnit::Millisecond,
                    "us" => TimeUnit::Microsecond,
                    "ns" => TimeUnit::Nanosecond,
                    _ => return Err(bad()),
                };
                return Ok(DataType::Timestamp(unit, tz.map(Into::into)));
            }
            let Some(args) = t
                .strip_prefix("decimal128(")
                .and_then(|r| r.strip_suffix(')'))
            else {
                return Err(bad());
            };
            let (p, s) = args.split_once(',').ok_or_else(bad)?;
            let p: u8 = p.trim().parse().map_err(|_| bad())?;
            let s: i8 = s.trim().parse().map_err(|_| bad())?;
            if p == 0 || p > 38 || i16::from(s) > i16::from(p) {
                return Err(bad());
            }
            DataType::Decimal128(p, s)
        }
    })
}

/// The name [`parse_type`] reads for `data_type` (Arrow's own display for other types).
pub fn type_name(data_type: &DataType) -> String {
    use arrow::datatypes::TimeUnit;
    match data_type {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::Binary => "binary".into(),
        DataType::LargeBinary => "large_binary".into(),
        DataType::Date32 => "date32".into(),
        DataType::Date64 => "date64".into(),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{unit}, tz={tz}]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        DataType::Decimal128(p, s) => format!("decimal128({p}, {s})"),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// `def` (whose schema is `schema`) after `change`, with its new schema. `table` names the
/// table in errors. Nothing is written.
pub(crate) fn alter(
    table: &str,
    def: &TableDef,
    schema: &Schema,
    change: &ColumnChange,
) -> Result<(TableDef, SchemaRef)> {
    let position = |name: &str| {
        schema
            .fields()
            .iter()
            .position(|f| f.name() == name)
            .ok_or_else(|| Error::UnknownColumn {
                table: table.to_string(),
                column: name.to_string(),
            })
    };
    let taken = |name: &str| -> Result<()> {
        if schema.fields().iter().any(|f| f.name() == name) {
            return Err(Error::ColumnExists {
                table: table.to_string(),
                column: name.to_string(),
            });
        }
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return Err(Error::InvalidArgument(format!("bad column name {name:?}")));
        }
        Ok(())
    };
    let is_key = |name: &str| def.key_columns.iter().any(|k| k == name);
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut next = def.clone();
    match change {
        ColumnChange::Add { field, default } => {
            taken(field.name())?;
            reeldb_keyframe::block::check_storable(field.name(), field.data_type()).map_err(
                |e| Error::SchemaMismatch {
                    table: table.to_string(),
                    reason: e.to_string(),
                },
            )?;
            if let Some(text) = default
                && literal(text, field.data_type()).is_none()
            {
                return Err(Error::BadDefault {
                    table: table.to_string(),
                    column: field.name().clone(),
                    value: text.clone(),
                    data_type: field.data_type().to_string(),
                });
            }
            if !field.is_nullable() && default.is_none() {
                return Err(Error::SchemaMismatch {
                    table: table.to_string(),
                    reason: format!(
                        "column {} is not nullable and has no default for the rows already \
                         written",
                        field.name()
                    ),
                });
            }
            let slot = next.slots;
            next.slots = slot.checked_add(1).ok_or_else(|| Error::SchemaMismatch {
                table: table.to_string(),
                reason: format!("a table has at most {} column slots", u16::MAX),
            })?;
            fields.push(field.clone());
            next.columns.push(ColumnDef {
                slot,
                epoch: 0,
                default: default.clone(),
            });
        }
        ColumnChange::Drop(name) => {
            let c = position(name)?;
            if is_key(name) {
                return Err(Error::KeyColumnChange {
                    table: table.to_string(),
                    column: name.clone(),
                    change: "dropped".into(),
                });
            }
            fields.remove(c);
            next.columns.remove(c);
        }
        ColumnChange::Rename { from, to } => {
            let c = position(from)?;
            taken(to)?;
            fields[c] = fields[c].clone().with_name(to);
            for k in &mut next.key_columns {
                if k == from {
                    *k = to.clone();
                }
            }
        }
        ColumnChange::Widen { column, to } => {
            let c = position(column)?;
            if is_key(column) {
                return Err(Error::KeyColumnChange {
                    table: table.to_string(),
                    column: column.clone(),
                    change: "retyped".into(),
                });
            }
            let from = fields[c].data_type().clone();
            if !widens(&from, to) {
                return Err(Error::NotAWidening {
                    table: table.to_string(),
                    column: column.clone(),
                    from: from.to_string(),
                    to: to.to_string(),
                });
            }
            if let Some(text) = &next.columns[c].default
                && literal(text, to).is_none()
            {
                return Err(Error::BadDefault {
                    table: table.to_string(),
                    column: column.clone(),
                    value: text.clone(),
                    data_type: to.to_string(),
                });
            }
            fields[c] = fields[c].clone().with_data_type(to.clone());
            next.columns[c].epoch =
                next.columns[c]
                    .epoch
                    .checked_add(1)
                    .ok_or_else(|| Error::SchemaMismatch {
                        table: table.to_string(),
                        reason: format!("column {column} was widened too often"),
                    })?;
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    next.schema_ipc = schema_to_ipc(&schema)?;
    Ok((next, schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_read_back_as_their_types() {
        use arrow::datatypes::TimeUnit;
        for t in [
            DataType::Int8,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())),
            DataType::Decimal128(12, 2),
        ] {
            assert_eq!(parse_type(&type_name(&t)).unwrap(), t, "{t}");
        }
        assert_eq!(parse_type("double").unwrap(), DataType::Float64);
        assert_eq!(parse_type("string").unwrap(), DataType::Utf8);
        for bad in ["int", "decimal128(0, 0)", "timestamp[h]", "list<int64>", ""] {
            assert!(
                matches!(parse_type(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_widenings_within_one_family_are_widenings() {
        use DataType::*;
        for (a, b) in [
            (Int8, Int64),
            (Int32, Int64),
            (UInt16, UInt32),
            (Float32, Float64),
            (Utf8, LargeUtf8),
            (Decimal128(10, 2), Decimal128(20, 2)),
        ] {
            assert!(widens(&a, &b), "{a} -> {b}");
        }
        for (a, b) in [
            (Int64, Int32),
            (Int32, Int32),
            (Int32, UInt64),
            (UInt32, Int64),
            (Float64, Float32),
            (Int64, Float64),
            (LargeUtf8, Utf8),
            (Decimal128(10, 2), Decimal128(20, 3)),
            (Decimal128(20, 2), Decimal128(10, 2)),
        ] {
            assert!(!widens(&a, &b), "{a} -> {b}");
        }
    }
}
