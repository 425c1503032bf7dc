//! Running sqllogictest files over the MySQL wire. Errors display as
//! `ERROR <code> (<sqlstate>): <message>`, so files assert codes with
//! `statement error 1146` / `query error 42S02`.

use std::path::{Path, PathBuf};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

use crate::workspace;

#[derive(Debug)]
pub struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

fn to_error(e: mysql_async::Error) -> SltError {
    match e {
        mysql_async::Error::Server(s) => SltError(format!("ERROR {} ({}): {}", s.code, s.state, s.message)),
        other => SltError(format!("client error: {other}")),
    }
}

pub struct MySqlDb {
    conn: Conn,
}

fn column_type(t: mysql_async::consts::ColumnType) -> DefaultColumnType {
    use mysql_async::consts::ColumnType as C;
    match t {
        C::MYSQL_TYPE_TINY | C::MYSQL_TYPE_SHORT | C::MYSQL_TYPE_LONG | C::MYSQL_TYPE_LONGLONG | C::MYSQL_TYPE_INT24 | C::MYSQL_TYPE_YEAR => {
            DefaultColumnType::Integer
        }
        C::MYSQL_TYPE_FLOAT | C::MYSQL_TYPE_DOUBLE | C::MYSQL_TYPE_NEWDECIMAL | C::MYSQL_TYPE_DECIMAL => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) if b.is_empty() => "(empty)".into(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => b.iter().map(|x| if x.is_ascii_graphic() { (*x as char).to_string() } else { format!("\\x{x:02x}") }).collect(),
        },
        other => other.as_sql(true).trim_matches('\'').to_string(),
    }
}

#[async_trait::async_trait]
impl AsyncDB for MySqlDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let mut result = self.conn.query_iter(sql).await.map_err(to_error)?;
        let columns = result.columns();
        let rows: Vec<mysql_async::Row> = result.collect().await.map_err(to_error)?;
        let affected = result.affected_rows();
        drop(result);
        match columns {
            Some(cols) if !cols.is_empty() => {
                let types = cols.iter().map(|c| column_type(c.column_type())).collect();
                let rows = rows
                    .into_iter()
                    .map(|r| (0..r.len()).map(|i| r.as_ref(i).map(cell).unwrap_or_default()).collect())
                    .collect();
                Ok(DBOutput::Rows { types, rows })
            }
            _ => Ok(DBOutput::StatementComplete(affected)),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lakewave"
    }
}

/// The `.slt` files of a directory under `tests/slt`, sorted; `SLT=name`
/// keeps only files whose path contains `name`.
pub fn slt_files(dir: &str) -> Vec<PathBuf> {
    let dir = workspace().join("tests/slt").join(dir);
    let filter = std::env::var("SLT").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| filter.as_ref().is_none_or(|f| p.to_string_lossy().contains(f.as_str())))
        .collect();
    files.sort();
    files
}

/// Runs one file against the server at `url` with `${NAME}` variables.
pub async fn run_file(url: &str, file: &Path, vars: &[(&str, String)]) -> Result<(), String> {
    let url = url.to_string();
    let mut runner = Runner::new(move || {
        let url = url.clone();
        async move { Conn::from_url(url).await.map(|conn| MySqlDb { conn }).map_err(to_error) }
    });
    for (k, v) in vars {
        runner.set_var(k.to_string(), v.clone());
    }
    runner.run_file_async(file).await.map_err(|e| format!("{}:\n{e}", file.display()))
}
