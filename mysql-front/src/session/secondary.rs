//! The secondary engine (RAPID) as a session sees it: the ALTER TABLE and
//! `sys.heatwave_load` statements, `use_secondary_engine`, and the decision
//! whether a query that reads only MySQL tables runs on their loaded copies.

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SetExpr, Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use lakehouse::heatwave::{SecondaryAlter, parse_secondary_alter};
use lakehouse::rapid::status::PERFORMANCE_SCHEMA;
use std::sync::Arc;

use lakehouse::rapid::{LoadStatus, RapidTable, SourceKind, human_bytes};
use lakehouse::secondary::describe;

use super::{Response, Session};
use crate::show;
use crate::wire::codes::*;

/// `use_secondary_engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadMode {
    Off,
    On,
    Forced,
}

pub fn secondary_error(reason: impl std::fmt::Display) -> MyError {
    MyError::new(ER_SECONDARY_ENGINE, S_HY000, format!("Secondary engine operation failed. {reason}"))
}

/// System variables only Lakewave knows; setting them never reaches MySQL.
pub fn is_lakewave_variable(name: &str) -> bool {
    let n = name.trim_start_matches('@').to_lowercase();
    let n = n.trim_start_matches("session.").trim_start_matches("global.").trim_start_matches("local.");
    matches!(n, "use_secondary_engine" | "secondary_engine_cost_threshold") || n.starts_with("rapid_")
}

/// Whether the tables are Lakewave's performance_schema tables (the
/// secondary engine's `rpd_*`, `lakewave_read_errors`).
pub fn reads_rpd_tables(refs: &[(Option<String>, String)]) -> bool {
    !refs.is_empty()
        && refs.iter().all(|(db, t)| {
            db.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(PERFORMANCE_SCHEMA))
                && lakehouse::rapid::status::TABLES.contains(&t.to_lowercase().as_str())
        })
}

impl Session {
    pub fn offload_mode(&self) -> OffloadMode {
        match self.vars.get("use_secondary_engine").and_then(|v| v.to_text()).unwrap_or_default().to_uppercase().as_str() {
            "OFF" => OffloadMode::Off,
            "FORCED" => OffloadMode::Forced,
            _ => OffloadMode::On,
        }
    }

    /// Statements of the secondary engine, answered before any routing.
    pub(super) async fn secondary_statement(&mut self, sql: &str) -> Result<Option<Response>, MyError> {
        if let Some((db, table, op)) = parse_secondary_alter(sql) {
            let db = db
                .or_else(|| self.database())
                .ok_or_else(|| MyError::from(lakehouse::LakeError::NoDatabaseSelected))?;
            self.warnings.clear();
            return match op {
                SecondaryAlter::Engine(engine) => {
                    self.lake.set_secondary_engine(&db, &table, engine.as_deref()).await?;
                    Ok(Some(Response::ok()))
                }
                SecondaryAlter::Load => {
                    let report = self.lake.secondary_load(&db, &table).await?;
                    Ok(Some(Response::Ok { affected: 0, info: describe(&report) }))
                }
                SecondaryAlter::Unload => {
                    self.lake.secondary_unload(&db, &table).await?;
                    Ok(Some(Response::ok()))
                }
            };
        }
        let head: String = super::strip_leading_comments(sql).chars().take(64).collect::<String>().to_lowercase();
        let head: String = head.split_whitespace().collect::<Vec<_>>().join(" ");
        if head.starts_with("call sys.heatwave_load") {
            return self.heatwave_load(sql).await.map(Some);
        }
        if head.starts_with("call sys.aurora_export_import") {
            return self.aurora_export_import(sql).await.map(Some);
        }
        Ok(None)
    }

    /// `CALL sys.heatwave_load(JSON_ARRAY('db', ...), JSON_OBJECT('mode',
    /// 'normal' | 'dryrun', 'exclude_list', JSON_ARRAY('db.t', ...)))`.
    async fn heatwave_load(&mut self, sql: &str) -> Result<Response, MyError> {
        let statement = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| parse_error(&e.to_string()))?;
        let Some(Statement::Call(f)) = statement.into_iter().next() else {
            return Err(parse_error("CALL sys.heatwave_load(JSON_ARRAY(...), JSON_OBJECT(...))"));
        };
        let args = crate::dialect::args(&f);
        let bad = |what: &str| MyError::new(ER_WRONG_ARGUMENTS, S_HY000, format!("Incorrect arguments to heatwave_load: {what}"));
        let dbs = args.first().map(|e| json_strings(e)).transpose()?.ok_or_else(|| bad("the first argument lists databases, e.g. JSON_ARRAY('db')"))?;
        let mut mode = "normal".to_string();
        let mut exclude = Vec::new();
        let mut refresh = false;
        let mut external = Vec::new();
        if let Some(opts) = args.get(1) {
            for (k, v) in json_object(opts)? {
                match k.to_lowercase().as_str() {
                    "mode" => mode = json_strings(&v)?.into_iter().next().unwrap_or_default().to_lowercase(),
                    "exclude_list" => exclude = json_strings(&v)?,
                    "refresh_external_tables" => {
                        let text = v.to_string().trim_matches('\'').to_lowercase();
                        refresh = text == "true" || text == "1";
                    }
                    "external_tables" => external = external_tables(&v)?,
                    "output" | "policy" | "set_load_parallelism" | "auto_enc" | "sql_mode" => {}
                    other => return Err(bad(&format!("unknown option '{other}'"))),
                }
            }
        }
        let dryrun = match mode.as_str() {
            "dryrun" => true,
            "normal" => false,
            other => return Err(bad(&format!("mode '{other}' (expected 'normal' or 'dryrun')"))),
        };
        self.warnings.clear();
        let rows = self.lake.heatwave_load(&dbs, &exclude, dryrun, refresh, &external).await?;
        let mut out: Vec<Vec<Option<String>>> = Vec::new();
        let mut total_est = 0u64;
        let mut total_rows = 0u64;
        for r in &rows {
            total_est += r.estimated_bytes;
            total_rows += r.rows;
            out.push(vec![
                Some(r.db.clone()),
                Some(r.table.clone()),
                Some(match r.kind {
                    SourceKind::Lake => "lakehouse".into(),
                    SourceKind::MySql => "mysql".into(),
                }),
                Some(r.rows.to_string()),
                Some(r.estimated_bytes.to_string()),
                r.loaded_bytes.map(|b| b.to_string()),
                Some(connectors::stores::redact_sql(&connectors::stores::redact_text(&r.outcome)).into_owned()),
            ]);
        }
        let nodes = self.lake.nodes_needed(total_est);
        out.push(vec![
            Some("(total)".into()),
            Some(format!("{} tables", rows.len())),
            None,
            Some(total_rows.to_string()),
            Some(total_est.to_string()),
            None,
            Some(format!(
                "estimated {} in memory: {nodes} node(s) of {}; {} of {} available now",
                human_bytes(total_est),
                human_bytes(self.lake.rapid().node_memory),
                human_bytes(self.lake.rapid().available()),
                human_bytes(self.lake.rapid().limit())
            )),
        ]);
        show::text_result(
            &["SCHEMA_NAME", "TABLE_NAME", "SOURCE", "NROWS", "ESTIMATED_BYTES", "LOADED_BYTES", "OUTCOME"],
            out,
        )
    }

    /// `CALL sys.aurora_export_import('<export root>', 'target_db'
    /// [, JSON_OBJECT('aws.region', '...', ...)])`: one external table per
    /// table of an Aurora or RDS snapshot export.
    async fn aurora_export_import(&mut self, sql: &str) -> Result<Response, MyError> {
        use datafusion::sql::sqlparser::ast::Value;
        let usage = || {
            MyError::new(
                ER_WRONG_ARGUMENTS,
                S_HY000,
                "Incorrect arguments to aurora_export_import: ('<export root>', 'target database'[, JSON_OBJECT(<storage options>)])",
            )
        };
        let statement = Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| parse_error(&e.to_string()))?;
        let Some(Statement::Call(f)) = statement.into_iter().next() else { return Err(usage()) };
        let args = crate::dialect::args(&f);
        let text = |e: Option<&Expr>| match e {
            Some(Expr::Value(v)) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        let (Some(root), Some(db)) = (text(args.first()), text(args.get(1))) else { return Err(usage()) };
        let mut options = std::collections::BTreeMap::new();
        if let Some(o) = args.get(2) {
            for (k, v) in json_object(o)? {
                let v = json_strings(&v)?.into_iter().next().ok_or_else(usage)?;
                options.insert(k.to_lowercase(), v);
            }
        }
        self.warnings.clear();
        let imported = self.lake.import_aurora_export(&root, &db.to_lowercase(), &options).await?;
        let rows = imported
            .into_iter()
            .map(|(t, name, created)| {
                vec![
                    Some(format!("{}.{}.{}", t.database, t.schema, t.table)),
                    Some(format!("{}.{name}", db.to_lowercase())),
                    Some(connectors::stores::redact_text(&t.location).into_owned()),
                    Some(if created { "created" } else { "exists, kept" }.to_string()),
                ]
            })
            .collect();
        show::text_result(&["EXPORTED_TABLE", "TABLE_NAME", "LOCATION", "OUTCOME"], rows)
    }

    /// Whether a query that reads only MySQL (and lake) tables can run on
    /// loaded copies; the reason when it cannot.
    pub(super) fn offload_check(&self, statement: &DfStatement, refs: &[(Option<String>, String)]) -> Result<(), String> {
        let copies = self.loaded_copies(refs)?;
        match self.point_lookup(statement, &copies) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// The loaded copies of the MySQL tables a query reads, when every table
    /// it reads is a lake table or has one (and no transaction is open);
    /// otherwise why not.
    pub(super) fn loaded_copies(&self, refs: &[(Option<String>, String)]) -> Result<Vec<Arc<RapidTable>>, String> {
        if refs.is_empty() {
            return Err("the query reads no table".into());
        }
        if self.in_transaction {
            return Err("inside a transaction MySQL tables are read through the session's own connection".into());
        }
        let current = self.database();
        let mut mysql_tables = Vec::new();
        for (db, t) in refs {
            let Some(db) = db.clone().or_else(|| current.clone()).map(|d| d.to_lowercase()) else {
                return Err("no database selected".into());
            };
            let t = t.to_lowercase();
            if self.lake.table(&db, &t).is_some() {
                continue;
            }
            match self.lake.rapid().table(&db, &t) {
                Some(rt) if rt.data().is_some() => mysql_tables.push(rt),
                Some(rt) => return Err(format!("table {db}.{t} is {}", rt.status().status.name())),
                None => return Err(format!("table {db}.{t} is not loaded in the secondary engine")),
            }
        }
        Ok(mysql_tables)
    }

    /// Under ON, a lookup of one loaded MySQL table by its whole primary key
    /// stays on MySQL (its index serves it better): the reason, if so.
    /// FORCED offloads it.
    pub(super) fn point_lookup(&self, statement: &DfStatement, copies: &[Arc<RapidTable>]) -> Option<String> {
        let ([only], OffloadMode::On) = (copies, self.offload_mode()) else { return None };
        let pk = only.primary_key.read().unwrap_or_else(|p| p.into_inner()).clone();
        is_point_lookup(statement, &pk)
            .then(|| format!("a primary-key lookup on {}.{} is served better by MySQL's index", only.db, only.name))
    }

    /// Whether a query reads a MySQL table that has a loaded copy.
    pub(super) fn reads_loaded_mysql(&self, refs: &[(Option<String>, String)]) -> bool {
        let current = self.database();
        refs.iter().any(|(db, t)| {
            let Some(db) = db.clone().or_else(|| current.clone()).map(|d| d.to_lowercase()) else { return false };
            self.lake
                .rapid()
                .table(&db, &t.to_lowercase())
                .is_some_and(|rt| rt.kind == SourceKind::MySql && rt.data().is_some())
        })
    }

    /// Status variables of the secondary engine.
    pub(super) fn lakewave_status_rows(&self) -> Vec<Vec<Option<String>>> {
        let rapid = self.lake.rapid();
        let tables = rapid.tables();
        let loading: Vec<f64> = tables
            .iter()
            .map(|t| t.status())
            .filter(|s| matches!(s.status, LoadStatus::Loading | LoadStatus::Recovery))
            .map(|s| s.progress)
            .collect();
        let progress = if loading.is_empty() { 100.0 } else { loading.iter().sum::<f64>() / loading.len() as f64 };
        let s = |k: &str, v: String| vec![Some(k.to_string()), Some(v)];
        vec![
            // Statements planned from a kept optimized plan, and those
            // optimized (and kept when they may be).
            s("lakewave_plan_cache_hits", rapid.plans().counts().0.to_string()),
            s("lakewave_plan_cache_misses", rapid.plans().counts().1.to_string()),
            // Object-store listings made (each a LIST of a table's prefix,
            // not served from the listing cache).
            s("lakewave_store_listings", self.lake.store_listings().to_string()),
            s("rapid_change_propagation_status", if self.lake.capture_running() { "ON" } else { "OFF" }.into()),
            s("rapid_change_propagation_position", self.lake.capture_position().map(|p| p.to_string()).unwrap_or_default()),
            s("rapid_load_progress", format!("{progress:.2}")),
            s("rapid_memory_limit", rapid.limit().to_string()),
            s("rapid_memory_used", rapid.used().to_string()),
            s("rapid_query_offload_count", rapid.offload_count().to_string()),
            s("rapid_tables_loaded", tables.iter().filter(|t| t.data().is_some()).count().to_string()),
        ]
    }
}

/// Strings of a `JSON_ARRAY(...)` call, a JSON text literal, or one string.
fn json_strings(e: &Expr) -> Result<Vec<String>, MyError> {
    use datafusion::sql::sqlparser::ast::Value;
    let bad = || MyError::new(ER_WRONG_ARGUMENTS, S_HY000, format!("Incorrect arguments to heatwave_load: expected JSON_ARRAY of strings, got {e}"));
    match e {
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("json_array") => {
            let FunctionArguments::List(l) = &f.args else { return Ok(vec![]) };
            l.args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => json_strings(x).map(|v| v.into_iter().next().unwrap_or_default()),
                    _ => Err(bad()),
                })
                .collect()
        }
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(serde_json::Value::Array(items)) => {
                        Ok(items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
                    }
                    _ => Ok(vec![s.clone()]),
                }
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A JSON value written as SQL: `JSON_OBJECT(...)`, `JSON_ARRAY(...)`,
/// literals, or a string holding JSON text.
fn json_value(e: &Expr) -> Result<serde_json::Value, MyError> {
    use datafusion::sql::sqlparser::ast::Value;
    use serde_json::Value as Json;
    let bad = || MyError::new(ER_WRONG_ARGUMENTS, S_HY000, format!("Incorrect arguments to heatwave_load: not a JSON value: {e}"));
    let args = |f: &datafusion::sql::sqlparser::ast::Function| -> Vec<Expr> {
        match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    Ok(match e {
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("json_array") => {
            Json::Array(args(f).iter().map(json_value).collect::<Result<_, _>>()?)
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("json_object") => {
            let items = args(f);
            if !items.len().is_multiple_of(2) {
                return Err(bad());
            }
            let mut map = serde_json::Map::new();
            for kv in items.chunks(2) {
                let Json::String(k) = json_value(&kv[0])? else { return Err(bad()) };
                map.insert(k, json_value(&kv[1])?);
            }
            Json::Object(map)
        }
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => match serde_json::from_str::<Json>(s) {
                Ok(j @ (Json::Object(_) | Json::Array(_))) => j,
                _ => Json::String(s.clone()),
            },
            Value::Number(n, _) => serde_json::from_str(n).map_err(|_| bad())?,
            Value::Boolean(b) => Json::Bool(*b),
            Value::Null => Json::Null,
            _ => return Err(bad()),
        },
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("true") || i.value.eq_ignore_ascii_case("false") => {
            Json::Bool(i.value.eq_ignore_ascii_case("true"))
        }
        _ => return Err(bad()),
    })
}

/// HeatWave's `external_tables`: `[{"db_name": ..., "tables": [{"table_name":
/// ..., "engine_attribute": {...}}]}]`.
fn external_tables(e: &Expr) -> Result<Vec<lakehouse::secondary::ExternalTable>, MyError> {
    let bad = |what: &str| MyError::new(ER_WRONG_ARGUMENTS, S_HY000, format!("Incorrect arguments to heatwave_load: external_tables {what}"));
    let serde_json::Value::Array(dbs) = json_value(e)? else { return Err(bad("must be an array")) };
    let mut out = Vec::new();
    for d in dbs {
        let db = d.get("db_name").and_then(|v| v.as_str()).ok_or_else(|| bad("entries need \"db_name\""))?;
        let tables = d.get("tables").and_then(|v| v.as_array()).ok_or_else(|| bad("entries need a \"tables\" array"))?;
        for t in tables {
            let table = t.get("table_name").and_then(|v| v.as_str()).ok_or_else(|| bad("tables need \"table_name\""))?;
            let attr = t.get("engine_attribute").ok_or_else(|| bad("tables need \"engine_attribute\""))?;
            let attr = match attr {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(lakehouse::secondary::ExternalTable { db: db.to_string(), table: table.to_string(), engine_attribute: attr });
        }
    }
    Ok(out)
}

/// Key/value pairs of a `JSON_OBJECT(...)` call or a JSON object literal.
fn json_object(e: &Expr) -> Result<Vec<(String, Expr)>, MyError> {
    use datafusion::sql::sqlparser::ast::Value;
    let bad = || MyError::new(ER_WRONG_ARGUMENTS, S_HY000, format!("Incorrect arguments to heatwave_load: expected JSON_OBJECT, got {e}"));
    match e {
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("json_object") => {
            let FunctionArguments::List(l) = &f.args else { return Ok(vec![]) };
            let items: Vec<&Expr> = l
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x),
                    _ => None,
                })
                .collect();
            if !items.len().is_multiple_of(2) {
                return Err(bad());
            }
            items
                .chunks(2)
                .map(|kv| {
                    let k = json_strings(kv[0])?.into_iter().next().ok_or_else(bad)?;
                    Ok((k, kv[1].clone()))
                })
                .collect()
        }
        Expr::Value(v) => match &v.value {
            // HeatWave takes NULL for "no options".
            Value::Null => Ok(vec![]),
            Value::SingleQuotedString(s) => {
                let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(s) else { return Err(bad()) };
                Ok(m.into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, Expr::Value(Value::SingleQuotedString(text).into()))
                    })
                    .collect())
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A single-table SELECT whose WHERE fixes every primary-key column to a
/// constant: one index probe in MySQL.
pub fn is_point_lookup(statement: &DfStatement, primary_key: &[String]) -> bool {
    if primary_key.is_empty() {
        return false;
    }
    let q = match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => q,
            Statement::Explain { statement, .. } => match statement.as_ref() {
                Statement::Query(q) => q,
                _ => return false,
            },
            _ => return false,
        },
        DfStatement::Explain(e) => return is_point_lookup(&e.statement, primary_key),
        _ => return false,
    };
    let SetExpr::Select(sel) = q.body.as_ref() else { return false };
    if sel.from.len() != 1 || !sel.from[0].joins.is_empty() || !matches!(sel.from[0].relation, TableFactor::Table { .. }) {
        return false;
    }
    let Some(selection) = &sel.selection else { return false };
    let mut fixed = Vec::new();
    collect_equalities(selection, &mut fixed);
    primary_key.iter().all(|k| fixed.iter().any(|f| f.eq_ignore_ascii_case(k)))
}

fn collect_equalities(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            collect_equalities(left, out);
            collect_equalities(right, out);
        }
        Expr::Nested(inner) => collect_equalities(inner, out),
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            let name = |x: &Expr| match x {
                Expr::Identifier(i) => Some(i.value.clone()),
                Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
                _ => None,
            };
            let constant = |x: &Expr| matches!(x, Expr::Value(_));
            if let (Some(n), true) = (name(left), constant(right)) {
                out.push(n);
            } else if let (Some(n), true) = (name(right), constant(left)) {
                out.push(n);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn parse(sql: &str) -> DfStatement {
        DFParser::parse_sql_with_dialect(sql, &MySqlDialect {}).unwrap().pop_front().unwrap()
    }

    #[test]
    fn recognises_point_lookups() {
        let pk = vec!["id".to_string()];
        assert!(is_point_lookup(&parse("SELECT * FROM t WHERE id = 5"), &pk));
        assert!(is_point_lookup(&parse("EXPLAIN SELECT * FROM t WHERE id = 5"), &pk));
        assert!(is_point_lookup(&parse("SELECT name FROM t WHERE (t.id = 5) AND name > 'a'"), &pk));
        assert!(!is_point_lookup(&parse("SELECT * FROM t WHERE id > 5"), &pk));
        assert!(!is_point_lookup(&parse("SELECT * FROM t WHERE id = 5 OR id = 6"), &pk));
        assert!(!is_point_lookup(&parse("SELECT * FROM t JOIN u ON t.id = u.id WHERE t.id = 5"), &pk));
        let pk2 = vec!["a".to_string(), "b".to_string()];
        assert!(!is_point_lookup(&parse("SELECT * FROM t WHERE a = 1"), &pk2));
        assert!(is_point_lookup(&parse("SELECT * FROM t WHERE a = 1 AND b = 'x'"), &pk2));
    }

    #[test]
    fn lakewave_variables_stay_local() {
        assert!(is_lakewave_variable("use_secondary_engine"));
        assert!(is_lakewave_variable("@@session.use_secondary_engine"));
        assert!(is_lakewave_variable("rapid_memory_limit"));
        assert!(!is_lakewave_variable("autocommit"));
    }
}
