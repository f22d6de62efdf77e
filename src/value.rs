//! Values and keys as users write them, turned into Arrow arrays of a column's type.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, NullArray, StringArray,
    UInt64Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;

use crate::error::{Error, Result};

/// A single value: a key component or a filter literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer (also dates as days and timestamps in the column's unit).
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string; cast to the column type when it is not a string column
    /// (`"42"`, `"2024-05-01"` and `"2024-05-01T10:00:00Z"` all work).
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::UInt(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Str(v) => write!(f, "{v:?}"),
            Value::Bytes(v) => write!(f, "{v:?}"),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $as:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(<$as>::from(v))
            }
        }
    )*};
}
value_from!(i8 => Int as i64, i16 => Int as i64, i32 => Int as i64, i64 => Int as i64,
    u8 => UInt as u64, u16 => UInt as u64, u32 => UInt as u64, u64 => UInt as u64,
    f32 => Float as f64, f64 => Float as f64, bool => Bool as bool, String => Str as String,
    Vec<u8> => Bytes as Vec<u8>);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl Value {
    /// This value as a one-element array of type `t`, or an error naming `column`.
    pub fn to_array(&self, t: &DataType, column: &str) -> Result<ArrayRef> {
        let natural: ArrayRef = match self {
            Value::Null => Arc::new(NullArray::new(1)),
            Value::Bool(v) => Arc::new(BooleanArray::from(vec![*v])),
            Value::Int(v) => Arc::new(Int64Array::from(vec![*v])),
            Value::UInt(v) => Arc::new(UInt64Array::from(vec![*v])),
            Value::Float(v) => Arc::new(Float64Array::from(vec![*v])),
            Value::Str(v) => Arc::new(StringArray::from(vec![v.as_str()])),
            Value::Bytes(v) => Arc::new(BinaryArray::from(vec![v.as_slice()])),
        };
        let opts = CastOptions {
            safe: false,
            ..Default::default()
        };
        let bad = |reason: String| {
            Error::InvalidArgument(format!(
                "value {self} does not fit column {column} of type {t}: {reason}"
            ))
        };
        let out = cast_with_options(&natural, t, &opts).map_err(|e| bad(e.to_string()))?;
        if !matches!(self, Value::Null) && out.is_null(0) {
            return Err(bad("it converts to null".into()));
        }
        Ok(out)
    }
}

/// A primary key: one value per key column, in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Key(pub Vec<Value>);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|v| v.to_string()).collect();
        write!(f, "({})", parts.join(", "))
    }
}

impl<T: Into<Value>> From<T> for Key {
    fn from(v: T) -> Self {
        Key(vec![v.into()])
    }
}

impl<A: Into<Value>, B: Into<Value>> From<(A, B)> for Key {
    fn from((a, b): (A, B)) -> Self {
        Key(vec![a.into(), b.into()])
    }
}

impl<A: Into<Value>, B: Into<Value>, C: Into<Value>> From<(A, B, C)> for Key {
    fn from((a, b, c): (A, B, C)) -> Self {
        Key(vec![a.into(), b.into(), c.into()])
    }
}

use arrow::array::Array;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cast_to_the_column_type() {
        let a = Value::from("42").to_array(&DataType::Int32, "x").unwrap();
        assert_eq!(a.data_type(), &DataType::Int32);
        let d = Value::from("2024-05-01")
            .to_array(&DataType::Date32, "d")
            .unwrap();
        assert_eq!(d.data_type(), &DataType::Date32);
    }

    #[test]
    fn a_value_that_does_not_fit_is_an_error() {
        assert!(Value::from("abc").to_array(&DataType::Int64, "x").is_err());
        assert!(Value::from(300).to_array(&DataType::UInt8, "x").is_err());
    }
}
