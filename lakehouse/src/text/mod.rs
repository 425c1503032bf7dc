//! Lakewave's reader for delimited text (CSV, TSV, Redshift UNLOAD text,
//! MySQL `SELECT ... INTO OUTFILE` files).
//!
//! DataFusion's CSV reader is fast on clean files, but exports are not
//! always clean, and it stops at the first bad value without saying where.
//! This reader is used for text tables whose options ask for more than it
//! offers (see [`wanted`]):
//! - bad rows: strict (the default) fails naming file, line and column;
//!   permissive (`format.bad_rows` = `null` or `skip`) turns bad values into
//!   NULL or drops the row, counts them, and reports the first ones as
//!   warnings (`SHOW WARNINGS`) and in the table's read statistics;
//! - escapes anywhere in a field (`\|`, `\` before a newline, `\N` for NULL);
//! - Latin-1 (Windows-1252) files; byte-order marks are skipped;
//! - dates and times in MySQL `STR_TO_DATE` notation, per table and per
//!   column (`format.date_format.<column>`);
//! - files whose header lacks some table columns: those read as NULL, with
//!   a warning; columns are matched to the header by name.

pub mod convert;
pub mod datefmt;
pub mod infer;
pub mod tokenize;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource};
use datafusion::datasource::projection::{ProjectionOpener, SplitProjection};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore};

use crate::error::LakeError;
use crate::model::TableDef;
use convert::{ColumnBuf, Encoding, Rejection};
use datefmt::Format;
use tokenize::{Dialect, FieldKind, Record, TokenError, Tokenizer};

/// ER_WARN_TOO_FEW_RECORDS: a row with fewer fields than columns.
pub const ER_TOO_FEW_FIELDS: u16 = 1261;
/// ER_WARN_TOO_MANY_RECORDS: a row with more fields than columns.
pub const ER_TOO_MANY_FIELDS: u16 = 1262;
/// ER_GET_ERRNO: the file itself could not be read (corrupt compression).
pub const ER_READ: u16 = 1030;
/// ER_WARN_NULL_TO_NOTNULL-like note for a column a file does not have.
pub const ER_MISSING_COLUMN: u16 = 1263;

/// Options that only this reader understands; a text table with any of them
/// is read here. `format.escape` is among them because exporters escape
/// outside quotes too, which DataFusion's reader does not decode.
const OWN_OPTIONS: [&str; 10] = [
    "format.bad_rows",
    "format.encoding",
    "format.date_format",
    "format.time_format",
    "format.timestamp_format",
    "format.skip_rows",
    "format.reader",
    "format.escape",
    "format.trim_spaces",
    "format.schema_inference",
];

/// Whether a table's files are read by this reader.
pub fn wanted(def: &TableDef) -> bool {
    def.format == "csv"
        && def.options.keys().any(|k| {
            OWN_OPTIONS.contains(&k.as_str())
                || ["format.date_format.", "format.time_format.", "format.timestamp_format."].iter().any(|p| k.starts_with(p))
        })
        && def.options.get("format.reader").is_none_or(|r| r != "datafusion")
}

/// What to do with a value or row that does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    /// Fail the query, naming file, line and column.
    Error,
    /// Read the value as NULL (missing fields too; extra fields are dropped).
    Null,
    /// Drop the whole row.
    Skip,
}

/// Everything the reader needs to know about a table's files.
#[derive(Debug, Clone)]
pub struct TextOptions {
    pub dialect: Dialect,
    pub has_header: bool,
    /// Lines skipped before the header (or the data).
    pub skip_rows: usize,
    pub null_marker: Option<Vec<u8>>,
    pub encoding: Encoding,
    pub bad_rows: BadRows,
    pub trim: bool,
    pub compression: FileCompressionType,
    /// Rows read per file to infer a schema (None: every row).
    pub sample_rows: Option<usize>,
    date_format: Option<Format>,
    time_format: Option<Format>,
    timestamp_format: Option<Format>,
    column_formats: HashMap<String, Format>,
}

fn single_byte(key: &str, v: &str) -> Result<Option<u8>, LakeError> {
    let v = match v {
        "\\t" => "\t",
        "\\n" => "\n",
        "\\\\" => "\\",
        other => other,
    };
    match v.as_bytes() {
        [] => Ok(None),
        [b] => Ok(Some(*b)),
        _ if v.eq_ignore_ascii_case("none") => Ok(None),
        _ => Err(LakeError::InvalidDefinition(format!("option '{key}' must be a single character, not '{v}'"))),
    }
}

impl TextOptions {
    pub fn from_table(def: &TableDef) -> Result<TextOptions, LakeError> {
        let mut o = TextOptions {
            dialect: Dialect { delimiter: b',', quote: Some(b'"'), escape: None, terminator: None },
            has_header: true,
            skip_rows: 0,
            null_marker: None,
            encoding: Encoding::Utf8,
            bad_rows: BadRows::Error,
            trim: false,
            compression: FileCompressionType::UNCOMPRESSED,
            sample_rows: Some(infer::SAMPLE_ROWS),
            date_format: None,
            time_format: None,
            timestamp_format: None,
            column_formats: HashMap::new(),
        };
        let invalid = |m: String| LakeError::InvalidDefinition(m);
        let bool_of = |k: &str, v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(format!("option '{k}' must be true or false, not '{v}'"))),
        };
        let date_format = |k: &str, v: &str| Format::parse(v).map_err(|e| invalid(format!("option '{k}': {e}")));
        for (k, v) in &def.options {
            let Some(key) = k.strip_prefix("format.") else { continue };
            match key {
                "delimiter" => {
                    o.dialect.delimiter =
                        single_byte(k, v)?.ok_or_else(|| invalid(format!("option '{k}' must not be empty")))?
                }
                "quote" => o.dialect.quote = single_byte(k, v)?,
                "escape" => o.dialect.escape = single_byte(k, v)?,
                "terminator" => o.dialect.terminator = single_byte(k, v)?.filter(|b| *b != b'\n'),
                "has_header" => o.has_header = bool_of(k, v)?,
                "skip_rows" => {
                    o.skip_rows = v.parse().map_err(|_| invalid(format!("option '{k}' must be a number, not '{v}'")))?
                }
                "null_value" => o.null_marker = (!v.is_empty()).then(|| v.as_bytes().to_vec()),
                "encoding" => {
                    o.encoding = match v.to_ascii_lowercase().replace('-', "").as_str() {
                        "utf8" | "utf8mb4" | "utf8mb3" => Encoding::Utf8,
                        "latin1" | "iso88591" | "cp1252" | "windows1252" => Encoding::Latin1,
                        _ => return Err(LakeError::NotSupported(format!("encoding '{v}' (utf8mb4 or latin1)"))),
                    }
                }
                "bad_rows" => {
                    o.bad_rows = match v.to_ascii_lowercase().as_str() {
                        "error" | "strict" => BadRows::Error,
                        "null" => BadRows::Null,
                        "skip" => BadRows::Skip,
                        _ => return Err(invalid(format!("option '{k}' must be error, null or skip, not '{v}'"))),
                    }
                }
                "trim_spaces" => o.trim = bool_of(k, v)?,
                "schema_inference" => {
                    o.sample_rows = match v.to_ascii_lowercase().as_str() {
                        "sample" => Some(infer::SAMPLE_ROWS),
                        "full" => None,
                        n => Some(n.parse().map_err(|_| invalid(format!("option '{k}' must be sample, full or a number of rows"))) ?),
                    }
                }
                "compression" => {
                    o.compression = match v.to_ascii_lowercase().as_str() {
                        "gzip" | "gz" => FileCompressionType::GZIP,
                        "bzip2" | "bz2" => FileCompressionType::BZIP2,
                        "zstd" | "zst" => FileCompressionType::ZSTD,
                        "xz" => FileCompressionType::XZ,
                        "" | "none" | "uncompressed" | "auto" => FileCompressionType::UNCOMPRESSED,
                        _ => return Err(invalid(format!("option '{k}': unknown compression '{v}'"))),
                    }
                }
                "date_format" => o.date_format = Some(date_format(k, v)?),
                "time_format" => o.time_format = Some(date_format(k, v)?),
                "timestamp_format" => o.timestamp_format = Some(date_format(k, v)?),
                // Options of DataFusion's reader that mean the same here, or
                // nothing (every row may be short or span lines here).
                "reader" | "newlines_in_values" | "truncated_rows" | "double_quote" | "schema_infer_max_rec" | "null_regex" => {}
                "ignore_leading_whitespace" | "ignore_trailing_whitespace" => o.trim |= bool_of(k, v)?,
                other => {
                    let column = ["date_format.", "time_format.", "timestamp_format."]
                        .iter()
                        .find_map(|p| other.strip_prefix(p));
                    match column {
                        Some(c) => {
                            o.column_formats.insert(c.to_lowercase(), date_format(k, v)?);
                        }
                        None => return Err(invalid(format!("unknown option '{k}' for a text table"))),
                    }
                }
            }
        }
        Ok(o)
    }

    /// The date/time format a column of `t` is read with.
    fn format_for(&self, column: &str, t: &DataType) -> Option<Format> {
        if let Some(f) = self.column_formats.get(&column.to_lowercase()) {
            return Some(f.clone());
        }
        match t {
            DataType::Date32 => self.date_format.clone(),
            DataType::Time32(_) | DataType::Time64(_) => self.time_format.clone(),
            DataType::Timestamp(..) => self.timestamp_format.clone(),
            _ => None,
        }
    }
}

/// Warnings of one session's statements: bad values read as NULL, rows
/// dropped, columns missing from files. The session turns them into
/// `SHOW WARNINGS` rows after each statement.
#[derive(Debug, Default)]
pub struct ReadWarnings(Mutex<(u64, Vec<(u16, String)>)>);

/// Warnings kept per statement (all are counted).
pub const MAX_WARNINGS: usize = 64;

impl ReadWarnings {
    pub fn push(&self, code: u16, message: String) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.0 += 1;
        if w.1.len() < MAX_WARNINGS {
            w.1.push((code, message));
        }
    }

    /// How many warnings are waiting to be taken.
    pub fn count(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// The warnings since the last call, and how many there were in all.
    pub fn take(&self) -> (u64, Vec<(u16, String)>) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *w)
    }
}

/// Counts of what permissive reads let through, per table, since the
/// server started.
#[derive(Debug, Default, Clone)]
pub struct TableReadStats {
    pub bad_values: u64,
    pub skipped_rows: u64,
    pub missing_columns: u64,
    pub last_problem: Option<String>,
}

/// Read statistics of every table (shared by all sessions).
#[derive(Debug, Default)]
pub struct ReadStats(Mutex<HashMap<String, TableReadStats>>);

impl ReadStats {
    fn record(&self, table: &str, f: impl FnOnce(&mut TableReadStats)) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(table.to_string()).or_default());
    }

    pub fn snapshot(&self) -> Vec<(String, TableReadStats)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Forgets a dropped or redefined table's counts (every table of `db`
    /// when `table` is None). Keys are the tables' references (`db.table`).
    pub fn forget(&self, db: &str, table: Option<&str>) {
        use datafusion::common::TableReference;
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|key, _| {
            let r = TableReference::from(key.as_str());
            !(r.schema() == Some(db) && table.is_none_or(|t| r.table() == t))
        });
    }
}

/// Where problems found while reading go.
#[derive(Clone, Default)]
struct Sinks {
    warnings: Option<Arc<ReadWarnings>>,
    stats: Option<Arc<ReadStats>>,
    table: String,
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sinks({})", self.table)
    }
}

/// The text format of one table.
#[derive(Debug)]
pub struct TextFormat {
    options: Arc<TextOptions>,
    sinks: Sinks,
}

impl TextFormat {
    /// `table` names the table in read statistics (`db.table`).
    pub fn new(options: TextOptions, table: String, stats: Option<Arc<ReadStats>>) -> Self {
        TextFormat { options: Arc::new(options), sinks: Sinks { warnings: None, stats, table } }
    }
}

pub(crate) fn compression_name(c: &FileCompressionType) -> &'static str {
    use datafusion::common::parsers::CompressionTypeVariant as V;
    match c.get_variant() {
        V::GZIP => "gzip",
        V::BZIP2 => "bzip2",
        V::XZ => "xz",
        V::ZSTD => "zstd",
        V::UNCOMPRESSED => "uncompressed",
    }
}

fn compression_suffix(c: &FileCompressionType) -> &'static str {
    let name = compression_name(c);
    crate::provider::COMPRESSION_SUFFIXES.iter().find(|(_, codec)| *codec == name).map_or("", |(suffix, _)| suffix)
}

#[async_trait]
impl FileFormat for TextFormat {
    fn get_ext(&self) -> String {
        "csv".into()
    }

    fn get_ext_with_compression(&self, c: &FileCompressionType) -> datafusion::error::Result<String> {
        Ok(format!("csv{}", compression_suffix(c)))
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        Some(self.options.compression)
    }

    async fn infer_schema(
        &self,
        _state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> datafusion::error::Result<SchemaRef> {
        infer::infer_schema(&self.options, store, objects).await
    }

    async fn infer_stats(
        &self,
        _state: &dyn Session,
        _store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        _object: &ObjectMeta,
    ) -> datafusion::error::Result<Statistics> {
        Ok(Statistics::new_unknown(&table_schema))
    }

    async fn create_physical_plan(
        &self,
        state: &dyn Session,
        conf: FileScanConfig,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let source = conf
            .file_source
            .downcast_ref::<TextSource>()
            .ok_or_else(|| DataFusionError::Internal("text scan without a text source".into()))?;
        let mut source = source.clone();
        source.sinks.warnings = state.config().get_extension::<ReadWarnings>();
        let config = FileScanConfigBuilder::from(conf)
            .with_file_compression_type(self.options.compression)
            .with_source(Arc::new(source))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        Arc::new(TextSource {
            options: self.options.clone(),
            projection: SplitProjection::unprojected(&table_schema),
            table_schema,
            batch_size: 8192,
            metrics: ExecutionPlanMetricsSet::new(),
            sinks: self.sinks.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct TextSource {
    options: Arc<TextOptions>,
    table_schema: TableSchema,
    projection: SplitProjection,
    batch_size: usize,
    metrics: ExecutionPlanMetricsSet,
    sinks: Sinks,
}

impl FileSource for TextSource {
    fn create_file_opener(
        &self,
        object_store: Arc<dyn ObjectStore>,
        _base_config: &FileScanConfig,
        _partition: usize,
    ) -> datafusion::error::Result<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema().clone();
        let opener = Arc::new(TextOpener {
            options: self.options.clone(),
            file_schema: file_schema.clone(),
            columns: self.projection.file_indices.clone(),
            batch_size: self.batch_size,
            store: object_store,
            sinks: self.sinks.clone(),
        });
        ProjectionOpener::try_new(self.projection.clone(), opener, &file_schema)
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        let mut s = self.clone();
        s.batch_size = batch_size;
        Arc::new(s)
    }

    fn try_pushdown_projection(&self, projection: &ProjectionExprs) -> datafusion::error::Result<Option<Arc<dyn FileSource>>> {
        let mut s = self.clone();
        let merged = self.projection.source.try_merge(projection)?;
        s.projection = SplitProjection::new(self.table_schema.file_schema(), &merged);
        Ok(Some(Arc::new(s)))
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        Some(&self.projection.source)
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "text"
    }

    /// Whole files only: records may span lines.
    fn supports_repartitioning(&self) -> bool {
        false
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
        datafusion::physical_plan::apply_expression_roots(self.projection.source.iter(), f)
    }
}

struct TextOpener {
    options: Arc<TextOptions>,
    file_schema: SchemaRef,
    /// File columns to produce, in this order.
    columns: Vec<usize>,
    batch_size: usize,
    store: Arc<dyn ObjectStore>,
    sinks: Sinks,
}

impl FileOpener for TextOpener {
    fn open(&self, file: PartitionedFile) -> datafusion::error::Result<FileOpenFuture> {
        let store = self.store.clone();
        let options = self.options.clone();
        let schema = self.file_schema.clone();
        let columns = self.columns.clone();
        let batch_size = self.batch_size.max(1);
        let sinks = self.sinks.clone();
        Ok(Box::pin(async move {
            let location = file.object_meta.location.clone();
            let shown = format!("/{location}");
            let bytes = {
                use object_store::ObjectStoreExt;
                store.get(&location).await?.bytes().await?
            };
            let task = tokio::task::spawn_blocking(move || {
                let mut reader = FileReader::new(&options, &schema, &columns, &shown, sinks);
                let data = reader.decompress(bytes)?;
                reader.read_all(&data, batch_size)
            });
            let batches = task.await.map_err(|e| DataFusionError::External(Box::new(e)))??;
            Ok(futures::stream::iter(batches.into_iter().map(Ok)).boxed())
        }))
    }
}

/// Reads one file into batches.
struct FileReader<'a> {
    options: &'a TextOptions,
    schema: &'a SchemaRef,
    /// File columns produced.
    columns: &'a [usize],
    file: &'a str,
    sinks: Sinks,
    bufs: Vec<ColumnBuf>,
}

fn read_failure(code: u16, message: String) -> DataFusionError {
    DataFusionError::External(Box::new(LakeError::BadData { code, message }))
}

impl<'a> FileReader<'a> {
    fn new(options: &'a TextOptions, schema: &'a SchemaRef, columns: &'a [usize], file: &'a str, sinks: Sinks) -> Self {
        let bufs = columns
            .iter()
            .map(|&i| {
                let f = schema.field(i);
                ColumnBuf::new(f.data_type(), options.format_for(f.name(), f.data_type()), options.encoding)
            })
            .collect();
        FileReader { options, schema, columns, file, sinks, bufs }
    }

    /// A problem let through in permissive mode.
    fn warn(&self, code: u16, message: String, stat: impl FnOnce(&mut TableReadStats)) {
        if let Some(w) = &self.sinks.warnings {
            w.push(code, message.clone());
        }
        if let Some(s) = &self.sinks.stats {
            s.record(&self.sinks.table, |t| {
                stat(t);
                t.last_problem = Some(message);
            });
        }
    }

    /// The file's bytes, decompressed, without a byte-order mark. Corrupt or
    /// truncated compressed data fails in strict mode; permissive mode keeps
    /// the complete lines before the damage, with a warning.
    fn decompress<B: AsRef<[u8]> + Send + 'static>(&mut self, bytes: B) -> datafusion::error::Result<Vec<u8>> {
        let (data, damage) = decode(self.options, self.file, bytes, None, false)?;
        if let Some(message) = damage {
            if self.options.bad_rows == BadRows::Error {
                return Err(read_failure(ER_READ, message));
            }
            self.warn(ER_READ, format!("{message}; the {} complete lines before it were read", bytecount_lines(&data)), |t| {
                t.skipped_rows += 1
            });
        }
        Ok(data)
    }

    fn read_all(&mut self, data: &[u8], batch_size: usize) -> datafusion::error::Result<Vec<RecordBatch>> {
        let o = self.options;
        let mut tok = Tokenizer::new(data, o.dialect.clone());
        let mut rec = Record::default();
        let token_error = |e: TokenError, file: &str| match e {
            TokenError::UnterminatedQuote { line } => {
                format!("file '{file}', line {line}: a quoted field is not closed before the end of the file")
            }
        };
        let next = |tok: &mut Tokenizer, rec: &mut Record, this: &Self| -> datafusion::error::Result<bool> {
            match tok.next_record(rec) {
                Ok(more) => Ok(more),
                Err(e) if this.options.bad_rows == BadRows::Error => Err(read_failure(convert::ER_BAD_VALUE, token_error(e, this.file))),
                Err(e) => {
                    this.warn(convert::ER_BAD_VALUE, format!("{}; the rest of the file was skipped", token_error(e, this.file)), |t| {
                        t.skipped_rows += 1
                    });
                    Ok(false)
                }
            }
        };
        for _ in 0..o.skip_rows {
            if !next(&mut tok, &mut rec, self)? {
                return Ok(Vec::new());
            }
        }
        // Which field holds each produced column; None: the file lacks it.
        let file_width = self.schema.fields().len();
        let mut width = file_width;
        let mut source: Vec<Option<usize>> = self.columns.to_vec().into_iter().map(Some).collect();
        if o.has_header {
            if !next(&mut tok, &mut rec, self)? {
                return Ok(Vec::new());
            }
            let names: Vec<String> = (0..rec.len())
                .map(|i| String::from_utf8_lossy(rec.field(i).0).trim().trim_start_matches('\u{feff}').to_lowercase())
                .collect();
            let position = |name: &str| names.iter().position(|n| n == &name.to_lowercase());
            let by_name = self.schema.fields().iter().any(|f| position(f.name()).is_some());
            if by_name {
                width = names.len();
                for (k, &c) in self.columns.iter().enumerate() {
                    let name = self.schema.field(c).name();
                    source[k] = position(name);
                }
                for f in self.schema.fields().iter().filter(|f| position(f.name()).is_none()) {
                    self.warn(
                        ER_MISSING_COLUMN,
                        format!("file '{}' has no column '{}'; it reads as NULL", self.file, f.name()),
                        |t| t.missing_columns += 1,
                    );
                }
            }
        }
        let mut batches = Vec::new();
        let mut rows = 0usize;
        while next(&mut tok, &mut rec, self)? {
            if self.read_row(&rec, &source, width)? {
                rows += 1;
            }
            if rows == batch_size {
                batches.push(self.finish_batch(rows)?);
                rows = 0;
            }
        }
        if rows > 0 || batches.is_empty() {
            batches.push(self.finish_batch(rows)?);
        }
        Ok(batches)
    }

    fn finish_batch(&mut self, rows: usize) -> datafusion::error::Result<RecordBatch> {
        let schema = Arc::new(self.schema.project(self.columns)?);
        let arrays = self.bufs.iter_mut().map(|b| b.finish()).collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(schema, arrays, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
    }

    /// Appends one record; false when it was skipped.
    fn read_row(&mut self, rec: &Record, source: &[Option<usize>], width: usize) -> datafusion::error::Result<bool> {
        let o = self.options;
        let line = rec.line;
        if rec.len() != width {
            let (code, what) = if rec.len() < width {
                (ER_TOO_FEW_FIELDS, "missing fields read as NULL")
            } else {
                (ER_TOO_MANY_FIELDS, "extra fields ignored")
            };
            let message = format!("file '{}', line {line}: the row has {} fields, the table {width}", self.file, rec.len());
            match o.bad_rows {
                BadRows::Error => return Err(read_failure(code, message)),
                BadRows::Skip => {
                    self.warn(code, format!("{message}; row skipped"), |t| t.skipped_rows += 1);
                    return Ok(false);
                }
                BadRows::Null => self.warn(code, format!("{message}; {what}"), |t| t.bad_values += 1),
            }
        }
        let start = self.bufs.first().map_or(0, ColumnBuf::len);
        for k in 0..self.bufs.len() {
            let Some(i) = source[k].filter(|&i| i < rec.len()) else {
                self.bufs[k].push_null();
                continue;
            };
            let (raw, kind) = rec.field(i);
            let buf = &mut self.bufs[k];
            let raw = if o.trim || !buf.is_text() { raw.trim_ascii() } else { raw };
            let is_null = match kind {
                FieldKind::EscapedNull => true,
                FieldKind::Quoted => !buf.is_text() && raw.is_empty(),
                FieldKind::Plain => match &o.null_marker {
                    Some(m) => raw == m.as_slice() || (raw.is_empty() && !buf.is_text()),
                    None => raw.is_empty(),
                },
            };
            if is_null {
                buf.push_null();
                continue;
            }
            let lossy = o.bad_rows != BadRows::Error;
            if let Err(Rejection { code, reason }) = buf.push(raw, lossy) {
                let column = self.schema.field(self.columns[k]).name().clone();
                let message = format!("file '{}', line {line}, column '{column}': {reason}", self.file);
                match o.bad_rows {
                    BadRows::Error => return Err(read_failure(code, message)),
                    BadRows::Null => {
                        self.warn(code, format!("{message}; read as NULL"), |t| t.bad_values += 1);
                        self.bufs[k].push_null();
                    }
                    BadRows::Skip => {
                        self.warn(code, format!("{message}; row skipped"), |t| t.skipped_rows += 1);
                        for b in &mut self.bufs {
                            b.truncate(start);
                        }
                        return Ok(false);
                    }
                }
            } else if lossy && buf.is_text() && o.encoding == Encoding::Utf8 && std::str::from_utf8(raw).is_err() {
                let column = self.schema.field(self.columns[k]).name().clone();
                self.warn(
                    convert::ER_BAD_STRING,
                    format!("file '{}', line {line}, column '{column}': invalid UTF-8 replaced by U+FFFD", self.file),
                    |t| t.bad_values += 1,
                );
            }
        }
        Ok(true)
    }
}

fn bytecount_lines(data: &[u8]) -> usize {
    data.iter().filter(|&&b| b == b'\n').count()
}

/// A file's bytes (or their first `limit` after decompression; `prefix`
/// when `bytes` are only the start of an uncompressed file) as text: a
/// UTF-8 byte-order mark removed, and, when the data stops early, only whole
/// lines. Damaged compressed data gives the lines before the damage and a
/// message naming `file`.
pub(crate) fn decode<B: AsRef<[u8]> + Send + 'static>(
    options: &TextOptions,
    file: &str,
    bytes: B,
    limit: Option<u64>,
    prefix: bool,
) -> datafusion::error::Result<(Vec<u8>, Option<String>)> {
    use std::io::Read;
    let c = options.compression;
    let mut data = Vec::new();
    let mut damage = None;
    let partial = if c.is_compressed() {
        let reader = c.convert_read(std::io::Cursor::new(bytes))?;
        let result = match limit {
            Some(n) => reader.take(n).read_to_end(&mut data),
            None => {
                let mut reader = reader;
                reader.read_to_end(&mut data)
            }
        };
        match result {
            Err(e) => {
                damage = Some(format!(
                    "file '{file}': the {} data is corrupt or truncated after {} bytes ({e})",
                    compression_name(&c),
                    data.len()
                ));
                true
            }
            Ok(_) => limit.is_some_and(|n| data.len() as u64 >= n),
        }
    } else {
        data = bytes.as_ref().to_vec();
        prefix
    };
    if partial {
        let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        data.truncate(keep);
    }
    if options.encoding == Encoding::Utf8 && data.starts_with(b"\xEF\xBB\xBF") {
        data.drain(..3);
    }
    Ok((data, damage))
}
