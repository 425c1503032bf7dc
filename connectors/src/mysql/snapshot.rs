//! Reading a whole MySQL table for the secondary engine: a consistent
//! snapshot together with the binlog position it corresponds to, so change
//! capture can continue exactly where the snapshot ends.

use std::fmt;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use mysql_async::prelude::Queryable;

use super::table::{CHUNK_ROWS, MySqlSource, TextRows, ext, text_row, to_batch};
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
    pub schema: SchemaRef,
    pub rows: u64,
    pub primary_key: Vec<String>,
    /// None when the server has no binary log (change capture impossible).
    pub position: Option<BinlogPosition>,
    pub stream: SendableRecordBatchStream,
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
    pub fn rows_to_batch(table: &super::MySqlTable, rows: &[Vec<Option<Vec<u8>>>]) -> Result<RecordBatch> {
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
    pub async fn snapshot(&self, db: &str, table: &str) -> Result<Option<Snapshot>> {
        let Some(t) = self.table(db, table).await? else { return Ok(None) };
        let primary_key = self.primary_key(db, table).await?;
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
        let name = format!("{}.{}", quote_ident(db), quote_ident(table));
        let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {name}")).await.map_err(ext)?;
        let sql = t.scan_sql(None, &[], None);
        let (schema, binary) = (t.schema.clone(), t.binary.clone());
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(4);
        tokio::spawn(async move {
            let result = async {
                let mut result = conn.query_iter(sql).await.map_err(ext)?;
                let mut chunk: TextRows = Vec::with_capacity(CHUNK_ROWS);
                if let Some(mut stream) = result.stream::<mysql_async::Row>().await.map_err(ext)? {
                    while let Some(row) = stream.next().await {
                        chunk.push(text_row(&row.map_err(ext)?));
                        if chunk.len() == CHUNK_ROWS {
                            let batch = to_batch(&schema, &binary, &chunk)?;
                            chunk.clear();
                            if tx.send(Ok(batch)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.send(to_batch(&schema, &binary, &chunk)).await;
                }
                drop(result);
                conn.query_drop("COMMIT").await.map_err(ext)?;
                Ok::<(), DataFusionError>(())
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Ok(Some(Snapshot {
            schema: t.schema.clone(),
            rows: rows.unwrap_or(0),
            primary_key,
            position,
            stream: Box::pin(RecordBatchStreamAdapter::new(t.schema.clone(), stream)),
        }))
    }
}
