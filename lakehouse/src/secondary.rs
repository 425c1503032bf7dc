//! The secondary engine's statements: `ALTER TABLE t SECONDARY_ENGINE =
//! RAPID | NULL`, `SECONDARY_LOAD`, `SECONDARY_UNLOAD`, and
//! `sys.heatwave_load` over whole databases, for lake and MySQL tables alike.
//! Marks and "loaded" flags are kept in the durable catalog so a restart
//! loads the same tables again.

use std::sync::Arc;
use std::time::Instant;

use crate::ddl::now;
use crate::engine::Lakehouse;
use crate::error::{LakeError, Result};
use crate::model::SecondaryDef;
use std::collections::HashMap;

use crate::provider;
use crate::rapid::encode::{EncodingPlan, chunk_bytes};
use crate::rapid::load::{self, Estimate, LoadError, SAMPLE_ROWS};
use crate::rapid::sync::SyncState;
use crate::rapid::{Chunk, LoadStatus, LoadedFile, RapidError, RapidTable, SourceKind, TableData, human_bytes};

/// The only secondary engine there is.
pub const RAPID: &str = "RAPID";

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub rows: u64,
    pub bytes: u64,
    /// What the load estimated before reading (for `heatwave_load`).
    pub estimated_bytes: u64,
    pub seconds: f64,
    /// For a refresh of a loaded lake table: what changed among its files.
    pub refreshed: Option<FileChanges>,
}

/// Files of a loaded lake table found added, changed, removed or
/// unchanged by a refresh; only added and changed files are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileChanges {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// A table `heatwave_load` creates before loading (its `external_tables`
/// option): where it goes and its HeatWave ENGINE_ATTRIBUTE.
#[derive(Debug, Clone)]
pub struct ExternalTable {
    pub db: String,
    pub table: String,
    pub engine_attribute: String,
}

impl Lakehouse {
    fn external_plan(&self, ext: &ExternalTable) -> Result<crate::ddl::CreateTablePlan> {
        use datafusion::sql::sqlparser::{ast::Statement, dialect::MySqlDialect, parser::Parser};
        let quote = |s: &str| format!("`{}`", s.replace('`', "``"));
        let sql = format!("CREATE TABLE {}.{} (x INT)", quote(&ext.db), quote(&ext.table));
        let parsed = Parser::parse_sql(&MySqlDialect {}, &sql).map_err(|e| LakeError::InvalidDefinition(e.to_string()))?;
        let Some(Statement::CreateTable(mut ct)) = parsed.into_iter().next() else {
            return Err(LakeError::InvalidDefinition(format!("Incorrect table name '{}'", ext.table)));
        };
        // No columns: the schema is inferred from the files.
        ct.columns.clear();
        let mut plan = crate::heatwave::from_create_table(&ct, &ext.engine_attribute, self.base_dir())?;
        plan.database = Some(ext.db.to_lowercase());
        plan.def.name = plan.def.name.to_lowercase();
        Ok(plan)
    }
}

/// One table of a `heatwave_load` run.
#[derive(Debug, Clone)]
pub struct LoadPlanRow {
    pub db: String,
    pub table: String,
    pub kind: SourceKind,
    pub rows: u64,
    pub estimated_bytes: u64,
    /// What happened (normal mode) or would happen (dry run).
    pub outcome: String,
    pub loaded_bytes: Option<u64>,
}

fn secondary(e: impl std::fmt::Display) -> LakeError {
    LakeError::Secondary(e.to_string())
}

impl From<RapidError> for LakeError {
    fn from(e: RapidError) -> Self {
        secondary(e)
    }
}

impl Lakehouse {
    /// Whether `db.table` is a lake table or a MySQL table, if it exists.
    pub async fn source_kind(&self, db: &str, table: &str) -> Result<Option<SourceKind>> {
        if self.table(db, table).is_some() {
            return Ok(Some(SourceKind::Lake));
        }
        match self.mysql() {
            Some(m) => Ok(m.table(db, table).await?.map(|_| SourceKind::MySql)),
            None => Ok(None),
        }
    }

    async fn existing_kind(&self, db: &str, table: &str) -> Result<SourceKind> {
        self.source_kind(db, table)
            .await?
            .ok_or_else(|| LakeError::UnknownTable { db: db.into(), table: table.into() })
    }

    /// `ALTER TABLE t SECONDARY_ENGINE = RAPID` (Some) or `= NULL` (None).
    pub async fn set_secondary_engine(&self, db: &str, table: &str, engine: Option<&str>) -> Result<()> {
        let kind = self.existing_kind(db, table).await?;
        match engine {
            Some(e) if e.eq_ignore_ascii_case(RAPID) => {
                if self.catalog().secondary(db, table).is_none() {
                    self.catalog().set_secondary(db, table, Some(RAPID))?;
                }
                self.rapid().entry(db, table, kind);
                Ok(())
            }
            Some(other) => Err(LakeError::InvalidDefinition(format!("Unknown secondary engine '{other}'; the only one is RAPID"))),
            None => {
                if let Some(t) = self.rapid().table(db, table)
                    && matches!(t.status().status, LoadStatus::Loading | LoadStatus::Recovery)
                {
                    return Err(RapidError::Busy(format!("{db}.{table}")).into());
                }
                self.rapid().remove(db, table);
                self.catalog().set_secondary(db, table, None)
            }
        }
    }

    /// Estimates a table's memory in the secondary engine.
    pub async fn estimate(&self, db: &str, table: &str) -> Result<(SourceKind, Estimate)> {
        let kind = self.existing_kind(db, table).await?;
        let est = match kind {
            SourceKind::Lake => {
                let provider = self.shared.provider(db, table)?.ok_or_else(|| LakeError::UnknownTable { db: db.into(), table: table.into() })?;
                load::estimate_provider(&self.shared.builder_state, provider).await?
            }
            SourceKind::MySql => {
                let source = self.mysql().ok_or_else(|| LakeError::UnknownTable { db: db.into(), table: table.into() })?;
                let (schema, sample, rows) = source
                    .sample(db, table, SAMPLE_ROWS)
                    .await?
                    .ok_or_else(|| LakeError::UnknownTable { db: db.into(), table: table.into() })?;
                load::estimate_from_sample(&schema, &sample, rows)?
            }
        };
        Ok((kind, est))
    }

    /// `ALTER TABLE t SECONDARY_LOAD`: reads the whole table into memory.
    /// A table already loaded is read again and swapped in when complete.
    pub async fn secondary_load(&self, db: &str, table: &str) -> Result<LoadReport> {
        if self.catalog().secondary(db, table).is_none() {
            // MySQL refuses SECONDARY_LOAD without SECONDARY_ENGINE.
            self.existing_kind(db, table).await?;
            return Err(RapidError::NotMarked(format!("{db}.{table}")).into());
        }
        self.load_marked(db, table, LoadStatus::Loading).await
    }

    async fn load_marked(&self, db: &str, table: &str, state: LoadStatus) -> Result<LoadReport> {
        let kind = self.existing_kind(db, table).await?;
        let entry = self.rapid().entry(db, table, kind);
        let previous = entry.status();
        // A loaded lake table is refreshed: only files added or changed
        // since are read, and the copy keeps serving meanwhile.
        if kind == SourceKind::Lake
            && previous.status == LoadStatus::Available
            && state == LoadStatus::Loading
            && entry.raw_data().is_some_and(|d| d.files.is_some())
        {
            return self.refresh_lake_copy(&entry).await;
        }
        let recovering = previous.status == LoadStatus::Recovery && state == LoadStatus::Recovery;
        if matches!(previous.status, LoadStatus::Loading | LoadStatus::Recovery | LoadStatus::Unloading) && !recovering {
            return Err(RapidError::Busy(format!("{db}.{table}")).into());
        }
        entry.update_status(|s| {
            s.status = state;
            s.progress = 0.0;
            s.load_start = Some(now());
            s.load_end = None;
            s.error = None;
        });
        let started = Instant::now();
        // Long loads report progress in the server log as well as in
        // performance_schema.rpd_tables.
        let ticker = {
            let entry = entry.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let s = entry.status();
                    if !matches!(s.status, LoadStatus::Loading | LoadStatus::Recovery) {
                        break;
                    }
                    tracing::info!("loading {}.{} into the secondary engine: {:.0}%", entry.db, entry.name, s.progress);
                }
            })
        };
        let result = self.read_into_memory(&entry, kind).await;
        ticker.abort();
        let result = match result {
            Ok((data, sync_state, estimated_bytes)) => {
                let rows = data.rows();
                let bytes = data.size_bytes;
                entry.update_status(|s| {
                    s.progress = 100.0;
                    s.load_end = Some(now());
                    s.position = sync_state.as_ref().map(|st| st.snapshot.to_string());
                    s.changes_applied = 0;
                    s.load_source = Some(if kind == SourceKind::MySql { "MySQL" } else { "Files" });
                    // Not on disk until the next checkpoint.
                    s.persisted_at = None;
                    s.persisted_position = None;
                });
                match sync_state {
                    // MySQL tables become available through change capture,
                    // which first applies what committed during the load.
                    Some(st) => self.adopt(&entry, data, st).map(|_| ()).map_err(secondary),
                    None => {
                        self.rapid().replace(&entry, data);
                        entry.update_status(|s| s.status = LoadStatus::Available);
                        Ok(())
                    }
                }
                .map(|()| LoadReport { rows, bytes, estimated_bytes, seconds: started.elapsed().as_secs_f64(), refreshed: None })
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                self.catalog().set_loaded(db, table, true)?;
                self.checkpoint_soon();
                Ok(report)
            }
            Err(e) => {
                let message = e.to_string();
                // A failed reload keeps serving the copy it had.
                let keep = entry.raw_data().is_some() && previous.status == LoadStatus::Available;
                entry.update_status(|s| {
                    s.status = if keep { LoadStatus::Available } else { LoadStatus::NoLoad };
                    s.progress = if keep { 100.0 } else { 0.0 };
                    s.error = Some(message);
                });
                Err(e)
            }
        }
    }

    async fn read_into_memory(&self, entry: &Arc<RapidTable>, kind: SourceKind) -> Result<(Arc<TableData>, Option<SyncState>, u64)> {
        let (db, table) = (entry.db.as_str(), entry.name.as_str());
        let label = format!("{db}.{table}");
        let (kind2, est) = self.estimate(db, table).await?;
        debug_assert_eq!(kind, kind2);
        // Refuse before reading when the estimate alone does not fit.
        let replaced = entry.raw_data().map(|d| d.size_bytes).unwrap_or(0);
        if est.bytes > self.rapid().available() + replaced {
            return Err(self.rapid().out_of_memory(&label, est.bytes).into());
        }
        let map_err = |e: LoadError| match e {
            LoadError::Rapid(r) => LakeError::from(r),
            LoadError::Read(d) => secondary(RapidError::LoadFailed { table: label.clone(), reason: d.to_string() }),
        };
        match kind {
            SourceKind::Lake => {
                let def = self.catalog().table(db, table).ok_or_else(|| LakeError::UnknownTable { db: db.into(), table: table.into() })?;
                let files = provider::files_with_meta(&self.shared.builder_state, &def).await?;
                let (loaded, chunks, size_bytes) =
                    self.load_lake_files(entry, &def, &est.plan, &files, est.rows).await.map_err(map_err)?;
                let data = TableData { schema: est.plan.schema.clone(), chunks, size_bytes, files: Some(Arc::new(loaded)), scans: Default::default() };
                Ok((Arc::new(data), None, est.bytes))
            }
            SourceKind::MySql => {
                let unknown = || LakeError::UnknownTable { db: db.into(), table: table.into() };
                let source = self.mysql().ok_or_else(unknown)?;
                // Parallel readers only where each gets a few chunks' worth.
                let cores = self.shared.builder_state.config().target_partitions().clamp(1, 8);
                let readers = ((est.rows / 32_768) as usize).clamp(1, cores);
                let snap = source.snapshot(db, table, readers).await?.ok_or_else(unknown)?;
                let Some(position) = snap.position.clone() else {
                    return Err(secondary(format!(
                        "{label} cannot be kept in sync: the MySQL server has no binary log (start it with log_bin and binlog_format=ROW)"
                    )));
                };
                *entry.primary_key.write().unwrap_or_else(|p| p.into_inner()) = snap.primary_key.clone();
                let pk = snap.primary_key.clone();
                // Progress counts against the estimate's row count (the
                // snapshot is not counted again).
                let data = load::load_streams(self.rapid(), entry, &est.plan, snap.streams, est.rows).await.map_err(map_err)?;
                let state = SyncState::new(est.plan.clone(), snap.table.clone(), position, &pk, data.chunks.len() as u64);
                Ok((data, Some(state), est.bytes))
            }
        }
    }

    /// Reads files of a lake table into chunks (numbered from 0), each
    /// file read on its own so the copy knows which chunks it gave.
    async fn load_lake_files(
        &self,
        entry: &Arc<RapidTable>,
        def: &crate::model::TableDef,
        plan: &EncodingPlan,
        files: &[(String, object_store::ObjectMeta)],
        expected_rows: u64,
    ) -> std::result::Result<(Vec<LoadedFile>, Vec<Chunk>, u64), LoadError> {
        let state = &self.shared.builder_state;
        // Many files: one scan of the table, rows tagged with the file
        // they come from. Few files (a refresh), or a table whose scan
        // cannot name files: one scan per file.
        let (streams, splitter) = match self.scan_naming_files(entry, files).await {
            Some(found) if files.len() > FILES_SCANNED_ONE_BY_ONE => found,
            _ => {
                let mut streams = Vec::new();
                for (i, (path, _)) in files.iter().enumerate() {
                    let df = provider::file_frame(state, def, path)
                        .map_err(|e| LoadError::Read(datafusion::error::DataFusionError::External(Box::new(e))))?;
                    for s in df.execute_stream_partitioned().await.map_err(LoadError::Read)? {
                        streams.push((i, s));
                    }
                }
                (streams, None)
            }
        };
        let (tagged, size_bytes) = load::load_tagged(self.rapid(), entry, plan, streams, expected_rows, splitter).await?;
        let mut loaded: Vec<LoadedFile> = files
            .iter()
            .map(|(path, m)| LoadedFile {
                path: path.clone(),
                size: m.size,
                e_tag: m.e_tag.clone(),
                modified: m.last_modified.timestamp_micros(),
                chunks: Vec::new(),
                bytes: 0,
            })
            .collect();
        let mut chunks = Vec::with_capacity(tagged.len());
        for (tag, mut c) in tagged {
            c.id = chunks.len() as u64;
            loaded[tag].chunks.push(c.id);
            loaded[tag].bytes += chunk_bytes(&c);
            chunks.push(c);
        }
        Ok((loaded, chunks, size_bytes))
    }

    /// `REFRESH TABLE t` on a lake table loaded in the secondary engine:
    /// refreshes the copy from its changed files (None when not loaded).
    pub async fn refresh_loaded_copy(&self, db: &str, table: &str) -> Result<Option<LoadReport>> {
        let Some(entry) = self.rapid().table(db, table) else { return Ok(None) };
        if entry.kind != SourceKind::Lake || entry.status().status != LoadStatus::Available || entry.raw_data().is_none_or(|d| d.files.is_none()) {
            return Ok(None);
        }
        self.refresh_lake_copy(&entry).await.map(Some)
    }

    /// Streams of one scan of a whole lake table with each row's file
    /// (DataFusion's `input_file_name()`), and a splitter that cuts batches
    /// by file and drops that column. None when the scan cannot name files
    /// (the table is a view over its files) or names one not listed.
    async fn scan_naming_files(
        &self,
        entry: &Arc<RapidTable>,
        files: &[(String, object_store::ObjectMeta)],
    ) -> Option<(Vec<(usize, datafusion::execution::SendableRecordBatchStream)>, Option<load::Splitter>)> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::logical_expr::ident;
        let provider = self.shared.provider(&entry.db, &entry.name).ok()??;
        if provider.table_type() != datafusion::datasource::TableType::Base {
            return None;
        }
        let ctx = datafusion::prelude::SessionContext::new_with_state(self.shared.builder_state.clone());
        let schema = provider.schema();
        let mut exprs: Vec<_> = schema.fields().iter().map(|f| ident(f.name())).collect();
        exprs.push(datafusion::functions::core::expr_fn::input_file_name().alias("__lakewave_file"));
        let streams = ctx.read_table(provider).ok()?.select(exprs).ok()?.execute_stream_partitioned().await.ok()?;
        let index: Arc<HashMap<String, usize>> = Arc::new(files.iter().enumerate().map(|(i, (_, m))| (m.location.to_string(), i)).collect());
        let width = schema.fields().len();
        let splitter: load::Splitter = Arc::new(move |batch| {
            let names = batch.column(width).as_string_opt::<i32>().cloned();
            let tag_of = |row: usize| -> datafusion::error::Result<usize> {
                let name = names.as_ref().filter(|n| n.is_valid(row)).map(|n| n.value(row)).unwrap_or_default();
                let name = name.strip_prefix('/').unwrap_or(name);
                index.get(name).copied().ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution(format!("a row came from '{name}', which the table's listing did not hold"))
                })
            };
            let data = batch.project(&(0..width).collect::<Vec<_>>())?;
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < data.num_rows() {
                let tag = tag_of(start)?;
                let mut end = start + 1;
                while end < data.num_rows() && tag_of(end)? == tag {
                    end += 1;
                }
                pieces.push((tag, data.slice(start, end - start)));
                start = end;
            }
            Ok(pieces)
        });
        Some((streams.into_iter().map(|s| (0, s)).collect(), Some(splitter)))
    }

    /// Brings a loaded lake table up to date with its files: files added or
    /// changed (size, ETag or modification time) are read, removed files'
    /// rows dropped, the rest kept as they are.
    async fn refresh_lake_copy(&self, entry: &Arc<RapidTable>) -> Result<LoadReport> {
        let started = Instant::now();
        let (db, table) = (entry.db.as_str(), entry.name.as_str());
        let label = format!("{db}.{table}");
        let old = entry.raw_data().ok_or_else(|| secondary(format!("{label} is not loaded")))?;
        let old_files = old.files.clone().unwrap_or_default();
        let def = self.catalog().table(db, table).ok_or_else(|| LakeError::UnknownTable { db: db.into(), table: table.into() })?;
        // The listing cache of the table read in place goes too.
        self.refresh_table(db, table)?;
        let current = provider::files_with_meta(&self.shared.builder_state, &def).await?;
        let before: HashMap<&str, &LoadedFile> = old_files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut changes = FileChanges::default();
        let mut kept: Vec<&LoadedFile> = Vec::new();
        let mut to_read = Vec::new();
        for (path, meta) in &current {
            match before.get(path.as_str()) {
                Some(f) if f.unchanged(meta) => {
                    changes.unchanged += 1;
                    kept.push(f);
                }
                Some(_) => {
                    changes.changed += 1;
                    to_read.push((path.clone(), meta.clone()));
                }
                None => {
                    changes.added += 1;
                    to_read.push((path.clone(), meta.clone()));
                }
            }
        }
        let listed: std::collections::HashSet<&str> = current.iter().map(|(p, _)| p.as_str()).collect();
        changes.removed = old_files.iter().filter(|f| !listed.contains(f.path.as_str())).count();
        let report = |data: &TableData, changes: FileChanges| LoadReport {
            rows: data.rows(),
            bytes: data.size_bytes,
            estimated_bytes: data.size_bytes,
            seconds: started.elapsed().as_secs_f64(),
            refreshed: Some(changes),
        };
        if to_read.is_empty() && changes.removed == 0 {
            return Ok(report(&old, changes));
        }
        let plan = EncodingPlan::of_stored(&old.schema);
        let (new_files, new_chunks, new_bytes) = self
            .load_lake_files(entry, &def, &plan, &to_read, 0)
            .await
            .map_err(|e| match e {
                LoadError::Rapid(r) => LakeError::from(r),
                LoadError::Read(d) => secondary(RapidError::LoadFailed { table: label.clone(), reason: d.to_string() }),
            })?;
        let by_id: HashMap<u64, &Chunk> = old.chunks.iter().map(|c| (c.id, c)).collect();
        let mut chunks: Vec<Chunk> = Vec::with_capacity(new_chunks.len() + old.chunks.len());
        let mut files: Vec<LoadedFile> = Vec::with_capacity(kept.len() + new_files.len());
        let mut kept_bytes = 0u64;
        for f in kept {
            let mut f = f.clone();
            for id in f.chunks.iter_mut() {
                let mut c = by_id.get(id).map(|c| (*c).clone()).ok_or_else(|| secondary(format!("{label}: chunk {id} of {} is missing", f.path)))?;
                c.id = chunks.len() as u64;
                *id = c.id;
                chunks.push(c);
            }
            kept_bytes += f.bytes;
            files.push(f);
        }
        let offset = chunks.len() as u64;
        for mut f in new_files {
            for id in f.chunks.iter_mut() {
                *id += offset;
            }
            files.push(f);
        }
        for mut c in new_chunks {
            c.id += offset;
            chunks.push(c);
        }
        // The new version holds the kept chunks too; publishing it releases
        // the old version's bytes.
        self.rapid().charge(kept_bytes);
        let data = Arc::new(TableData { schema: old.schema.clone(), chunks, size_bytes: kept_bytes + new_bytes, files: Some(Arc::new(files)), scans: Default::default() });
        self.rapid().replace(entry, data.clone());
        self.checkpoint_soon();
        entry.update_status(|s| {
            s.load_end = Some(now());
            s.progress = 100.0;
        });
        Ok(report(&data, changes))
    }

    /// `ALTER TABLE t SECONDARY_UNLOAD`.
    pub async fn secondary_unload(&self, db: &str, table: &str) -> Result<()> {
        self.existing_kind(db, table).await?;
        let Some(entry) = self.rapid().table(db, table).filter(|t| t.raw_data().is_some()) else {
            return Err(secondary(format!("Table '{db}.{table}' is not loaded")));
        };
        if matches!(entry.status().status, LoadStatus::Loading | LoadStatus::Recovery) {
            return Err(RapidError::Busy(format!("{db}.{table}")).into());
        }
        self.rapid().unload(&entry);
        self.catalog().set_loaded(db, table, false)
    }

    /// Brings back, in the background, every table that was loaded when
    /// the server stopped: from its checkpoint when it has a usable one,
    /// else by loading it from its source. Status shows INRECOVERY with
    /// progress meanwhile. Starts the background checkpoints too.
    pub fn recover_loaded_tables(&self) {
        let defs: Vec<SecondaryDef> = self.catalog().secondary_all().into_iter().filter(|d| d.loaded).collect();
        for def in &defs {
            // Listed at once as in recovery, before the load gets going.
            let kind = if self.table(&def.db, &def.table).is_some() { SourceKind::Lake } else { SourceKind::MySql };
            self.rapid().entry(&def.db, &def.table, kind).update_status(|s| s.status = LoadStatus::Recovery);
        }
        self.start_checkpoints();
        let lake = self.clone();
        tokio::spawn(async move {
            // Checkpoints first: change capture must start at the earliest
            // restored position, before any fresh load starts it later.
            let restored = lake.restore_checkpoints(&defs).await;
            for def in defs {
                if restored.contains(&(def.db.clone(), def.table.clone())) {
                    continue;
                }
                let lake = lake.clone();
                tokio::spawn(async move {
                    match lake.load_marked(&def.db, &def.table, LoadStatus::Recovery).await {
                        Ok(r) => tracing::info!(table = %format!("{}.{}", def.db, def.table), rows = r.rows, bytes = r.bytes, "reloaded into the secondary engine"),
                        Err(e) => tracing::warn!(table = %format!("{}.{}", def.db, def.table), error = %e, "reload into the secondary engine failed"),
                    }
                });
            }
        });
    }

    /// The tables of the given databases (lake and MySQL), minus exclusions
    /// written as `db` or `db.table`.
    async fn tables_of(&self, dbs: &[String], exclude: &[String]) -> Result<Vec<(String, String, SourceKind)>> {
        let mut out = Vec::new();
        for db in dbs {
            let db = db.to_lowercase();
            let mut names: Vec<(String, SourceKind)> =
                self.catalog().table_names(&db).unwrap_or_default().into_iter().map(|t| (t, SourceKind::Lake)).collect();
            if let Some(m) = self.mysql() {
                for t in m.base_tables(&db).await? {
                    if !names.iter().any(|(n, _)| n == &t) {
                        names.push((t, SourceKind::MySql));
                    }
                }
            }
            if names.is_empty() && !self.database_exists(&db) {
                return Err(LakeError::UnknownDatabase(db));
            }
            for (t, kind) in names {
                let full = format!("{db}.{t}");
                if exclude.iter().any(|x| x.eq_ignore_ascii_case(&db) || x.eq_ignore_ascii_case(&full)) {
                    continue;
                }
                out.push((db.clone(), t, kind));
            }
        }
        Ok(out)
    }

    /// `CALL sys.heatwave_load(JSON_ARRAY(db, ...), JSON_OBJECT('mode', ...))`.
    /// A dry run estimates each table; a normal run marks and loads them,
    /// several at a time, and reports each table's outcome.
    /// Tables already loaded are left as they are, except lake tables when
    /// `refresh` (`refresh_external_tables`) asks to bring them up to date.
    /// `external` tables (HeatWave's `external_tables` option) are created
    /// first with their schema inferred from their files; a dry run shows
    /// the DDL it would run instead.
    pub async fn heatwave_load(
        &self,
        dbs: &[String],
        exclude: &[String],
        dryrun: bool,
        refresh: bool,
        external: &[ExternalTable],
    ) -> Result<Vec<LoadPlanRow>> {
        let mut created_rows = Vec::new();
        let mut dbs = dbs.to_vec();
        for ext in external {
            let plan = self.external_plan(ext)?;
            let mut def = plan.def.clone();
            let db = ext.db.to_lowercase();
            let mut row = LoadPlanRow {
                db: db.clone(),
                table: def.name.clone(),
                kind: SourceKind::Lake,
                rows: 0,
                estimated_bytes: 0,
                outcome: String::new(),
                loaded_bytes: None,
            };
            if self.catalog().table(&db, &def.name).is_some() {
                if !dbs.iter().any(|d| d.eq_ignore_ascii_case(&db)) {
                    dbs.push(db.clone());
                }
                continue;
            }
            if dryrun {
                let result: Result<String> = async {
                    provider::resolve(&self.shared.builder_state, &mut def).await?;
                    let table = provider::build(&self.shared.builder_state, &def, None)?;
                    let est = load::estimate_provider(&self.shared.builder_state, table).await?;
                    row.rows = est.rows;
                    row.estimated_bytes = est.bytes;
                    Ok(format!("would create and load: {};", crate::heatwave::show_create_in(&db, &def)))
                }
                .await;
                row.outcome = result.unwrap_or_else(|e| format!("cannot be created: {e}"));
                created_rows.push(row);
                continue;
            }
            if !self.catalog().database_exists(&db) {
                self.create_database(&db, true)?;
            }
            self.create_table(Some(&db), plan).await?;
            if !dbs.iter().any(|d| d.eq_ignore_ascii_case(&db)) {
                dbs.push(db.clone());
            }
        }
        let tables = self.tables_of(&dbs, exclude).await?;
        let row = |(db, table, kind): &(String, String, SourceKind)| LoadPlanRow {
            db: db.clone(),
            table: table.clone(),
            kind: *kind,
            rows: 0,
            estimated_bytes: 0,
            outcome: String::new(),
            loaded_bytes: None,
        };
        let mut rows: Vec<LoadPlanRow> = tables.iter().map(row).collect();
        if dryrun {
            for r in rows.iter_mut() {
                match self.estimate(&r.db, &r.table).await {
                    Ok((_, e)) => {
                        r.rows = e.rows;
                        r.estimated_bytes = e.bytes;
                        r.outcome = "would load".into();
                    }
                    Err(e) => r.outcome = format!("cannot be loaded: {e}"),
                }
            }
            created_rows.extend(rows);
            return Ok(created_rows);
        }
        // Each load estimates its table itself before reading it.
        let tasks: Vec<_> = rows
            .iter()
            .map(|r| {
                let lake = self.clone();
                let (db, table) = (r.db.clone(), r.table.clone());
                let loaded = self.rapid().table(&db, &table).is_some_and(|t| t.status().status == LoadStatus::Available);
                let skip = loaded && !(refresh && r.kind == SourceKind::Lake);
                tokio::spawn(async move {
                    if skip {
                        return Ok(None);
                    }
                    lake.set_secondary_engine(&db, &table, Some(RAPID)).await?;
                    lake.load_marked(&db, &table, LoadStatus::Loading).await.map(Some)
                })
            })
            .collect();
        for (r, task) in rows.iter_mut().zip(tasks) {
            match task.await {
                Ok(Ok(None)) => {
                    let data = self.rapid().table(&r.db, &r.table).and_then(|t| t.raw_data());
                    r.rows = data.as_ref().map_or(0, |d| d.rows());
                    r.loaded_bytes = data.map(|d| d.size_bytes);
                    r.outcome = "already loaded".into();
                }
                Ok(Ok(Some(report))) if report.refreshed.is_some() => {
                    r.outcome = describe(&report);
                    r.rows = report.rows;
                    r.loaded_bytes = Some(report.bytes);
                }
                Ok(Ok(Some(report))) => {
                    r.outcome = format!("loaded in {:.2} s", report.seconds);
                    r.rows = report.rows;
                    r.estimated_bytes = report.estimated_bytes;
                    r.loaded_bytes = Some(report.bytes);
                }
                Ok(Err(e)) => r.outcome = format!("failed: {e}"),
                Err(e) => r.outcome = format!("failed: {e}"),
            }
        }
        Ok(rows)
    }

    /// Forgets a MySQL table's copy and mark (after DROP TABLE).
    pub fn forget_secondary(&self, db: &str, table: &str) -> Result<()> {
        self.rapid().remove(db, table);
        if self.catalog().secondary(db, table).is_some() {
            self.catalog().set_secondary(db, table, None)?;
        }
        Ok(())
    }

    /// Loads a table again (change capture lost track of it).
    pub async fn reload(&self, db: &str, table: &str) -> Result<LoadReport> {
        self.load_marked(db, table, LoadStatus::Loading).await
    }

    /// How many nodes of the configured node memory the given bytes need.
    pub fn nodes_needed(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.rapid().node_memory).max(1)
    }
}

/// Files read by one scan each when loading; more are read in one scan of
/// the table.
const FILES_SCANNED_ONE_BY_ONE: usize = 8;

/// A short summary for OK packets and logs.
pub fn describe(report: &LoadReport) -> String {
    let base = format!("{} rows, {} in memory, {:.2} s", report.rows, human_bytes(report.bytes), report.seconds);
    match report.refreshed {
        Some(c) => format!(
            "refreshed: {} files added, {} changed, {} removed, {} unchanged; {base}",
            c.added, c.changed, c.removed, c.unchanged
        ),
        None => base,
    }
}
