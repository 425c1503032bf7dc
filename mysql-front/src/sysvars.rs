//! System variables: the defaults a fresh server reports, per-session values
//! changed with `SET`, and the DataFusion variable providers that answer
//! `@@name` and `@name` inside queries from that same state.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::scalar::ScalarValue;
use datafusion::variable::VarProvider;

/// A variable value: numbers stay numbers so `@@autocommit + 0` works.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    Int(i64),
    Text(String),
    Null,
}

impl VarValue {
    pub fn to_text(&self) -> Option<String> {
        match self {
            VarValue::Int(i) => Some(i.to_string()),
            VarValue::Text(s) => Some(s.clone()),
            VarValue::Null => None,
        }
    }

    fn scalar(&self) -> ScalarValue {
        match self {
            VarValue::Int(i) => ScalarValue::Int64(Some(*i)),
            VarValue::Text(s) => ScalarValue::Utf8(Some(s.clone())),
            VarValue::Null => ScalarValue::Utf8(None),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            VarValue::Int(_) => DataType::Int64,
            _ => DataType::Utf8,
        }
    }
}

/// Whether a variable is boolean-like: `SET x = ON` stores 1.
const BOOLEAN_VARS: [&str; 6] =
    ["autocommit", "sql_safe_updates", "foreign_key_checks", "unique_checks", "sql_notes", "sql_auto_is_null"];

/// The variables a client may read at start-up, with server defaults.
pub fn defaults(version: &str) -> BTreeMap<String, VarValue> {
    use VarValue::*;
    let t = |s: &str| Text(s.to_string());
    let entries: Vec<(&str, VarValue)> = vec![
        ("auto_increment_increment", Int(1)),
        ("autocommit", Int(1)),
        ("character_set_client", t("utf8mb4")),
        ("character_set_connection", t("utf8mb4")),
        ("character_set_database", t("utf8mb4")),
        ("character_set_results", t("utf8mb4")),
        ("character_set_server", t("utf8mb4")),
        ("character_set_system", t("utf8mb3")),
        ("collation_connection", t("utf8mb4_general_ci")),
        ("collation_database", t("utf8mb4_general_ci")),
        ("collation_server", t("utf8mb4_general_ci")),
        ("default_storage_engine", t("lakehouse")),
        ("foreign_key_checks", Int(1)),
        ("have_ssl", t("DISABLED")),
        ("hostname", t("localhost")),
        ("init_connect", t("")),
        ("interactive_timeout", Int(28800)),
        ("license", t("Apache-2.0")),
        ("lower_case_table_names", Int(1)),
        ("max_allowed_packet", Int(67_108_864)),
        ("max_execution_time", Int(0)),
        ("net_buffer_length", Int(16384)),
        ("net_write_timeout", Int(60)),
        ("performance_schema", Int(0)),
        ("protocol_version", Int(10)),
        ("query_cache_size", Int(0)),
        ("query_cache_type", t("OFF")),
        // How long an offloaded query waits for change capture to apply
        // the backend's committed changes before it runs on MySQL instead;
        // 0 reads the loaded copy as it is.
        ("rapid_sync_wait_ms", Int(5_000)),
        ("secondary_engine_cost_threshold", Int(100_000)),
        ("socket", Null),
        ("sql_auto_is_null", Int(0)),
        ("sql_mode", t("ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION")),
        ("sql_notes", Int(1)),
        ("sql_safe_updates", Int(0)),
        ("sql_select_limit", Int(i64::MAX)),
        ("system_time_zone", t("UTC")),
        ("time_zone", t("SYSTEM")),
        ("transaction_isolation", t("REPEATABLE-READ")),
        ("transaction_read_only", Int(0)),
        ("tx_isolation", t("REPEATABLE-READ")),
        ("tx_read_only", Int(0)),
        ("unique_checks", Int(1)),
        ("use_secondary_engine", t("ON")),
        ("version", Text(version.to_string())),
        ("version_comment", t("Lakewave - open-source MySQL-compatible lakehouse")),
        ("version_compile_machine", t(std::env::consts::ARCH)),
        ("version_compile_os", t(std::env::consts::OS)),
        ("wait_timeout", Int(28800)),
        ("warning_count", Int(0)),
        ("error_count", Int(0)),
    ];
    entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Per-session variables, shared with the query engine's providers.
#[derive(Debug, Clone)]
pub struct SessionVars {
    pub system: Arc<RwLock<BTreeMap<String, VarValue>>>,
    pub user: Arc<RwLock<BTreeMap<String, VarValue>>>,
    globals: Arc<BTreeMap<String, VarValue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("Unknown system variable '{0}'")]
    Unknown(String),
    #[error("Variable '{0}' can't be set to the value of '{1}'")]
    BadValue(String, String),
}

/// Normalises `@@session.x`, `@@GLOBAL.x`, `session.x`, `x` to `x`.
pub fn normalise_name(raw: &str) -> String {
    let n = raw.trim_start_matches("@@").to_lowercase();
    for prefix in ["session.", "global.", "local.", "persist.", "persist_only."] {
        if let Some(rest) = n.strip_prefix(prefix) {
            return rest.trim_matches('`').to_string();
        }
    }
    n.trim_matches('`').to_string()
}

impl SessionVars {
    pub fn new(globals: Arc<BTreeMap<String, VarValue>>) -> Self {
        Self {
            system: Arc::new(RwLock::new((*globals).clone())),
            user: Arc::new(RwLock::new(BTreeMap::new())),
            globals,
        }
    }

    pub fn reset(&self) {
        *self.system.write().unwrap_or_else(|p| p.into_inner()) = (*self.globals).clone();
        self.user.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn get(&self, name: &str) -> Option<VarValue> {
        self.system.read().unwrap_or_else(|p| p.into_inner()).get(&normalise_name(name)).cloned()
    }

    pub fn global(&self, name: &str) -> Option<VarValue> {
        self.globals.get(&normalise_name(name)).cloned()
    }

    pub fn all(&self, global: bool) -> BTreeMap<String, VarValue> {
        if global { (*self.globals).clone() } else { self.system.read().unwrap_or_else(|p| p.into_inner()).clone() }
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some(VarValue::Int(v)) if v != 0)
    }

    /// Sets a system variable from an evaluated value (None = NULL/DEFAULT).
    pub fn set(&self, name: &str, value: Option<ScalarValue>, is_default: bool) -> Result<(), SetError> {
        let name = normalise_name(name);
        let mut vars = self.system.write().unwrap_or_else(|p| p.into_inner());
        let Some(current) = vars.get(&name).cloned() else {
            return Err(SetError::Unknown(name));
        };
        let new = if is_default {
            self.globals.get(&name).cloned().unwrap_or(VarValue::Null)
        } else {
            let text = value.as_ref().filter(|v| !v.is_null()).map(scalar_text);
            match (&current, text) {
                (_, None) if name == "socket" => VarValue::Null,
                (_, None) => return Err(SetError::BadValue(name, "NULL".into())),
                (VarValue::Int(_), Some(t)) if BOOLEAN_VARS.contains(&name.as_str()) => {
                    match t.to_uppercase().as_str() {
                        "1" | "ON" | "TRUE" => VarValue::Int(1),
                        "0" | "OFF" | "FALSE" => VarValue::Int(0),
                        _ => return Err(SetError::BadValue(name, t)),
                    }
                }
                (VarValue::Int(_), Some(t)) => match t.parse::<i64>() {
                    Ok(i) => VarValue::Int(i),
                    Err(_) => return Err(SetError::BadValue(name, t)),
                },
                (_, Some(t)) if name == "use_secondary_engine" => match t.to_uppercase().as_str() {
                    v @ ("ON" | "OFF" | "FORCED") => VarValue::Text(v.to_string()),
                    _ => return Err(SetError::BadValue(name, t)),
                },
                (_, Some(t)) => VarValue::Text(t),
            }
        };
        if name == "transaction_isolation" || name == "tx_isolation" {
            vars.insert("transaction_isolation".into(), new.clone());
            vars.insert("tx_isolation".into(), new);
        } else {
            vars.insert(name, new);
        }
        Ok(())
    }

    pub fn set_user(&self, name: &str, value: Option<ScalarValue>) {
        let name = name.trim_start_matches('@').to_lowercase();
        let v = match value {
            Some(ScalarValue::Int64(Some(i))) => VarValue::Int(i),
            Some(v) if !v.is_null() => VarValue::Text(scalar_text(&v)),
            _ => VarValue::Null,
        };
        self.user.write().unwrap_or_else(|p| p.into_inner()).insert(name, v);
    }

    pub fn system_provider(&self) -> Arc<dyn VarProvider + Send + Sync> {
        Arc::new(SystemVarProvider { vars: self.clone() })
    }

    pub fn user_provider(&self) -> Arc<dyn VarProvider + Send + Sync> {
        Arc::new(UserVarProvider { vars: self.user.clone() })
    }
}

/// The text of a scalar as MySQL would show it in a variable.
pub fn scalar_text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Boolean(Some(b)) => if *b { "1".into() } else { "0".into() },
        other => other.to_string(),
    }
}

fn joined(var_names: &[String]) -> String {
    var_names.join(".")
}

#[derive(Debug)]
struct SystemVarProvider {
    vars: SessionVars,
}

impl SystemVarProvider {
    fn lookup(&self, var_names: &[String]) -> Option<VarValue> {
        let raw = joined(var_names);
        let global = raw.to_lowercase().starts_with("@@global.");
        if global { self.vars.global(&raw) } else { self.vars.get(&raw) }
    }
}

impl VarProvider for SystemVarProvider {
    fn get_value(&self, var_names: Vec<String>) -> DfResult<ScalarValue> {
        match self.lookup(&var_names) {
            Some(v) => Ok(v.scalar()),
            None => Err(DataFusionError::External(Box::new(crate::wire::codes::MyError::new(
                crate::wire::codes::ER_UNKNOWN_SYSTEM_VARIABLE,
                b"HY000",
                format!("Unknown system variable '{}'", normalise_name(&joined(&var_names))),
            )))),
        }
    }

    fn get_type(&self, var_names: &[String]) -> Option<DataType> {
        Some(self.lookup(var_names).map(|v| v.data_type()).unwrap_or(DataType::Utf8))
    }
}

#[derive(Debug)]
struct UserVarProvider {
    vars: Arc<RwLock<BTreeMap<String, VarValue>>>,
}

impl UserVarProvider {
    fn lookup(&self, var_names: &[String]) -> VarValue {
        let name = joined(var_names).trim_start_matches('@').to_lowercase();
        self.vars.read().unwrap_or_else(|p| p.into_inner()).get(&name).cloned().unwrap_or(VarValue::Null)
    }
}

impl VarProvider for UserVarProvider {
    fn get_value(&self, var_names: Vec<String>) -> DfResult<ScalarValue> {
        Ok(self.lookup(&var_names).scalar())
    }

    fn get_type(&self, var_names: &[String]) -> Option<DataType> {
        Some(self.lookup(var_names).data_type())
    }
}

impl std::error::Error for crate::wire::codes::MyError {}
