//! [`Filter`]: a predicate on one column as users write it, with values converted to the
//! column's type when a scan binds it.

use arrow::datatypes::SchemaRef;
use reeldb_keyframe::{BoundPredicate, CmpOp, Predicate};

use crate::error::{Error, Result};
use crate::value::Value;

/// A predicate on one column: `=`, `<`, `<=`, `>`, `>=`, `between`, `in`. Rows where the
/// column is null never match.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    column: String,
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Compare(CmpOp, Value),
    Between(Value, Value),
    In(Vec<Value>),
}

impl Filter {
    fn cmp(column: &str, op: CmpOp, v: impl Into<Value>) -> Self {
        Filter {
            column: column.to_string(),
            test: Test::Compare(op, v.into()),
        }
    }
    /// `column = value`
    pub fn eq(column: &str, v: impl Into<Value>) -> Self {
        Self::cmp(column, CmpOp::Eq, v)
    }
    /// `column < value`
    pub fn lt(column: &str, v: impl Into<Value>) -> Self {
        Self::cmp(column, CmpOp::Lt, v)
    }
    /// `column <= value`
    pub fn le(column: &str, v: impl Into<Value>) -> Self {
        Self::cmp(column, CmpOp::Le, v)
    }
    /// `column > value`
    pub fn gt(column: &str, v: impl Into<Value>) -> Self {
        Self::cmp(column, CmpOp::Gt, v)
    }
    /// `column >= value`
    pub fn ge(column: &str, v: impl Into<Value>) -> Self {
        Self::cmp(column, CmpOp::Ge, v)
    }
    /// `column BETWEEN low AND high` (inclusive).
    pub fn between(column: &str, low: impl Into<Value>, high: impl Into<Value>) -> Self {
        Filter {
            column: column.to_string(),
            test: Test::Between(low.into(), high.into()),
        }
    }
    /// `column IN (values)`.
    pub fn is_in<V: Into<Value>>(column: &str, values: impl IntoIterator<Item = V>) -> Self {
        Filter {
            column: column.to_string(),
            test: Test::In(values.into_iter().map(Into::into).collect()),
        }
    }

    /// The column the filter reads.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Parses `col OP value` where OP is one of `=`, `==`, `!=` is not supported, `<`, `<=`,
    /// `>`, `>=`; or `col between A and B`; or `col in (A, B, ...)`. Values may be quoted
    /// with `'` or `"`; they are converted to the column's type when the scan runs.
    pub fn parse(expr: &str) -> Result<Filter> {
        let bad = || {
            Error::InvalidArgument(format!(
                "cannot parse filter {expr:?}: expected 'col OP value' (OP one of = < <= > >=), \
             'col between A and B' or 'col in (A, B)'"
            ))
        };
        let expr = expr.trim();
        let lower = expr.to_ascii_lowercase();
        if let Some(at) = lower.find(" between ") {
            let column = expr[..at].trim();
            let rest = &expr[at + 9..];
            let and = rest.to_ascii_lowercase().find(" and ").ok_or_else(bad)?;
            let (lo, hi) = (literal(&rest[..and]), literal(&rest[and + 5..]));
            if column.is_empty() {
                return Err(bad());
            }
            return Ok(Filter::between(column, lo, hi));
        }
        if let Some(at) = lower.find(" in ") {
            let column = expr[..at].trim();
            let list = expr[at + 4..].trim();
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values: Vec<Value> = inner.split(',').map(literal).collect();
            if column.is_empty() || values.is_empty() {
                return Err(bad());
            }
            return Ok(Filter::is_in(column, values));
        }
        for (sym, op) in [
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("==", CmpOp::Eq),
            ("=", CmpOp::Eq),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ] {
            if let Some(at) = expr.find(sym) {
                let column = expr[..at].trim();
                let value = &expr[at + sym.len()..];
                if column.is_empty() || value.trim().is_empty() {
                    return Err(bad());
                }
                return Ok(Filter::cmp(column, op, literal(value)));
            }
        }
        Err(bad())
    }

    /// Resolves the column and converts the values to its type.
    pub(crate) fn bind(&self, schema: &SchemaRef) -> Result<BoundPredicate> {
        let field = schema
            .field_with_name(&self.column)
            .map_err(|_| Error::InvalidArgument(format!("unknown column {}", self.column)))?;
        let t = field.data_type();
        let arr = |v: &Value| v.to_array(t, &self.column);
        let p = match &self.test {
            Test::Compare(op, v) => Predicate::Compare {
                column: self.column.clone(),
                op: *op,
                value: arr(v)?,
            },
            Test::Between(lo, hi) => Predicate::Between {
                column: self.column.clone(),
                low: arr(lo)?,
                high: arr(hi)?,
            },
            Test::In(vs) => Predicate::In {
                column: self.column.clone(),
                values: vs.iter().map(arr).collect::<Result<_>>()?,
            },
        };
        Ok(p.bind(schema)?)
    }
}

fn literal(s: &str) -> Value {
    let s = s.trim();
    let unquoted = s
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
        .unwrap_or(s);
    Value::Str(unquoted.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comparisons_between_and_in() {
        assert_eq!(
            Filter::parse("amount >= 10").unwrap(),
            Filter::ge("amount", "10")
        );
        assert_eq!(
            Filter::parse("region = 'r7'").unwrap(),
            Filter::eq("region", "r7")
        );
        assert_eq!(
            Filter::parse("id BETWEEN 1 AND 5").unwrap(),
            Filter::between("id", "1", "5")
        );
        assert_eq!(
            Filter::parse("s in ('a', 'b')").unwrap(),
            Filter::is_in("s", ["a", "b"])
        );
    }

    #[test]
    fn nonsense_is_an_error() {
        for bad in ["", "amount", "= 5", "x in 1,2", "x between 1"] {
            assert!(Filter::parse(bad).is_err(), "{bad:?}");
        }
    }
}
