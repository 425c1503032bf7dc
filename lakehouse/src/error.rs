//! The lakehouse error type. Variants say whose fault a failure is; the front
//! end maps each variant to a MySQL error code at the wire boundary.

use datafusion::error::DataFusionError;

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("Unknown database '{0}'")]
    UnknownDatabase(String),
    #[error("Can't create database '{0}'; database exists")]
    DatabaseExists(String),
    #[error("Table '{db}.{table}' doesn't exist")]
    UnknownTable { db: String, table: String },
    #[error("Table '{0}' already exists")]
    TableExists(String),
    #[error("No database selected")]
    NoDatabaseSelected,
    /// The statement is well-formed SQL but its content is not acceptable
    /// (bad option, unsupported format, malformed ENGINE_ATTRIBUTE, ...).
    #[error("{0}")]
    InvalidDefinition(String),
    /// Valid SQL that this version does not implement yet.
    #[error("This version of Lakewave doesn't yet support '{0}'")]
    NotSupported(String),
    /// The files behind a table could not be read or decoded.
    #[error("{0}")]
    Data(String),
    /// A value or row of a file was refused; `code` is the MySQL error
    /// (1366 bad value, 1261/1262 field count, 1300 bad UTF-8, ...).
    #[error("{message}")]
    BadData { code: u16, message: String },
    /// The catalog could not be written durably.
    #[error("catalog storage failed at {path}: {source}")]
    Storage { path: String, source: std::io::Error },
    /// The secondary engine (in-memory copies) refused or failed.
    #[error("Secondary engine operation failed. {0}")]
    Secondary(String),
    #[error(transparent)]
    Engine(#[from] DataFusionError),
}
