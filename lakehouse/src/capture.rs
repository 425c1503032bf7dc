//! Keeps loaded MySQL tables in step with the backend: one binlog reader
//! per server, applying each committed transaction to the loaded copies it
//! touches, and the read-your-writes wait that offloaded queries make.
//!
//! A table being loaded has a snapshot position; transactions that commit
//! after it while the load runs are held back and applied when the load is
//! adopted, under the same lock the reader applies with, so none is lost or
//! applied twice. The reader's position only moves forward; a reader that
//! fails reconnects and resumes from its last applied position, and if the
//! binlog it needs was purged the loaded tables are reloaded from new
//! snapshots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectors::mysql::BinlogPosition;
use connectors::mysql::binlog::{CaptureError, CaptureEvent, RowChange, stream_changes};
use tokio::sync::watch;

use crate::engine::Lakehouse;
use crate::rapid::sync::{self, SyncState};
use crate::rapid::{LoadStatus, RapidTable, SourceKind, TableData};

type Held = Vec<(BinlogPosition, Vec<RowChange>)>;

#[derive(Debug)]
pub struct Capture {
    /// Transactions held for tables whose load is still running.
    held: Mutex<HashMap<(String, String), Held>>,
    applied: watch::Sender<Option<BinlogPosition>>,
    started: AtomicBool,
    connected: AtomicBool,
}

impl Default for Capture {
    fn default() -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
            applied: watch::Sender::new(None),
            started: AtomicBool::new(false),
            connected: AtomicBool::new(false),
        }
    }
}

impl Capture {
    /// Held while changes are applied; holding it gives a consistent view
    /// of the loaded MySQL tables and the applied position.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn advance(&self, to: &BinlogPosition) {
        self.applied.send_if_modified(|cur| {
            if cur.as_ref().is_none_or(|c| c < to) {
                *cur = Some(to.clone());
                true
            } else {
                false
            }
        });
    }

    pub fn applied(&self) -> Option<BinlogPosition> {
        self.applied.borrow().clone()
    }
}

fn key(db: &str, table: &str) -> (String, String) {
    (db.to_lowercase(), table.to_lowercase())
}

/// Whether a statement names `table` (as `table`, `` `table` `` or
/// `db.table`), judged on its words.
fn mentions(query: &str, schema: &str, db: &str, table: &str) -> bool {
    let words: Vec<String> = query
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('`', "").to_lowercase())
        .collect();
    words.iter().any(|w| match w.split_once('.') {
        Some((d, t)) => d == db && t == table,
        None => w == table && schema.eq_ignore_ascii_case(db),
    })
}

impl Lakehouse {
    pub(crate) fn capture(&self) -> &Arc<Capture> {
        &self.shared.capture
    }

    /// Whether the binlog reader is connected.
    pub fn capture_running(&self) -> bool {
        self.capture().connected.load(Ordering::Relaxed)
    }

    /// The reader's applied position, for status.
    pub fn capture_position(&self) -> Option<BinlogPosition> {
        self.capture().applied()
    }

    /// Publishes a freshly loaded MySQL table: installs its data and change
    /// state, applies what committed after its snapshot while it loaded, and
    /// makes it available, all under the reader's lock. Returns the number
    /// of the version `data` was published as.
    pub(crate) fn adopt(&self, entry: &Arc<RapidTable>, data: Arc<TableData>, state: SyncState) -> Result<u64, String> {
        let snapshot = state.snapshot.clone();
        let mut held = self.capture().lock();
        *entry.sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        self.rapid().replace(entry, data);
        let version = entry.version();
        let pending = held.remove(&key(&entry.db, &entry.name)).unwrap_or_default();
        for (end, changes) in pending {
            if end > snapshot {
                let refs: Vec<&RowChange> = changes.iter().collect();
                sync::apply(self.rapid(), entry, &refs, &end)?;
            }
        }
        entry.update_status(|s| s.status = LoadStatus::Available);
        drop(held);
        self.start_capture(snapshot);
        Ok(version)
    }

    /// Starts the binlog reader once, from `from` (the first snapshot).
    fn start_capture(&self, from: BinlogPosition) {
        if self.capture().started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(source) = self.mysql().cloned() else { return };
        let lake = self.clone();
        let server_id = 1_000_000 + std::process::id() % 1_000_000;
        let mut closing = self.shared.closing.subscribe();
        tokio::spawn(async move {
            let mut from = from;
            let mut backoff = Duration::from_millis(200);
            loop {
                if *closing.borrow() {
                    return;
                }
                let start = lake.capture().applied().unwrap_or_else(|| from.clone());
                lake.capture().connected.store(true, Ordering::Relaxed);
                let store = lake.rapid().clone();
                let interested = move |db: &str, table: &str| {
                    store.table(&db.to_lowercase(), &table.to_lowercase()).is_some_and(|t| t.kind == SourceKind::MySql)
                };
                let stream = stream_changes(source.url(), server_id, &start, interested, |event| {
                    backoff = Duration::from_millis(200);
                    lake.on_capture_event(event);
                    true
                });
                let result = tokio::select! {
                    r = stream => Some(r),
                    _ = closing.wait_for(|c| *c) => None,
                };
                lake.capture().connected.store(false, Ordering::Relaxed);
                let Some(result) = result else { return };
                match result {
                    Ok(()) => tracing::warn!("change capture: the binlog stream ended; reconnecting"),
                    Err(CaptureError::Purged(pos, msg)) => {
                        tracing::warn!("change capture cannot resume at {pos} ({msg}); reloading the loaded MySQL tables");
                        // Capture goes on from the earliest of the new snapshots.
                        if let Some(p) = lake.reload_all_mysql_tables().await {
                            from = p;
                        }
                        continue;
                    }
                    Err(CaptureError::Other(msg)) => tracing::warn!("change capture stopped: {msg}; retrying in {backoff:?}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = closing.wait_for(|c| *c) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    fn on_capture_event(&self, event: CaptureEvent) {
        match event {
            CaptureEvent::Position(p) => self.capture().advance(&p),
            CaptureEvent::Transaction { changes, end } => {
                let mut held = self.capture().lock();
                let mut per_table: HashMap<(String, String), Vec<RowChange>> = HashMap::new();
                for (db, table, change) in changes {
                    per_table.entry(key(&db, &table)).or_default().push(change);
                }
                for ((db, table), changes) in per_table {
                    let Some(entry) = self.rapid().table(&db, &table).filter(|t| t.kind == SourceKind::MySql) else { continue };
                    match entry.status().status {
                        LoadStatus::Available => {
                            let refs: Vec<&RowChange> = changes.iter().collect();
                            if let Err(e) = sync::apply(self.rapid(), &entry, &refs, &end) {
                                self.mark_stale_and_reload(&entry, format!("change capture could not apply a change at {end}: {e}"));
                            }
                        }
                        LoadStatus::Loading | LoadStatus::Recovery => {
                            held.entry((db, table)).or_default().push((end.clone(), changes));
                        }
                        _ => {}
                    }
                }
                // Advanced before the lock is let go, so whoever holds it sees
                // the rows and the position they are current to together.
                self.capture().advance(&end);
                drop(held);
            }
            CaptureEvent::Ddl { schema, query, end } => {
                let lower = query.trim_start().to_lowercase();
                for entry in self.rapid().tables() {
                    if entry.kind != SourceKind::MySql || !mentions(&query, &schema, &entry.db, &entry.name) {
                        continue;
                    }
                    // A copy loaded after the statement already reflects it
                    // (capture replaying from an earlier position).
                    if entry.sync_snapshot().is_some_and(|s| s >= end) {
                        continue;
                    }
                    if lower.starts_with("truncate") {
                        let _held = self.capture().lock();
                        sync::truncate(self.rapid(), &entry, &end);
                    } else if lower.starts_with("drop table") || lower.starts_with("drop temporary") {
                        if let Err(e) = self.forget_secondary(&entry.db, &entry.name) {
                            tracing::warn!("forgetting dropped table {}.{}: {e}", entry.db, entry.name);
                        }
                    } else {
                        self.mark_stale_and_reload(&entry, format!("its definition changed: {query}"));
                    }
                }
                let _held = self.capture().lock();
                self.capture().advance(&end);
            }
        }
    }

    fn mark_stale_and_reload(&self, entry: &Arc<RapidTable>, why: String) {
        tracing::warn!("secondary engine copy of {}.{} is stale: {why}; reloading", entry.db, entry.name);
        entry.update_status(|s| {
            s.status = LoadStatus::Stale;
            s.error = Some(why);
        });
        let lake = self.clone();
        let (db, table) = (entry.db.clone(), entry.name.clone());
        tokio::spawn(async move {
            if let Err(e) = lake.reload(&db, &table).await {
                tracing::warn!("reloading {db}.{table} failed: {e}");
            }
        });
    }

    /// Reloads every loaded MySQL table from a new snapshot; returns the
    /// earliest of their snapshots' positions.
    async fn reload_all_mysql_tables(&self) -> Option<BinlogPosition> {
        self.capture().applied.send_replace(None);
        let mut earliest: Option<BinlogPosition> = None;
        for entry in self.rapid().tables() {
            if entry.kind == SourceKind::MySql && entry.raw_data().is_some() {
                entry.update_status(|s| s.status = LoadStatus::Stale);
                if let Err(e) = self.reload(&entry.db, &entry.name).await {
                    tracing::warn!("reloading {}.{} failed: {e}", entry.db, entry.name);
                    continue;
                }
                if let Some(s) = entry.sync_snapshot() {
                    if earliest.as_ref().is_none_or(|e| &s < e) {
                        earliest = Some(s);
                    }
                }
            }
        }
        earliest
    }

    /// Read-your-writes: waits until every change committed on the backend
    /// so far is applied to the loaded copies. False when that did not
    /// happen within `timeout` (or capture is not running).
    pub async fn catch_up(&self, timeout: Duration) -> bool {
        let Some(source) = self.mysql() else { return false };
        if !self.capture().started.load(Ordering::Relaxed) {
            return false;
        }
        let target = match source.binlog_position().await {
            Ok(Some(p)) => p,
            _ => return false,
        };
        let mut rx = self.capture().applied.subscribe();
        tokio::time::timeout(timeout, async move {
            loop {
                if rx.borrow_and_update().as_ref().is_some_and(|a| a >= &target) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn finds_tables_named_in_ddl() {
        assert!(mentions("ALTER TABLE `assets` ADD COLUMN x INT", "plant", "plant", "assets"));
        assert!(mentions("truncate table plant.assets", "other", "plant", "assets"));
        assert!(!mentions("ALTER TABLE assets2 ADD x INT", "plant", "plant", "assets"));
        assert!(!mentions("ALTER TABLE assets ADD x INT", "other", "plant", "assets"));
    }
}
