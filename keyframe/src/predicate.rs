//! Simple predicates on one column (=, <, <=, >, >=, between, in), evaluated against zone maps
//! to skip whole leaves and against decoded columns to filter rows. Comparisons with null are
//! false, as in SQL.

use arrow::array::{Array, ArrayRef, BooleanArray, Datum, Scalar};
use arrow::compute::kernels::{boolean, cmp};
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::{Error, Result};
use crate::zonemap::{self, ZoneMap};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A predicate on one column. Literals are one-element arrays of the column's type
/// (see [`Predicate::bind`], which checks that).
#[derive(Debug, Clone)]
pub enum Predicate {
    /// `column OP literal`
    Compare {
        /// Column name.
        column: String,
        /// Operator.
        op: CmpOp,
        /// The literal, one element.
        value: ArrayRef,
    },
    /// `column BETWEEN low AND high` (both inclusive).
    Between {
        /// Column name.
        column: String,
        /// Lower bound, one element.
        low: ArrayRef,
        /// Upper bound, one element.
        high: ArrayRef,
    },
    /// `column IN (values)`.
    In {
        /// Column name.
        column: String,
        /// The candidate values, one element each.
        values: Vec<ArrayRef>,
    },
}

/// A predicate checked against a schema: its column index and literal encodings are resolved.
#[derive(Debug, Clone)]
pub struct BoundPredicate {
    predicate: Predicate,
    column: usize,
    /// Zone-map encodings of the literals, in the order of [`Predicate::literals`].
    encoded: Vec<Vec<u8>>,
}

impl Predicate {
    /// The column the predicate reads.
    pub fn column(&self) -> &str {
        match self {
            Predicate::Compare { column, .. }
            | Predicate::Between { column, .. }
            | Predicate::In { column, .. } => column,
        }
    }

    fn literals(&self) -> Vec<&ArrayRef> {
        match self {
            Predicate::Compare { value, .. } => vec![value],
            Predicate::Between { low, high, .. } => vec![low, high],
            Predicate::In { values, .. } => values.iter().collect(),
        }
    }

    /// Resolves the column in `schema` and checks every literal has its type.
    pub fn bind(&self, schema: &SchemaRef) -> Result<BoundPredicate> {
        let (column, field) = schema
            .column_with_name(self.column())
            .ok_or_else(|| Error::UnknownColumn(self.column().to_string()))?;
        let t = field.data_type();
        let mut encoded = Vec::new();
        for lit in self.literals() {
            if lit.len() != 1 || lit.data_type() != t {
                return Err(Error::BadValue {
                    column: field.name().clone(),
                    value: format!("{lit:?}"),
                    reason: format!("expected one value of type {t}"),
                });
            }
            if lit.is_null(0) {
                return Err(Error::BadValue {
                    column: field.name().clone(),
                    value: "null".into(),
                    reason: "comparisons with null match nothing; use a non-null value".into(),
                });
            }
            if zonemap::has_zone_map(t) {
                let rows = zonemap::converter(t)?.convert_columns(std::slice::from_ref(lit))?;
                encoded.push(rows.row(0).as_ref().to_vec());
            }
        }
        Ok(BoundPredicate {
            predicate: self.clone(),
            column,
            encoded,
        })
    }
}

impl BoundPredicate {
    /// Index of the column in the schema it was bound to.
    pub fn column(&self) -> usize {
        self.column
    }

    /// False when no row of a leaf with this zone map can match; true when some may.
    pub fn may_match(&self, zone: &ZoneMap, data_type: &DataType) -> bool {
        let Some((lo, hi)) = &zone.bounds else {
            return true;
        };
        if !zonemap::has_zone_map(data_type) || self.encoded.is_empty() {
            return true;
        }
        let (lo, hi) = (lo.as_slice(), hi.as_slice());
        let e = &self.encoded;
        match &self.predicate {
            Predicate::Compare { op, .. } => {
                let v = e[0].as_slice();
                match op {
                    CmpOp::Eq => lo <= v && v <= hi,
                    CmpOp::Lt => lo < v,
                    CmpOp::Le => lo <= v,
                    CmpOp::Gt => hi > v,
                    CmpOp::Ge => hi >= v,
                }
            }
            Predicate::Between { .. } => e[0].as_slice() <= hi && lo <= e[1].as_slice(),
            Predicate::In { .. } => e.iter().any(|v| lo <= v.as_slice() && v.as_slice() <= hi),
        }
    }

    /// The rows of `array` (the predicate's column) that match.
    pub fn evaluate(&self, array: &ArrayRef) -> Result<BooleanArray> {
        fn compare(array: &ArrayRef, op: CmpOp, lit: &ArrayRef) -> Result<BooleanArray> {
            let s = Scalar::new(lit.clone());
            let d: &dyn Datum = &s;
            Ok(match op {
                CmpOp::Eq => cmp::eq(array, d)?,
                CmpOp::Lt => cmp::lt(array, d)?,
                CmpOp::Le => cmp::lt_eq(array, d)?,
                CmpOp::Gt => cmp::gt(array, d)?,
                CmpOp::Ge => cmp::gt_eq(array, d)?,
            })
        }
        match &self.predicate {
            Predicate::Compare { op, value, .. } => compare(array, *op, value),
            Predicate::Between { low, high, .. } => Ok(boolean::and(
                &compare(array, CmpOp::Ge, low)?,
                &compare(array, CmpOp::Le, high)?,
            )?),
            Predicate::In { values, .. } => {
                let mut acc = BooleanArray::from(vec![false; array.len()]);
                for v in values {
                    acc = boolean::or(&acc, &compare(array, CmpOp::Eq, v)?)?;
                }
                Ok(acc)
            }
        }
    }
}
