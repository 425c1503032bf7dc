//! MySQL error codes and SQLSTATEs used by Lakewave, and the one place where
//! engine errors become MySQL errors. Errors relayed from a MySQL backend keep
//! their own code and state and never pass through here.

use datafusion::error::DataFusionError;
use datafusion::common::SchemaError;
use lakehouse::LakeError;

/// A MySQL error as sent in an ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyError {
    pub code: u16,
    pub state: [u8; 5],
    pub message: String,
}

impl MyError {
    pub fn new(code: u16, state: &[u8; 5], message: impl Into<String>) -> Self {
        Self { code, state: *state, message: message.into() }
    }
}

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code, String::from_utf8_lossy(&self.state), self.message)
    }
}

pub const ER_DB_CREATE_EXISTS: u16 = 1007;
pub const ER_DB_DROP_EXISTS: u16 = 1008;
pub const ER_FILE_NOT_FOUND: u16 = 1017;
pub const ER_GET_ERRNO: u16 = 1030;
pub const ER_OUT_OF_RESOURCES: u16 = 1041;
pub const ER_ACCESS_DENIED: u16 = 1045;
pub const ER_NO_DB: u16 = 1046;
pub const ER_UNKNOWN_COM: u16 = 1047;
pub const ER_BAD_DB: u16 = 1049;
pub const ER_TABLE_EXISTS: u16 = 1050;
pub const ER_BAD_TABLE: u16 = 1051;
pub const ER_NON_UNIQ: u16 = 1052;
pub const ER_BAD_FIELD: u16 = 1054;
pub const ER_DUP_FIELDNAME: u16 = 1060;
pub const ER_PARSE: u16 = 1064;
pub const ER_EMPTY_QUERY: u16 = 1065;
pub const ER_WRONG_TABLE_NAME: u16 = 1103;
pub const ER_UNKNOWN: u16 = 1105;
pub const ER_HOST_NOT_PRIVILEGED: u16 = 1130;
pub const ER_NO_SUCH_TABLE: u16 = 1146;
pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
pub const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
pub const ER_WRONG_ARGUMENTS: u16 = 1210;
pub const ER_WRONG_VALUE_FOR_VAR: u16 = 1231;
pub const ER_NOT_SUPPORTED_YET: u16 = 1235;
pub const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
pub const ER_SP_DOES_NOT_EXIST: u16 = 1305;
pub const ER_DIVISION_BY_ZERO: u16 = 1365;
pub const ER_WRONG_VALUE: u16 = 1525;
pub const ER_INVALID_JSON_TEXT: u16 = 3140;
pub const ER_SECONDARY_ENGINE: u16 = 3889;

pub const S_HY000: &[u8; 5] = b"HY000";
pub const S_42000: &[u8; 5] = b"42000";
pub const S_42S02: &[u8; 5] = b"42S02";
pub const S_42S22: &[u8; 5] = b"42S22";

impl From<LakeError> for MyError {
    fn from(e: LakeError) -> Self {
        let msg = e.to_string();
        match e {
            LakeError::UnknownDatabase(_) => MyError::new(ER_BAD_DB, S_42000, msg),
            LakeError::DatabaseExists(_) => MyError::new(ER_DB_CREATE_EXISTS, S_HY000, msg),
            LakeError::UnknownTable { .. } => MyError::new(ER_NO_SUCH_TABLE, S_42S02, msg),
            LakeError::TableExists(_) => MyError::new(ER_TABLE_EXISTS, b"42S01", msg),
            LakeError::NoDatabaseSelected => MyError::new(ER_NO_DB, b"3D000", msg),
            LakeError::InvalidDefinition(m) => {
                if m.starts_with("Invalid ENGINE_ATTRIBUTE: not valid JSON") {
                    MyError::new(ER_INVALID_JSON_TEXT, b"22032", m)
                } else if m.starts_with("Duplicate column name") {
                    MyError::new(ER_DUP_FIELDNAME, b"42S21", m)
                } else if m.starts_with("Incorrect table name") || m.starts_with("Incorrect database name") {
                    MyError::new(ER_WRONG_TABLE_NAME, S_42000, m)
                } else {
                    MyError::new(ER_WRONG_VALUE, S_HY000, m)
                }
            }
            LakeError::NotSupported(_) => MyError::new(ER_NOT_SUPPORTED_YET, S_42000, msg),
            LakeError::Data(m) => {
                if m.starts_with("Can't find file") {
                    MyError::new(ER_FILE_NOT_FOUND, S_HY000, m)
                } else {
                    MyError::new(ER_GET_ERRNO, S_HY000, m)
                }
            }
            LakeError::BadData { code, .. } => MyError::new(code, S_HY000, msg),
            LakeError::Storage { .. } => MyError::new(ER_UNKNOWN, S_HY000, msg),
            LakeError::Secondary(_) => MyError::new(ER_SECONDARY_ENGINE, S_HY000, msg),
            LakeError::Engine(inner) => MyError::from(inner),
        }
    }
}

impl From<DataFusionError> for MyError {
    fn from(e: DataFusionError) -> Self {
        match e {
            DataFusionError::SQL(err, _) => parse_error(&err.to_string()),
            DataFusionError::SchemaError(err, _) => match *err {
                SchemaError::FieldNotFound { field, .. } => MyError::new(
                    ER_BAD_FIELD,
                    S_42S22,
                    format!("Unknown column '{}' in 'field list'", field.name),
                ),
                SchemaError::AmbiguousReference { field } => MyError::new(
                    ER_NON_UNIQ,
                    b"23000",
                    format!("Column '{}' in field list is ambiguous", field.name),
                ),
                other @ (SchemaError::DuplicateQualifiedField { .. }
                | SchemaError::DuplicateUnqualifiedField { .. }) => {
                    MyError::new(ER_DUP_FIELDNAME, b"42S21", other.to_string())
                }
            },
            DataFusionError::NotImplemented(m) => MyError::new(
                ER_NOT_SUPPORTED_YET,
                S_42000,
                format!("This version of Lakewave doesn't yet support '{m}'"),
            ),
            DataFusionError::Plan(m) => plan_error(m),
            DataFusionError::Configuration(m) => MyError::new(ER_WRONG_VALUE, S_HY000, m),
            DataFusionError::ResourcesExhausted(m) => {
                MyError::new(ER_OUT_OF_RESOURCES, S_HY000, format!("Out of resources: {m}"))
            }
            DataFusionError::Execution(m) => execution_error(m),
            DataFusionError::ArrowError(err, _) => {
                let m = err.to_string();
                if m.contains("Divide by zero") {
                    MyError::new(ER_DIVISION_BY_ZERO, b"22012", "Division by 0")
                } else {
                    read_error(m)
                }
            }
            DataFusionError::ParquetError(err) => read_error(format!("Parquet error: {err}")),
            DataFusionError::ObjectStore(err) => read_error(err.to_string()),
            DataFusionError::IoError(err) => read_error(err.to_string()),
            DataFusionError::ExecutionJoin(err) => MyError::new(ER_UNKNOWN, S_HY000, err.to_string()),
            DataFusionError::External(err) => match err.downcast::<MyError>() {
                Ok(mine) => *mine,
                Err(err) => match err.downcast::<LakeError>() {
                Ok(lake) => MyError::from(*lake),
                Err(other) => match other.downcast::<DataFusionError>() {
                    Ok(df) => MyError::from(*df),
                    Err(other) => read_error(other.to_string()),
                },
            },
            },
            DataFusionError::Context(ctx, inner) => {
                let mut e = MyError::from(*inner);
                e.message = format!("{ctx}: {}", e.message);
                e
            }
            DataFusionError::Diagnostic(_, inner) => MyError::from(*inner),
            DataFusionError::Collection(mut errs) => match errs.is_empty() {
                true => MyError::new(ER_UNKNOWN, S_HY000, "unknown error"),
                false => MyError::from(errs.swap_remove(0)),
            },
            DataFusionError::Shared(shared) => {
                MyError::from(DataFusionError::Execution(shared.strip_backtrace()))
            }
            DataFusionError::Internal(m) => {
                MyError::new(ER_UNKNOWN, S_HY000, format!("Internal error: {m}"))
            }
            DataFusionError::Substrait(m) | DataFusionError::Ffi(m) => MyError::new(ER_UNKNOWN, S_HY000, m),
        }
    }
}

/// MySQL's wording for syntax errors, so clients and users recognise them.
pub fn parse_error(detail: &str) -> MyError {
    let detail = detail.trim_start_matches("sql parser error: ");
    MyError::new(
        ER_PARSE,
        S_42000,
        format!(
            "You have an error in your SQL syntax; check the manual that corresponds to your \
             Lakewave server version for the right syntax to use: {detail}"
        ),
    )
}

fn plan_error(m: String) -> MyError {
    if let Some(name) = m.strip_prefix("Invalid function '").and_then(|r| r.split('\'').next()) {
        return MyError::new(ER_SP_DOES_NOT_EXIST, S_42000, format!("FUNCTION {name} does not exist"));
    }
    if m.starts_with("table '") && m.ends_with("' not found") {
        let name = m.trim_start_matches("table '").trim_end_matches("' not found");
        let name = name.strip_prefix("def.").unwrap_or(name);
        return MyError::new(ER_NO_SUCH_TABLE, S_42S02, format!("Table '{name}' doesn't exist"));
    }
    MyError::new(ER_WRONG_ARGUMENTS, S_HY000, m)
}

fn execution_error(m: String) -> MyError {
    if m.contains("Divide by zero") || m.contains("division by zero") {
        return MyError::new(ER_DIVISION_BY_ZERO, b"22012", "Division by 0");
    }
    read_error(m)
}

fn read_error(m: String) -> MyError {
    MyError::new(ER_GET_ERRNO, S_HY000, m)
}
