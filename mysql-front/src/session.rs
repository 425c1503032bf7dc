//! A client session: its variables, current database, transaction state,
//! warnings and prepared statements, and the routing of each statement to
//! the code that answers it. Routing is decided on the parsed statement.

use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, ObjectType, Set, ShowCreateObject, ShowStatementFilterPosition, ShowStatementOptions,
    Statement, Use,
};
use datafusion::sql::sqlparser::dialect::MySqlDialect;

use lakehouse::ddl::{self, split_name};
use lakehouse::info_schema::INFORMATION_SCHEMA;
use lakehouse::{Lakehouse, heatwave};

use crate::backend::{Backend, BackendConfig, SharedBackend};
use crate::show;
use crate::split::is_blank;
use crate::sysvars::{SessionVars, SetError, normalise_name};
use crate::wire::codes::*;
use crate::wire::resultset::ColumnInfo;

mod refresh;
mod secondary;
pub use secondary::OffloadMode;
use secondary::{is_lakewave_variable, reads_rpd_tables, secondary_error};

/// What a statement produced.
pub enum Response {
    Ok { affected: u64, info: String },
    Rows { cols: Vec<ColumnInfo>, stream: SendableRecordBatchStream },
    /// The statement belongs to the MySQL backend: relay it verbatim.
    Backend(String),
}

impl Response {
    fn ok() -> Self {
        Response::Ok { affected: 0, info: String::new() }
    }
}

#[derive(Debug, Clone)]
pub struct Warning {
    pub level: &'static str,
    pub code: u16,
    pub message: String,
}

pub struct Session {
    pub id: u32,
    pub user: String,
    pub host: String,
    pub lake: Lakehouse,
    pub ctx: SessionContext,
    pub vars: SessionVars,
    database: Arc<RwLock<Option<String>>>,
    pub in_transaction: bool,
    pub warnings: Vec<Warning>,
    /// Set when the current database changed (reported via session tracking).
    pub schema_changed: bool,
    pub server_version: String,
    backend_config: Option<BackendConfig>,
    /// The session's pinned backend connection, opened on first use. Shared
    /// with the engine so lake queries inside a transaction read MySQL
    /// through it.
    pub backend: SharedBackend,
    client_caps: mysql_common::constants::CapabilityFlags,
    /// Whether the last statement ran here rather than on the backend
    /// (SHOW WARNINGS then answers from here).
    last_local: bool,
    /// The server's sessions, this one among them (none for a session
    /// outside a server).
    pub processes: Option<Arc<crate::processlist::ProcessList>>,
}

fn not_supported(what: impl std::fmt::Display) -> MyError {
    MyError::new(ER_NOT_SUPPORTED_YET, S_42000, format!("This version of Lakewave doesn't yet support '{what}'"))
}

fn read_only(what: &str) -> MyError {
    MyError::new(
        1036,
        S_HY000,
        format!(
            "{what} needs a MySQL backend; lake tables are read-only and no backend is attached"
        ),
    )
}

impl Session {
    pub fn new(id: u32, user: String, host: String, lake: Lakehouse, vars: SessionVars, server_version: String) -> Self {
        let ctx = lake.session_context(None, vars.system_provider(), vars.user_provider());
        let database = Arc::new(RwLock::new(None));
        let s = Self {
            id,
            user,
            host,
            lake,
            ctx,
            vars,
            database,
            in_transaction: false,
            warnings: Vec::new(),
            schema_changed: false,
            server_version,
            backend_config: None,
            backend: Arc::new(tokio::sync::Mutex::new(None)),
            client_caps: mysql_common::constants::CapabilityFlags::empty(),
            last_local: true,
            processes: None,
        };
        s.register_functions();
        s
    }

    /// Attaches a MySQL backend: statements that are not for the lakehouse go
    /// there, through a connection opened with the client's capabilities.
    pub fn attach_backend(&mut self, config: BackendConfig, client_caps: mysql_common::constants::CapabilityFlags) {
        self.backend_config = Some(config);
        self.client_caps = client_caps;
    }

    pub fn has_backend(&self) -> bool {
        self.backend_config.is_some()
    }

    /// Opens the pinned backend connection (in the current database) if needed.
    pub async fn ensure_backend(&self) -> Result<(), MyError> {
        let mut slot = self.backend.lock().await;
        if slot.is_none() {
            let config = self.backend_config.clone().ok_or_else(|| crate::backend::lost("no backend is attached"))?;
            let db = self.database();
            let backend = Backend::connect(&config, self.client_caps, db.as_deref()).await?;
            if let Some(switch) = self.processes.as_ref().and_then(|list| list.switch(self.id)) {
                switch.backend_thread.store(backend.thread_id, std::sync::atomic::Ordering::Release);
            }
            *slot = Some(backend);
        }
        Ok(())
    }

    /// Forgets the backend connection (it died, or the session was reset).
    pub async fn drop_backend(&self) {
        *self.backend.lock().await = None;
    }

    /// Runs a statement on the backend for Lakewave's own purposes.
    async fn backend_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, MyError> {
        self.ensure_backend().await?;
        let mut slot = self.backend.lock().await;
        let Some(b) = slot.as_mut() else { return Err(crate::backend::lost("no connection")) };
        let result = b.query(sql).await;
        if matches!(&result, Err(e) if e.code == crate::backend::ER_LOST_BACKEND) {
            *slot = None;
        }
        result
    }

    /// MySQL information functions that clients and BI tools call.
    fn register_functions(&self) {
        let db = self.database.clone();
        let database = move |_: &[ColumnarValue]| {
            let v = db.read().unwrap_or_else(|p| p.into_inner()).clone();
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(v)))
        };
        for name in ["database", "schema"] {
            self.ctx.register_udf(create_udf(name, vec![], DataType::Utf8, Volatility::Volatile, Arc::new(database.clone())));
        }
        let constant = |name: &str, value: ScalarValue| {
            let dt = value.data_type();
            create_udf(name, vec![], dt, Volatility::Stable, Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))))
        };
        let user = format!("{}@{}", self.user, self.host);
        self.ctx.register_udf(constant("version", ScalarValue::Utf8(Some(self.server_version.clone()))));
        self.ctx.register_udf(constant("user", ScalarValue::Utf8(Some(user.clone()))));
        self.ctx.register_udf(constant("current_user", ScalarValue::Utf8(Some(user.clone()))));
        self.ctx.register_udf(constant("session_user", ScalarValue::Utf8(Some(user.clone()))));
        self.ctx.register_udf(constant("system_user", ScalarValue::Utf8(Some(user))));
        self.ctx.register_udf(constant("connection_id", ScalarValue::UInt64(Some(self.id.into()))));
        self.ctx.register_udf(constant("last_insert_id", ScalarValue::UInt64(Some(0))));
        self.ctx.register_udf(constant("found_rows", ScalarValue::UInt64(Some(0))));
        self.ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(crate::dialect::MysqlText::default()));
    }

    pub fn database(&self) -> Option<String> {
        self.database.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the current database (USE, COM_INIT_DB, handshake).
    pub fn use_database(&mut self, db: &str) -> Result<(), MyError> {
        let db = db.trim_matches('`').to_lowercase();
        if !self.lake.database_exists(&db) {
            return Err(MyError::from(lakehouse::LakeError::UnknownDatabase(db)));
        }
        self.set_database(Some(db));
        Ok(())
    }

    /// Makes a database the backend accepted current here too.
    pub fn adopt_database(&mut self, db: &str) -> Result<(), MyError> {
        let db = db.trim_matches('`').to_lowercase();
        self.lake.create_database(&db, true)?;
        self.set_database(Some(db));
        self.schema_changed = false;
        Ok(())
    }

    fn set_database(&mut self, db: Option<String>) {
        Lakehouse::set_database(&self.ctx, db.as_deref());
        *self.database.write().unwrap_or_else(|p| p.into_inner()) = db;
        self.schema_changed = true;
    }

    /// Back to a fresh session (COM_RESET_CONNECTION, COM_CHANGE_USER).
    pub fn reset(&mut self) {
        self.vars.reset();
        self.in_transaction = false;
        self.warnings.clear();
    }

    pub fn autocommit(&self) -> bool {
        self.vars.flag("autocommit")
    }

    pub fn warn(&mut self, code: u16, message: impl Into<String>) {
        self.warnings.push(Warning { level: "Warning", code, message: message.into() });
    }

    /// Where file reads of this session leave their warnings.
    pub fn read_warnings(&self) -> Option<Arc<lakehouse::text::ReadWarnings>> {
        self.ctx.state_ref().read().config().get_extension::<lakehouse::text::ReadWarnings>()
    }

    /// Moves the warnings file reads left into the diagnostics area.
    pub fn absorb_read_warnings(&mut self) {
        if let Some(w) = self.read_warnings() {
            for (code, message) in w.take().1 {
                self.warn(code, message);
            }
        }
    }

    /// Runs one statement (already split from a multi-statement text).
    pub async fn execute(&mut self, sql: &str) -> Result<Response, MyError> {
        if is_blank(sql) {
            return Err(MyError::new(ER_EMPTY_QUERY, S_42000, "Query was empty"));
        }
        if let Some(r) = self.secondary_statement(sql).await? {
            self.last_local = true;
            return Ok(r);
        }
        if let Some(r) = self.refresh_statement(sql).await? {
            self.last_local = true;
            return Ok(r);
        }
        if self.has_backend() {
            if let Some(r) = self.route_with_backend(sql).await? {
                self.last_local = matches!(r, Response::Backend(_)).then_some(false).unwrap_or(true);
                return Ok(r);
            }
            self.last_local = true;
        }
        if let Some(r) = self.chatter(sql).await? {
            return Ok(r);
        }
        // The diagnostics area belongs to the previous statement until here.
        self.warnings.clear();
        if let Some(w) = self.read_warnings() {
            w.take();
        }
        let (sql_text, secondary_engine) = heatwave::strip_secondary_engine(sql);
        let mut statements = DFParser::parse_sql_with_dialect(&sql_text, &MySqlDialect {})
            .map_err(|e| syntax_error(e, &sql_text))?;
        let statement = match (statements.pop_front(), statements.is_empty()) {
            (Some(s), true) => s,
            (None, _) => return Err(MyError::new(ER_EMPTY_QUERY, S_42000, "Query was empty")),
            (Some(_), false) => return Err(parse_error("more than one statement; enable multi-statements in the client")),
        };
        if let Some(engine) = &secondary_engine {
            let created = match &statement {
                DfStatement::CreateExternalTable(cmd) => split_name(&cmd.name).ok(),
                DfStatement::Statement(s) => match s.as_ref() {
                    Statement::CreateTable(ct) => split_name(&ct.name).ok(),
                    _ => None,
                },
                _ => None,
            };
            if let Some((db, table)) = created {
                let response = Box::pin(self.run_parsed(statement, &sql_text)).await?;
                let db = db.or_else(|| self.database()).unwrap_or_default();
                self.lake.set_secondary_engine(&db, &table, Some(engine)).await?;
                return Ok(response);
            }
        }
        self.run_parsed(statement, &sql_text).await
    }

    async fn run_parsed(&mut self, statement: DfStatement, sql_text: &str) -> Result<Response, MyError> {
        match statement {
            DfStatement::CreateExternalTable(cmd) => {
                let plan = ddl::from_external_table(&cmd, self.lake.base_dir())?;
                self.create_table(plan).await
            }
            DfStatement::Explain(_) => self.query(statement).await,
            DfStatement::CopyTo(_) => Err(not_supported("COPY")),
            DfStatement::Reset(_) => Err(not_supported("RESET")),
            DfStatement::Statement(s) => self.statement(*s, sql_text.trim()).await,
        }
    }

    async fn create_table(&mut self, plan: ddl::CreateTablePlan) -> Result<Response, MyError> {
        let name = plan.def.name.clone();
        let created = self.lake.create_table(self.database().as_deref(), plan).await?;
        if !created {
            self.warn(1050, format!("Table '{name}' already exists"));
        }
        Ok(Response::ok())
    }

    async fn statement(&mut self, s: Statement, text: &str) -> Result<Response, MyError> {
        match s {
            Statement::Query(_) | Statement::Explain { .. } => {
                self.query(DfStatement::Statement(Box::new(s))).await
            }
            Statement::CreateTable(ct) => {
                let (engine, attribute) = heatwave::engine_of(&ct);
                match (engine.as_deref().map(str::to_lowercase).as_deref(), attribute) {
                    (Some("lakehouse"), Some(attr)) => {
                        let plan = heatwave::from_create_table(&ct, &attr, self.lake.base_dir())?;
                        self.create_table(plan).await
                    }
                    (Some("lakehouse"), None) => Err(MyError::from(lakehouse::LakeError::InvalidDefinition(
                        "ENGINE=lakehouse needs ENGINE_ATTRIBUTE='{\"file\": [...]}'".into(),
                    ))),
                    _ => Err(read_only("CREATE TABLE for a MySQL table")),
                }
            }
            Statement::CreateDatabase { .. } | Statement::CreateSchema { .. } => {
                let (name, if_not_exists) = created_database(&s).unwrap_or_default();
                if !self.lake.create_database(&name, if_not_exists)? {
                    self.warn(ER_DB_CREATE_EXISTS, format!("Can't create database '{name}'; database exists"));
                }
                Ok(Response::Ok { affected: 1, info: String::new() })
            }
            Statement::Drop { object_type, if_exists, names, .. } => self.drop(object_type, if_exists, &names),
            Statement::Use(u) => {
                let name = match u {
                    Use::Object(n) | Use::Database(n) | Use::Schema(n) => n.to_string(),
                    other => return Err(not_supported(other)),
                };
                self.use_database(&name)?;
                Ok(Response::ok())
            }
            Statement::Set(set) => self.set(set).await,
            Statement::StartTransaction { .. } => {
                self.in_transaction = true;
                Ok(Response::ok())
            }
            Statement::Commit { .. } | Statement::Rollback { .. } => {
                self.in_transaction = false;
                Ok(Response::ok())
            }
            Statement::ShowVariables { filter, global, .. } => {
                let vars = self.vars.all(global);
                let rows = vars.iter().map(|(k, v)| vec![Some(k.clone()), Some(v.to_text().unwrap_or_default())]).collect();
                let rows = show::filter_rows(&self.ctx, &["Variable_name", "Value"], rows, filter.as_ref()).await?;
                show::text_result(&["Variable_name", "Value"], rows)
            }
            Statement::ShowStatus { filter, .. } => {
                let rows = self.status_rows();
                let rows = show::filter_rows(&self.ctx, &["Variable_name", "Value"], rows, filter.as_ref()).await?;
                show::text_result(&["Variable_name", "Value"], rows)
            }
            Statement::ShowDatabases { show_options, .. } | Statement::ShowSchemas { show_options, .. } => {
                let mut names = self.lake.catalog().database_names();
                names.push(INFORMATION_SCHEMA.into());
                names.sort();
                let rows = names.into_iter().map(|n| vec![Some(n)]).collect();
                let rows = show::filter_rows(&self.ctx, &["Database"], rows, filter_of(&show_options)).await?;
                show::text_result(&["Database"], rows)
            }
            Statement::ShowTables { full, show_options, .. } => self.show_tables(full, &show_options).await,
            Statement::ShowColumns { full, show_options, .. } => {
                let target = show_options
                    .show_in
                    .as_ref()
                    .and_then(|i| i.parent_name.clone())
                    .ok_or_else(|| parse_error("SHOW COLUMNS needs FROM <table>"))?;
                let (db, table) = self.qualify(&target)?;
                let cols = show::table_columns(&self.lake, &db, &table)?;
                let rows = show::columns_rows(&cols, full);
                let header: &[&str] = if full { &show::FULL_COLUMNS_HEADER } else { &show::COLUMNS_HEADER };
                let rows = show::filter_rows(&self.ctx, header, rows, filter_of(&show_options)).await?;
                show::text_result(header, rows)
            }
            Statement::ExplainTable { table_name, .. } => {
                let (db, table) = self.qualify(&table_name)?;
                let cols = show::table_columns(&self.lake, &db, &table)?;
                show::text_result(&show::COLUMNS_HEADER, show::columns_rows(&cols, false))
            }
            Statement::ShowCreate { obj_type: ShowCreateObject::Table, obj_name } => {
                let (db, table) = self.qualify(&obj_name)?;
                let def = self.lake.table(&db, &table).ok_or_else(|| show::no_such_table(&db, &table))?;
                let text = ddl::show_create(&def)?;
                show::text_result(&["Table", "Create Table"], vec![vec![Some(table), Some(text)]])
            }
            Statement::ShowCollation { filter } => {
                let rows = vec![
                    vec![Some("utf8mb4_general_ci".into()), Some("utf8mb4".into()), Some("45".into()), Some("Yes".into()), Some("Yes".into()), Some("1".into()), Some("PAD SPACE".into())],
                    vec![Some("utf8mb4_0900_ai_ci".into()), Some("utf8mb4".into()), Some("255".into()), Some("".into()), Some("Yes".into()), Some("0".into()), Some("NO PAD".into())],
                    vec![Some("binary".into()), Some("binary".into()), Some("63".into()), Some("Yes".into()), Some("Yes".into()), Some("1".into()), Some("NO PAD".into())],
                ];
                let header = ["Collation", "Charset", "Id", "Default", "Compiled", "Sortlen", "Pad_attribute"];
                let rows = show::filter_rows(&self.ctx, &header, rows, filter.as_ref()).await?;
                show::text_result(&header, rows)
            }
            Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_) | Statement::Truncate { .. } => {
                Err(read_only(text.split_whitespace().next().unwrap_or("This statement")))
            }
            Statement::Kill { .. } => Err(not_supported("KILL")),
            other => Err(not_supported(first_words(&other.to_string()))),
        }
    }

    fn drop(&mut self, object_type: ObjectType, if_exists: bool, names: &[datafusion::sql::sqlparser::ast::ObjectName]) -> Result<Response, MyError> {
        match object_type {
            ObjectType::Table => {
                let mut missing = Vec::new();
                for n in names {
                    let (db, table) = self.qualify(n)?;
                    if !self.lake.drop_table(&db, &table, true)? {
                        missing.push(format!("{db}.{table}"));
                    }
                }
                if !missing.is_empty() {
                    let msg = format!("Unknown table '{}'", missing.join(","));
                    if !if_exists {
                        return Err(MyError::new(ER_BAD_TABLE, S_42S02, msg));
                    }
                    self.warn(ER_BAD_TABLE, msg);
                }
                Ok(Response::ok())
            }
            ObjectType::Schema | ObjectType::Database => {
                let name = names.first().map(|n| n.to_string().trim_matches('`').to_lowercase()).unwrap_or_default();
                let dropped = self.lake.drop_database(&name, if_exists).map_err(|e| match e {
                    lakehouse::LakeError::UnknownDatabase(db) => MyError::new(
                        ER_DB_DROP_EXISTS,
                        S_HY000,
                        format!("Can't drop database '{db}'; database doesn't exist"),
                    ),
                    other => MyError::from(other),
                })?;
                match dropped {
                    Some(tables) => {
                        if self.database().as_deref() == Some(name.as_str()) {
                            self.set_database(None);
                        }
                        Ok(Response::Ok { affected: tables as u64, info: String::new() })
                    }
                    None => {
                        self.warn(ER_DB_DROP_EXISTS, format!("Can't drop database '{name}'; database doesn't exist"));
                        Ok(Response::ok())
                    }
                }
            }
            other => Err(not_supported(format!("DROP {other}"))),
        }
    }

    /// `db.table` with the session's database filled in.
    fn qualify(&self, name: &datafusion::sql::sqlparser::ast::ObjectName) -> Result<(String, String), MyError> {
        let (db, table) = split_name(name)?;
        let db = db.or_else(|| self.database()).ok_or_else(|| MyError::from(lakehouse::LakeError::NoDatabaseSelected))?;
        Ok((db, table))
    }

    async fn show_tables(&mut self, full: bool, opts: &ShowStatementOptions) -> Result<Response, MyError> {
        let db = match opts.show_in.as_ref().and_then(|i| i.parent_name.as_ref()) {
            Some(n) => n.to_string().trim_matches('`').to_lowercase(),
            None => self.database().ok_or_else(|| MyError::from(lakehouse::LakeError::NoDatabaseSelected))?,
        };
        let names = if db == INFORMATION_SCHEMA {
            lakehouse::info_schema::InfoSchemaProvider::table_names_upper()
        } else {
            self.lake.catalog().table_names(&db).ok_or_else(|| MyError::from(lakehouse::LakeError::UnknownDatabase(db.clone())))?
        };
        let kind = if db == INFORMATION_SCHEMA { "SYSTEM VIEW" } else { "BASE TABLE" };
        let title = format!("Tables_in_{db}");
        let rows: Vec<Vec<Option<String>>> =
            names.into_iter().map(|n| if full { vec![Some(n), Some(kind.into())] } else { vec![Some(n)] }).collect();
        let header: Vec<&str> = if full { vec![&title, "Table_type"] } else { vec![&title] };
        let rows = show::filter_rows(&self.ctx, &header, rows, filter_of(opts)).await?;
        show::text_result(&header, rows)
    }

    fn status_rows(&self) -> Vec<Vec<Option<String>>> {
        let s = |k: &str, v: String| vec![Some(k.to_string()), Some(v)];
        let mut rows = vec![
            s("Threads_connected", crate::server::connected().to_string()),
            s("Uptime", crate::server::uptime_secs().to_string()),
            s("Questions", crate::server::questions().to_string()),
            s("Ssl_cipher", String::new()),
        ];
        rows.extend(self.lakewave_status_rows());
        rows.sort();
        rows
    }

    async fn set(&mut self, set: Set) -> Result<Response, MyError> {
        match set {
            Set::SingleAssignment { scope, variable, values, .. } => {
                let value = values.first().ok_or_else(|| parse_error("SET needs a value"))?;
                self.assign(scope.map(|s| s.to_string()), &variable.to_string(), value).await?;
            }
            Set::MultipleAssignments { assignments } => {
                for a in assignments {
                    self.assign(a.scope.map(|s| s.to_string()), &a.name.to_string(), &a.value).await?;
                }
            }
            Set::SetNames { charset_name, collation_name } => {
                let cs = charset_name.value.to_lowercase();
                if !matches!(cs.as_str(), "utf8mb4" | "utf8" | "utf8mb3" | "binary" | "latin1" | "ascii") {
                    return Err(MyError::new(1115, S_42000, format!("Unknown character set: '{cs}'")));
                }
                for v in ["character_set_client", "character_set_connection", "character_set_results"] {
                    self.set_var(v, Some(ScalarValue::Utf8(Some(cs.clone()))))?;
                }
                let coll = collation_name.unwrap_or_else(|| format!("{cs}_general_ci"));
                self.set_var("collation_connection", Some(ScalarValue::Utf8(Some(coll.trim_matches('\'').to_string()))))?;
            }
            Set::SetNamesDefault {} => {
                for v in ["character_set_client", "character_set_connection", "character_set_results"] {
                    self.set_var(v, Some(ScalarValue::Utf8(Some("utf8mb4".into()))))?;
                }
            }
            Set::SetTimeZone { value, .. } => {
                let v = self.eval(&value).await?;
                self.set_var("time_zone", Some(v))?;
            }
            Set::SetTransaction { .. } => {}
            other => return Err(not_supported(other)),
        }
        Ok(Response::ok())
    }

    fn set_var(&mut self, name: &str, value: Option<ScalarValue>) -> Result<(), MyError> {
        self.vars.set(name, value, false).map_err(set_error)
    }

    async fn assign(&mut self, scope: Option<String>, name: &str, value: &Expr) -> Result<(), MyError> {
        let global = scope.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("GLOBAL"))
            || name.to_lowercase().starts_with("@@global.");
        if name.starts_with('@') && !name.starts_with("@@") {
            let v = self.eval(value).await?;
            self.vars.set_user(name, Some(v));
            return Ok(());
        }
        if global {
            return Err(MyError::new(
                1227,
                S_42000,
                "Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN privilege(s) for this operation",
            ));
        }
        // Bare words (ON, OFF, utf8mb4, DEFAULT) are values, not columns.
        let (v, is_default) = match value {
            Expr::Identifier(id) if id.value.eq_ignore_ascii_case("DEFAULT") => (None, true),
            Expr::Identifier(id) => (Some(ScalarValue::Utf8(Some(id.value.clone()))), false),
            other => (Some(self.eval(other).await?), false),
        };
        self.vars.set(name, v, is_default).map_err(set_error)?;
        if normalise_name(name) == "autocommit" && self.autocommit() {
            // Turning autocommit on commits an open transaction.
            self.in_transaction = false;
        }
        Ok(())
    }

    /// Evaluates a scalar expression in the session (for SET).
    async fn eval(&self, e: &Expr) -> Result<ScalarValue, MyError> {
        let df = self.ctx.sql(&format!("SELECT {e}")).await?;
        let batches = df.collect().await?;
        let batch = batches.first().filter(|b| b.num_rows() == 1).ok_or_else(|| parse_error("SET value must be a scalar"))?;
        Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
    }

    /// Plans and runs a query in the lakehouse engine.
    async fn query(&mut self, mut statement: DfStatement) -> Result<Response, MyError> {
        let state = self.ctx.state();
        let current = self.database();
        let refs = self.table_refs(&statement)?;
        let reads_information_schema =
            refs.iter().any(|(db, _)| db.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(INFORMATION_SCHEMA)));
        let mut lake_tables = Vec::new();
        for (db, table) in &refs {
            let db = db.clone().or_else(|| current.clone());
            let db = db.ok_or_else(|| MyError::from(lakehouse::LakeError::NoDatabaseSelected))?.to_lowercase();
            let lake = self.lake.table_exists(&db, &table.to_lowercase());
            if !lake && !self.lake.has_mysql() {
                return Err(show::no_such_table(&db, table));
            }
            if lake && db != INFORMATION_SCHEMA && db != lakehouse::rapid::status::PERFORMANCE_SCHEMA {
                lake_tables.push((db, table.to_lowercase()));
            }
        }
        let mode = self.offload_mode();
        let offload = state.config().get_extension::<lakehouse::engine::Offload>();
        if let Some(o) = &offload {
            o.set(mode != OffloadMode::Off, mode != OffloadMode::Off && !self.in_transaction);
        }
        let point_lookup = self.loaded_copies(&refs).ok().and_then(|copies| self.point_lookup(&statement, &copies));
        if let (Some(o), Some(_)) = (&offload, &point_lookup) {
            // MySQL's index answers this better than a scan of the copy.
            o.set(mode != OffloadMode::Off, false);
        }
        // Read-your-writes: loaded MySQL tables are read only once change
        // capture has applied everything the backend committed so far.
        if mode != OffloadMode::Off && !self.in_transaction && point_lookup.is_none() && self.reads_loaded_mysql(&refs) {
            let wait = self.vars.get("rapid_sync_wait_ms").and_then(|v| v.to_text()).and_then(|t| t.parse::<u64>().ok()).unwrap_or(5_000);
            // 0 reads the copy as it is, without waiting (stale reads allowed).
            if wait > 0 && !self.lake.catch_up(std::time::Duration::from_millis(wait)).await {
                if mode == OffloadMode::Forced {
                    return Err(secondary_error(format!(
                        "Reason: use_secondary_engine is FORCED but change capture did not apply the backend's latest changes within {wait} ms"
                    )));
                }
                if let Some(o) = &offload {
                    o.set(true, false);
                }
            }
        }
        // As the client wrote it: result columns are named after its text.
        let original = statement.clone();
        rewrite_mysql(&mut statement, reads_information_schema);
        // Inside a transaction, MySQL tables are read through this session's
        // own connection so the query sees the transaction's writes.
        if let Some(rows) = state.config().get_extension::<connectors::mysql::SessionRows>() {
            let source: Option<Arc<dyn connectors::mysql::RowSource>> = (self.in_transaction && self.has_backend())
                .then(|| Arc::new(crate::backend::SessionConnectionRows(self.backend.clone())) as _);
            rows.set(source);
        }
        let plan = state.statement_to_plan(statement).await?;
        let used = offload.as_ref().map(|o| o.used()).unwrap_or_default();
        if mode == OffloadMode::Forced {
            for (db, t) in &refs {
                let db = db.clone().or_else(|| current.clone()).unwrap_or_default().to_lowercase();
                let t = t.to_lowercase();
                let special = db == INFORMATION_SCHEMA || db == lakehouse::rapid::status::PERFORMANCE_SCHEMA;
                let name = format!("{db}.{t}");
                if !special && !self.lake.table_exists(&db, &t) && !used.contains(&name) {
                    return Err(secondary_error(format!(
                        "Reason: use_secondary_engine is FORCED but {name} is not loaded in the secondary engine"
                    )));
                }
            }
        }
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false).verify_plan(&plan).map_err(|_| not_supported("this statement in the lakehouse engine"))?;
        let df = self.ctx.execute_logical_plan(plan).await?;
        let qualifiers: Vec<(String, String)> = df
            .schema()
            .iter()
            .map(|(q, _)| match q {
                Some(TableReference::Partial { schema, table }) | Some(TableReference::Full { schema, table, .. }) => {
                    (schema.to_string(), table.to_string())
                }
                Some(TableReference::Bare { table }) => (current.clone().unwrap_or_default(), table.to_string()),
                None => (String::new(), String::new()),
            })
            .collect();
        let schema = Arc::new(df.schema().as_arrow().clone());
        let plain_explain = match &original {
            DfStatement::Explain(e) => !e.options.analyze,
            DfStatement::Statement(s) => matches!(s.as_ref(), Statement::Explain { analyze: false, .. }),
            _ => false,
        };
        if plain_explain {
            let note = if !used.is_empty() {
                format!("Using secondary engine RAPID for {}", used.join(", "))
            } else if mode == OffloadMode::Off {
                "not used: use_secondary_engine is OFF".to_string()
            } else if let Some(reason) = point_lookup {
                format!("not used: {reason}")
            } else {
                "not used: no table the query reads is loaded (ALTER TABLE ... SECONDARY_LOAD)".to_string()
            };
            return self.explain_with_routing(df, schema, note).await;
        }
        let mut cols = ColumnInfo::from_schema(&schema, &qualifiers);
        // information_schema's columns are upper case, as MySQL names them.
        for (c, (db, _)) in cols.iter_mut().zip(&qualifiers) {
            if db.eq_ignore_ascii_case(INFORMATION_SCHEMA) || db.eq_ignore_ascii_case(lakehouse::rapid::status::PERFORMANCE_SCHEMA) {
                c.name = c.name.to_uppercase();
                c.org_name = c.org_name.to_uppercase();
            }
        }
        mysql_column_names(&original, &mut cols);
        if !used.is_empty() {
            self.lake.rapid().note_offload();
        }
        let explain_analyze = matches!(&original, DfStatement::Explain(_))
            || matches!(&original, DfStatement::Statement(s) if matches!(s.as_ref(), Statement::Explain { .. }));
        if explain_analyze {
            // Plans name files; PAR paths carry tokens.
            let batches = redact_batches(df.collect().await?)?;
            let stream = datafusion::physical_plan::memory::MemoryStream::try_new(batches, schema, None)?;
            return Ok(Response::Rows { cols, stream: Box::pin(stream) });
        }
        let task = Arc::new(df.task_ctx());
        let started = match self.lake.plan_query(df).await {
            Ok(plan) => {
                // The analyzer's rules (MySQL's quotients and their shown
                // scales) change result types after the unanalyzed plan
                // above: the columns are described from the planned ones,
                // under the names chosen above.
                for (c, typed) in cols.iter_mut().zip(ColumnInfo::from_schema(&plan.schema(), &qualifiers)) {
                    (c.ty, c.nullable) = (typed.ty, typed.nullable);
                }
                let switch = self.processes.as_ref().and_then(|list| {
                    list.planned(self.id, Arc::clone(&plan));
                    list.switch(self.id)
                });
                lakehouse::diagnose::execute_plan_catching(plan, task)
                    .map(|s| match switch {
                        Some(switch) => crate::processlist::killable(s, switch),
                        None => s,
                    })
            }
            Err(e) => Err(e),
        };
        let stream = match started {
            Ok(s) => s,
            Err(e) => return Err(self.name_failing_file(e, &lake_tables).await),
        };
        Ok(Response::Rows { cols, stream: self.diagnosing(stream, lake_tables) })
    }

    /// EXPLAIN output with where the query runs and what MySQL is sent.
    async fn explain_with_routing(
        &self,
        df: datafusion::dataframe::DataFrame,
        schema: datafusion::arrow::datatypes::SchemaRef,
        secondary_note: String,
    ) -> Result<Response, MyError> {
        let log = self.ctx.state().config().get_extension::<connectors::mysql::PushdownLog>();
        if let Some(l) = &log {
            l.take();
        }
        let mut batches = redact_batches(df.collect().await?)?;
        let mut notes = vec![(
            "lakewave_routing".to_string(),
            "runs in the lakehouse engine (DataFusion)".to_string(),
        )];
        notes.push(("secondary_engine".to_string(), secondary_note));
        for sql in log.map(|l| l.take()).unwrap_or_default() {
            notes.push(("mysql_pushdown".to_string(), sql));
        }
        if schema.fields().len() == 2 {
            let (kinds, texts): (Vec<String>, Vec<String>) = notes.into_iter().unzip();
            let batch = datafusion::arrow::array::RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(datafusion::arrow::array::StringArray::from(kinds)),
                    Arc::new(datafusion::arrow::array::StringArray::from(texts)),
                ],
            )
            .map_err(|e| MyError::from(datafusion::error::DataFusionError::from(e)))?;
            batches.insert(0, batch);
        }
        let cols = ColumnInfo::from_schema(&schema, &[]);
        let stream = datafusion::physical_plan::memory::MemoryStream::try_new(batches, schema, None)?;
        Ok(Response::Rows { cols, stream: Box::pin(stream) })
    }

    /// Rewrites a read error to name the file that caused it, when it can.
    async fn name_failing_file(&self, e: datafusion::error::DataFusionError, tables: &[(String, String)]) -> MyError {
        let err = MyError::from(e);
        if err.code != ER_GET_ERRNO || tables.is_empty() || names_its_file(&err) {
            return err;
        }
        match self.lake.locate_read_error(tables).await {
            Some(msg) => MyError::new(err.code, &err.state, msg),
            None => err,
        }
    }

    /// Wraps a result stream so a read error met while streaming names its file.
    fn diagnosing(&self, stream: SendableRecordBatchStream, tables: Vec<(String, String)>) -> SendableRecordBatchStream {
        use futures::StreamExt;
        let schema = stream.schema();
        let lake = self.lake.clone();
        let tables = Arc::new(tables);
        let mapped = stream.then(move |item| {
            let lake = lake.clone();
            let tables = tables.clone();
            async move {
                match item {
                    Ok(b) => Ok(b),
                    Err(e) => {
                        let err = MyError::from(e);
                        if err.code != ER_GET_ERRNO || tables.is_empty() || names_its_file(&err) {
                            return Err(datafusion::error::DataFusionError::External(Box::new(err)));
                        }
                        let err = match lake.locate_read_error(&tables).await {
                            Some(msg) => MyError::new(err.code, &err.state, msg),
                            None => err,
                        };
                        Err(datafusion::error::DataFusionError::External(Box::new(err)))
                    }
                }
            }
        });
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, mapped))
    }

    /// Whether a table named in a statement is a lake table.
    fn is_lake_table(&self, db: Option<&str>, table: &str) -> bool {
        let db = db.map(str::to_string).or_else(|| self.database());
        db.is_some_and(|d| self.lake.table(&d.to_lowercase(), &table.to_lowercase()).is_some())
    }

    /// The tables a statement reads, as `(database as written, table)`.
    fn table_refs(&self, statement: &DfStatement) -> Result<Vec<(Option<String>, String)>, MyError> {
        let state = self.ctx.state();
        // Table functions (`generate_series(1, 10)`) read no table.
        let functions = state.table_functions();
        Ok(state
            .resolve_table_references(statement)?
            .iter()
            .filter(|r| !matches!(r, TableReference::Bare { table } if functions.contains_key(table.as_ref())))
            .map(|r| match r {
                TableReference::Bare { table } => (None, table.to_string()),
                TableReference::Partial { schema, table } | TableReference::Full { schema, table, .. } => {
                    (Some(schema.to_string()), table.to_string())
                }
            })
            .collect())
    }

    fn reads_lake(&self, statement: &DfStatement) -> bool {
        self.table_refs(statement)
            .is_ok_and(|refs| refs.iter().any(|(db, table)| self.is_lake_table(db.as_deref(), table)))
    }

    fn names_lake_table(&self, name: &datafusion::sql::sqlparser::ast::ObjectName) -> bool {
        split_name(name).map(|(db, t)| self.is_lake_table(db.as_deref(), &t)).unwrap_or(false)
    }

    /// Routing when a MySQL backend is attached. `None` means "run it here";
    /// `Some(Response::Backend)` relays it; other responses were produced by
    /// coordinating both sides (databases live on both).
    async fn route_with_backend(&mut self, sql: &str) -> Result<Option<Response>, MyError> {
        let backend = || Ok(Some(Response::Backend(sql.to_string())));
        let norm = strip_leading_comments(sql).trim_start().to_lowercase();
        if norm.starts_with("show warnings") || norm.starts_with("show errors") || norm.starts_with("show count(*)") {
            return if self.last_local { Ok(None) } else { backend() };
        }
        // Lakewave's own sessions (their ids are the ones clients see).
        let words: Vec<&str> = norm.split_whitespace().collect();
        if matches!(words.as_slice(), ["kill", ..] | ["show", "processlist", ..] | ["show", "full", "processlist", ..]) {
            return Ok(None);
        }
        let (text, secondary_engine) = heatwave::strip_secondary_engine(sql);
        let Ok(mut parsed) = DFParser::parse_sql_with_dialect(&text, &MySqlDialect {}) else {
            // MySQL syntax the lakehouse does not parse belongs to MySQL.
            return backend();
        };
        let Some(statement) = parsed.pop_front().filter(|_| parsed.is_empty()) else { return backend() };
        let s = match statement {
            DfStatement::CreateExternalTable(ref cmd) => {
                // The database must exist on both sides.
                if let Ok((Some(db), _)) = split_name(&cmd.name) {
                    self.ensure_database(&db).await?;
                }
                return Ok(None);
            }
            DfStatement::Explain(_) => {
                return if self.runs_here(&statement, sql)? { Ok(None) } else { backend() };
            }
            DfStatement::Statement(s) => *s,
            _ => return Ok(None),
        };
        match &s {
            Statement::Query(_) | Statement::Explain { .. } => {
                let statement = DfStatement::Statement(Box::new(s.clone()));
                if self.runs_here(&statement, sql)? { Ok(None) } else { backend() }
            }
            Statement::CreateTable(ct) => {
                let (engine, _) = heatwave::engine_of(ct);
                if engine.is_some_and(|e| e.eq_ignore_ascii_case("lakehouse")) {
                    if let Ok((Some(db), _)) = split_name(&ct.name) {
                        self.ensure_database(&db).await?;
                    }
                    Ok(None)
                } else if let Some(secondary) = secondary_engine {
                    // MariaDB does not know SECONDARY_ENGINE: create the
                    // table without it, then mark it here.
                    self.backend_query(&text).await?;
                    let (db, table) = self.qualify(&ct.name)?;
                    self.lake.set_secondary_engine(&db, &table, Some(&secondary)).await?;
                    Ok(Some(Response::ok()))
                } else {
                    backend()
                }
            }
            Statement::CreateDatabase { .. } | Statement::CreateSchema { .. } => {
                let (name, _) = created_database(&s).unwrap_or_default();
                self.backend_query(sql).await?;
                self.lake.create_database(&name, true)?;
                Ok(Some(Response::Ok { affected: 1, info: String::new() }))
            }
            Statement::Drop { object_type: ObjectType::Database | ObjectType::Schema, names, .. } => {
                self.backend_query(sql).await?;
                let name = names.first().map(|n| n.to_string().trim_matches('`').to_lowercase()).unwrap_or_default();
                let dropped = self.lake.drop_database(&name, true)?;
                if self.database().as_deref() == Some(name.as_str()) {
                    self.set_database(None);
                }
                Ok(Some(Response::Ok { affected: dropped.unwrap_or(0) as u64, info: String::new() }))
            }
            Statement::Drop { object_type: ObjectType::Table, names, if_exists, .. } => {
                let (lake, mysql): (Vec<_>, Vec<_>) = names.iter().partition(|n| self.names_lake_table(n));
                if !mysql.is_empty() {
                    let list: Vec<String> = mysql.iter().map(|n| n.to_string()).collect();
                    let exists = if *if_exists { "IF EXISTS " } else { "" };
                    self.backend_query(&format!("DROP TABLE {exists}{}", list.join(", "))).await?;
                }
                for n in &mysql {
                    let (db, table) = self.qualify(n)?;
                    self.lake.forget_secondary(&db, &table)?;
                }
                for n in lake {
                    let (db, table) = self.qualify(n)?;
                    self.lake.drop_table(&db, &table, true)?;
                }
                Ok(Some(Response::ok()))
            }
            Statement::Use(u) => {
                let name = match u {
                    Use::Object(n) | Use::Database(n) | Use::Schema(n) => n.to_string().trim_matches('`').to_lowercase(),
                    _ => return backend(),
                };
                self.backend_query(&format!("USE {}", connectors::sql::quote_ident(&name))).await?;
                self.lake.create_database(&name, true)?;
                self.set_database(Some(name));
                Ok(Some(Response::ok()))
            }
            Statement::Set(Set::SetNames { charset_name, .. }) => {
                // MariaDB rejects MySQL 8's default collation names; the
                // backend gets the character set only.
                let cs = charset_name.value.clone();
                self.backend_query(&format!("SET NAMES {cs}")).await?;
                self.warnings.clear();
                self.statement(s, sql).await.map(Some)
            }
            Statement::Set(set) => {
                let names: Vec<String> = match set {
                    Set::SingleAssignment { variable, .. } => vec![variable.to_string()],
                    Set::MultipleAssignments { assignments } => assignments.iter().map(|a| a.name.to_string()).collect(),
                    _ => vec![],
                };
                if !names.is_empty() && names.iter().all(|n| is_lakewave_variable(n)) {
                    // Only Lakewave knows these; MySQL would reject them.
                    return self.statement(s.clone(), sql).await.map(Some);
                }
                // Keep the engine's view of session variables in step.
                let _ = Box::pin(self.statement(s.clone(), sql)).await;
                backend()
            }
            Statement::ShowStatus { filter, global, .. } => {
                let scope = if *global { "GLOBAL " } else { "" };
                let mut rows: Vec<Vec<Option<String>>> = self.backend_query(&format!("SHOW {scope}STATUS")).await?;
                rows.retain(|r| !r.first().and_then(|n| n.as_deref()).is_some_and(|n| n.to_lowercase().starts_with("rapid_")));
                rows.extend(self.lakewave_status_rows());
                rows.sort_by_key(|r| r.first().cloned().flatten().unwrap_or_default().to_lowercase());
                let rows = show::filter_rows(&self.ctx, &["Variable_name", "Value"], rows, filter.as_ref()).await?;
                show::text_result(&["Variable_name", "Value"], rows).map(Some)
            }
            Statement::ShowTables { full, show_options, .. } => {
                let db = match show_options.show_in.as_ref().and_then(|i| i.parent_name.as_ref()) {
                    Some(n) => n.to_string().trim_matches('`').to_lowercase(),
                    None => match self.database() {
                        Some(d) => d,
                        None => return backend(),
                    },
                };
                let mut rows: Vec<Vec<Option<String>>> = self
                    .backend_query(&format!("SHOW FULL TABLES FROM {}", connectors::sql::quote_ident(&db)))
                    .await?
                    .into_iter()
                    .map(|mut r| {
                        r.truncate(2);
                        r
                    })
                    .collect();
                for t in self.lake.catalog().table_names(&db).unwrap_or_default() {
                    if !rows.iter().any(|r| r[0].as_deref() == Some(t.as_str())) {
                        rows.push(vec![Some(t), Some("BASE TABLE".into())]);
                    }
                }
                rows.sort();
                let title = format!("Tables_in_{db}");
                let header: Vec<&str> = if *full { vec![&title, "Table_type"] } else { vec![&title] };
                if !*full {
                    rows.iter_mut().for_each(|r| r.truncate(1));
                }
                let rows = show::filter_rows(&self.ctx, &header, rows, filter_of(show_options)).await?;
                show::text_result(&header, rows).map(Some)
            }
            Statement::ShowColumns { show_options, .. } => {
                let lake = show_options.show_in.as_ref().and_then(|i| i.parent_name.as_ref()).is_some_and(|n| self.names_lake_table(n));
                if lake { Ok(None) } else { backend() }
            }
            Statement::ExplainTable { table_name, .. } | Statement::ShowCreate { obj_name: table_name, .. } => {
                if self.names_lake_table(table_name) { Ok(None) } else { backend() }
            }
            Statement::Insert(i) => {
                let lake = match &i.table {
                    datafusion::sql::sqlparser::ast::TableObject::TableName(n) => self.names_lake_table(n),
                    _ => false,
                };
                if lake { Ok(None) } else { backend() }
            }
            _ => backend(),
        }
    }

    /// Whether a statement would go to the backend (no side effects; used
    /// to decide where a statement is prepared).
    pub fn wants_backend(&self, sql: &str) -> bool {
        if !self.has_backend() {
            return false;
        }
        let (text, _) = heatwave::strip_secondary_engine(sql);
        let Ok(mut parsed) = DFParser::parse_sql_with_dialect(&text, &MySqlDialect {}) else { return true };
        let Some(statement) = parsed.pop_front() else { return true };
        match &statement {
            DfStatement::CreateExternalTable(_) => false,
            DfStatement::Statement(s) => match s.as_ref() {
                Statement::Query(_) | Statement::Explain { .. } => !self.runs_here(&statement, sql).unwrap_or(false),
                Statement::CreateTable(ct) => !heatwave::engine_of(ct).0.is_some_and(|e| e.eq_ignore_ascii_case("lakehouse")),
                _ => true,
            },
            _ => !self.reads_lake(&statement),
        }
    }

    /// With a backend attached, whether a query runs in the lakehouse engine:
    /// it reads a lake table, the merged information_schema, the secondary
    /// engine's status tables, only system variables, or only tables loaded
    /// in the secondary engine (`use_secondary_engine`). Under FORCED, a
    /// query that cannot be offloaded is an error.
    fn runs_here(&self, statement: &DfStatement, sql: &str) -> Result<bool, MyError> {
        let refs = self.table_refs(statement).unwrap_or_default();
        // System variables without tables describe this server: a client
        // must see Lakewave's @@socket (NULL), not the backend's, or it
        // reconnects around Lakewave.
        if self.reads_lake(statement) || (refs.is_empty() && sql.contains("@@")) || merged_information_schema(&refs) || reads_rpd_tables(&refs) {
            return Ok(true);
        }
        let mode = self.offload_mode();
        if mode == OffloadMode::Off {
            return Ok(false);
        }
        let system = refs.iter().any(|(db, _)| {
            db.as_deref().is_some_and(|d| {
                ["information_schema", "performance_schema", "mysql", "sys"].iter().any(|s| d.eq_ignore_ascii_case(s))
            })
        });
        match self.offload_check(statement, &refs) {
            Ok(()) => Ok(true),
            Err(reason) if mode == OffloadMode::Forced && !refs.is_empty() && !system => {
                Err(secondary_error(format!("Reason: use_secondary_engine is FORCED but {reason}")))
            }
            Err(_) => Ok(false),
        }
    }

    /// Creates a database on the backend and in the lake catalog if missing.
    async fn ensure_database(&mut self, db: &str) -> Result<(), MyError> {
        self.backend_query(&format!("CREATE DATABASE IF NOT EXISTS {}", connectors::sql::quote_ident(db))).await?;
        self.lake.create_database(db, true)?;
        Ok(())
    }

    /// Client chatter that the SQL parser does not know, answered directly.
    async fn chatter(&mut self, sql: &str) -> Result<Option<Response>, MyError> {
        let norm: String = strip_leading_comments(sql).split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        let norm = norm.trim_end_matches(';').trim();
        let warnings = |s: &Session, errors_only: bool| -> Vec<Vec<Option<String>>> {
            s.warnings
                .iter()
                .filter(|w| !errors_only || w.level == "Error")
                .map(|w| vec![Some(w.level.to_string()), Some(w.code.to_string()), Some(w.message.clone())])
                .collect()
        };
        let r = match norm {
            n if n.starts_with("show warnings") => Some(show::text_result(&["Level", "Code", "Message"], warnings(self, false))?),
            n if n.starts_with("show errors") => Some(show::text_result(&["Level", "Code", "Message"], warnings(self, true))?),
            "show count(*) warnings" | "select @@warning_count" | "select @@session.warning_count" => {
                Some(show::text_result(&["@@session.warning_count"], vec![vec![Some(self.warnings.len().to_string())]])?)
            }
            "show engines" => Some(show::text_result(
                &["Engine", "Support", "Comment", "Transactions", "XA", "Savepoints"],
                vec![
                    vec![Some("lakehouse".into()), Some("DEFAULT".into()), Some("External tables over files in place".into()), Some("NO".into()), Some("NO".into()), Some("NO".into())],
                    vec![Some("RAPID".into()), Some("YES".into()), Some("In-memory columnar secondary engine".into()), Some("NO".into()), Some("NO".into()), Some("NO".into())],
                ],
            )?),
            n if n.starts_with("kill ") => {
                // KILL [QUERY | CONNECTION] id
                let (connection, id) = match n.split(' ').skip(1).collect::<Vec<_>>().as_slice() {
                    ["query", id] => (false, *id),
                    ["connection", id] | [id] => (true, *id),
                    words => return Err(parse_error(&format!("near '{}'", words.join(" ")))),
                };
                let id = id.parse::<u32>().map_err(|_| parse_error(&format!("near '{id}'")))?;
                let Some(thread) = self.processes.as_ref().and_then(|list| list.kill(id, connection)) else {
                    return Err(MyError::new(1094, S_HY000, format!("Unknown thread id: {id}")));
                };
                // A statement the session relayed to MySQL is stopped there
                // (the relay then answers with MySQL's own response).
                if thread != 0 && id != self.id && self.has_backend() {
                    if let Err(e) = self.backend_query(&format!("KILL QUERY {thread}")).await {
                        tracing::debug!(id = self.id, "KILL QUERY on the backend failed: {e}");
                    }
                }
                Some(Response::Ok { affected: 0, info: String::new() })
            }
            n if n.starts_with("show processlist") || n.starts_with("show full processlist") => {
                let rows = match &self.processes {
                    Some(list) => list.rows(n.starts_with("show full")),
                    None => vec![vec![
                        Some(self.id.to_string()),
                        Some(self.user.clone()),
                        Some(self.host.clone()),
                        self.database(),
                        Some("Query".into()),
                        Some("0".into()),
                        Some("executing".into()),
                        Some(connectors::stores::redact_statement(sql)),
                        Some("0.000".into()),
                    ]],
                };
                Some(show::text_result(&crate::processlist::COLUMNS, rows)?)
            }
            n if n.starts_with("show character set") || n.starts_with("show charset") => Some(show::text_result(
                &["Charset", "Description", "Default collation", "Maxlen"],
                vec![
                    vec![Some("utf8mb4".into()), Some("UTF-8 Unicode".into()), Some("utf8mb4_general_ci".into()), Some("4".into())],
                    vec![Some("binary".into()), Some("Binary pseudo charset".into()), Some("binary".into()), Some("1".into())],
                ],
            )?),
            n if n.starts_with("show create database") || n.starts_with("show create schema") => {
                let name = n.rsplit(' ').next().unwrap_or_default().trim_matches('`').to_string();
                if !self.lake.database_exists(&name) {
                    return Err(MyError::from(lakehouse::LakeError::UnknownDatabase(name)));
                }
                let text = format!("CREATE DATABASE `{name}` /*!40100 DEFAULT CHARACTER SET utf8mb4 */");
                Some(show::text_result(&["Database", "Create Database"], vec![vec![Some(name), Some(text)]])?)
            }
            _ => None,
        };
        Ok(r)
    }
}

/// Plan text with secrets that can appear in file paths masked.
fn redact_batches(
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, MyError> {
    use datafusion::arrow::array::{Array, ArrayRef, StringArray};
    batches
        .into_iter()
        .map(|b| {
            let columns: Vec<ArrayRef> = b
                .columns()
                .iter()
                .map(|c| match c.as_any().downcast_ref::<StringArray>() {
                    Some(text) => Arc::new(
                        text.iter().map(|v| v.map(|v| connectors::stores::redact_text(v).into_owned())).collect::<StringArray>(),
                    ) as ArrayRef,
                    None => c.clone(),
                })
                .collect();
            datafusion::arrow::array::RecordBatch::try_new(b.schema(), columns)
                .map_err(|e| MyError::from(datafusion::error::DataFusionError::from(e)))
        })
        .collect()
}

/// Whether a query reads the information_schema tables that list lake and
/// MySQL objects together, and no other information_schema table (those
/// stay the backend's).
fn merged_information_schema(refs: &[(Option<String>, String)]) -> bool {
    use lakehouse::info_schema::{LAKEWAVE_ONLY, MERGED_WITH_BACKEND};
    let info: Vec<&str> = refs
        .iter()
        .filter(|(db, _)| db.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(INFORMATION_SCHEMA)))
        .map(|(_, t)| t.as_str())
        .collect();
    let ours = |t: &str| MERGED_WITH_BACKEND.iter().chain(&LAKEWAVE_ONLY).any(|m| m.eq_ignore_ascii_case(t));
    !info.is_empty() && info.iter().all(|t| ours(t))
}

/// Applies the MySQL-to-DataFusion rewrites to a statement (and the one an
/// EXPLAIN wraps).
fn rewrite_mysql(statement: &mut DfStatement, information_schema: bool) {
    match statement {
        DfStatement::Statement(s) => crate::dialect::rewrite(s, information_schema),
        DfStatement::Explain(e) => rewrite_mysql(&mut e.statement, information_schema),
        _ => {}
    }
}

/// A parser failure in MySQL's words, quoting the text from where it failed.
fn syntax_error(e: datafusion::error::DataFusionError, sql: &str) -> MyError {
    let detail = match &e {
        datafusion::error::DataFusionError::SQL(p, _) => match p.as_ref() {
            datafusion::sql::sqlparser::parser::ParserError::ParserError(m)
            | datafusion::sql::sqlparser::parser::ParserError::TokenizerError(m) => m.clone(),
            other => other.to_string(),
        },
        other => other.strip_backtrace(),
    };
    // "... at Line: L, Column: C"
    let near = detail.rsplit_once(" at Line: ").and_then(|(msg, pos)| {
        let (line, col) = pos.split_once(", Column: ")?;
        let (line, col): (usize, usize) = (line.trim().parse().ok()?, col.trim().parse().ok()?);
        let text: String = sql.lines().skip(line.saturating_sub(1)).collect::<Vec<_>>().join("\n");
        let rest: String = text.chars().skip(col.saturating_sub(1)).take(80).collect();
        Some((msg.to_string(), rest, line))
    });
    let mut e = match near {
        Some((msg, rest, line)) => parse_error(&format!("{msg} near '{rest}' at line {line}")),
        None => parse_error(&detail),
    };
    // The quoted text may hold a secret, whole or cut: mask every piece of
    // one that is long enough to matter.
    for span in connectors::stores::secret_spans(sql) {
        let secret = &sql[span];
        if e.message.contains(secret) {
            e.message = e.message.replace(secret, connectors::stores::REDACTED);
        }
        for cut in (4..secret.len()).rev().filter(|&n| secret.is_char_boundary(n) && secret.is_char_boundary(secret.len() - n)) {
            let tail = &secret[secret.len() - cut..];
            let head = &secret[..cut];
            if e.message.contains(&format!("near '{tail}")) {
                e.message = e.message.replacen(&format!("near '{tail}"), &format!("near '{}", connectors::stores::REDACTED), 1);
            }
            if e.message.contains(&format!("{head}' at line")) {
                e.message = e.message.replacen(&format!("{head}' at line"), &format!("{}' at line", connectors::stores::REDACTED), 1);
            }
        }
    }
    e
}

/// MySQL names an unaliased select item by its text; DataFusion by its
/// typed expression (`Int64(1)`). Use the text for top-level items.
fn mysql_column_names(statement: &DfStatement, cols: &mut [ColumnInfo]) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    let DfStatement::Statement(s) = statement else { return };
    let Statement::Query(q) = s.as_ref() else { return };
    let SetExpr::Select(select) = q.body.as_ref() else { return };
    if select.projection.len() != cols.len() {
        return;
    }
    for (item, col) in select.projection.iter().zip(cols.iter_mut()) {
        match item {
            SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => {}
            SelectItem::UnnamedExpr(e) => col.name = e.to_string(),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => return,
            SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {}
        }
    }
}

fn set_error(e: SetError) -> MyError {
    match e {
        SetError::Unknown(_) => MyError::new(ER_UNKNOWN_SYSTEM_VARIABLE, S_HY000, e.to_string()),
        SetError::BadValue(..) => MyError::new(ER_WRONG_VALUE_FOR_VAR, S_42000, e.to_string()),
    }
}

fn filter_of(opts: &ShowStatementOptions) -> Option<&datafusion::sql::sqlparser::ast::ShowStatementFilter> {
    match &opts.filter_position {
        Some(ShowStatementFilterPosition::Infix(f) | ShowStatementFilterPosition::Suffix(f)) => Some(f),
        None => None,
    }
}

/// The (lower-case) name and IF NOT EXISTS of CREATE DATABASE / SCHEMA.
fn created_database(s: &Statement) -> Option<(String, bool)> {
    let (name, if_not_exists) = match s {
        Statement::CreateDatabase { db_name, if_not_exists, .. } => (db_name.to_string(), *if_not_exists),
        Statement::CreateSchema { schema_name, if_not_exists, .. } => (schema_name.to_string(), *if_not_exists),
        _ => return None,
    };
    Some((name.trim_matches('`').to_lowercase(), if_not_exists))
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Whether a read error already says which file failed (Lakewave's text
/// reader names file and line itself), so no search for it is needed.
fn names_its_file(err: &MyError) -> bool {
    err.message.starts_with("file '")
}

/// Drops leading `/* ... */`, `-- ...` and `# ...` comments.
pub fn strip_leading_comments(sql: &str) -> &str {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("/*") {
            match rest.find("*/") {
                Some(end) => s = rest[end + 2..].trim_start(),
                None => return s,
            }
        } else if s.starts_with("--") || s.starts_with('#') {
            match s.find('\n') {
                Some(end) => s = s[end + 1..].trim_start(),
                None => return "",
            }
        } else {
            return s;
        }
    }
}
