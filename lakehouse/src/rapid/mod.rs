//! The in-memory columnar accelerator, named RAPID after HeatWave's secondary
//! engine. A table marked `SECONDARY_ENGINE = RAPID` and loaded with
//! `ALTER TABLE t SECONDARY_LOAD` is decoded once into Arrow chunks held in
//! memory; queries read those chunks instead of the files or MySQL.
//!
//! * [`RapidStore`] owns every loaded table and accounts for their memory
//!   against one limit. A load reserves memory before it holds it, so a load
//!   that does not fit fails cleanly and leaves the others untouched.
//! * A loaded table is an immutable [`TableData`] version swapped atomically:
//!   scans take the current version and never see a half-applied change.
//!   Change capture (for MySQL tables) publishes new versions made of the
//!   old chunks with some rows hidden plus small chunks of new rows.
//! * [`scan::RapidScanTable`] is the DataFusion provider over one version; it
//!   skips chunks by their min/max statistics.

pub mod checkpoint;
pub mod encode;
pub mod filter;
pub mod load;
pub mod narrow;
pub mod scan;
pub mod status;
pub mod sync;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::scalar::ScalarValue;

/// HeatWave's names for the states of a table in the secondary engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStatus {
    NoLoad,
    Loading,
    Available,
    Unloading,
    /// Reloading after a restart of Lakewave.
    Recovery,
    /// The source changed in a way the copy cannot follow (DDL, lost binlog).
    Stale,
}

impl LoadStatus {
    pub fn name(self) -> &'static str {
        match self {
            LoadStatus::NoLoad => "NOLOAD_RPDGSTABSTATE",
            LoadStatus::Loading => "LOADING_RPDGSTABSTATE",
            LoadStatus::Available => "AVAIL_RPDGSTABSTATE",
            LoadStatus::Unloading => "UNLOADING_RPDGSTABSTATE",
            LoadStatus::Recovery => "INRECOVERY_RPDGSTABSTATE",
            LoadStatus::Stale => "STALE_RPDGSTABSTATE",
        }
    }
}

/// Where a loaded table's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Lake,
    MySql,
}

/// Per-column statistics of one chunk, for pruning.
#[derive(Debug, Clone)]
pub struct ColumnStats {
    /// None when the type has no ordering DataFusion can compute.
    pub min: Option<ScalarValue>,
    pub max: Option<ScalarValue>,
    pub nulls: u64,
}

/// A run of rows stored together. `visible`, when present, hides rows that
/// change capture deleted or replaced since the chunk was built.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Stable within a table across versions (change capture refers to
    /// rows as chunk id and row number).
    pub id: u64,
    /// The stored columns: narrowed ones (see [`narrow`]) in their narrow
    /// type, the rest in the table's.
    pub batch: RecordBatch,
    /// Statistics of each column in the table's type.
    pub stats: Arc<Vec<ColumnStats>>,
    pub visible: Option<BooleanArray>,
    /// Per column, how it was narrowed; None when no column is.
    pub narrow: Option<Arc<Vec<Option<narrow::Narrowed>>>>,
    /// Per column, the memory its stored array takes, counted once (the
    /// statistics every plan of the table asks for sum it).
    pub bytes: Arc<Vec<usize>>,
}

impl Chunk {
    /// Column `i` in the table's type.
    pub fn column(&self, i: usize) -> datafusion::error::Result<datafusion::arrow::array::ArrayRef> {
        let stored = self.batch.column(i);
        match self.narrowed(i) {
            Some(n) => narrow::widen(stored, n),
            None => Ok(stored.clone()),
        }
    }

    /// Every column in the table's type (`schema`), hidden rows included.
    pub fn wide_batch(&self, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
        if self.narrow.is_none() {
            return Ok(self.batch.clone());
        }
        let columns = (0..self.batch.num_columns()).map(|i| self.column(i)).collect::<datafusion::error::Result<Vec<_>>>()?;
        let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(self.batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
    }

    /// How column `i` is stored narrowed, if it is.
    pub fn narrowed(&self, i: usize) -> Option<&narrow::Narrowed> {
        self.narrow.as_ref().and_then(|n| n.get(i)).and_then(Option::as_ref)
    }

    /// Whether column `i` is stored narrowed.
    pub fn is_narrowed(&self, i: usize) -> bool {
        self.narrowed(i).is_some()
    }

    pub fn live_rows(&self) -> usize {
        match &self.visible {
            Some(v) => v.true_count(),
            None => self.batch.num_rows(),
        }
    }
}

/// One immutable version of a loaded table.
#[derive(Debug, Clone)]
pub struct TableData {
    pub schema: SchemaRef,
    pub chunks: Vec<Chunk>,
    /// Bytes of Arrow buffers held, as charged against the memory limit.
    pub size_bytes: u64,
    /// For lake tables: the files the chunks came from, so a refresh reads
    /// only files that were added or changed.
    pub files: Option<Arc<Vec<LoadedFile>>>,
    /// How scans of this version shared its chunks out (see
    /// [`scan::ScanPlans`]).
    pub scans: scan::ScanPlans,
}

/// A file of a lake table as it was when loaded, and its chunks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadedFile {
    pub path: String,
    pub size: u64,
    pub e_tag: Option<String>,
    pub modified: i64,
    pub chunks: Vec<u64>,
    /// Memory the file's chunks hold.
    pub bytes: u64,
}

impl LoadedFile {
    /// Whether the file still is what was loaded (same size and ETag, or
    /// same size and modification time where the store has no ETags).
    pub fn unchanged(&self, meta: &object_store::ObjectMeta) -> bool {
        self.size == meta.size
            && match (&self.e_tag, &meta.e_tag) {
                (Some(a), Some(b)) => a == b && self.modified == meta.last_modified.timestamp_micros(),
                _ => self.modified == meta.last_modified.timestamp_micros(),
            }
    }
}

impl TableData {
    pub fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.live_rows() as u64).sum()
    }
}

/// Mutable facts about a loaded table, shown by `performance_schema.rpd_tables`.
#[derive(Debug, Clone)]
pub struct TableStatus {
    pub status: LoadStatus,
    /// 0..=100 while loading.
    pub progress: f64,
    pub load_start: Option<i64>,
    pub load_end: Option<i64>,
    /// Why the last load failed, or why the table is stale.
    pub error: Option<String>,
    /// Position of the source the copy reflects (binlog file:pos for MySQL).
    pub position: Option<String>,
    /// How many changes change capture applied since the load.
    pub changes_applied: u64,
    /// Where the copy came from when it was last loaded: `MySQL` or
    /// `Files` (read from the source) or `Checkpoint` (restored from disk
    /// after a restart).
    pub load_source: Option<&'static str>,
    /// The last checkpoint written: when, and the source position it holds.
    pub persisted_at: Option<i64>,
    pub persisted_position: Option<String>,
}

#[derive(Debug)]
pub struct RapidTable {
    pub id: u64,
    pub db: String,
    pub name: String,
    pub kind: SourceKind,
    /// Primary-key column names (MySQL tables), for change capture and to
    /// recognise point lookups that MySQL's index serves better.
    pub primary_key: RwLock<Vec<String>>,
    status: Mutex<TableStatus>,
    data: RwLock<Option<Arc<TableData>>>,
    /// What change capture needs to apply MySQL changes to this table.
    pub sync: Mutex<Option<sync::SyncState>>,
    query_count: AtomicU64,
    last_queried: AtomicI64,
    /// Counts the versions published, so a checkpoint knows whether the
    /// rows changed since it last wrote them.
    version: AtomicU64,
}

impl RapidTable {
    fn new(id: u64, db: &str, name: &str, kind: SourceKind) -> Self {
        Self {
            id,
            db: db.to_string(),
            name: name.to_string(),
            kind,
            primary_key: RwLock::new(Vec::new()),
            status: Mutex::new(TableStatus {
                status: LoadStatus::NoLoad,
                progress: 0.0,
                load_start: None,
                load_end: None,
                error: None,
                position: None,
                changes_applied: 0,
                load_source: None,
                persisted_at: None,
                persisted_position: None,
            }),
            data: RwLock::new(None),
            sync: Mutex::new(None),
            query_count: AtomicU64::new(0),
            last_queried: AtomicI64::new(0),
            version: AtomicU64::new(0),
        }
    }

    pub fn status(&self) -> TableStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut TableStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The current version, when the table is available for queries.
    pub fn data(&self) -> Option<Arc<TableData>> {
        if self.status().status != LoadStatus::Available {
            return None;
        }
        self.data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current version whatever the status (for change capture).
    pub fn raw_data(&self) -> Option<Arc<TableData>> {
        self.data.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The binlog position a MySQL table's copy was loaded at (None for
    /// lake tables and tables not loaded).
    pub fn sync_snapshot(&self) -> Option<connectors::mysql::BinlogPosition> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|st| st.snapshot.clone())
    }

    /// The number of the current version of the rows.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn query_count(&self) -> u64 {
        self.query_count.load(Ordering::Relaxed)
    }

    pub fn last_queried(&self) -> i64 {
        self.last_queried.load(Ordering::Relaxed)
    }

    pub(crate) fn note_query(&self) {
        self.query_count.fetch_add(1, Ordering::Relaxed);
        self.last_queried.store(crate::ddl::now(), Ordering::Relaxed);
    }
}

/// Errors of the secondary engine, shown to clients as MySQL error 3889.
#[derive(Debug, thiserror::Error)]
pub enum RapidError {
    #[error("Out of memory for table '{table}': it needs about {needed} but only {available} of the {limit} secondary engine memory (--rapid-memory) remain")]
    OutOfMemory { table: String, needed: String, available: String, limit: String },
    #[error("Table '{0}' is not marked for the secondary engine; run ALTER TABLE {0} SECONDARY_ENGINE = RAPID first")]
    NotMarked(String),
    #[error("Table '{0}' is already being loaded or unloaded")]
    Busy(String),
    #[error("Loading '{table}' failed: {reason}")]
    LoadFailed { table: String, reason: String },
}

/// Bytes as people read them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} bytes") } else { format!("{v:.1} {}", UNITS[i]) }
}

/// All loaded tables of the process and the memory they hold.
#[derive(Debug)]
pub struct RapidStore {
    limit: u64,
    /// Memory of one node, for `dryrun`'s node-count estimate.
    pub node_memory: u64,
    used: AtomicU64,
    tables: RwLock<BTreeMap<(String, String), Arc<RapidTable>>>,
    next_id: AtomicU64,
    offloaded: AtomicU64,
    /// Emptied whenever a version is published: kept plans hold the
    /// versions they read.
    plans: Arc<crate::plan_cache::PlanCache>,
}

/// Memory held for a load in progress; released on drop unless kept.
#[derive(Debug)]
pub struct Reservation {
    store: Arc<RapidStore>,
    bytes: u64,
}

impl Reservation {
    /// Grows the reservation, or fails without growing when the limit
    /// would be passed.
    pub fn grow(&mut self, bytes: u64, table: &str) -> Result<(), RapidError> {
        self.store.reserve(bytes, table)?;
        self.bytes += bytes;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Turns the reservation into memory owned by a loaded table.
    pub fn keep(mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.store.release(self.bytes);
    }
}

impl RapidStore {
    pub fn new(limit: u64, node_memory: u64) -> Self {
        Self {
            limit,
            node_memory: node_memory.max(1),
            used: AtomicU64::new(0),
            tables: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            offloaded: AtomicU64::new(0),
            plans: Arc::default(),
        }
    }

    /// Optimized plans kept between statements (see [`crate::plan_cache`]).
    pub fn plans(&self) -> &Arc<crate::plan_cache::PlanCache> {
        &self.plans
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used())
    }

    fn reserve(&self, bytes: u64, table: &str) -> Result<(), RapidError> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(bytes);
            if next > self.limit {
                return Err(self.out_of_memory(table, bytes));
            }
            match self.used.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    pub fn out_of_memory(&self, table: &str, needed: u64) -> RapidError {
        RapidError::OutOfMemory {
            table: table.to_string(),
            needed: human_bytes(needed),
            available: human_bytes(self.available()),
            limit: human_bytes(self.limit),
        }
    }

    pub(crate) fn release(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation { store: self.clone(), bytes: 0 }
    }

    pub fn table(&self, db: &str, name: &str) -> Option<Arc<RapidTable>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner()).get(&(db.to_string(), name.to_string())).cloned()
    }

    /// The entry for a table, created empty when missing.
    pub fn entry(&self, db: &str, name: &str, kind: SourceKind) -> Arc<RapidTable> {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        tables
            .entry((db.to_string(), name.to_string()))
            .or_insert_with(|| Arc::new(RapidTable::new(self.next_id.fetch_add(1, Ordering::Relaxed), db, name, kind)))
            .clone()
    }

    pub fn tables(&self) -> Vec<Arc<RapidTable>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Publishes a new version of a table's data and returns the previous
    /// version's memory. The new version's bytes must already be charged
    /// (by a load's reservation, or [`RapidStore::charge`]).
    pub fn replace(&self, table: &RapidTable, data: Arc<TableData>) {
        let old = {
            let mut slot = table.data.write().unwrap_or_else(|p| p.into_inner());
            table.version.fetch_add(1, Ordering::AcqRel);
            slot.replace(data)
        };
        self.plans.clear();
        if let Some(old) = old {
            self.release(old.size_bytes);
        }
    }

    /// Frees a table's memory and forgets its rows; the entry stays (as
    /// NOLOAD) so its identity and counters survive a reload.
    pub fn unload(&self, table: &RapidTable) {
        let old = {
            let mut slot = table.data.write().unwrap_or_else(|p| p.into_inner());
            table.version.fetch_add(1, Ordering::AcqRel);
            slot.take()
        };
        self.plans.clear();
        if let Some(old) = old {
            self.release(old.size_bytes);
        }
        *table.sync.lock().unwrap_or_else(|p| p.into_inner()) = None;
        table.update_status(|s| {
            s.status = LoadStatus::NoLoad;
            s.progress = 0.0;
            s.position = None;
        });
    }

    /// Forgets a table entirely (DROP TABLE).
    pub fn remove(&self, db: &str, name: &str) {
        let removed = self.tables.write().unwrap_or_else(|p| p.into_inner()).remove(&(db.to_string(), name.to_string()));
        if let Some(t) = removed {
            self.unload(&t);
        }
    }

    /// Forgets every table of a database (DROP DATABASE).
    pub fn remove_database(&self, db: &str) {
        for t in self.tables() {
            if t.db == db {
                self.remove(&t.db, &t.name);
            }
        }
    }

    /// Charges memory for a version built by change capture; capture cannot
    /// be refused, so it may pass the limit, which later loads then see.
    pub fn charge(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    pub fn note_offload(&self) {
        self.offloaded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn offload_count(&self) -> u64 {
        self.offloaded.load(Ordering::Relaxed)
    }
}
