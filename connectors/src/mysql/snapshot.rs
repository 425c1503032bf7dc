//! Reading a whole MySQL table for the secondary engine: a consistent
//! snapshot together with the binlog position it corresponds to, so change
//! capture can continue exactly where the snapshot ends.

use std::fmt;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::physical_plan::SendableRecordBatchStream;
use mysql_async::prelude::Queryable;

use std::sync::Arc;

use super::table::{CHUNK_ROWS, MySqlSource, MySqlTable, TextRows, ext, send_rows, spawn_batches, text_row, to_batch};
use crate::sql::quote_ident;

/// A place in the backend's binary log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl BinlogPosition {
    pub fn parse(text: &str) -> Option<Self> {
        let (file, pos) = text.rsplit_once(':')?;
        Some(Self { file: file.to_string(), pos: pos.parse().ok()? })
    }
}

/// A table's rows as of one binlog position.
pub struct Snapshot {
    /// The table as the backend describes it (schema, how columns are read).
    pub table: Arc<MySqlTable>,
    pub primary_key: Vec<String>,
    /// None when the server has no binary log (change capture impossible).
    pub position: Option<BinlogPosition>,
    /// One stream per reader; together they hold every row once.
    pub streams: Vec<SendableRecordBatchStream>,
}

/// Ends a reader's snapshot transaction and returns its connection.
fn release(mut conn: mysql_async::Conn) {
    tokio::spawn(async move {
        let _ = conn.query_drop("COMMIT").await;
    });
}

/// Streams the rows of `sql` from `conn` (inside its snapshot) as batches,
/// then ends the snapshot transaction.
fn stream_rows(mut conn: mysql_async::Conn, sql: String, schema: SchemaRef, binary: Vec<bool>) -> SendableRecordBatchStream {
    spawn_batches(schema.clone(), 4, move |tx| async move {
        send_rows(&mut conn, sql, &schema, &binary, &tx).await?;
        conn.query_drop("COMMIT").await.map_err(ext)
    })
}

impl MySqlSource {
    pub fn url(&self) -> &super::BackendUrl {
        &self.url
    }

    /// The backend's current end of binlog, None without a binary log.
    pub async fn binlog_position(&self) -> Result<Option<BinlogPosition>> {
        super::binlog::current_position(&self.pool).await.map_err(ext)
    }

    /// Text rows to a batch of the table's schema (as scans build them).
    pub fn rows_to_batch(table: &MySqlTable, rows: &[Vec<Option<Vec<u8>>>]) -> Result<RecordBatch> {
        to_batch(&table.schema, &table.binary, rows)
    }

    /// Primary-key columns of a table, in key order.
    pub async fn primary_key(&self, db: &str, table: &str) -> Result<Vec<String>> {
        let mut conn = self.pool.get_conn().await.map_err(ext)?;
        conn.exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .map_err(ext)
    }

    /// Base tables of a database on the backend.
    pub async fn base_tables(&self, db: &str) -> Result<Vec<String>> {
        let mut conn = self.pool.get_conn().await.map_err(ext)?;
        conn.exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .map_err(ext)
    }

    /// The first `n` rows and the row count, for estimates.
    pub async fn sample(&self, db: &str, table: &str, n: usize) -> Result<Option<(SchemaRef, Vec<RecordBatch>, u64)>> {
        let Some(t) = self.table(db, table).await? else { return Ok(None) };
        let mut conn = self.pool.get_conn().await.map_err(ext)?;
        let name = format!("{}.{}", quote_ident(db), quote_ident(table));
        let count: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {name}")).await.map_err(ext)?;
        let rows: Vec<mysql_async::Row> = conn.query(format!("{} LIMIT {n}", t.scan_sql(None, &[], None))).await.map_err(ext)?;
        let text: TextRows = rows.iter().map(text_row).collect();
        let batches = text
            .chunks(CHUNK_ROWS)
            .map(|c| to_batch(&t.schema, &t.binary, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((t.schema.clone(), batches, count.unwrap_or(0))))
    }

    /// Opens a consistent snapshot of the table and streams its rows.
    ///
    /// With `parallel > 1` and a single integer primary key, several
    /// connections open the same snapshot while a global read lock holds
    /// writes for an instant (`FLUSH TABLES WITH READ LOCK`, as dump tools
    /// do), and each reads one range of the key. Without the RELOAD
    /// privilege, or for other keys, one connection reads it all.
    pub async fn snapshot(&self, db: &str, table: &str, parallel: usize) -> Result<Option<Snapshot>> {
        let Some(t) = self.table(db, table).await? else { return Ok(None) };
        let primary_key = self.primary_key(db, table).await?;
        let name = format!("{}.{}", quote_ident(db), quote_ident(table));
        let int_key = match primary_key.as_slice() {
            [k] => t.schema.field_with_name(k).is_ok_and(|f| f.data_type().is_integer()),
            _ => false,
        };
        if parallel > 1 && int_key {
            match self.coordinated(parallel).await {
                Ok((mut conns, position)) => {
                    let key = quote_ident(&primary_key[0]);
                    // MIN and MAX of the key come from the index ends.
                    let row: Option<(Option<String>, Option<String>)> = conns[0]
                        .query_first(format!("SELECT MIN({key}), MAX({key}) FROM {name}"))
                        .await
                        .map_err(ext)?;
                    let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
                    let (lo, hi) = row.map(|(lo, hi)| (parse(lo), parse(hi))).unwrap_or((None, None));
                    let base = t.scan_sql(None, &[], None);
                    let mut streams = Vec::new();
                    let n = conns.len() as i128;
                    for (i, conn) in conns.drain(..).enumerate() {
                        let sql = match (lo, hi) {
                            (Some(lo), Some(hi)) => {
                                let width = (hi - lo) / n + 1;
                                let (a, b) = (lo + width * i as i128, lo + width * (i as i128 + 1));
                                format!("{base} WHERE {key} >= {a} AND {key} < {b}")
                            }
                            // An empty table: one reader is enough.
                            _ if i == 0 => base.clone(),
                            _ => {
                                release(conn);
                                continue;
                            }
                        };
                        streams.push(stream_rows(conn, sql, t.schema.clone(), t.binary.clone()));
                    }
                    return Ok(Some(Snapshot { primary_key, position, streams, table: t.clone() }));
                }
                Err(e) => tracing::info!("loading {name} through one connection: {e}"),
            }
        }
        let mut conn = self.pool.get_conn().await.map_err(ext)?;
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(ext)?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.map_err(ext)?;
        // MariaDB reports the binlog position of the snapshot itself.
        let status: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(ext)?;
        let get = |k: &str| status.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        let position = match (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) {
            (Some(file), Some(pos)) if !file.is_empty() => pos.parse().ok().map(|pos| BinlogPosition { file, pos }),
            _ => None,
        };
        let sql = t.scan_sql(None, &[], None);
        let streams = vec![stream_rows(conn, sql, t.schema.clone(), t.binary.clone())];
        Ok(Some(Snapshot { primary_key, position, streams, table: t.clone() }))
    }

    /// `parallel` connections inside one consistent snapshot, and its
    /// binlog position. The global read lock is released before returning,
    /// on every path.
    async fn coordinated(&self, parallel: usize) -> std::result::Result<(Vec<mysql_async::Conn>, Option<BinlogPosition>), String> {
        let mut conns = Vec::with_capacity(parallel);
        for _ in 0..parallel {
            conns.push(self.pool.get_conn().await.map_err(|e| e.to_string())?);
        }
        let lock = &mut conns[0];
        // Never wait long for running statements: fall back instead.
        lock.query_drop("SET SESSION lock_wait_timeout = 5").await.map_err(|e| e.to_string())?;
        lock.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(|e| e.to_string())?;
        let opened = async {
            for c in conns.iter_mut() {
                c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
                c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
            }
            let row: Option<mysql_async::Row> = conns[0].query_first("SHOW MASTER STATUS").await?;
            Ok::<_, mysql_async::Error>(row.and_then(|r| {
                let file: Option<String> = r.get(0);
                let pos: Option<u64> = r.get(1);
                Some(BinlogPosition { file: file?, pos: pos? })
            }))
        }
        .await;
        let unlocked = conns[0].query_drop("UNLOCK TABLES").await;
        let position = opened.map_err(|e| e.to_string())?;
        unlocked.map_err(|e| e.to_string())?;
        Ok((conns, position))
    }
}
