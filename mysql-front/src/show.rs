//! SHOW statements, answered from the catalog and the session.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, ShowStatementFilter};

use lakehouse::info_schema::{INFORMATION_SCHEMA, InfoSchemaProvider};
use lakehouse::types::mysql_type_of;
use lakehouse::{ColumnDef, Lakehouse};

use crate::session::Response;
use crate::wire::codes::{ER_NO_SUCH_TABLE, MyError, S_42S02};
use crate::wire::resultset::ColumnInfo;

/// A result of text columns.
pub fn text_result(columns: &[&str], rows: Vec<Vec<Option<String>>>) -> Result<Response, MyError> {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from(rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| MyError::from(datafusion::error::DataFusionError::from(e)))?;
    batch_result(batch)
}

pub fn batch_result(batch: RecordBatch) -> Result<Response, MyError> {
    let schema = batch.schema();
    let mut cols = ColumnInfo::from_schema(&schema, &[]);
    for c in &mut cols {
        // SHOW output columns are VARCHAR in MySQL.
        if c.ty.data_type == "text" {
            c.ty = mysql_type_of(&DataType::Utf8);
            c.ty.kind = lakehouse::types::MyKind::VarString;
            c.ty.length = 256 * 4;
        }
    }
    let stream = MemoryStream::try_new(vec![batch], schema, None).map_err(MyError::from)?;
    Ok(Response::Rows { cols, stream: Box::pin(stream) })
}

/// MySQL LIKE, case-insensitive, with `%`, `_` and backslash escapes.
pub fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('\\') if p.len() > 1 => !t.is_empty() && t[0] == p[1] && go(&p[2..], &t[1..]),
            Some(c) => !t.is_empty() && t[0] == *c && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    go(&p, &t)
}

/// Applies a SHOW filter: LIKE on the first column, or a WHERE expression
/// evaluated by the engine over the rows.
pub async fn filter_rows(
    ctx: &SessionContext,
    columns: &[&str],
    rows: Vec<Vec<Option<String>>>,
    filter: Option<&ShowStatementFilter>,
) -> Result<Vec<Vec<Option<String>>>, MyError> {
    match filter {
        None => Ok(rows),
        Some(ShowStatementFilter::Like(p) | ShowStatementFilter::ILike(p) | ShowStatementFilter::NoKeyword(p)) => {
            Ok(rows.into_iter().filter(|r| r[0].as_deref().is_some_and(|v| like(p, v))).collect())
        }
        Some(ShowStatementFilter::Where(expr)) => where_filter(ctx, columns, rows, expr).await,
    }
}

async fn where_filter(
    ctx: &SessionContext,
    columns: &[&str],
    rows: Vec<Vec<Option<String>>>,
    expr: &Expr,
) -> Result<Vec<Vec<Option<String>>>, MyError> {
    // Column names are lower-cased so unquoted references resolve.
    let lower: Vec<String> = columns.iter().map(|c| c.to_lowercase()).collect();
    let schema = Arc::new(Schema::new(lower.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from(rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema, arrays).map_err(|e| MyError::from(datafusion::error::DataFusionError::from(e)))?;
    let df = ctx.read_batch(batch)?;
    let predicate = df.parse_sql_expr(&expr.to_string())?;
    let out = df.filter(predicate)?.collect().await?;
    let mut result = Vec::new();
    for b in out {
        for r in 0..b.num_rows() {
            result.push(
                (0..b.num_columns())
                    .map(|c| {
                        let a = b.column(c);
                        let s = a.as_any().downcast_ref::<StringArray>();
                        s.and_then(|s| (!s.is_null(r)).then(|| s.value(r).to_string()))
                    })
                    .collect(),
            );
        }
    }
    Ok(result)
}

/// The columns of a table (lake or information_schema).
pub fn table_columns(lake: &Lakehouse, db: &str, table: &str) -> Result<Vec<ColumnDef>, MyError> {
    if db == INFORMATION_SCHEMA {
        return InfoSchemaProvider::table_columns(table).ok_or_else(|| no_such_table(db, table));
    }
    lake.table(db, table).map(|t| t.columns).ok_or_else(|| no_such_table(db, table))
}

pub fn no_such_table(db: &str, table: &str) -> MyError {
    MyError::new(ER_NO_SUCH_TABLE, S_42S02, format!("Table '{db}.{table}' doesn't exist"))
}

/// SHOW [FULL] COLUMNS / DESCRIBE rows.
pub fn columns_rows(cols: &[ColumnDef], full: bool) -> Vec<Vec<Option<String>>> {
    cols.iter()
        .map(|c| {
            let ty = c.mysql_type.clone().unwrap_or_else(|| {
                c.arrow_type().map(|t| mysql_type_of(&t).column_type).unwrap_or_else(|_| "text".into())
            });
            let text = c.arrow_type().map(|t| mysql_type_of(&t).is_text()).unwrap_or(false);
            let null = Some(if c.nullable { "YES" } else { "NO" }.to_string());
            if full {
                vec![
                    Some(c.name.clone()),
                    Some(ty),
                    text.then(|| "utf8mb4_general_ci".to_string()),
                    null,
                    Some(String::new()),
                    None,
                    Some(String::new()),
                    Some("select".into()),
                    Some(String::new()),
                ]
            } else {
                vec![Some(c.name.clone()), Some(ty), null, Some(String::new()), None, Some(String::new())]
            }
        })
        .collect()
}

pub const COLUMNS_HEADER: [&str; 6] = ["Field", "Type", "Null", "Key", "Default", "Extra"];
pub const FULL_COLUMNS_HEADER: [&str; 9] =
    ["Field", "Type", "Collation", "Null", "Key", "Default", "Extra", "Privileges", "Comment"];
