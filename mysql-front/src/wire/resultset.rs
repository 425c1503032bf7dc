//! Result sets: column definitions built and checked before the first
//! packet, then rows streamed batch by batch in the text or binary protocol.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use mysql_common::constants::{CapabilityFlags, ColumnFlags, ColumnType, StatusFlags};
use mysql_common::io::BufMutExt;
use tokio::io::{AsyncRead, AsyncWrite};

use lakehouse::types::{MyKind, MySqlType, mysql_type_of};

use super::codes::MyError;
use super::packet::{FLUSH_AT, OkInfo, PacketIo};
use super::values::{normalise_batch, prepare, write_binary, write_text};

/// Binary charset/collation id.
pub const BINARY_COLLATION: u16 = 63;

/// Everything a column definition packet says about one result column.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub org_name: String,
    pub table: String,
    pub org_table: String,
    pub schema: String,
    pub ty: MySqlType,
    pub nullable: bool,
}

impl ColumnInfo {
    pub fn from_schema(schema: &SchemaRef, qualifiers: &[(String, String)]) -> Vec<ColumnInfo> {
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (db, table) = qualifiers.get(i).cloned().unwrap_or_default();
                ColumnInfo {
                    name: f.name().clone(),
                    org_name: if table.is_empty() { String::new() } else { f.name().clone() },
                    table: table.clone(),
                    org_table: table,
                    schema: db,
                    ty: mysql_type_of(f.data_type()),
                    nullable: f.is_nullable(),
                }
            })
            .collect()
    }

    /// The column definition packet (Protocol::ColumnDefinition41). Written
    /// by hand: the fixed-length block must be charset, length, type, flags,
    /// decimals, in that order.
    pub fn packet(&self, text_collation: u16) -> Vec<u8> {
        let ty = &self.ty;
        let mut flags = ColumnFlags::empty();
        if !self.nullable {
            flags |= ColumnFlags::NOT_NULL_FLAG;
        }
        if ty.unsigned {
            flags |= ColumnFlags::UNSIGNED_FLAG;
        }
        if ty.binary {
            flags |= ColumnFlags::BINARY_FLAG;
        }
        if matches!(ty.kind, MyKind::Blob | MyKind::Json) {
            flags |= ColumnFlags::BLOB_FLAG;
        }
        if matches!(
            ty.kind,
            MyKind::Tiny | MyKind::Short | MyKind::Long | MyKind::LongLong | MyKind::Float | MyKind::Double | MyKind::NewDecimal
        ) {
            flags |= ColumnFlags::NUM_FLAG;
        }
        let charset = if ty.is_text() { text_collation } else { BINARY_COLLATION };
        let mut b = Vec::with_capacity(64 + self.name.len() * 2);
        b.put_lenenc_str(b"def");
        b.put_lenenc_str(self.schema.as_bytes());
        b.put_lenenc_str(self.table.as_bytes());
        b.put_lenenc_str(self.org_table.as_bytes());
        b.put_lenenc_str(self.name.as_bytes());
        b.put_lenenc_str(self.org_name.as_bytes());
        b.put_lenenc_int(0x0C);
        b.extend_from_slice(&charset.to_le_bytes());
        b.extend_from_slice(&ty.length.to_le_bytes());
        b.push(column_type(ty.kind) as u8);
        b.extend_from_slice(&flags.bits().to_le_bytes());
        b.push(ty.decimals);
        b.extend_from_slice(&[0, 0]);
        b
    }
}

pub fn column_type(kind: MyKind) -> ColumnType {
    match kind {
        MyKind::Tiny => ColumnType::MYSQL_TYPE_TINY,
        MyKind::Short => ColumnType::MYSQL_TYPE_SHORT,
        MyKind::Long => ColumnType::MYSQL_TYPE_LONG,
        MyKind::LongLong => ColumnType::MYSQL_TYPE_LONGLONG,
        MyKind::Float => ColumnType::MYSQL_TYPE_FLOAT,
        MyKind::Double => ColumnType::MYSQL_TYPE_DOUBLE,
        MyKind::NewDecimal => ColumnType::MYSQL_TYPE_NEWDECIMAL,
        MyKind::VarString => ColumnType::MYSQL_TYPE_VAR_STRING,
        MyKind::String => ColumnType::MYSQL_TYPE_STRING,
        MyKind::Blob | MyKind::Json => ColumnType::MYSQL_TYPE_BLOB,
        MyKind::Date => ColumnType::MYSQL_TYPE_DATE,
        MyKind::Time => ColumnType::MYSQL_TYPE_TIME,
        MyKind::DateTime => ColumnType::MYSQL_TYPE_DATETIME,
        MyKind::Timestamp => ColumnType::MYSQL_TYPE_TIMESTAMP,
        MyKind::Null => ColumnType::MYSQL_TYPE_NULL,
    }
}

/// Protocol of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    Text,
    Binary,
}

/// Writes the column count, the definitions and (without
/// CLIENT_DEPRECATE_EOF) the EOF that ends them.
pub fn write_header<R, W>(io: &mut PacketIo<R, W>, cols: &[ColumnInfo], collation: u16, status: StatusFlags)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    io.write_with(|b| b.put_lenenc_int(cols.len() as u64));
    for c in cols {
        io.write_packet(&c.packet(collation));
    }
    if !io.capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
        io.write_eof(status, 0);
    }
}

/// Encodes one batch's rows into the output buffer.
pub fn write_rows<R, W>(io: &mut PacketIo<R, W>, cols: &[ColumnInfo], batch: &RecordBatch, format: RowFormat) -> Result<(), MyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let arrays = normalise_batch(batch).map_err(|e| MyError::from(datafusion::error::DataFusionError::from(e)))?;
    let prepared = arrays
        .iter()
        .zip(cols)
        .map(|(a, c)| prepare(a, &c.ty))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MyError::from(datafusion::error::DataFusionError::from(e)))?;
    let n = prepared.len();
    for row in 0..batch.num_rows() {
        match format {
            RowFormat::Text => io.write_with(|b| {
                for c in &prepared {
                    write_text(c, row, b);
                }
            }),
            RowFormat::Binary => io.write_with(|b| {
                b.push(0x00);
                let bitmap_at = b.len();
                b.resize(bitmap_at + (n + 7 + 2) / 8, 0);
                for (i, c) in prepared.iter().enumerate() {
                    if c.array.is_null(row) {
                        let bit = i + 2;
                        b[bitmap_at + bit / 8] |= 1 << (bit % 8);
                    } else {
                        write_binary(c, row, b);
                    }
                }
            }),
        }
    }
    Ok(())
}

/// Ends a result set.
pub fn write_end<R, W>(io: &mut PacketIo<R, W>, status: StatusFlags, warnings: u16)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if io.capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
        io.write_ok(&OkInfo { status, warnings, ..Default::default() }, true);
    } else {
        io.write_eof(status, warnings);
    }
}

/// Streams a whole result set. An error after the header is sent as an ERR
/// packet in place of the remaining rows, as MySQL does; the returned error
/// says so (`Err((err, true))` means the ERR packet is already written).
pub async fn stream_result<R, W>(
    io: &mut PacketIo<R, W>,
    cols: &[ColumnInfo],
    collation: u16,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    format: RowFormat,
    status: StatusFlags,
    warnings: &(dyn Fn() -> u16 + Sync),
) -> Result<u64, MyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Pull the first batch before writing anything so that early errors
    // (unreadable files, bad casts) become a plain ERR response.
    let first = match stream.next().await {
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => return Err(MyError::from(e)),
        None => None,
    };
    write_header(io, cols, collation, status);
    let mut rows = 0u64;
    let mut next = first;
    while let Some(batch) = next {
        if let Err(e) = write_rows(io, cols, &batch, format) {
            io.write_err(e.code, &e.state, &e.message);
            return Ok(rows);
        }
        rows += batch.num_rows() as u64;
        if io.buffered() >= FLUSH_AT {
            io.flush().await.map_err(|e| MyError::new(super::codes::ER_UNKNOWN, b"08S01", e.to_string()))?;
        }
        next = match stream.next().await {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                let e = MyError::from(e);
                io.write_err(e.code, &e.state, &e.message);
                return Ok(rows);
            }
            None => None,
        };
    }
    write_end(io, status, warnings());
    Ok(rows)
}
