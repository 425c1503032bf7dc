//! Table and database definitions as stored in the durable catalog.
//!
//! A definition keeps both what the user wrote (for `SHOW CREATE TABLE`) and
//! what was resolved at creation (the schema, inferred once), so a restart
//! never re-infers and never depends on the files being reachable.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{LakeError, Result};

/// Which DDL dialect created a table; `SHOW CREATE TABLE` answers in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DdlDialect {
    /// `CREATE EXTERNAL TABLE t STORED AS fmt LOCATION '...'`
    DataFusion,
    /// `CREATE TABLE t (...) ENGINE=lakehouse ENGINE_ATTRIBUTE='{...}'`
    HeatWave,
}

/// One column of a table, with its Arrow type in arrow's textual form
/// (`DataType` implements both `Display` and `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    /// The MySQL type the user declared, when the table was declared with
    /// columns (e.g. `INT UNSIGNED`, `VARCHAR(20)`); shown by SHOW CREATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_type: Option<String>,
    /// The number of distinct values estimated when the table was created,
    /// for the text columns of Parquet files stored as small dictionaries
    /// (`crate::parquet_dict::distinct_counts`); it lets the planner
    /// estimate `column = 'x'` at one value in that many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
}

impl ColumnDef {
    pub fn arrow_type(&self) -> Result<DataType> {
        DataType::from_str(&self.data_type).map_err(|e| {
            LakeError::InvalidDefinition(format!(
                "stored type '{}' of column '{}' is unreadable: {e}",
                self.data_type, self.name
            ))
        })
    }
}

/// An external table: files in place, read through a listing table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    /// `parquet`, `csv`, `json` or `avro`.
    pub format: String,
    /// Normalised locations: absolute paths or URLs; a trailing `/` means a
    /// prefix, glob characters make a pattern.
    pub locations: Vec<String>,
    /// Hive-style partition columns (also present, last, in `columns`).
    #[serde(default)]
    pub partition_cols: Vec<String>,
    /// Reader options in DataFusion's namespaced form (`format.delimiter`, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The resolved schema: file columns then partition columns.
    pub columns: Vec<ColumnDef>,
    /// Whether the user declared the columns (otherwise they were inferred).
    pub declared_columns: bool,
    pub dialect: DdlDialect,
    /// HeatWave's ENGINE_ATTRIBUTE as given, for SHOW CREATE TABLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_attribute: Option<String>,
    /// Unix seconds of creation, for information_schema.TABLES.CREATE_TIME.
    #[serde(default)]
    pub created_at: i64,
}

impl TableDef {
    /// A definition in the DataFusion dialect over `locations`, its
    /// columns to be inferred when it is resolved.
    pub fn external(name: &str, format: &str, locations: Vec<String>, options: BTreeMap<String, String>) -> Self {
        TableDef {
            name: name.to_string(),
            format: format.to_string(),
            locations,
            partition_cols: vec![],
            options,
            columns: vec![],
            declared_columns: false,
            dialect: DdlDialect::DataFusion,
            engine_attribute: None,
            created_at: crate::ddl::now(),
        }
    }
}

impl TableDef {
    pub fn schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| Ok(Field::new(&c.name, c.arrow_type()?, c.nullable)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The schema of the columns stored inside the files.
    pub fn file_schema(&self) -> Result<SchemaRef> {
        let schema = self.schema()?;
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !self.partition_cols.contains(schema.field(*i).name()))
            .collect();
        Ok(Arc::new(schema.project(&keep).map_err(DataFusionErrorExt::into_lake)?))
    }
}

trait DataFusionErrorExt {
    fn into_lake(self) -> LakeError;
}

impl DataFusionErrorExt for datafusion::arrow::error::ArrowError {
    fn into_lake(self) -> LakeError {
        LakeError::Engine(self.into())
    }
}

/// A database (MySQL schema) and its tables, keyed by lower-case name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDef {
    #[serde(default)]
    pub tables: BTreeMap<String, TableDef>,
}

/// A table (lake or MySQL) marked `SECONDARY_ENGINE = RAPID`, and whether
/// it was loaded, so a restart loads it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryDef {
    pub db: String,
    pub table: String,
    pub engine: String,
    #[serde(default)]
    pub loaded: bool,
}

/// Everything the catalog persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    pub format_version: u32,
    pub databases: BTreeMap<String, DatabaseDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary: Vec<SecondaryDef>,
}
