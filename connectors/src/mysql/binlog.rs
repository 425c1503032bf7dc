//! Change capture: the backend's row-based binary log, read as a replica
//! would, turned into committed transactions of row changes.
//!
//! The reader registers with a server id of its own and streams from a
//! position. Changes are grouped per transaction and handed over only at
//! COMMIT (XID) with the position just after it, so a consumer never sees a
//! half transaction and always knows where to resume. DDL arrives as its
//! statement text. Row images need `binlog_format=ROW`,
//! `binlog_row_image=FULL` and `binlog_row_metadata=FULL` (column names and
//! signedness); the managed server and the test servers run that way.

use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Value};

use super::snapshot::BinlogPosition;
use super::url::BackendUrl;

/// One row image as text (None is NULL), column by column.
pub type TextRow = Vec<Option<Vec<u8>>>;

/// The row changes of one table within a transaction, in order.
#[derive(Debug, Clone)]
pub enum RowChange {
    Insert(Vec<TextRow>),
    Delete(Vec<TextRow>),
    /// Before and after images.
    Update(Vec<(TextRow, TextRow)>),
}

/// What the reader hands over.
#[derive(Debug, Clone)]
pub enum CaptureEvent {
    /// A committed transaction: row changes per table, in order, and the
    /// position just after its commit.
    Transaction { changes: Vec<(String, String, RowChange)>, end: BinlogPosition },
    /// A statement that may change tables' definitions (DDL), committed.
    Ddl { schema: String, query: String, end: BinlogPosition },
    /// The reader advanced without changes (rotation, events of no interest).
    Position(BinlogPosition),
}

/// Why the stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The position asked for is no longer in the binlog (purged): the
    /// consumer must reload from a new snapshot.
    #[error("the binlog at {0} is gone: {1}")]
    Purged(BinlogPosition, String),
    #[error("{0}")]
    Other(String),
}

fn other(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Other(e.to_string())
}

fn value_text(v: Option<&BinlogValue<'_>>) -> Option<Vec<u8>> {
    match v? {
        BinlogValue::Value(Value::NULL) => None,
        BinlogValue::Value(Value::Bytes(b)) => Some(b.clone()),
        BinlogValue::Value(other) => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
        BinlogValue::Jsonb(j) => serde_json::Value::try_from(j.clone()).ok().map(|j| j.to_string().into_bytes()),
        BinlogValue::JsonDiff(_) => None,
    }
}

/// The value names of a table's ENUM and SET columns, by column, from the
/// table map's optional metadata (`binlog_row_metadata=FULL`): row images
/// carry an ENUM as its 1-based index and a SET as a bit mask.
#[derive(Debug, Clone)]
enum Names {
    Enum(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
}

fn enum_set_names(tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> Vec<Option<Names>> {
    use mysql_async::binlog::events::OptionalMetadataField;
    use mysql_async::consts::ColumnType;
    let n = tme.columns_count() as usize;
    let mut out: Vec<Option<Names>> = vec![None; n];
    let of_type = |t: ColumnType| -> Vec<usize> { (0..n).filter(|&i| matches!(tme.get_column_type(i), Ok(Some(c)) if c == t)).collect() };
    let (enums, sets) = (of_type(ColumnType::MYSQL_TYPE_ENUM), of_type(ColumnType::MYSQL_TYPE_SET));
    if enums.is_empty() && sets.is_empty() {
        return out;
    }
    for field in tme.iter_optional_meta() {
        match field {
            Ok(OptionalMetadataField::EnumStrValue(values)) => {
                for (&col, names) in enums.iter().zip(values.iter_values()) {
                    if let Ok(names) = names {
                        out[col] = Some(Names::Enum(names.values().iter().map(|v| v.value_raw().to_vec()).collect()));
                    }
                }
            }
            Ok(OptionalMetadataField::SetStrValue(values)) => {
                for (&col, names) in sets.iter().zip(values.iter_values()) {
                    if let Ok(names) = names {
                        out[col] = Some(Names::Set(names.values().iter().map(|v| v.value_raw().to_vec()).collect()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// An ENUM index or SET mask as MySQL shows it: the value's name, or the
/// names of the set bits joined by commas (index 0 is MySQL's '' error
/// value).
fn named(value: Vec<u8>, names: &Names) -> Vec<u8> {
    match names {
        Names::Enum(list) => {
            let index: usize = std::str::from_utf8(&value).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            index.checked_sub(1).and_then(|i| list.get(i)).cloned().unwrap_or_default()
        }
        Names::Set(list) => {
            let mut mask = 0u64;
            for (i, b) in value.iter().enumerate().take(8) {
                mask |= u64::from(*b) << (8 * i);
            }
            let picked: Vec<&[u8]> = list.iter().enumerate().filter(|(i, _)| *i < 64 && mask & (1 << i) != 0).map(|(_, n)| n.as_slice()).collect();
            picked.join(&b","[..])
        }
    }
}

fn row_text(row: &mysql_async::binlog::row::BinlogRow, names: &[Option<Names>]) -> TextRow {
    (0..row.len())
        .map(|i| {
            let v = value_text(row.as_ref(i));
            match (v, names.get(i).and_then(Option::as_ref)) {
                (Some(v), Some(n)) => Some(named(v, n)),
                (v, _) => v,
            }
        })
        .collect()
}

/// The file name of a rotate event. The server's first (artificial) rotate
/// comes before the format description that says checksums are on, so its
/// name still carries the 4 checksum bytes.
fn rotate_name(raw: &[u8], seen_format: bool) -> String {
    let n = raw.len();
    let name = if !seen_format && n > 4 && raw[n - 5].is_ascii_digit() && !raw[n - 4..].iter().all(u8::is_ascii_digit) {
        &raw[..n - 4]
    } else {
        raw
    };
    String::from_utf8_lossy(name).into_owned()
}

/// MariaDB's GTID event (type 162) opens a transaction; with the
/// "standalone" flag the transaction is a single statement (DDL).
const MARIADB_GTID_EVENT: u8 = 162;

/// Streams committed changes from `start` into `sink` until the sink
/// refuses (returns false) or the stream fails. Row events of tables for
/// which `interested(db, table)` is false are skipped without decoding
/// their rows (a bulk load of another table costs only its transfer).
pub async fn stream_changes(
    url: &BackendUrl,
    server_id: u32,
    start: &BinlogPosition,
    interested: impl Fn(&str, &str) -> bool,
    mut sink: impl FnMut(CaptureEvent) -> bool,
) -> Result<(), CaptureError> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(url.host.clone())
        .tcp_port(url.port)
        .user(Some(url.user.clone()))
        .pass(Some(url.password.clone()))
        .prefer_socket(false)
        .conn_ttl(None::<Duration>);
    let mut conn = mysql_async::Conn::new(opts).await.map_err(other)?;
    // Without this MariaDB replaces its GTID events with BEGIN queries.
    conn.query_drop("SET @mariadb_slave_capability = 4").await.map_err(other)?;
    let request = BinlogStreamRequest::new(server_id).with_filename(start.file.as_bytes()).with_pos(start.pos);
    let mut stream = match conn.get_binlog_stream(request).await {
        Ok(s) => s,
        Err(mysql_async::Error::Server(e)) if e.code == 1236 => return Err(CaptureError::Purged(start.clone(), e.message)),
        Err(e) => return Err(other(e)),
    };
    let mut file = start.file.clone();
    let mut in_transaction = false;
    let mut seen_format = false;
    let mut pending: Vec<(String, String, RowChange)> = Vec::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(mysql_async::Error::Server(e)) if e.code == 1236 => {
                return Err(CaptureError::Purged(BinlogPosition { file, pos: start.pos }, e.message));
            }
            Err(e) => return Err(other(e)),
        };
        let header = event.header();
        let log_pos = u64::from(header.log_pos());
        let here = |file: &str| BinlogPosition { file: file.to_string(), pos: log_pos };
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            in_transaction = true;
            continue;
        }
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => return Err(other(format!("undecodable binlog event at {file}:{log_pos}: {e}"))),
        };
        let keep_going = match data {
            EventData::FormatDescriptionEvent(_) => {
                seen_format = true;
                true
            }
            EventData::RotateEvent(r) => {
                file = rotate_name(r.name_raw(), seen_format);
                sink(CaptureEvent::Position(BinlogPosition { file: file.clone(), pos: r.position() }))
            }
            EventData::QueryEvent(q) => {
                let query = q.query().trim().to_string();
                if query.eq_ignore_ascii_case("BEGIN") {
                    in_transaction = true;
                    true
                } else if query.eq_ignore_ascii_case("COMMIT") {
                    in_transaction = false;
                    let changes = std::mem::take(&mut pending);
                    sink(CaptureEvent::Transaction { changes, end: here(&file) })
                } else {
                    in_transaction = false;
                    pending.clear();
                    sink(CaptureEvent::Ddl { schema: q.schema().to_string(), query, end: here(&file) })
                }
            }
            EventData::XidEvent(_) => {
                in_transaction = false;
                let changes = std::mem::take(&mut pending);
                sink(CaptureEvent::Transaction { changes, end: here(&file) })
            }
            EventData::RowsEvent(rows) => {
                let Some(tme) = stream.get_tme(rows.table_id()) else {
                    return Err(other(format!("rows event without its table map at {file}:{log_pos}")));
                };
                let (db, table) = (tme.database_name().to_string(), tme.table_name().to_string());
                if !interested(&db, &table) {
                    continue;
                }
                let mut inserts = Vec::new();
                let mut deletes = Vec::new();
                let mut updates = Vec::new();
                let names = enum_set_names(tme);
                for r in rows.rows(tme) {
                    let (before, after) = r.map_err(other)?;
                    match (&rows, before, after) {
                        (RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_), _, Some(a)) => inserts.push(row_text(&a, &names)),
                        (RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_), Some(b), _) => deletes.push(row_text(&b, &names)),
                        (_, Some(b), Some(a)) => updates.push((row_text(&b, &names), row_text(&a, &names))),
                        _ => {}
                    }
                }
                for change in [
                    (!inserts.is_empty()).then_some(RowChange::Insert(inserts)),
                    (!deletes.is_empty()).then_some(RowChange::Delete(deletes)),
                    (!updates.is_empty()).then_some(RowChange::Update(updates)),
                ]
                .into_iter()
                .flatten()
                {
                    pending.push((db.clone(), table.clone(), change));
                }
                true
            }
            _ if !in_transaction && log_pos > 0 => sink(CaptureEvent::Position(here(&file))),
            _ => true,
        };
        if !keep_going {
            break;
        }
    }
    Ok(())
}

/// The backend's current end of binlog (`SHOW MASTER STATUS`), which a
/// reader has caught up with once it applied everything before it.
pub async fn current_position(pool: &mysql_async::Pool) -> Result<Option<BinlogPosition>, CaptureError> {
    let mut conn = pool.get_conn().await.map_err(other)?;
    let row: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await.map_err(other)?;
    Ok(row.and_then(|r| {
        let file: Option<String> = r.get(0);
        let pos: Option<u64> = r.get(1);
        Some(BinlogPosition { file: file?, pos: pos? })
    }))
}

#[cfg(test)]
mod tests {
    use super::rotate_name;

    #[test]
    fn strips_checksum_from_the_first_rotate() {
        assert_eq!(rotate_name(b"binlog.000003\x60\xf1\x23\x29", false), "binlog.000003");
        assert_eq!(rotate_name(b"binlog.000003", false), "binlog.000003");
        assert_eq!(rotate_name(b"binlog.000004", true), "binlog.000004");
    }
}
