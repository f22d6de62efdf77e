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
    /// For `IN` over a type with zone maps: the literals' encodings, sorted, so that a row is
    /// tested by one encoding and a binary search instead of one comparison per literal.
    members: Option<Vec<Vec<u8>>>,
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
        let members = match self {
            Predicate::In { .. } if zonemap::has_zone_map(t) => {
                let mut sorted = encoded.clone();
                sorted.sort_unstable();
                Some(sorted)
            }
            _ => None,
        };
        Ok(BoundPredicate {
            predicate: self.clone(),
            column,
            encoded,
            members,
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
            Predicate::In { .. } if let Some(members) = &self.members => {
                // Zone-map encodings are order-preserving and one-to-one, so equal encodings
                // are equal values; a null row's encoding equals no literal's, and is skipped.
                let rows = zonemap::converter(array.data_type())?
                    .convert_columns(std::slice::from_ref(array))?;
                let hits: Vec<bool> = (0..array.len())
                    .map(|i| {
                        let row = rows.row(i);
                        array.is_valid(i)
                            && members
                                .binary_search_by(|m| m.as_slice().cmp(row.as_ref()))
                                .is_ok()
                    })
                    .collect();
                Ok(BooleanArray::from(hits))
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn one_of(column: &str, values: Vec<ArrayRef>) -> Predicate {
        Predicate::In {
            column: column.into(),
            values,
        }
    }

    /// The rows an `IN` matches by the OR of one equality per literal.
    fn by_equalities(array: &ArrayRef, values: &[ArrayRef]) -> Vec<bool> {
        (0..array.len())
            .map(|i| {
                values.iter().any(|v| {
                    cmp::eq(&array.slice(i, 1), &Scalar::new(v.clone()))
                        .unwrap()
                        .value(0)
                        && array.is_valid(i)
                })
            })
            .collect()
    }

    #[test]
    fn in_matches_exactly_the_rows_equal_to_some_literal_and_never_a_null() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(5),
            None,
            Some(-3),
            Some(1 << 40),
            Some(7),
            Some(5),
        ]));
        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("paid"),
            None,
            Some(""),
            Some("new"),
            Some("pai"),
            Some("paid "),
        ]));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(0.5),
            Some(-0.0),
            None,
            Some(2.0),
        ]));
        let cases: Vec<(ArrayRef, Vec<ArrayRef>)> = vec![
            (
                ints,
                [5i64, 1 << 40, 8, -4]
                    .map(|v| Arc::new(Int64Array::from(vec![v])) as ArrayRef)
                    .to_vec(),
            ),
            (
                strings,
                ["paid", "", "old"]
                    .map(|v| Arc::new(StringArray::from(vec![v])) as ArrayRef)
                    .to_vec(),
            ),
            (
                floats,
                [0.5, 0.0, 3.0]
                    .map(|v| Arc::new(Float64Array::from(vec![v])) as ArrayRef)
                    .to_vec(),
            ),
        ];
        for (array, values) in cases {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "c",
                array.data_type().clone(),
                true,
            )]));
            let bound = one_of("c", values.clone()).bind(&schema).unwrap();
            let got: Vec<bool> = bound.evaluate(&array).unwrap().iter().flatten().collect();
            assert_eq!(got, by_equalities(&array, &values), "{array:?}");
            assert!(got.contains(&true), "the case needs a match: {array:?}");
        }
    }
}
