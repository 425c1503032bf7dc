//! Loaded tables survive restarts without reading their sources again.
//!
//! A background task writes a checkpoint of each loaded table whose rows
//! changed (every `rapid_checkpoint_interval`, and once more when the
//! server shuts down); see [`crate::rapid::checkpoint`] for the files. On
//! start, tables that were loaded are restored from their checkpoints:
//!
//! * A MySQL table's checkpoint holds its rows as of a binlog position;
//!   change capture resumes from there, so what committed while Lakewave
//!   was down is applied, once. If the binlog there was purged, the tables
//!   are read again from new snapshots (as change capture does whenever it
//!   cannot resume).
//! * A lake table's checkpoint holds the rows of the files it was loaded
//!   from, which is what the copy served before the restart (`REFRESH
//!   TABLE` or `SECONDARY_LOAD` picks up changed files, as before).
//!
//! A checkpoint that does not match its table any more (columns or primary
//! key changed, file unreadable) is ignored and the table loaded from its
//! source.
//!
//! Consistency: a MySQL table's rows and the position they reflect are
//! read under the lock change capture applies with, so a checkpoint never
//! holds a transaction without its position or the other way round.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectors::mysql::BinlogPosition;
use datafusion::arrow::datatypes::SchemaRef;

use crate::ddl::now;
use crate::engine::Lakehouse;
use crate::model::SecondaryDef;
use crate::rapid::checkpoint::{CheckpointDir, Entry, Manifest};
use crate::rapid::encode::{EncodingPlan, chunk_bytes, plain_type, stored_chunk};
use crate::rapid::sync::SyncState;
use crate::rapid::{Chunk, LoadStatus, RapidTable, SourceKind, TableData};

type Key = (String, String);

#[derive(Debug)]
pub(crate) struct Persistence {
    dir: CheckpointDir,
    interval: Duration,
    /// The manifest as last written; holding the lock serialises rounds.
    manifest: tokio::sync::Mutex<Manifest>,
    /// Per table, the version of its rows the manifest's data file holds.
    written: Mutex<HashMap<Key, u64>>,
    started: AtomicBool,
}

impl Persistence {
    pub(crate) fn open(data_dir: &std::path::Path, interval: Duration) -> Result<Self, String> {
        Ok(Self {
            dir: CheckpointDir::open(data_dir)?,
            interval,
            manifest: tokio::sync::Mutex::new(Manifest::default()),
            written: Mutex::new(HashMap::new()),
            started: AtomicBool::new(false),
        })
    }

    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u64>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one round wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckpointReport {
    /// Tables whose rows were written.
    pub tables_written: usize,
    pub bytes_written: u64,
    /// Tables whose checkpoint only moved to a later position.
    pub positions_moved: usize,
}

fn key(db: &str, table: &str) -> Key {
    (db.to_string(), table.to_string())
}

/// Whether stored columns are the source's columns (same names, same
/// types once encodings are set aside).
fn same_columns(stored: &SchemaRef, source: &SchemaRef) -> Result<(), String> {
    let columns = |s: &SchemaRef| -> Vec<(String, datafusion::arrow::datatypes::DataType)> {
        s.fields().iter().map(|f| (f.name().to_lowercase(), plain_type(f.data_type()))).collect()
    };
    let (a, b) = (columns(stored), columns(source));
    if a == b {
        return Ok(());
    }
    Err(format!("its columns changed since the checkpoint ({a:?} then, {b:?} now)"))
}

impl Lakehouse {
    fn persistence(&self) -> Option<&Arc<Persistence>> {
        self.shared.persist.as_ref()
    }

    /// The rows of a loaded table, the number of their version, and for a
    /// MySQL table the binlog position they are current to, read together.
    fn consistent_view(&self, t: &RapidTable) -> Option<(Arc<TableData>, u64, Option<BinlogPosition>)> {
        match t.kind {
            SourceKind::Lake => {
                // The version first: a newer version published in between
                // only makes the next round write again.
                let version = t.version();
                Some((t.raw_data()?, version, None))
            }
            SourceKind::MySql => {
                let _applying = self.capture().lock();
                let version = t.version();
                let data = t.raw_data()?;
                let snapshot = t.sync_snapshot()?;
                // Rows are current to the snapshot they were loaded at, or to
                // the last transaction capture applied, whichever is later.
                let position = match self.capture().applied() {
                    Some(a) if a > snapshot => a,
                    _ => snapshot,
                };
                Some((data, version, Some(position)))
            }
        }
    }

    /// Writes checkpoints of the loaded tables whose rows or position
    /// changed since the last round, and drops those of tables no longer
    /// loaded.
    pub async fn checkpoint_loaded_tables(&self) -> Result<CheckpointReport, String> {
        let Some(p) = self.persistence().cloned() else { return Ok(CheckpointReport::default()) };
        let mut manifest = p.manifest.lock().await;
        let loaded: HashSet<Key> = self.catalog().secondary_all().into_iter().filter(|d| d.loaded).map(|d| (d.db, d.table)).collect();
        let mut next = manifest.clone();
        let mut superseded: Vec<String> = Vec::new();
        let before = next.tables.len();
        next.tables.retain(|e| {
            let keep = loaded.contains(&key(&e.db, &e.table));
            if !keep {
                superseded.push(e.file.clone());
            }
            keep
        });
        let mut changed = next.tables.len() != before;
        let mut report = CheckpointReport::default();
        let mut versions: Vec<(Key, u64)> = Vec::new();
        let mut touched: Vec<(Arc<RapidTable>, Option<String>)> = Vec::new();
        for t in self.rapid().tables() {
            let k = key(&t.db, &t.name);
            if !loaded.contains(&k) || t.status().status != LoadStatus::Available {
                continue;
            }
            let Some((data, version, position)) = self.consistent_view(&t) else { continue };
            let position = position.map(|p| p.to_string());
            let slot = next.tables.iter().position(|e| e.db == t.db && e.table == t.name);
            if let Some(i) = slot.filter(|_| p.written().get(&k) == Some(&version)) {
                // Same rows: at most the position moved on (transactions
                // that did not touch the table).
                if next.tables[i].position != position {
                    next.tables[i].position = position.clone();
                    report.positions_moved += 1;
                    changed = true;
                    touched.push((t.clone(), position));
                }
                continue;
            }
            let name = p.dir.fresh_name(t.id);
            let (writer, file) = (p.clone(), name.clone());
            let rows = data.clone();
            let bytes = tokio::task::spawn_blocking(move || writer.dir.write_data(&file, &rows.schema, &rows.chunks))
                .await
                .map_err(|e| e.to_string())??;
            let entry = Entry {
                db: t.db.clone(),
                table: t.name.clone(),
                kind: if t.kind == SourceKind::MySql { "mysql" } else { "lake" }.to_string(),
                file: name,
                position: position.clone(),
                primary_key: t.primary_key.read().unwrap_or_else(|p| p.into_inner()).clone(),
                chunk_ids: data.chunks.iter().map(|c| c.id).collect(),
                files: data.files.as_ref().map(|f| f.as_ref().clone()),
                rows: data.rows(),
                bytes,
                written_at: now(),
            };
            match slot {
                Some(i) => superseded.push(std::mem::replace(&mut next.tables[i], entry).file),
                None => next.tables.push(entry),
            }
            report.tables_written += 1;
            report.bytes_written += bytes;
            versions.push((k, version));
            touched.push((t.clone(), position));
            changed = true;
        }
        if !changed {
            return Ok(report);
        }
        let (writer, m) = (p.clone(), next.clone());
        tokio::task::spawn_blocking(move || writer.dir.write_manifest(&m)).await.map_err(|e| e.to_string())??;
        *manifest = next;
        drop(manifest);
        {
            let mut written = p.written();
            written.retain(|k, _| loaded.contains(k));
            written.extend(versions);
        }
        for f in superseded {
            p.dir.remove(&f);
        }
        let at = now();
        for (t, position) in touched {
            t.update_status(|s| {
                s.persisted_at = Some(at);
                s.persisted_position = position;
            });
        }
        Ok(report)
    }

    /// Checkpoints in the background now (after a load), not at the next
    /// round.
    pub(crate) fn checkpoint_soon(&self) {
        if self.persistence().is_none() || *self.shared.closing.borrow() {
            return;
        }
        let lake = self.clone();
        tokio::spawn(async move {
            if let Err(e) = lake.checkpoint_loaded_tables().await {
                tracing::warn!("checkpoint of loaded tables failed: {e}");
            }
        });
    }

    /// Starts the background checkpoints (once).
    pub(crate) fn start_checkpoints(&self) {
        let Some(p) = self.persistence() else { return };
        if p.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let interval = p.interval;
        let lake = self.clone();
        let mut closing = self.shared.closing.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = closing.wait_for(|c| *c) => return,
                }
                match lake.checkpoint_loaded_tables().await {
                    Ok(r) if r.tables_written > 0 => {
                        tracing::info!(tables = r.tables_written, bytes = r.bytes_written, "checkpointed loaded tables")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("checkpoint of loaded tables failed: {e}"),
                }
            }
        });
    }

    /// Stops change capture and the background checkpoints, then writes a
    /// last checkpoint. Called when the server shuts down.
    pub async fn close(&self) {
        self.shared.closing.send_replace(true);
        match self.checkpoint_loaded_tables().await {
            Ok(r) if r.tables_written + r.positions_moved > 0 => {
                tracing::info!(tables = r.tables_written, bytes = r.bytes_written, "checkpointed loaded tables at shutdown")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("checkpoint of loaded tables at shutdown failed: {e}"),
        }
    }

    /// Restores tables that were loaded from their checkpoints; returns the
    /// tables restored. MySQL tables are restored in the order of their
    /// positions, so change capture starts at the earliest.
    pub(crate) async fn restore_checkpoints(&self, defs: &[SecondaryDef]) -> HashSet<Key> {
        let mut restored = HashSet::new();
        let Some(p) = self.persistence().cloned() else { return restored };
        let manifest = match p.dir.read_manifest() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("the checkpoints of loaded tables cannot be read ({e}); loading the tables from their sources");
                Manifest::default()
            }
        };
        p.dir.remove_unreferenced(&manifest);
        *p.manifest.lock().await = manifest.clone();
        let mut mysql: Vec<(BinlogPosition, &Entry)> = Vec::new();
        let mut lake: Vec<&Entry> = Vec::new();
        for d in defs {
            let Some(e) = manifest.get(&d.db, &d.table) else { continue };
            match (e.kind.as_str(), e.position.as_deref().and_then(BinlogPosition::parse)) {
                ("mysql", Some(pos)) => mysql.push((pos, e)),
                ("lake", _) => lake.push(e),
                _ => {}
            }
        }
        mysql.sort_by(|a, b| a.0.cmp(&b.0));
        let current = match (mysql.is_empty(), self.mysql()) {
            (false, Some(source)) => source.binlog_position().await.ok().flatten(),
            _ => None,
        };
        for (pos, e) in mysql {
            match self.restore_mysql(&p, e, pos, current.as_ref()).await {
                Ok(rows) => {
                    tracing::info!(table = %format!("{}.{}", e.db, e.table), rows, position = %e.position.as_deref().unwrap_or(""), "restored from its checkpoint");
                    restored.insert(key(&e.db, &e.table));
                }
                Err(why) => tracing::warn!("{}.{}: not restored from its checkpoint ({why}); loading it from MySQL", e.db, e.table),
            }
        }
        for e in lake {
            match self.restore_lake(&p, e).await {
                Ok(rows) => {
                    tracing::info!(table = %format!("{}.{}", e.db, e.table), rows, "restored from its checkpoint");
                    restored.insert(key(&e.db, &e.table));
                }
                Err(why) => tracing::warn!("{}.{}: not restored from its checkpoint ({why}); loading it from its files", e.db, e.table),
            }
        }
        restored
    }

    /// Reads a checkpoint's rows into chunks, charging their memory, when
    /// its columns are still those of the source (`source`).
    async fn read_checkpoint(&self, p: &Arc<Persistence>, e: &Entry, source: &SchemaRef) -> Result<(SchemaRef, Vec<Chunk>, u64), String> {
        let label = format!("{}.{}", e.db, e.table);
        if e.bytes > self.rapid().available() {
            return Err(self.rapid().out_of_memory(&label, e.bytes).to_string());
        }
        let (reader, file) = (p.clone(), e.file.clone());
        let (schema, batches) = tokio::task::spawn_blocking(move || reader.dir.read_data(&file)).await.map_err(|e| e.to_string())??;
        same_columns(&schema, source)?;
        if batches.len() != e.chunk_ids.len() {
            return Err(format!("the data file holds {} chunks, the manifest names {}", batches.len(), e.chunk_ids.len()));
        }
        let chunks: Vec<Chunk> =
            batches.into_iter().zip(&e.chunk_ids).map(|(b, id)| stored_chunk(*id, b)).collect::<datafusion::error::Result<_>>().map_err(|e| e.to_string())?;
        let bytes: u64 = chunks.iter().map(chunk_bytes).sum();
        let mut reservation = self.rapid().reservation();
        reservation.grow(bytes, &label).map_err(|e| e.to_string())?;
        Ok((schema, chunks, reservation.keep()))
    }

    async fn restore_mysql(&self, p: &Arc<Persistence>, e: &Entry, pos: BinlogPosition, current: Option<&BinlogPosition>) -> Result<u64, String> {
        let source = self.mysql().ok_or("no MySQL server is attached")?;
        if let Some(cur) = current {
            if &pos > cur {
                return Err(format!("it is at binlog position {pos}, past the server's end {cur}: the server is not the one it was taken from"));
            }
        }
        let table = source.table(&e.db, &e.table).await.map_err(|e| e.to_string())?.ok_or("the table no longer exists on the MySQL server")?;
        let primary_key = source.primary_key(&e.db, &e.table).await.map_err(|e| e.to_string())?;
        if primary_key != e.primary_key {
            return Err(format!("its primary key changed ({:?} then, {primary_key:?} now)", e.primary_key));
        }
        let (schema, chunks, size_bytes) = self.read_checkpoint(p, e, &datafusion::catalog::TableProvider::schema(table.as_ref())).await?;
        let entry = self.rapid().entry(&e.db, &e.table, SourceKind::MySql);
        *entry.primary_key.write().unwrap_or_else(|p| p.into_inner()) = primary_key.clone();
        let next_chunk_id = chunks.iter().map(|c| c.id + 1).max().unwrap_or(0);
        let data = Arc::new(TableData { schema: schema.clone(), chunks, size_bytes, files: None, scans: Default::default() });
        let rows = data.rows();
        let state = SyncState::new(EncodingPlan::of_stored(&schema), table, pos.clone(), &primary_key, next_chunk_id);
        entry.update_status(|s| {
            s.progress = 100.0;
            s.load_end = Some(now());
            s.position = Some(pos.to_string());
            s.changes_applied = 0;
            s.error = None;
            s.load_source = Some("Checkpoint");
            s.persisted_at = Some(e.written_at);
            s.persisted_position = e.position.clone();
        });
        let version = self.adopt(&entry, data, state)?;
        p.written().insert(key(&e.db, &e.table), version);
        Ok(rows)
    }

    async fn restore_lake(&self, p: &Arc<Persistence>, e: &Entry) -> Result<u64, String> {
        let files = e.files.clone().ok_or("the manifest lists no files for it")?;
        let provider = self.shared.provider(&e.db, &e.table).map_err(|e| e.to_string())?.ok_or("the table is no longer defined")?;
        let (schema, chunks, size_bytes) = self.read_checkpoint(p, e, &provider.schema()).await?;
        let entry = self.rapid().entry(&e.db, &e.table, SourceKind::Lake);
        let data = Arc::new(TableData { schema, chunks, size_bytes, files: Some(Arc::new(files)), scans: Default::default() });
        let rows = data.rows();
        self.rapid().replace(&entry, data);
        let version = entry.version();
        p.written().insert(key(&e.db, &e.table), version);
        entry.update_status(|s| {
            s.progress = 100.0;
            s.load_end = Some(now());
            s.error = None;
            s.load_source = Some("Checkpoint");
            s.persisted_at = Some(e.written_at);
            s.persisted_position = None;
            s.status = LoadStatus::Available;
        });
        Ok(rows)
    }
}
