//! DataFusion filter expressions turned into ReelDB [`Filter`]s: a column compared with a
//! literal of the column's own type (`=`, `<`, `<=`, `>`, `>=`), `BETWEEN` and `IN` lists.
//! Those are evaluated exactly by the scan (and prune leaves by their zone maps); anything
//! else is left to DataFusion.

use arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};
use datafusion::scalar::ScalarValue;

use crate::read::filter::Filter;
use crate::value::Value;

/// `scalar` as a ReelDB value, for any type a key or filter can hold; `None` for a null or
/// another type.
pub fn scalar_value(scalar: &ScalarValue) -> Option<Value> {
    Some(match scalar {
        ScalarValue::Boolean(Some(v)) => Value::Bool(*v),
        ScalarValue::Int8(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Value::Int(*v),
        ScalarValue::UInt8(Some(v)) => Value::UInt(u64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Value::UInt(u64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Value::UInt(u64::from(*v)),
        ScalarValue::UInt64(Some(v)) => Value::UInt(*v),
        ScalarValue::Float32(Some(v)) => Value::Float(f64::from(*v)),
        ScalarValue::Float64(Some(v)) => Value::Float(*v),
        ScalarValue::Utf8(Some(v))
        | ScalarValue::LargeUtf8(Some(v))
        | ScalarValue::Utf8View(Some(v)) => Value::Str(v.clone()),
        ScalarValue::Binary(Some(v))
        | ScalarValue::LargeBinary(Some(v))
        | ScalarValue::BinaryView(Some(v)) => Value::Bytes(v.clone()),
        ScalarValue::Date32(Some(v)) => Value::Int(i64::from(*v)),
        ScalarValue::Date64(Some(v))
        | ScalarValue::TimestampSecond(Some(v), _)
        | ScalarValue::TimestampMillisecond(Some(v), _)
        | ScalarValue::TimestampMicrosecond(Some(v), _)
        | ScalarValue::TimestampNanosecond(Some(v), _) => Value::Int(*v),
        _ => return None,
    })
}

/// The column `expr` names and its type, if it is a plain column of `schema`.
fn column<'a>(expr: &'a Expr, schema: &'a Schema) -> Option<(&'a str, &'a DataType)> {
    match expr {
        Expr::Column(c) => {
            let field = schema.field_with_name(&c.name).ok()?;
            Some((c.name.as_str(), field.data_type()))
        }
        _ => None,
    }
}

/// The value of a literal of exactly type `t` (so the scan's comparison is DataFusion's).
fn literal(expr: &Expr, t: &DataType) -> Option<Value> {
    match expr {
        Expr::Literal(scalar, _) if &scalar.data_type() == t => scalar_value(scalar),
        _ => None,
    }
}

/// The ReelDB filter that selects exactly the rows `expr` is true for, if there is one.
pub fn to_filter(expr: &Expr, schema: &Schema) -> Option<Filter> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (name, value, op) = match (column(left, schema), column(right, schema)) {
                (Some((name, t)), None) => (name, literal(right, t)?, *op),
                (None, Some((name, t))) => (name, literal(left, t)?, op.swap()?),
                _ => return None,
            };
            Some(match op {
                Operator::Eq => Filter::eq(name, value),
                Operator::Lt => Filter::lt(name, value),
                Operator::LtEq => Filter::le(name, value),
                Operator::Gt => Filter::gt(name, value),
                Operator::GtEq => Filter::ge(name, value),
                _ => return None,
            })
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let (name, t) = column(expr, schema)?;
            Some(Filter::between(name, literal(low, t)?, literal(high, t)?))
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let (name, t) = column(expr, schema)?;
            let values = list
                .iter()
                .map(|v| literal(v, t))
                .collect::<Option<Vec<_>>>()?;
            (!values.is_empty()).then(|| Filter::is_in(name, values))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use datafusion::logical_expr::{col, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Utf8, true),
            Field::new("small", DataType::Int32, true),
        ])
    }

    #[test]
    fn comparisons_with_literals_of_the_column_type_become_filters() {
        let s = schema();
        assert_eq!(
            to_filter(&col("id").gt(lit(5i64)), &s),
            Some(Filter::gt("id", 5i64))
        );
        assert_eq!(
            to_filter(&lit(5i64).gt(col("id")), &s),
            Some(Filter::lt("id", 5i64))
        );
        assert_eq!(
            to_filter(&col("status").eq(lit("paid")), &s),
            Some(Filter::eq("status", "paid"))
        );
        assert_eq!(
            to_filter(&col("id").between(lit(1i64), lit(9i64)), &s),
            Some(Filter::between("id", 1i64, 9i64))
        );
        assert_eq!(
            to_filter(&col("id").in_list(vec![lit(1i64), lit(2i64)], false), &s),
            Some(Filter::is_in("id", [1i64, 2i64]))
        );
    }

    #[test]
    fn anything_the_scan_cannot_evaluate_exactly_is_left_to_datafusion() {
        let s = schema();
        // A literal of another type (DataFusion would cast the column), a negation, a
        // not-equal, an expression of two columns, a null literal, an unknown column.
        assert_eq!(to_filter(&col("small").gt(lit(5i64)), &s), None);
        assert_eq!(to_filter(&col("id").not_eq(lit(5i64)), &s), None);
        assert_eq!(
            to_filter(&col("id").in_list(vec![lit(1i64)], true), &s),
            None
        );
        assert_eq!(to_filter(&col("id").gt(col("small")), &s), None);
        assert_eq!(
            to_filter(&col("id").eq(lit(ScalarValue::Int64(None))), &s),
            None
        );
        assert_eq!(to_filter(&col("nope").eq(lit(1i64)), &s), None);
    }
}
