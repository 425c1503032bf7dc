//! [`Lakehouse`]: the catalog, the shared DataFusion runtime, and per-session
//! query contexts whose catalog is backed by the durable catalog.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::config::Dialect;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SessionState;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, ListFilesCache};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::variable::{VarProvider, VarType};

use crate::catalog::Catalog;
use crate::ddl::CreateTablePlan;
use crate::error::{LakeError, Result};
use crate::info_schema::{INFORMATION_SCHEMA, InfoSchemaProvider};
use crate::listing::ListCache;
use crate::model::TableDef;
use crate::provider;
use crate::rapid::scan::RapidScanTable;
use crate::rapid::status::{PERFORMANCE_SCHEMA, RpdSchema};
use crate::rapid::{RapidStore, SourceKind};

/// The name of the only catalog, as MySQL reports it.
pub const CATALOG: &str = "def";

#[derive(Debug, Clone)]
pub struct LakehouseOptions {
    /// Where the catalog lives.
    pub data_dir: PathBuf,
    /// Parallelism of scans and operators; defaults to the number of cores.
    pub target_partitions: Option<usize>,
    /// Base directory for relative locations in DDL.
    pub base_dir: PathBuf,
    /// Memory for tables loaded into the secondary engine; defaults to half
    /// of the machine's memory.
    pub rapid_memory: Option<u64>,
    /// Memory of one node, for `heatwave_load` dry runs' node count;
    /// defaults to `rapid_memory`.
    pub rapid_node_memory: Option<u64>,
    /// How often loaded tables are checkpointed to the data directory (so
    /// a restart restores them without reading their sources); None turns
    /// checkpoints off.
    pub rapid_checkpoint_interval: Option<std::time::Duration>,
}

/// The default for [`LakehouseOptions::rapid_checkpoint_interval`].
pub const DEFAULT_CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl LakehouseOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Self {
            data_dir,
            target_partitions: None,
            base_dir,
            rapid_memory: None,
            rapid_node_memory: None,
            rapid_checkpoint_interval: Some(DEFAULT_CHECKPOINT_INTERVAL),
        }
    }
}

/// Providers built from stored definitions, cached until the next DDL on
/// the table.
type ProviderCache = RwLock<HashMap<(String, String), Arc<dyn TableProvider>>>;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) catalog: Arc<Catalog>,
    /// Tables of the MySQL backend, when one is attached: queries that read
    /// lake tables may join them.
    pub(crate) mysql: std::sync::OnceLock<connectors::mysql::MySqlSource>,
    /// A session state without catalogs, used to build formats and providers.
    pub(crate) builder_state: SessionState,
    providers: ProviderCache,
    /// Tables loaded into memory (the secondary engine).
    pub(crate) rapid: Arc<RapidStore>,
    /// Change capture from the backend's binlog into loaded MySQL tables.
    pub(crate) capture: Arc<crate::capture::Capture>,
    /// What external tables' locations held when last listed.
    pub(crate) list_cache: Arc<ListCache>,
    /// What permissive text reads let through, per table.
    pub(crate) read_stats: Arc<crate::text::ReadStats>,
    /// Checkpoints of loaded tables, unless turned off.
    pub(crate) persist: Option<Arc<crate::persist::Persistence>>,
    /// Set when the server shuts down: background tasks stop.
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
    /// The server's sessions, for information_schema.PROCESSLIST.
    pub(crate) processes: std::sync::OnceLock<Arc<dyn crate::info_schema::ProcessSource>>,
}

impl Shared {
    pub(crate) fn provider(&self, db: &str, table: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let key = (db.to_string(), table.to_string());
        if let Some(p) = self.providers.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(p.clone()));
        }
        let Some(def) = self.catalog.table(db, table) else { return Ok(None) };
        let scope = ListCache::table_ref(db, table);
        self.list_cache.set_ttl(scope.clone(), provider::list_cache_ttl(&def)?);
        let p = provider::build(&self.builder_state, &def, Some(&scope))?;
        self.providers.write().unwrap_or_else(|p| p.into_inner()).insert(key, p.clone());
        Ok(Some(p))
    }

    /// A provider's identity for the plan cache: the version of a loaded
    /// copy's rows, or a lake table's provider while it is the current one.
    fn plan_identity(&self, provider: &Arc<dyn TableProvider>) -> Option<usize> {
        if let Some(rapid) = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<RapidScanTable>() {
            return Some(rapid.version_identity());
        }
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner());
        providers.values().any(|p| Arc::ptr_eq(p, provider)).then(|| Arc::as_ptr(provider) as *const () as usize)
    }

    fn forget(&self, db: &str, table: Option<&str>) {
        let mut cache = self.providers.write().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(d, t), _| !(d == db && table.is_none_or(|x| x == t)));
        drop(cache);
        self.list_cache.invalidate_scope(db, table);
        self.rapid.plans().clear();
    }

    /// [`Shared::forget`] for a table defined anew or dropped (every table
    /// of `db` when None): its read statistics go too.
    fn forget_definition(&self, db: &str, table: Option<&str>) {
        self.forget(db, table);
        self.read_stats.forget(db, table);
    }
}

/// The lakehouse engine shared by all sessions.
#[derive(Debug, Clone)]
pub struct Lakehouse {
    pub(crate) shared: Arc<Shared>,
    runtime: Arc<RuntimeEnv>,
    options: LakehouseOptions,
}

impl Lakehouse {
    pub fn open(options: LakehouseOptions) -> Result<Self> {
        let catalog = Arc::new(Catalog::open(&options.data_dir)?);
        let list_cache = Arc::new(ListCache::default());
        let cache_config = CacheManagerConfig::default()
            .with_list_files_cache(Some(list_cache.clone() as Arc<ListFilesCache>))
            .with_list_files_cache_limit(crate::listing::DEFAULT_LIMIT);
        let runtime = RuntimeEnvBuilder::new().with_cache_manager(cache_config).build_arc()?;
        let read_stats = Arc::new(crate::text::ReadStats::default());
        let builder_state = SessionStateBuilder::new()
            .with_config(base_config(&options, None).with_extension(read_stats.clone()))
            .with_runtime_env(runtime.clone())
            .with_default_features();
        let builder_state = with_lake_planning(builder_state, &runtime).build();
        let limit = options.rapid_memory.unwrap_or_else(|| physical_memory() / 2);
        let rapid = Arc::new(RapidStore::new(limit, options.rapid_node_memory.unwrap_or(limit)));
        let persist = match options.rapid_checkpoint_interval {
            Some(every) => Some(Arc::new(
                crate::persist::Persistence::open(&options.data_dir, every.max(std::time::Duration::from_millis(100)))
                    .map_err(crate::error::LakeError::InvalidDefinition)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            catalog,
            mysql: std::sync::OnceLock::new(),
            builder_state,
            providers: RwLock::new(HashMap::new()),
            rapid,
            capture: Arc::default(),
            list_cache,
            read_stats,
            persist,
            closing: tokio::sync::watch::Sender::new(false),
            processes: std::sync::OnceLock::new(),
        });
        Ok(Self { shared, runtime, options })
    }

    /// Plans a query (see [`crate::diagnose::plan_catching`]), reusing the
    /// optimized plan of the same statement over the same tables (see
    /// [`crate::plan_cache`]; `LAKEWAVE_PLAN_CACHE=off` turns that off).
    pub async fn plan_query(&self, df: datafusion::dataframe::DataFrame) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_PLAN_CACHE") {
            return crate::diagnose::plan_catching(df).await;
        }
        let shared = Arc::clone(&self.shared);
        crate::diagnose::catching(async move {
            let (state, plan) = df.into_parts();
            let optimized = shared.rapid.plans().optimize(&state, &plan, |p| shared.plan_identity(p))?;
            state.query_planner().create_physical_plan(&optimized, &state).await
        })
        .await
    }

    /// Makes the backend's tables readable in lakehouse queries.
    pub fn attach_mysql(&self, source: connectors::mysql::MySqlSource) {
        let _ = self.shared.mysql.set(source);
    }

    /// Where information_schema.PROCESSLIST takes its sessions from; the
    /// first source set stays.
    pub fn set_process_source(&self, source: Arc<dyn crate::info_schema::ProcessSource>) {
        let _ = self.shared.processes.set(source);
    }

    pub fn has_mysql(&self) -> bool {
        self.shared.mysql.get().is_some()
    }

    pub fn mysql(&self) -> Option<&connectors::mysql::MySqlSource> {
        self.shared.mysql.get()
    }

    /// The secondary engine's store of loaded tables.
    pub fn rapid(&self) -> &Arc<RapidStore> {
        &self.shared.rapid
    }

    pub fn catalog(&self) -> &Catalog {
        &self.shared.catalog
    }

    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }

    /// A query context for one client session. `vars` answers `@@name`
    /// (system) and `@name` (user) variables from the session's state.
    pub fn session_context(
        &self,
        database: Option<&str>,
        system_vars: Arc<dyn VarProvider + Send + Sync>,
        user_vars: Arc<dyn VarProvider + Send + Sync>,
    ) -> SessionContext {
        let offload = Arc::new(Offload::default());
        let config = base_config(&self.options, database)
            .with_extension(Arc::new(connectors::mysql::PushdownLog::default()))
            .with_extension(Arc::new(connectors::mysql::SessionRows::default()))
            .with_extension(Arc::new(crate::text::ReadWarnings::default()))
            .with_extension(self.shared.read_stats.clone())
            .with_extension(offload.clone());
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_catalog_list(Arc::new(LakeCatalogList { shared: self.shared.clone(), offload }))
            .with_default_features();
        let state = with_lake_planning(state, &self.runtime).build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_udf(crate::mysql_arith::MySqlArith::int_div().as_ref().clone());
        ctx.register_variable(VarType::System, system_vars);
        ctx.register_variable(VarType::UserDefined, user_vars);
        ctx
    }

    /// Points a session's context at another database.
    pub fn set_database(ctx: &SessionContext, database: Option<&str>) {
        let state = ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema =
            database.unwrap_or_default().to_string();
    }

    pub fn database_exists(&self, db: &str) -> bool {
        db == INFORMATION_SCHEMA || self.catalog().database_exists(db)
    }

    pub fn create_database(&self, db: &str, if_not_exists: bool) -> Result<bool> {
        if db == INFORMATION_SCHEMA {
            return Err(LakeError::DatabaseExists(db.into()));
        }
        validate_name(db, "database")?;
        self.catalog().create_database(db, if_not_exists)
    }

    pub fn drop_database(&self, db: &str, if_exists: bool) -> Result<Option<usize>> {
        if db == INFORMATION_SCHEMA {
            return Err(LakeError::InvalidDefinition(format!(
                "Access denied for user 'root'@'localhost' to database '{db}'"
            )));
        }
        let out = self.catalog().drop_database(db, if_exists)?;
        self.shared.forget_definition(db, None);
        self.shared.rapid.remove_database(db);
        Ok(out)
    }

    /// Creates an external table: resolves what the DDL left out (schema,
    /// partitions, compression), persists the definition, then makes it
    /// visible. Returns false if it existed and IF NOT EXISTS kept it.
    pub async fn create_table(&self, current_db: Option<&str>, plan: CreateTablePlan) -> Result<bool> {
        let db = plan
            .database
            .clone()
            .or_else(|| current_db.map(str::to_string))
            .ok_or(LakeError::NoDatabaseSelected)?;
        if !self.catalog().database_exists(&db) {
            return Err(LakeError::UnknownDatabase(db));
        }
        validate_name(&plan.def.name, "table")?;
        if plan.if_not_exists && self.catalog().table(&db, &plan.def.name).is_some() {
            return Ok(false);
        }
        if !plan.or_replace && !plan.if_not_exists && self.catalog().table(&db, &plan.def.name).is_some() {
            return Err(LakeError::TableExists(plan.def.name));
        }
        let mut def = plan.def;
        provider::resolve(&self.shared.builder_state, &mut def).await?;
        // Building now surfaces option errors at CREATE rather than at SELECT.
        provider::build(&self.shared.builder_state, &def, None)?;
        let name = def.name.clone();
        let created = self.catalog().create_table(&db, def, plan.if_not_exists, plan.or_replace)?;
        self.shared.forget_definition(&db, Some(&name));
        Ok(created)
    }

    /// Creates one external table per table of an Aurora or RDS snapshot
    /// export in `db` (created if missing); tables that exist are left as
    /// they are. Returns each exported table with its name here and whether
    /// it was created.
    pub async fn import_aurora_export(
        &self,
        root: &str,
        db: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<(crate::exports::ExportedTable, String, bool)>> {
        let tables = crate::exports::export_tables(&self.shared.builder_state, root, options).await?;
        if tables.is_empty() {
            return Err(LakeError::Data(format!("the export at '{root}' holds no tables")));
        }
        self.create_database(db, true)?;
        let names = crate::exports::import_names(&tables);
        let mut out = Vec::new();
        for (t, name) in tables.into_iter().zip(names) {
            let def = TableDef::external(&name.to_lowercase(), "parquet", vec![t.location.clone()], options.clone());
            let plan = CreateTablePlan { database: Some(db.to_string()), def, if_not_exists: true, or_replace: false };
            let created = self.create_table(None, plan).await?;
            out.push((t, name.to_lowercase(), created));
        }
        Ok(out)
    }

    pub fn drop_table(&self, db: &str, table: &str, if_exists: bool) -> Result<bool> {
        if !self.catalog().database_exists(db) {
            if if_exists {
                return Ok(false);
            }
            return Err(LakeError::UnknownTable { db: db.into(), table: table.into() });
        }
        let out = self.catalog().drop_table(db, table, if_exists)?;
        self.shared.forget_definition(db, Some(table));
        self.shared.rapid.remove(db, table);
        Ok(out)
    }

    /// Forgets what is cached about an external table's files (its listing),
    /// so the next query lists its locations again.
    pub fn refresh_table(&self, db: &str, table: &str) -> Result<()> {
        if self.catalog().table(db, table).is_none() {
            return Err(LakeError::UnknownTable { db: db.into(), table: table.into() });
        }
        self.shared.forget(db, Some(table));
        Ok(())
    }

    /// Forgets what is cached about every external table's files.
    pub fn refresh_all(&self) {
        self.shared.providers.write().unwrap_or_else(|p| p.into_inner()).clear();
        use datafusion::execution::cache::Cache;
        self.shared.list_cache.clear();
    }

    /// Listings that went to a store since start (not served from the
    /// listing cache).
    /// Per-table counts of bad values and rows that permissive reads let
    /// through since the server started.
    pub fn read_stats(&self) -> Vec<(String, crate::text::TableReadStats)> {
        self.shared.read_stats.snapshot()
    }

    pub fn store_listings(&self) -> u64 {
        self.shared.list_cache.listings()
    }

    pub fn table(&self, db: &str, table: &str) -> Option<TableDef> {
        self.catalog().table(db, table)
    }

    /// Whether `db.table` names something a query can read.
    pub fn table_exists(&self, db: &str, table: &str) -> bool {
        if db == INFORMATION_SCHEMA {
            return InfoSchemaProvider::table_columns(table).is_some();
        }
        if db == PERFORMANCE_SCHEMA {
            return crate::rapid::status::TABLES.contains(&table);
        }
        self.catalog().table(db, table).is_some()
    }

    /// Finds which file of the given tables fails to read, for an error
    /// message that names it. Runs only after a query failed.
    pub async fn locate_read_error(&self, tables: &[(String, String)]) -> Option<String> {
        for (db, table) in tables {
            let Some(def) = self.table(db, table) else { continue };
            if let Some(m) = crate::diagnose::locate(&self.shared.builder_state, &def).await {
                return Some(format!("Error reading table '{db}.{table}': {m}"));
            }
        }
        None
    }

    pub fn base_dir(&self) -> &Path {
        &self.options.base_dir
    }
}

/// Which tables a session's query may read from the secondary engine, set
/// by the session before planning each query, and which ones it did read.
#[derive(Debug, Default)]
pub struct Offload {
    lake: std::sync::atomic::AtomicBool,
    mysql: std::sync::atomic::AtomicBool,
    used: std::sync::Mutex<Vec<String>>,
}

impl Offload {
    /// Sets what the next query may read from memory and clears the record
    /// of what the previous one read.
    pub fn set(&self, lake: bool, mysql: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.lake.store(lake, Relaxed);
        self.mysql.store(mysql, Relaxed);
        self.used.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn allows(&self, kind: SourceKind) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match kind {
            SourceKind::Lake => self.lake.load(Relaxed),
            SourceKind::MySql => self.mysql.load(Relaxed),
        }
    }

    fn note(&self, table: &str) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if !used.iter().any(|t| t == table) {
            used.push(table.to_string());
        }
    }

    /// The loaded tables the last planned query read.
    pub fn used(&self) -> Vec<String> {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Total memory of the machine (Linux), or 8 GiB when unknown.
fn physical_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

fn validate_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || name.ends_with(' ') || name.contains(['/', '\\', '\0']) {
        return Err(LakeError::InvalidDefinition(format!("Incorrect {what} name '{name}'")));
    }
    Ok(())
}

/// The project's planning on top of DataFusion's defaults: MySQL's
/// arithmetic, its logical rules, its physical rules (see
/// `runtime_filter`, and the row-group split of Parquet scans, which reads
/// the footers `runtime` has cached) and the MySQL-aware planner. One list
/// for the engine's own state and every session's.
fn with_lake_planning(builder: SessionStateBuilder, runtime: &RuntimeEnv) -> SessionStateBuilder {
    let mut physical = crate::runtime_filter::physical_optimizer_rules();
    crate::scan_split::insert_rule(&mut physical, runtime.cache_manager.get_file_metadata_cache());
    crate::parquet_dict::insert_rule(&mut physical, runtime.cache_manager.get_file_metadata_cache());
    crate::dense_groups::insert_rule(&mut physical);
    crate::like_segments::insert_rule(&mut physical);
    builder
        .with_analyzer_rules(crate::mysql_arith::analyzer_rules())
        .with_optimizer_rule(Arc::new(crate::semi_join::PushDownSemiJoin))
        .with_optimizer_rule(Arc::new(connectors::mysql::MySqlSubtreePushdown))
        // After the MySQL pushdown: a semi join with lake keys inside a
        // subtree of MySQL tables would keep it from running in MySQL;
        // the window first, as it removes the subquery the keys filter.
        .with_optimizer_rule(Arc::new(crate::subquery_window::SubqueryAsWindow))
        .with_optimizer_rule(Arc::new(crate::subquery_keys::FilterSubqueryKeys))
        .with_optimizer_rule(Arc::new(crate::decimal_arith::FastDecimalArithmetic))
        .with_physical_optimizer_rules(physical)
        .with_query_planner(Arc::new(connectors::mysql::MySqlAwareQueryPlanner))
}

/// DataFusion's options as the server's environment sets them
/// (`DATAFUSION_EXECUTION_BATCH_SIZE=4096`, ...), read once; the settings
/// below that MySQL compatibility needs take precedence.
fn env_options() -> &'static datafusion::config::ConfigOptions {
    static OPTIONS: std::sync::OnceLock<datafusion::config::ConfigOptions> = std::sync::OnceLock::new();
    OPTIONS.get_or_init(|| {
        datafusion::config::ConfigOptions::from_env().unwrap_or_else(|e| {
            tracing::warn!("DataFusion options from the environment ignored: {e}");
            datafusion::config::ConfigOptions::default()
        })
    })
}

fn base_config(options: &LakehouseOptions, database: Option<&str>) -> SessionConfig {
    let mut config = SessionConfig::from(env_options().clone())
        .with_default_catalog_and_schema(CATALOG, database.unwrap_or_default())
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(false);
    if let Some(n) = options.target_partitions {
        config = config.with_target_partitions(n.max(1));
    }
    // Batches of 16K rows instead of DataFusion's 8K: fewer per-batch
    // steps in the Parquet decoder, the runtime filters and the joins.
    // Measured with `benches/ab.py` (2 cores, the same binary with and
    // without it, queries alternating): TPC-H SF 10 in place 0.956 and
    // 0.966 the time in geometric mean over two runs (Q13 0.89, Q5 0.90,
    // Q12 0.87-0.97; Q9 1.02-1.03 the only loss beyond 1.01 in both), SF 1
    // in place 0.946, SF 1 loaded 0.935. 32K rows gained nothing more in
    // place (0.999 against 16K). The environment's setting, when given,
    // is kept.
    if std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_none() {
        config = config.with_batch_size(16 * 1024);
    }
    let opts = config.options_mut();
    opts.sql_parser.dialect = Dialect::MySQL;
    // A literal with a decimal point is an exact DECIMAL in MySQL (0.1 +
    // 0.2 = 0.3); only literals with an exponent are doubles.
    opts.sql_parser.parse_float_as_decimal = true;
    // Filters are evaluated after decoding whole batches rather than during
    // the Parquet decode: measured on TPC-H SF1 (2 cores), evaluating them
    // in the decoder made scans with selective filters 1.5-2.5x slower (Q6
    // 268 -> 106 ms, Q12 332 -> 178 ms, Q3 286 -> 174 ms without it). Row
    // groups and pages are still pruned by their statistics.
    opts.execution.parquet.pushdown_filters = false;
    opts.execution.parquet.reorder_filters = true;
    // A hash join on one integer key builds a direct-indexed array over the
    // keys' range instead of a hash table when the range is small or the
    // keys dense enough; its lookups (the join's probe, and the runtime
    // filter pushed to the probe side's scan) then index the array instead
    // of hashing. DataFusion's defaults (a range under 1024, or keys filling
    // 15% of it) leave out the usual star-schema build: a filtered
    // dimension's keys spread over the whole key range (TPC-H Q17's 204
    // parts among 200K, Q5's 228K orders among 6M). Any range under 1M
    // (at most 4 MiB) and keys filling 3% of larger ranges (at most about
    // 130 bytes per build row) take the array: measured on the loaded
    // copies at SF 1, Q17 0.55x, Q5 0.67x, Q21 0.64x the time, 0.83 in
    // geometric mean over the twelve join queries; 0.93 in place.
    opts.execution.perfect_hash_join_small_build_threshold = 1 << 20;
    opts.execution.perfect_hash_join_min_key_density = 0.03;
    // A partial aggregation that reduces its rows less than five times
    // hashes all of them into a table nearly as large as the final one, to
    // spare the repartitioning four fifths of them: it is skipped (rows go
    // straight to the final aggregation) from a ratio of groups to rows of
    // 0.2, where DataFusion's default is 0.8. TPC-H Q18's `GROUP BY
    // l_orderkey` over `lineitem` (four rows a group, the rows clustered by
    // key) hashed 60M rows into 15M groups at SF 10, then again in the
    // final aggregation: 0.90 the time in place at SF 10, 0.93 on the
    // loaded copies at SF 1; no other TPC-H query changes beyond noise.
    // The environment's DataFusion setting, when given, is kept.
    if std::env::var_os("DATAFUSION_EXECUTION_SKIP_PARTIAL_AGGREGATION_PROBE_RATIO_THRESHOLD").is_none() {
        opts.execution.skip_partial_aggregation_probe_ratio_threshold = 0.2;
    }
    opts.execution.listing_table_factory_infer_partitions = true;
    // A prefix means every object under it, as on object stores, and globs
    // may span directories.
    opts.execution.listing_table_ignore_subdirectory = false;
    config
}

#[derive(Debug)]
struct LakeCatalogList {
    shared: Arc<Shared>,
    offload: Arc<Offload>,
}

impl CatalogProviderList for LakeCatalogList {
    fn register_catalog(&self, _name: String, _catalog: Arc<dyn CatalogProvider>) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG.to_string()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        (name == CATALOG).then(|| Arc::new(LakeCatalog { shared: self.shared.clone(), offload: self.offload.clone() }) as _)
    }
}

#[derive(Debug)]
struct LakeCatalog {
    shared: Arc<Shared>,
    offload: Arc<Offload>,
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.catalog.database_names();
        names.push(INFORMATION_SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let name = name.to_lowercase();
        if name == INFORMATION_SCHEMA {
            let provider = InfoSchemaProvider::new(self.shared.catalog.clone(), self.shared.mysql.get().cloned())
                .with_processes(self.shared.processes.get().cloned());
            return Some(Arc::new(provider));
        }
        if name == PERFORMANCE_SCHEMA {
            return Some(Arc::new(RpdSchema::new(self.shared.rapid.clone(), self.shared.read_stats.clone())));
        }
        (self.shared.catalog.database_exists(&name) || self.shared.mysql.get().is_some())
            .then(|| Arc::new(LakeSchema { shared: self.shared.clone(), db: name, offload: self.offload.clone() }) as _)
    }
}

#[derive(Debug)]
struct LakeSchema {
    shared: Arc<Shared>,
    db: String,
    offload: Arc<Offload>,
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        self.shared.catalog.table_names(&self.db).unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.shared.rapid.table(&self.db, &name.to_lowercase())
            && self.offload.allows(t.kind)
            && let Some(data) = t.data()
        {
            self.offload.note(&format!("{}.{}", t.db, t.name));
            return Ok(Some(Arc::new(RapidScanTable::new(t, data))));
        }
        let lake = self
            .shared
            .provider(&self.db, &name.to_lowercase())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if lake.is_some() {
            return Ok(lake);
        }
        match self.shared.mysql.get() {
            Some(source) => Ok(source.table(&self.db, name).await?.map(|t| t as Arc<dyn TableProvider>)),
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared.catalog.table(&self.db, &name.to_lowercase()).is_some()
    }
}
