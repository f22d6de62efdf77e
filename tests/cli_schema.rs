//! `reel` schema changes end to end: `alter`, `rename`, `drop` and `schema`, and a commit
//! whose file has columns its table lacks (`--evolve`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cli::{fails, ok, seeded, write_arrow};
use common::orders;

#[test]
fn schema_changes_through_the_cli_are_versions_and_old_versions_keep_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = seeded(dir.path(), &[1, 2, 3]);
    assert_eq!(
        ok(&[
            "alter",
            &s,
            "orders",
            "--add-column",
            "tier:int32=1",
            "--rename-column",
            "note=remark",
        ]),
        "3\n"
    );
    assert_eq!(
        ok(&[
            "alter",
            &s,
            "orders",
            "--widen",
            "tier:int64",
            "--drop-column",
            "status"
        ]),
        "4\n"
    );
    let json = ok(&["schema", &s, "orders", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "fields": [
                {"name": "id", "type": "int64", "nullable": false},
                {"name": "amount", "type": "float64", "nullable": true},
                {"name": "remark", "type": "utf8", "nullable": true},
                {"name": "tier", "type": "int64", "nullable": true},
            ],
            "key": ["id"],
        })
    );
    let old = ok(&["schema", &s, "orders", "--version", "2"]);
    assert!(old.contains("status\tutf8\tnot null"), "{old}");
    let rows = ok(&["scan", &s, "orders", "--format", "csv"]);
    assert_eq!(rows.lines().next().unwrap(), "id,amount,remark,tier");
    assert!(rows.lines().skip(1).all(|l| l.ends_with(",1")), "{rows}");
    // Refused changes name what is wrong and write nothing.
    assert!(fails(&["alter", &s, "orders", "--drop-column", "id"]).contains("key"));
    assert!(fails(&["alter", &s, "orders", "--widen", "tier:int8"]).contains("tier"));
    assert!(fails(&["alter", &s, "orders", "--add-column", "x:int32=abc"]).contains("abc"));
    assert!(fails(&["alter", &s, "orders", "--add-column", "x:list"]).contains("unknown type"));
    assert_eq!(ok(&["rename", &s, "orders", "sales"]), "5\n");
    assert!(fails(&["rename", &s, "nope", "x"]).contains("nope"));
    assert_eq!(ok(&["drop", &s, "sales"]), "6\n");
    assert!(fails(&["schema", &s, "sales"]).contains("unknown table"));
    assert!(ok(&["scan", &s, "orders", "--version", "2"]).contains("paid"));
}

#[test]
fn a_commit_whose_file_has_columns_the_table_lacks_is_refused_unless_asked_to_evolve() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = seeded(dir.path(), &[1, 2]);
    let wide = dir.path().join("wide.arrow");
    let base = orders(&[3], 0);
    let mut fields: Vec<arrow::datatypes::Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(arrow::datatypes::Field::new(
        "region",
        arrow::datatypes::DataType::Utf8,
        true,
    ));
    let mut columns = base.columns().to_vec();
    columns.push(std::sync::Arc::new(arrow::array::StringArray::from(vec![
        "eu",
    ])));
    let batch = arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )
    .unwrap();
    write_arrow(&wide, &batch);
    let upsert = format!("orders={}", wide.display());
    let err = fails(&["commit", &s, "--upsert", &upsert]);
    assert!(
        err.contains("region") && err.contains("reel alter") && err.contains("--evolve"),
        "{err}"
    );
    assert_eq!(
        ok(&["versions", &s]).lines().count(),
        3,
        "nothing committed"
    );
    assert_eq!(ok(&["commit", &s, "--upsert", &upsert, "--evolve"]), "3\n");
    let rows = ok(&["scan", &s, "orders", "--format", "csv"]);
    assert!(rows.starts_with("id,status,amount,note,region\n"), "{rows}");
    assert!(rows.contains(",eu"), "{rows}");
    assert_eq!(
        rows.lines().filter(|l| l.ends_with(',')).count(),
        2,
        "{rows}"
    );
}
