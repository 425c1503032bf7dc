//! A MySQL-shaped `information_schema` (SCHEMATA, TABLES, COLUMNS, and empty
//! ENGINES-style tables clients probe), built from the catalog each time a
//! query plans against it, so it is always current.
//!
//! Column names are lower case because unquoted identifiers are normalised
//! to lower case; MySQL clients read metadata columns case-insensitively.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;

use crate::catalog::Catalog;
use crate::model::ColumnDef;
use crate::types::{MyKind, mysql_type_of};

pub const INFORMATION_SCHEMA: &str = "information_schema";
const TABLES: [&str; 10] = [
    "schemata",
    "tables",
    "columns",
    "views",
    "routines",
    "statistics",
    "key_column_usage",
    "table_constraints",
    "engines",
    "processlist",
];

/// The information_schema tables a backend's answer is merged into: those
/// that list databases, tables and columns. Others are the backend's alone,
/// except [`LAKEWAVE_ONLY`].
pub const MERGED_WITH_BACKEND: [&str; 4] = ["schemata", "tables", "columns", "engines"];

/// The information_schema tables always answered by Lakewave, backend or
/// not: PROCESSLIST lists Lakewave's sessions, whose ids are the ones
/// clients see and `KILL` takes.
pub const LAKEWAVE_ONLY: [&str; 1] = ["processlist"];

/// One session as `information_schema.PROCESSLIST` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub id: u64,
    pub user: String,
    pub host: String,
    pub db: Option<String>,
    pub command: String,
    pub time_ms: u64,
    pub state: String,
    pub info: Option<String>,
    /// Percent of the statement's source rows read, 0 when unknown.
    pub progress: f64,
}

impl ProcessRow {
    /// The columns `SHOW PROCESSLIST` and `information_schema.PROCESSLIST`
    /// share, as text: id, user, host, db, command, seconds, state, info.
    pub fn shared_columns(self) -> Vec<Option<String>> {
        vec![
            Some(self.id.to_string()),
            Some(self.user),
            Some(self.host),
            self.db,
            Some(self.command),
            Some((self.time_ms / 1000).to_string()),
            Some(self.state),
            self.info,
        ]
    }
}

/// Where the sessions come from (the server's process list).
pub trait ProcessSource: Send + Sync + std::fmt::Debug {
    fn processes(&self) -> Vec<ProcessRow>;
}

#[derive(Debug)]
pub struct InfoSchemaProvider {
    catalog: Arc<Catalog>,
    mysql: Option<connectors::mysql::MySqlSource>,
    processes: Option<Arc<dyn ProcessSource>>,
}

impl InfoSchemaProvider {
    pub fn new(catalog: Arc<Catalog>, mysql: Option<connectors::mysql::MySqlSource>) -> Self {
        Self { catalog, mysql, processes: None }
    }

    pub fn with_processes(mut self, processes: Option<Arc<dyn ProcessSource>>) -> Self {
        self.processes = processes;
        self
    }
}

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn u(name: &str) -> Field {
    Field::new(name, DataType::UInt64, true)
}
fn f(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

/// One column of an information_schema table, as rows are built.
enum Col {
    S(Vec<Option<String>>),
    U(Vec<Option<u64>>),
    F(Vec<Option<f64>>),
}

struct Builder {
    fields: Vec<Field>,
    cols: Vec<Col>,
}

impl Builder {
    fn new(fields: Vec<Field>) -> Self {
        let cols = fields
            .iter()
            .map(|f| match f.data_type() {
                DataType::UInt64 => Col::U(vec![]),
                DataType::Float64 => Col::F(vec![]),
                _ => Col::S(vec![]),
            })
            .collect();
        Self { fields, cols }
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.fields.clone()))
    }

    /// Appends one row; values are given as text and parsed for numeric columns.
    fn row(&mut self, values: &[Option<String>]) {
        for (col, v) in self.cols.iter_mut().zip(values) {
            match col {
                Col::S(c) => c.push(v.clone()),
                Col::U(c) => c.push(v.as_ref().and_then(|x| x.parse().ok())),
                Col::F(c) => c.push(v.as_ref().and_then(|x| x.parse().ok())),
            }
        }
    }

    fn finish(self) -> DfResult<Arc<dyn TableProvider>> {
        let schema = self.schema();
        let arrays: Vec<ArrayRef> = self
            .cols
            .into_iter()
            .map(|c| match c {
                Col::S(v) => Arc::new(StringArray::from(v)) as ArrayRef,
                Col::U(v) => Arc::new(UInt64Array::from(v)) as ArrayRef,
                Col::F(v) => Arc::new(Float64Array::from(v)) as ArrayRef,
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

fn some(s: impl Into<String>) -> Option<String> {
    Some(s.into())
}

/// The columns of each information_schema table, for its own COLUMNS rows.
fn info_fields(table: &str) -> Vec<Field> {
    match table {
        "schemata" => vec![
            s("catalog_name"),
            s("schema_name"),
            s("default_character_set_name"),
            s("default_collation_name"),
            s("sql_path"),
            s("default_encryption"),
        ],
        "tables" => vec![
            s("table_catalog"),
            s("table_schema"),
            s("table_name"),
            s("table_type"),
            s("engine"),
            u("version"),
            s("row_format"),
            u("table_rows"),
            u("avg_row_length"),
            u("data_length"),
            u("max_data_length"),
            u("index_length"),
            u("data_free"),
            u("auto_increment"),
            s("create_time"),
            s("update_time"),
            s("check_time"),
            s("table_collation"),
            u("checksum"),
            s("create_options"),
            s("table_comment"),
        ],
        "columns" => vec![
            s("table_catalog"),
            s("table_schema"),
            s("table_name"),
            s("column_name"),
            u("ordinal_position"),
            s("column_default"),
            s("is_nullable"),
            s("data_type"),
            u("character_maximum_length"),
            u("character_octet_length"),
            u("numeric_precision"),
            u("numeric_scale"),
            u("datetime_precision"),
            s("character_set_name"),
            s("collation_name"),
            s("column_type"),
            s("column_key"),
            s("extra"),
            s("privileges"),
            s("column_comment"),
            s("generation_expression"),
        ],
        "views" => vec![s("table_catalog"), s("table_schema"), s("table_name"), s("view_definition")],
        "routines" => vec![
            s("specific_name"),
            s("routine_catalog"),
            s("routine_schema"),
            s("routine_name"),
            s("routine_type"),
        ],
        "statistics" => vec![
            s("table_catalog"),
            s("table_schema"),
            s("table_name"),
            u("non_unique"),
            s("index_schema"),
            s("index_name"),
            u("seq_in_index"),
            s("column_name"),
        ],
        "key_column_usage" => vec![
            s("constraint_catalog"),
            s("constraint_schema"),
            s("constraint_name"),
            s("table_catalog"),
            s("table_schema"),
            s("table_name"),
            s("column_name"),
            u("ordinal_position"),
            s("referenced_table_schema"),
            s("referenced_table_name"),
            s("referenced_column_name"),
        ],
        "table_constraints" => vec![
            s("constraint_catalog"),
            s("constraint_schema"),
            s("constraint_name"),
            s("table_schema"),
            s("table_name"),
            s("constraint_type"),
        ],
        "engines" => vec![s("engine"), s("support"), s("comment"), s("transactions"), s("xa"), s("savepoints")],
        // MariaDB's columns, up to PROGRESS.
        "processlist" => vec![
            u("id"),
            s("user"),
            s("host"),
            s("db"),
            s("command"),
            u("time"),
            s("state"),
            s("info"),
            f("time_ms"),
            u("stage"),
            u("max_stage"),
            f("progress"),
        ],
        _ => vec![],
    }
}

fn format_time(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
}

/// One COLUMNS row.
fn column_row(db: &str, table: &str, pos: usize, c: &ColumnDef) -> Vec<Option<String>> {
    let dt = c.arrow_type().unwrap_or(DataType::Utf8);
    let t = mysql_type_of(&dt);
    let column_type = c.mysql_type.clone().unwrap_or_else(|| t.column_type.clone());
    let data_type = column_type.split(['(', ' ']).next().unwrap_or(t.data_type).to_string();
    let (char_len, octet_len, charset, collation) = if t.is_text() {
        let chars = u64::from(t.length / 4);
        (Some(chars.to_string()), Some(u64::from(t.length).to_string()), some("utf8mb4"), some("utf8mb4_0900_ai_ci"))
    } else if t.binary && matches!(t.kind, MyKind::Blob | MyKind::String) {
        (Some(t.length.to_string()), Some(t.length.to_string()), None, None)
    } else {
        (None, None, None, None)
    };
    let dt_precision = matches!(t.kind, MyKind::DateTime | MyKind::Timestamp | MyKind::Time)
        .then(|| t.decimals.to_string());
    vec![
        some("def"),
        some(db),
        some(table),
        some(c.name.clone()),
        some((pos + 1).to_string()),
        None,
        some(if c.nullable { "YES" } else { "NO" }),
        some(data_type),
        char_len,
        octet_len,
        t.numeric_precision.map(|p| p.to_string()),
        t.numeric_scale.map(|p| p.to_string()),
        dt_precision,
        charset,
        collation,
        some(column_type),
        some(""),
        some(""),
        some("select"),
        some(""),
        some(""),
    ]
}

impl InfoSchemaProvider {
    fn build(&self, table: &str) -> DfResult<Arc<dyn TableProvider>> {
        let mut b = Builder::new(info_fields(table));
        for row in self.lake_rows(table, true) {
            b.row(&row);
        }
        b.finish()
    }

    /// The backend's rows with the lake's merged in, under the backend's
    /// own column list (lake values fill the columns both have).
    async fn build_merged(&self, table: &str, source: &connectors::mysql::MySqlSource) -> DfResult<Arc<dyn TableProvider>> {
        let backend = source.information_schema(table).await?;
        let fields: Vec<Field> = backend.columns.iter().map(|(n, numeric)| if *numeric { u(n) } else { s(n) }).collect();
        let position = |name: &str| backend.columns.iter().position(|(n, _)| n == name);
        let ours = info_fields(table);
        // Where each of our columns goes in the backend's layout.
        let placement: Vec<Option<usize>> = ours.iter().map(|f| position(f.name())).collect();
        let lake_rows = self.lake_rows(table, false);
        // Lake entries shadow backend entries of the same name: a database,
        // a table (with all its columns), an engine.
        let key_cols: Vec<usize> = match table {
            "schemata" => vec![1],
            "tables" | "columns" => vec![1, 2],
            _ => vec![0],
        };
        let key_of = |row: &[Option<String>], cols: &[Option<usize>]| -> Vec<String> {
            key_cols
                .iter()
                .map(|k| cols[*k].and_then(|i| row.get(i).cloned().flatten()).unwrap_or_default().to_lowercase())
                .collect()
        };
        let identity: Vec<Option<usize>> = (0..ours.len()).map(Some).collect();
        let lake_keys: std::collections::HashSet<Vec<String>> = lake_rows.iter().map(|r| key_of(r, &identity)).collect();
        let mut b = Builder::new(fields);
        for row in backend.rows.iter().filter(|r| !lake_keys.contains(&key_of(r, &placement))) {
            b.row(row);
        }
        for row in lake_rows {
            let mut out = vec![None; backend.columns.len()];
            for (v, at) in row.into_iter().zip(&placement) {
                if let Some(i) = at {
                    out[*i] = v;
                }
            }
            b.row(&out);
        }
        b.finish()
    }

    /// The lake's rows of an information_schema table, in `info_fields`
    /// order; `system` adds the rows describing information_schema itself.
    fn lake_rows(&self, table: &str, system: bool) -> Vec<Vec<Option<String>>> {
        let state = self.catalog.snapshot();
        let mut rows = Vec::new();
        match table {
            "schemata" => {
                let mut names: Vec<&str> = state.databases.keys().map(String::as_str).collect();
                if system {
                    names.push(INFORMATION_SCHEMA);
                }
                names.sort();
                for db in names {
                    rows.push(vec![some("def"), some(db), some("utf8mb4"), some("utf8mb4_0900_ai_ci"), None, some("NO")]);
                }
            }
            "tables" => {
                for t in TABLES.iter().filter(|_| system) {
                    let mut row = vec![some("def"), some(INFORMATION_SCHEMA), some(t.to_uppercase()), some("SYSTEM VIEW"), None, some("10")];
                    row.resize(21, None);
                    row[17] = some("utf8mb4_0900_ai_ci");
                    row[19] = some("");
                    row[20] = some("");
                    rows.push(row);
                }
                for (db, d) in &state.databases {
                    for (name, def) in &d.tables {
                        rows.push(vec![
                            some("def"),
                            some(db.clone()),
                            some(name.clone()),
                            some("BASE TABLE"),
                            some("lakehouse"),
                            some("10"),
                            some("Dynamic"),
                            None,
                            None,
                            None,
                            None,
                            some("0"),
                            None,
                            None,
                            format_time(def.created_at),
                            None,
                            None,
                            some("utf8mb4_0900_ai_ci"),
                            None,
                            some("SECONDARY_ENGINE=\"RAPID\""),
                            some(""),
                        ]);
                    }
                }
            }
            "columns" => {
                for t in TABLES.iter().filter(|_| system) {
                    for (i, f) in info_fields(t).iter().enumerate() {
                        let c = ColumnDef {
                            name: f.name().to_uppercase(),
                            data_type: f.data_type().to_string(),
                            nullable: true,
                            mysql_type: None,
                            distinct: None,
                        };
                        rows.push(column_row(INFORMATION_SCHEMA, &t.to_uppercase(), i, &c));
                    }
                }
                for (db, d) in &state.databases {
                    for (name, def) in &d.tables {
                        for (i, c) in def.columns.iter().enumerate() {
                            rows.push(column_row(db, name, i, c));
                        }
                    }
                }
            }
            "engines" => {
                rows.push(vec![some("lakehouse"), some("DEFAULT"), some("External tables over files in place"), some("NO"), some("NO"), some("NO")]);
                rows.push(vec![some("RAPID"), some("YES"), some("In-memory columnar secondary engine"), some("NO"), some("NO"), some("NO")]);
            }
            "processlist" => {
                for p in self.processes.as_ref().map(|p| p.processes()).unwrap_or_default() {
                    let running = u8::from(p.command != "Sleep").to_string();
                    let (time_ms, progress) = (format!("{:.3}", p.time_ms as f64), format!("{:.3}", p.progress));
                    let mut row = p.shared_columns();
                    row.extend([Some(time_ms), Some(running.clone()), Some(running), Some(progress)]);
                    rows.push(row);
                }
            }
            _ => {}
        }
        rows
    }

    /// The columns of an information_schema table (for DESCRIBE and friends).
    pub fn table_columns(table: &str) -> Option<Vec<ColumnDef>> {
        let fields = info_fields(&table.to_lowercase());
        if fields.is_empty() {
            return None;
        }
        Some(
            fields
                .iter()
                .map(|f| ColumnDef {
                    name: f.name().to_uppercase(),
                    data_type: f.data_type().to_string(),
                    nullable: true,
                    mysql_type: None,
                    distinct: None,
                })
                .collect(),
        )
    }

    pub fn table_names_upper() -> Vec<String> {
        TABLES.iter().map(|t| t.to_uppercase()).collect()
    }
}

#[async_trait]
impl SchemaProvider for InfoSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let name = name.to_lowercase();
        if !TABLES.contains(&name.as_str()) {
            return Ok(None);
        }
        match &self.mysql {
            Some(source) if MERGED_WITH_BACKEND.contains(&name.as_str()) => self.build_merged(&name, source).await.map(Some),
            _ => self.build(&name).map(Some),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name.to_lowercase().as_str())
    }
}
