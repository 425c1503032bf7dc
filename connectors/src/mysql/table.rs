//! MySQL tables as DataFusion tables, for queries that join them with lake
//! data. Rows stream from MySQL in chunks into Arrow; projection, LIMIT and
//! the filters that translate to MySQL SQL are pushed down, with every
//! identifier and literal quoted; MySQL's row estimate feeds join planning.
//!
//! Type policy: integers keep width and signedness, DECIMAL(p,s) stays exact
//! (up to 65 digits), CHAR/VARCHAR/TEXT/ENUM/SET/JSON are text, BINARY/BLOB
//! are bytes, BIT is an unsigned integer, YEAR a small integer, DATE a date,
//! DATETIME/TIMESTAMP microsecond timestamps, TIME text (MySQL times exceed a
//! day). Zero dates ('0000-00-00') read as NULL.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryBuilder, RecordBatch, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions};
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream};
use futures::StreamExt;
use mysql_async::prelude::Queryable;

use super::BackendUrl;
use crate::sql::{quote_ident, quote_str};

pub(super) const CHUNK_ROWS: usize = 8192;

pub(super) fn ext(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The SQL of the MySQL scans planned in a session, for EXPLAIN. A session
/// puts one in its config; scans append to it.
#[derive(Debug, Default)]
pub struct PushdownLog(std::sync::Mutex<Vec<String>>);

impl PushdownLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn push(&self, sql: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(sql);
    }
}

/// Rows as MySQL's text protocol carries them (None is NULL).
pub type TextRows = Vec<Vec<Option<Vec<u8>>>>;

/// Another way to run scans: a session inside a transaction reads MySQL
/// through its own connection, so it sees its uncommitted writes.
#[async_trait]
pub trait RowSource: Send + Sync + fmt::Debug {
    async fn text_rows(&self, sql: &str) -> Result<TextRows>;
}

/// Session config extension: when set, scans use this source instead of
/// the pool.
#[derive(Debug, Default)]
pub struct SessionRows(std::sync::RwLock<Option<Arc<dyn RowSource>>>);

impl SessionRows {
    pub fn set(&self, source: Option<Arc<dyn RowSource>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = source;
    }

    fn get(&self) -> Option<Arc<dyn RowSource>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE.
type ColumnRow = (String, String, String, Option<u64>, Option<u64>, String);

/// A pool of connections to the backend for reading tables.
#[derive(Clone)]
pub struct MySqlSource {
    pub(super) pool: mysql_async::Pool,
    pub(super) url: BackendUrl,
}

impl fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MySqlSource")
    }
}

/// The Arrow type a MySQL column is read as.
fn arrow_type(data_type: &str, column_type: &str, precision: Option<u64>, scale: Option<u64>) -> DataType {
    let unsigned = column_type.contains("unsigned");
    match data_type {
        "tinyint" => if unsigned { DataType::UInt8 } else { DataType::Int8 },
        "smallint" => if unsigned { DataType::UInt16 } else { DataType::Int16 },
        "mediumint" | "int" | "integer" => if unsigned { DataType::UInt32 } else { DataType::Int32 },
        "bigint" => if unsigned { DataType::UInt64 } else { DataType::Int64 },
        "bit" => DataType::UInt64,
        "year" => DataType::Int16,
        "float" => DataType::Float32,
        "double" | "real" => DataType::Float64,
        "decimal" | "numeric" => {
            let p = precision.unwrap_or(10).clamp(1, 76) as u8;
            let s = scale.unwrap_or(0).min(u64::from(p)) as i8;
            if p <= 38 { DataType::Decimal128(p, s) } else { DataType::Decimal256(p, s) }
        }
        "date" => DataType::Date32,
        "datetime" | "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" => DataType::Binary,
        _ => DataType::Utf8,
    }
}

impl MySqlSource {
    pub fn new(url: &BackendUrl) -> Self {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(url.host.clone())
            .tcp_port(url.port)
            .user(Some(url.user.clone()))
            .pass(Some(url.password.clone()))
            .prefer_socket(false);
        Self { pool: mysql_async::Pool::new(opts), url: url.clone() }
    }

    /// The table `db.table` on the backend, if it exists.
    pub async fn table(&self, db: &str, table: &str) -> Result<Option<Arc<MySqlTable>>> {
        let mut conn = self.pool.get_conn().await.map_err(ext)?;
        let cols: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            .await
            .map_err(ext)?;
        if cols.is_empty() {
            return Ok(None);
        }
        let rows: Option<Option<u64>> = conn
            .exec_first("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", (db, table))
            .await
            .map_err(ext)?;
        let fields: Vec<Field> = cols
            .iter()
            .map(|(name, dt, ct, p, s, nullable)| {
                Field::new(name, arrow_type(&dt.to_lowercase(), &ct.to_lowercase(), *p, *s), nullable == "YES")
            })
            .collect();
        let binary = cols.iter().map(|c| arrow_type(&c.1.to_lowercase(), &c.2.to_lowercase(), c.3, c.4) == DataType::Binary).collect();
        Ok(Some(Arc::new(MySqlTable {
            pool: self.pool.clone(),
            db: db.to_string(),
            table: table.to_string(),
            schema: Arc::new(Schema::new(fields)),
            binary,
            rows: rows.flatten(),
        })))
    }
}

/// Rows of one of the backend's information_schema tables, as text, with
/// its column names (lower case) and whether each column is numeric.
#[derive(Debug, Default)]
pub struct InfoRows {
    pub columns: Vec<(String, bool)>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl MySqlSource {
    /// `SELECT * FROM information_schema.<table>` on the backend, so the
    /// lakehouse can answer it with lake tables merged in.
    pub async fn information_schema(&self, table: &str) -> Result<InfoRows> {
        let mut conn = self.pool.get_conn().await.map_err(ext)?;
        let sql = format!("SELECT * FROM information_schema.{}", quote_ident(&table.to_uppercase()));
        let mut result = conn.query_iter(sql).await.map_err(ext)?;
        let columns: Vec<(String, bool)> = result
            .columns_ref()
            .iter()
            .map(|c| {
                use mysql_async::consts::ColumnType as T;
                let numeric = matches!(
                    c.column_type(),
                    T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_SHORT | T::MYSQL_TYPE_LONG | T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONGLONG
                );
                (c.name_str().to_lowercase(), numeric)
            })
            .collect();
        let rows: Vec<mysql_async::Row> = result.collect().await.map_err(ext)?;
        let rows = rows
            .iter()
            .map(|r| text_row(r).into_iter().map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())).collect())
            .collect();
        Ok(InfoRows { columns, rows })
    }
}

#[derive(Debug)]
pub struct MySqlTable {
    pub(super) pool: mysql_async::Pool,
    pub(super) db: String,
    pub(super) table: String,
    pub(super) schema: SchemaRef,
    /// Columns read as bytes rather than text.
    pub(super) binary: Vec<bool>,
    rows: Option<u64>,
}

/// MySQL SQL for a literal; None when it has no faithful form.
pub(super) fn literal(v: &ScalarValue) -> Option<String> {
    use ScalarValue as S;
    if v.is_null() {
        return Some("NULL".into());
    }
    Some(match v {
        S::Boolean(Some(b)) => if *b { "1".into() } else { "0".into() },
        S::Int8(Some(x)) => x.to_string(),
        S::Int16(Some(x)) => x.to_string(),
        S::Int32(Some(x)) => x.to_string(),
        S::Int64(Some(x)) => x.to_string(),
        S::UInt8(Some(x)) => x.to_string(),
        S::UInt16(Some(x)) => x.to_string(),
        S::UInt32(Some(x)) => x.to_string(),
        S::UInt64(Some(x)) => x.to_string(),
        S::Float64(Some(x)) if x.is_finite() => format!("{x:?}"),
        S::Decimal128(Some(_), _, _) => v.to_string(),
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => quote_str(s),
        S::Date32(Some(_)) => format!("DATE {}", quote_str(&v.to_string())),
        _ => return None,
    })
}

fn is_text(e: &Expr, schema: &SchemaRef) -> bool {
    match e {
        Expr::Column(c) => schema.field_with_name(&c.name).is_ok_and(|f| f.data_type() == &DataType::Utf8),
        Expr::Literal(v, _) => matches!(v, ScalarValue::Utf8(_) | ScalarValue::LargeUtf8(_) | ScalarValue::Utf8View(_)),
        _ => false,
    }
}

/// The MySQL spelling of a comparison or logical operator.
pub(super) fn comparison_or_logic(op: &Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        Operator::And => "AND",
        Operator::Or => "OR",
        _ => return None,
    })
}

/// MySQL SQL for a filter, and whether MySQL's answer is exact. Text
/// comparisons use MySQL's collation (usually case-insensitive), so only
/// equality is pushed for text, and inexactly (the engine filters again).
pub(super) fn filter_sql(e: &Expr, schema: &SchemaRef) -> Option<(String, bool)> {
    match e {
        Expr::Column(c) if schema.field_with_name(&c.name).is_ok() => Some((quote_ident(&c.name), true)),
        Expr::Literal(v, _) => literal(v).map(|l| (l, true)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let sym = comparison_or_logic(op)?;
            let text = is_text(left, schema) || is_text(right, schema);
            if text && !matches!(op, Operator::Eq) {
                return None;
            }
            let (l, le) = filter_sql(left, schema)?;
            let (r, re) = filter_sql(right, schema)?;
            Some((format!("({l} {sym} {r})"), le && re && !text))
        }
        Expr::IsNull(inner) => filter_sql(inner, schema).map(|(s, x)| (format!("({s} IS NULL)"), x)),
        Expr::IsNotNull(inner) => filter_sql(inner, schema).map(|(s, x)| (format!("({s} IS NOT NULL)"), x)),
        Expr::Not(inner) if !matches!(inner.as_ref(), Expr::BinaryExpr(_)) => None,
        Expr::InList(l) if !l.negated => {
            let text = is_text(&l.expr, schema);
            let (col, exact) = filter_sql(&l.expr, schema)?;
            let items = l.list.iter().map(|i| filter_sql(i, schema).map(|x| x.0)).collect::<Option<Vec<_>>>()?;
            Some((format!("({col} IN ({}))", items.join(", ")), exact && !text))
        }
        Expr::Between(b) if !b.negated && !is_text(&b.expr, schema) => {
            let (x, e1) = filter_sql(&b.expr, schema)?;
            let (lo, e2) = filter_sql(&b.low, schema)?;
            let (hi, e3) = filter_sql(&b.high, schema)?;
            Some((format!("({x} BETWEEN {lo} AND {hi})"), e1 && e2 && e3))
        }
        _ => None,
    }
}

impl MySqlTable {
    /// A scan as a derived table for a pushed-down query: the named columns
    /// as `c0..cN`, the filters MySQL can apply, and a row limit.
    pub(super) fn select_as(&self, columns: &[String], filters: &[Expr], limit: Option<usize>) -> String {
        let mut cols: Vec<String> = columns.iter().enumerate().map(|(i, c)| format!("{} AS c{i}", quote_ident(c))).collect();
        if cols.is_empty() {
            cols.push("1 AS c_rows".into());
        }
        self.select(&cols, filters, limit)
    }

    fn select(&self, cols: &[String], filters: &[Expr], limit: Option<usize>) -> String {
        let mut sql = format!("SELECT {} FROM {}.{}", cols.join(", "), quote_ident(&self.db), quote_ident(&self.table));
        let wheres: Vec<String> = filters.iter().filter_map(|f| filter_sql(f, &self.schema).map(|x| x.0)).collect();
        if !wheres.is_empty() {
            sql.push_str(&format!(" WHERE {}", wheres.join(" AND ")));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }

    /// The SELECT sent to MySQL for a scan.
    pub fn scan_sql(&self, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> String {
        let cols: Vec<String> = match projection {
            Some(p) if p.is_empty() => vec!["1".into()],
            Some(p) => p.iter().map(|i| quote_ident(self.schema.field(*i).name())).collect(),
            None => self.schema.fields().iter().map(|f| quote_ident(f.name())).collect(),
        };
        self.select(&cols, filters, limit)
    }
}

#[async_trait]
impl TableProvider for MySqlTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match filter_sql(f, &self.schema) {
                Some((_, true)) => TableProviderFilterPushDown::Exact,
                Some((_, false)) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        self.rows.map(|n| {
            let mut s = Statistics::new_unknown(&self.schema);
            s.num_rows = Precision::Inexact(n as usize);
            s
        })
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let binary = match projection {
            Some(p) => p.iter().map(|i| self.binary[*i]).collect(),
            None => self.binary.clone(),
        };
        let sql = self.scan_sql(projection, filters, limit);
        tracing::debug!(sql = %sql, "MySQL scan");
        if let Some(log) = state.config().get_extension::<PushdownLog>() {
            log.push(sql.clone());
        }
        // The row estimate reaches join planning: without it a MySQL table
        // of 50 rows joined with 10M lake rows was the probe side, and the
        // 10M rows were hashed into the join's table. Pushed filters scale
        // it as DataFusion scales an unknown filter.
        let rows = self.rows.map(|n| {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let n = if filters.is_empty() {
                n
            } else {
                (n as f64 * state.config_options().optimizer.default_filter_selectivity as f64 / 100.0).ceil() as usize
            };
            limit.map_or(n, |l| n.min(l))
        });
        let scan = MySqlScan { pool: self.pool.clone(), sql, schema: projected, binary };
        Ok(Arc::new(MySqlScanExec::new(scan, rows)))
    }
}

/// A scan of MySQL rows (one stream on one connection) with the table's
/// row estimate as its statistics.
#[derive(Debug)]
pub(super) struct MySqlScanExec {
    scan: Arc<MySqlScan>,
    rows: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl MySqlScanExec {
    pub(super) fn new(scan: MySqlScan, rows: Option<usize>) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(scan.schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        MySqlScanExec { scan: Arc::new(scan), rows, properties: Arc::new(properties) }
    }
}

impl DisplayAs for MySqlScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MySqlScanExec: ")?;
        if let Some(n) = self.rows {
            write!(f, "estimated_rows={n}, ")?;
        }
        write!(f, "sql={}", self.scan.sql)
    }
}

impl ExecutionPlan for MySqlScanExec {
    fn name(&self) -> &str {
        "MySqlScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("a MySQL scan has no inputs".into()))
        }
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("a MySQL scan has one partition, not {}", partition + 1)));
        }
        Ok(self.scan.execute(context))
    }

    #[allow(deprecated)]
    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.scan.schema);
        if let Some(n) = self.rows {
            stats.num_rows = Precision::Inexact(n);
        }
        Ok(Arc::new(stats))
    }
}

#[derive(Debug)]
pub(super) struct MySqlScan {
    pub(super) pool: mysql_async::Pool,
    pub(super) sql: String,
    pub(super) schema: SchemaRef,
    pub(super) binary: Vec<bool>,
}

impl PartitionStream for MySqlScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (pool, sql, schema, binary) = (self.pool.clone(), self.sql.clone(), self.schema.clone(), self.binary.clone());
        if let Some(source) = ctx.session_config().get_extension::<SessionRows>().and_then(|r| r.get()) {
            let stream = futures::stream::once(async move {
                let rows = source.text_rows(&sql).await?;
                to_batch(&schema, &binary, &rows)
            });
            return Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream));
        }
        spawn_batches(self.schema.clone(), 2, move |tx| async move {
            let mut conn = pool.get_conn().await.map_err(ext)?;
            send_rows(&mut conn, sql, &schema, &binary, &tx).await
        })
    }
}

/// Runs `produce` on its own task and streams the batches it sends; an
/// error it returns arrives as the stream's last item.
pub(super) fn spawn_batches<F, Fut>(schema: SchemaRef, capacity: usize, produce: F) -> SendableRecordBatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<RecordBatch>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(capacity);
    let errors = tx.clone();
    tokio::spawn(async move {
        if let Err(e) = produce(tx).await {
            let _ = errors.send(Err(e)).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// Runs `sql` on `conn` and sends its rows as batches of [`CHUNK_ROWS`];
/// stops early, without error, when the receiver is gone.
pub(super) async fn send_rows(
    conn: &mut mysql_async::Conn,
    sql: String,
    schema: &SchemaRef,
    binary: &[bool],
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let mut rows = conn.query_iter(sql).await.map_err(ext)?;
    let mut chunk: TextRows = Vec::with_capacity(CHUNK_ROWS);
    if let Some(mut stream) = rows.stream::<mysql_async::Row>().await.map_err(ext)? {
        while let Some(row) = stream.next().await {
            chunk.push(text_row(&row.map_err(ext)?));
            if chunk.len() == CHUNK_ROWS {
                let batch = to_batch(schema, binary, &chunk)?;
                chunk.clear();
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    // A scan of no columns (COUNT(*)) still needs its row count.
    if !chunk.is_empty() || schema.fields().is_empty() {
        let _ = tx.send(to_batch(schema, binary, &chunk)).await;
    }
    Ok(())
}

fn is_zero_date(s: &[u8]) -> bool {
    s.starts_with(b"0000-00-00")
}

pub(super) fn text_row(r: &mysql_async::Row) -> Vec<Option<Vec<u8>>> {
    (0..r.len())
        .map(|i| match r.as_ref(i) {
            Some(mysql_async::Value::Bytes(b)) => Some(b.clone()),
            Some(mysql_async::Value::NULL) | None => None,
            Some(other) => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
        })
        .collect()
}

/// Text-protocol rows to a batch: text is collected then cast to each
/// column's type (the cast parses numbers, decimals, dates and times).
pub(super) fn to_batch(schema: &SchemaRef, binary: &[bool], rows: &[Vec<Option<Vec<u8>>>]) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let value = |r: &Vec<Option<Vec<u8>>>| -> Option<Vec<u8>> { r.get(i).cloned().flatten() };
        if binary.get(i).copied().unwrap_or(false) {
            let mut b = BinaryBuilder::new();
            for r in rows {
                b.append_option(value(r));
            }
            arrays.push(Arc::new(b.finish()));
            continue;
        }
        let mut b = StringBuilder::new();
        let is_date = matches!(field.data_type(), DataType::Date32 | DataType::Timestamp(_, _));
        for r in rows {
            match value(r) {
                Some(v) if is_date && is_zero_date(&v) => b.append_null(),
                Some(v) if field.data_type() == &DataType::UInt64 && v.len() <= 8 && !v.iter().all(u8::is_ascii_digit) => {
                    // BIT(n) arrives as big-endian bytes.
                    let n = v.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
                    b.append_value(n.to_string())
                }
                Some(v) => b.append_value(String::from_utf8_lossy(&v)),
                None => b.append_null(),
            }
        }
        let text: ArrayRef = Arc::new(b.finish());
        arrays.push(if field.data_type() == &DataType::Utf8 { text } else { cast(&text, field.data_type())? });
    }
    let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    // Nullability comes from MySQL; the arrays are checked against it.
    Ok(RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn table() -> MySqlTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("we`ird", DataType::Float64, true),
        ]));
        MySqlTable {
            pool: mysql_async::Pool::new("mysql://root@127.0.0.1:1/"),
            db: "d".into(),
            table: "t".into(),
            schema,
            binary: vec![false; 3],
            rows: None,
        }
    }

    #[test]
    fn generates_quoted_sql() {
        let t = table();
        let filters = vec![col("id").gt(lit(5)), col("name").eq(lit("o'k")), col("name").like(lit("x%"))];
        let sql = t.scan_sql(Some(&vec![0, 2]), &filters, Some(10));
        assert_eq!(sql, "SELECT `id`, `we``ird` FROM `d`.`t` WHERE (`id` > 5) AND (`name` = 'o''k') LIMIT 10");
        let kinds = t.supports_filters_pushdown(&filters.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            kinds,
            vec![TableProviderFilterPushDown::Exact, TableProviderFilterPushDown::Inexact, TableProviderFilterPushDown::Unsupported]
        );
    }
}
