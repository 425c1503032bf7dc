//! Translation of DDL statements into table definitions.
//!
//! Both dialects end in the same [`CreateTablePlan`]: DataFusion's
//! `CREATE EXTERNAL TABLE t [(cols)] STORED AS fmt [PARTITIONED BY (..)]
//! LOCATION '..' [OPTIONS (..)]`, and HeatWave's `CREATE TABLE t (..)
//! ENGINE=lakehouse ENGINE_ATTRIBUTE='{..}'` (see [`crate::heatwave`]).

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::sql::parser::CreateExternalTable;
use datafusion::sql::sqlparser::ast::{
    ColumnDef as SqlColumnDef, ColumnOption, ObjectName, Value,
};

use connectors::Location;

use crate::error::{LakeError, Result};
use crate::model::{ColumnDef, DdlDialect, TableDef};
use crate::provider::location_error;
use crate::types::{arrow_type_for_sql, sql_type_display};

/// A table to create, with the database it goes to (None: the session's).
#[derive(Debug, Clone)]
pub struct CreateTablePlan {
    pub database: Option<String>,
    pub def: TableDef,
    pub if_not_exists: bool,
    pub or_replace: bool,
}

/// Splits `db.table` / `table` into lower-case parts. Table and database
/// names are case-insensitive in Lakewave (as with lower_case_table_names=1).
pub fn split_name(name: &ObjectName) -> Result<(Option<String>, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.to_lowercase()).unwrap_or_else(|| p.to_string()))
        .collect();
    match parts.as_slice() {
        [t] => Ok((None, t.clone())),
        [d, t] => Ok((Some(d.clone()), t.clone())),
        [c, d, t] if c == "def" => Ok((Some(d.clone()), t.clone())),
        _ => Err(LakeError::InvalidDefinition(format!("Incorrect table name '{name}'"))),
    }
}

/// Declared columns as stored definitions.
pub fn columns_from_sql(cols: &[SqlColumnDef]) -> Result<Vec<ColumnDef>> {
    let mut seen = std::collections::HashSet::new();
    cols.iter()
        .map(|c| {
            let name = c.name.value.clone();
            if !seen.insert(name.to_lowercase()) {
                return Err(LakeError::InvalidDefinition(format!("Duplicate column name '{name}'")));
            }
            let data_type = arrow_type_for_sql(&c.data_type)?;
            let not_null = c.options.iter().any(|o| matches!(o.option, ColumnOption::NotNull));
            Ok(ColumnDef {
                name,
                data_type: data_type.to_string(),
                nullable: !not_null,
                mysql_type: Some(sql_type_display(&c.data_type)),
                distinct: None,
            })
        })
        .collect()
}

/// The text of an option value, without quotes.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::SingleQuotedString(s)
        | Value::DoubleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s) => s.clone(),
        Value::Number(n, _) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Puts a DataFusion-style option key into its namespaced form:
/// `has_header` and `format.has_header` are the same option.
fn option_key(key: &str) -> String {
    let key = key.to_lowercase();
    if key.contains('.') { key } else { format!("format.{key}") }
}

pub(crate) fn normalise_locations(raw: &[String], base: &Path) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(LakeError::InvalidDefinition("an external table needs a LOCATION".into()));
    }
    raw.iter()
        .map(|l| Ok(Location::parse(l, base).map_err(location_error)?.as_str().to_string()))
        .collect()
}

/// `CREATE EXTERNAL TABLE` in DataFusion's dialect.
pub fn from_external_table(cmd: &CreateExternalTable, base: &Path) -> Result<CreateTablePlan> {
    if cmd.temporary || cmd.unbounded {
        return Err(LakeError::NotSupported("TEMPORARY or UNBOUNDED external tables".into()));
    }
    if !cmd.order_exprs.is_empty() {
        return Err(LakeError::NotSupported("WITH ORDER on external tables".into()));
    }
    let (database, name) = split_name(&cmd.name)?;
    let mut options = BTreeMap::new();
    for (k, v) in &cmd.options {
        options.insert(option_key(k), value_text(v));
    }
    let format = cmd.file_type.to_lowercase();
    let format = match format.as_str() {
        "ndjson" | "jsonl" => "json".to_string(),
        _ => format,
    };
    let columns = columns_from_sql(&cmd.columns)?;
    let def = TableDef {
        name,
        format,
        locations: normalise_locations(&cmd.locations, base)?,
        partition_cols: cmd
            .table_partition_cols
            .iter()
            .map(|c| c.trim_matches(|q| q == '`' || q == '"').to_string())
            .collect(),
        options,
        declared_columns: !columns.is_empty(),
        columns,
        dialect: DdlDialect::DataFusion,
        engine_attribute: None,
        created_at: now(),
    };
    Ok(CreateTablePlan {
        database,
        def,
        if_not_exists: cmd.if_not_exists,
        or_replace: cmd.or_replace,
    })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

use connectors::sql::{quote_ident, quote_str};

/// `SHOW CREATE TABLE` text, in the dialect the table was created with.
/// Secret options show as `<redacted>`, and so do the tokens of OCI
/// pre-authenticated request URLs.
pub fn show_create(def: &TableDef) -> Result<String> {
    let text = match def.dialect {
        DdlDialect::DataFusion => show_create_datafusion(def),
        DdlDialect::HeatWave => crate::heatwave::show_create(def)?,
    };
    Ok(connectors::stores::redact_text(&text).into_owned())
}

fn show_create_datafusion(def: &TableDef) -> String {
    let mut out = format!("CREATE EXTERNAL TABLE {}", quote_ident(&def.name));
    if def.declared_columns {
        let cols: Vec<String> = def
            .columns
            .iter()
            .map(column_sql)
            .collect();
        out.push_str(&format!(" (\n  {}\n)", cols.join(",\n  ")));
    }
    out.push_str(&format!("\nSTORED AS {}", def.format.to_uppercase()));
    if !def.partition_cols.is_empty() {
        let cols: Vec<String> = def.partition_cols.iter().map(|c| quote_ident(c)).collect();
        out.push_str(&format!("\nPARTITIONED BY ({})", cols.join(", ")));
    }
    let locs: Vec<String> = def.locations.iter().map(|l| quote_str(l)).collect();
    if locs.len() == 1 {
        out.push_str(&format!("\nLOCATION {}", locs[0]));
    } else {
        out.push_str(&format!("\nLOCATION ({})", locs.join(", ")));
    }
    if !def.options.is_empty() {
        let opts: Vec<String> =
            def.options
                .iter()
                .map(|(k, v)| {
                    let v = if connectors::stores::is_secret_option(k) { connectors::stores::REDACTED } else { v.as_str() };
                    format!("{} {}", quote_str(k), quote_str(v))
                })
                .collect();
        out.push_str(&format!("\nOPTIONS ({})", opts.join(", ")));
    }
    out
}

/// One column as MySQL DDL: the declared type, or the inferred one's MySQL form.
pub fn column_sql(c: &ColumnDef) -> String {
    let ty = match &c.mysql_type {
        Some(t) => t.clone(),
        None => c
            .arrow_type()
            .map(|t| crate::types::mysql_type_of(&t).column_type)
            .unwrap_or_else(|_| "text".into()),
    };
    let null = if c.nullable { "" } else { " NOT NULL" };
    format!("{} {ty}{null}", quote_ident(&c.name))
}
