//! Low-cardinality text of Parquet files read as dictionaries.
//!
//! Parquet writers store a text column with few distinct values as a
//! dictionary page and, per row, a small code into it. DataFusion reads
//! such a column as plain strings (views): every row's text is rebuilt,
//! then compared, hashed or grouped again row by row. Read as an Arrow
//! dictionary instead, the codes are copied and the dictionary page is
//! shared by the batches of its row group, so a filter compares each
//! distinct value once and the grouping by dictionary codes
//! ([`crate::dict_group`]) applies in place as it does on the loaded copies
//! (TPC-H Q1's `GROUP BY l_returnflag, l_linestatus`).
//!
//! Two steps:
//! * When a Parquet table is created, [`dictionary_columns`] picks the text
//!   columns that every sampled footer stores dictionary-encoded in all
//!   their data pages, with a dictionary small against the row group (at
//!   least [`ROWS_PER_DICTIONARY_BYTE`] rows per byte of dictionary page):
//!   those are declared `Dictionary(Int32, Utf8)` in the stored schema.
//!   A column whose writer fell back to plain pages somewhere, or with many
//!   distinct values (names, comments), stays text.
//! * At planning, [`DictionaryReads`] gives each file of a scan of such a
//!   table the Arrow schema its reader should produce (the file's own, with
//!   those columns as dictionaries), from the footer DataFusion cached while
//!   it gathered the table's statistics. A file whose footer is not cached
//!   is read as text and cast, with the same answers.
//!
//! The reader keeps a row group's dictionary when its pages are
//! dictionary-encoded and builds one when a later file stores plain pages,
//! so a column chosen from a sample stays correct on files written
//! otherwise. `LAKEWAVE_PARQUET_DICTIONARIES=off` in the server's
//! environment keeps new tables' text columns as text, for comparisons.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::basic::{Encoding, PageType};
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Fewest rows of a row group per byte of its (compressed) dictionary page
/// for a column to be read as a dictionary: a few hundred distinct values
/// in a row group of a million rows pass, a column of mostly distinct
/// values in a small table does not.
pub const ROWS_PER_DICTIONARY_BYTE: i64 = 2;

/// The type of the text columns read as dictionaries, the same as the
/// loaded copies' dictionaries.
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn is_text(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether all data pages of `chunk` are dictionary-encoded, with a
/// dictionary page small against the row group's `rows`.
fn small_dictionary(chunk: &ColumnChunkMetaData, rows: i64) -> bool {
    let Some(dictionary_at) = chunk.dictionary_page_offset() else {
        return false;
    };
    let dictionary_bytes = chunk.data_page_offset() - dictionary_at;
    if dictionary_bytes <= 0 || dictionary_bytes.saturating_mul(ROWS_PER_DICTIONARY_BYTE) > rows {
        return false;
    }
    let coded = |e: Encoding| matches!(e, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY);
    if let Some(mask) = chunk.page_encoding_stats_mask() {
        return mask.encodings().all(coded);
    }
    // Without page statistics a writer's fallback to plain pages cannot be
    // told from a plain dictionary page: not chosen.
    chunk.page_encoding_stats().is_some_and(|stats| {
        stats
            .iter()
            .filter(|s| matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2))
            .all(|s| coded(s.encoding))
    })
}

/// Names of the top-level text columns that every row group of every
/// footer stores with a small dictionary (see the module's doc).
pub fn dictionary_columns(footers: &[Arc<ParquetMetaData>], schema: &Schema) -> Vec<String> {
    if footers.is_empty() || crate::switched_off("LAKEWAVE_PARQUET_DICTIONARIES") {
        return vec![];
    }
    schema
        .fields()
        .iter()
        .filter(|f| is_text(f.data_type()))
        .filter(|f| {
            let mut row_groups = 0;
            let all = footers.iter().all(|footer| {
                let columns = footer.file_metadata().schema_descr();
                let Some(i) = (0..columns.num_columns())
                    .find(|&i| columns.column(i).path().parts() == [f.name().as_str()])
                else {
                    return false;
                };
                footer.row_groups().iter().filter(|g| g.num_rows() > 0).all(|g| {
                    row_groups += 1;
                    small_dictionary(g.column(i), g.num_rows())
                })
            });
            all && row_groups > 0
        })
        .map(|f| f.name().clone())
        .collect()
}

/// A sampled file of a table: where it is and its footer.
pub struct SampledFile {
    pub store: Arc<dyn object_store::ObjectStore>,
    pub location: object_store::path::Path,
    pub footer: Arc<ParquetMetaData>,
}

/// Most dictionary pages read per column to estimate its distinct values.
pub const DISTINCT_SAMPLE_PAGES: usize = 8;

/// Estimated numbers of distinct values of the dictionary columns
/// `columns`, from the dictionary pages of up to
/// [`DISTINCT_SAMPLE_PAGES`] row groups of the sampled files (the first
/// row group of each file, then the next ones): the number of distinct
/// values over those pages. Kept only when it says something about the
/// whole table: every row group of the table was read (`whole`: the files
/// are all the table's), or the pages hold mostly the same values (their
/// union at most a quarter above the largest page), as a code, a status or
/// a type column does. Values clustered by row group (a date per file)
/// give none. A page that cannot be read or decoded gives none.
pub async fn distinct_counts(files: &[SampledFile], columns: &[String], whole: bool) -> Vec<Option<u64>> {
    let mut counts = Vec::with_capacity(columns.len());
    for name in columns {
        counts.push(distinct_count(files, name, whole).await);
    }
    counts
}

async fn distinct_count(files: &[SampledFile], name: &str, whole: bool) -> Option<u64> {
    let chunks = sampled_chunks(files, name)?;
    let total = chunks.len();
    let mut reads = Vec::with_capacity(DISTINCT_SAMPLE_PAGES);
    for &(g, f, c) in chunks.iter().take(DISTINCT_SAMPLE_PAGES) {
        let file = &files[f];
        reads.push(dictionary_values(file, file.footer.row_group(g).column(c)));
    }
    let read = reads.len();
    let pages = futures::future::join_all(reads).await;
    let mut union = std::collections::HashSet::new();
    let mut largest = 0;
    for page in pages {
        let page = page?;
        largest = largest.max(page.len());
        union.extend(page);
    }
    let n = union.len();
    let complete = whole && read == total;
    (n > 0 && (complete || n as f64 <= largest as f64 * 1.25)).then_some(n as u64)
}

/// (row group, file, column) of the chunks of column `name` in every
/// non-empty row group of `files`, the first row groups of all files before
/// the second ones; None when a file lacks the column.
fn sampled_chunks(files: &[SampledFile], name: &str) -> Option<Vec<(usize, usize, usize)>> {
    let mut chunks = Vec::new();
    for (f, file) in files.iter().enumerate() {
        let columns = file.footer.file_metadata().schema_descr();
        let column = (0..columns.num_columns()).find(|&i| columns.column(i).path().parts() == [name])?;
        for (g, group) in file.footer.row_groups().iter().enumerate() {
            if group.num_rows() > 0 {
                chunks.push((g, f, column));
            }
        }
    }
    chunks.sort_unstable();
    Some(chunks)
}

/// The values of the dictionary page of a text column chunk, read from its
/// file; None when the chunk has no dictionary, or its page cannot be read
/// or decoded.
async fn dictionary_values(file: &SampledFile, chunk: &ColumnChunkMetaData) -> Option<Vec<Bytes>> {
    use datafusion::parquet::basic::Type;
    use datafusion::parquet::column::page::{Page, PageReader};
    use datafusion::parquet::file::serialized_reader::SerializedPageReader;
    use object_store::ObjectStoreExt;
    if chunk.column_type() != Type::BYTE_ARRAY {
        return None;
    }
    let start = u64::try_from(chunk.dictionary_page_offset()?).ok()?;
    let end = u64::try_from(chunk.data_page_offset()).ok()?;
    if end <= start {
        return None;
    }
    let bytes = file.store.get_range(&file.location, start..end).await.ok()?;
    let window = Arc::new(Window { start, bytes });
    // The decoders are not trusted with a damaged file: a panic is no
    // estimate, as an error is.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut pages = SerializedPageReader::new(window, chunk, 0, None).ok()?;
        match pages.get_next_page().ok()?? {
            Page::DictionaryPage { buf, num_values, .. } => plain_byte_arrays(&buf, num_values as usize),
            _ => None,
        }
    }))
    .ok()
    .flatten()
}

/// `count` values PLAIN-encoded as byte arrays (each a little-endian u32
/// length, then the bytes), the encoding of dictionary pages.
fn plain_byte_arrays(buf: &Bytes, count: usize) -> Option<Vec<Bytes>> {
    let mut values = Vec::with_capacity(count.min(buf.len() / 4));
    let mut at = 0usize;
    for _ in 0..count {
        let length = u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        let end = at.checked_add(length).filter(|&e| e <= buf.len())?;
        values.push(buf.slice(at..end));
        at = end;
    }
    Some(values)
}

/// A range of a file held in memory, read by the page reader at the
/// file's offsets.
struct Window {
    start: u64,
    bytes: Bytes,
}

impl Window {
    fn slice(&self, at: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        use datafusion::parquet::errors::ParquetError;
        let from = at.checked_sub(self.start).map(|f| f as usize).filter(|&f| f <= self.bytes.len());
        match from {
            Some(from) if length <= self.bytes.len() - from => Ok(self.bytes.slice(from..from + length)),
            _ => Err(ParquetError::EOF(format!("bytes {at}+{length} are beyond the dictionary page read"))),
        }
    }
}

impl datafusion::parquet::file::reader::Length for Window {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl datafusion::parquet::file::reader::ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        use bytes::Buf;
        use datafusion::parquet::file::reader::Length;
        let rest = self.len().saturating_sub(start) as usize;
        Ok(self.slice(start, rest)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        self.slice(start, length)
    }
}

/// Sets, on the files of Parquet scans whose table declares dictionary
/// columns, the Arrow schema that reads those columns as dictionaries.
#[derive(Debug)]
pub struct DictionaryReads {
    footers: Arc<FileMetadataCache>,
}

impl DictionaryReads {
    pub fn new(footers: Arc<FileMetadataCache>) -> Self {
        Self { footers }
    }

    /// `scan` with each file whose footer is cached given the Arrow schema
    /// that reads the table's dictionary columns as such; `None` when no
    /// file changes.
    fn with_file_schemas(&self, scan: &FileScanConfig) -> Option<FileScanConfig> {
        let table = scan.file_schema();
        let wanted: Vec<&str> = table
            .fields()
            .iter()
            .filter(|f| f.data_type() == &dictionary_type())
            .map(|f| f.name().as_str())
            .collect();
        if wanted.is_empty() {
            return None;
        }
        // A table's files mostly share one Parquet schema: the Arrow schema
        // is worked out once per distinct one, not for every file (nor for
        // every row group of a split file) each time a query is planned.
        let mut known: Vec<(Arc<ParquetMetaData>, Option<SchemaRef>)> = Vec::new();
        let mut changed = false;
        let groups: Vec<FileGroup> = scan
            .file_groups
            .iter()
            .map(|group| {
                let files: Vec<PartitionedFile> = group
                    .iter()
                    .map(|file| {
                        let footer = if file.arrow_schema.is_some() {
                            None
                        } else {
                            crate::scan_split::cached_footer(self.footers.as_ref(), file)
                        };
                        let Some(footer) = footer else { return file.clone() };
                        let schema = match known.iter().find(|(seen, _)| Arc::ptr_eq(seen, &footer) || same_schema(seen, &footer)) {
                            Some((_, schema)) => schema.clone(),
                            None => {
                                let schema = dictionary_schema(&footer, &wanted);
                                known.push((footer, schema.clone()));
                                schema
                            }
                        };
                        match schema {
                            Some(s) => {
                                changed = true;
                                file.clone().with_arrow_schema(s)
                            }
                            None => file.clone(),
                        }
                    })
                    .collect();
                let mut g = FileGroup::new(files);
                if let Some(stats) = group.file_statistics(None) {
                    g = g.with_statistics(Arc::new(stats.clone()));
                }
                g
            })
            .collect();
        changed.then(|| FileScanConfigBuilder::from(scan.clone()).with_file_groups(groups).build())
    }
}

/// Whether two footers give the same Arrow schema: the same Parquet schema
/// and key-value metadata (which may hold the writer's Arrow schema).
fn same_schema(a: &ParquetMetaData, b: &ParquetMetaData) -> bool {
    let (a, b) = (a.file_metadata(), b.file_metadata());
    a.schema_descr() == b.schema_descr() && a.key_value_metadata() == b.key_value_metadata()
}

/// The Arrow schema a file with `footer` should be read with: the footer's,
/// with the columns in `wanted` as dictionaries; `None` when no column
/// changes.
fn dictionary_schema(footer: &ParquetMetaData, wanted: &[&str]) -> Option<SchemaRef> {
    let meta = footer.file_metadata();
    let schema = parquet_to_arrow_schema(meta.schema_descr(), meta.key_value_metadata()).ok()?;
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if wanted.contains(&f.name().as_str()) && is_text(f.data_type()) {
                changed = true;
                f.as_ref().clone().with_data_type(dictionary_type())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    changed.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

impl PhysicalOptimizerRule for DictionaryReads {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        crate::scan_split::rewrite_parquet_scans(plan, |scan| self.with_file_schemas(scan))
    }

    fn name(&self) -> &str {
        "DictionaryReads"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Puts the rule last, before DataFusion's sanity check: it changes how
/// files are decoded, not what a scan produces.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>, footers: Arc<FileMetadataCache>) {
    crate::insert_before_sanity_check(rules, Arc::new(DictionaryReads::new(footers)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
    use datafusion::execution::runtime_env::RuntimeEnv;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
    use datafusion::prelude::{SessionConfig, SessionContext};

    const ROWS: i64 = 20_000;

    /// `mode` has 4 values, `name` is unique, `code` has 3,000 values in a
    /// file whose dictionary pages are limited to 1 KiB (the writer falls
    /// back to plain pages).
    fn write(path: &std::path::Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("mode", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("code", DataType::Utf8, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(8_000))
            .set_column_dictionary_page_size_limit("code".into(), 1024)
            .build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), Some(props)).unwrap();
        let modes = ["AIR", "MAIL", "SHIP", "TRUCK"];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..ROWS)),
                Arc::new(StringArray::from_iter((0..ROWS).map(|v| (v % 11 != 0).then(|| modes[(v % 4) as usize])))),
                Arc::new(StringArray::from_iter_values((0..ROWS).map(|v| format!("name#{v:09}")))),
                Arc::new(StringArray::from_iter_values((0..ROWS).map(|v| format!("code-{:05}", v % 3000)))),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// A context with the rule, over `dir` as table `t` with `dictionaries`
    /// declared as such; footers cached when `cached`.
    async fn context(dir: &std::path::Path, dictionaries: &[String], cached: bool) -> SessionContext {
        let runtime = Arc::new(RuntimeEnv::default());
        let mut rules = PhysicalOptimizer::new().rules;
        insert_rule(&mut rules, runtime.cache_manager.get_file_metadata_cache());
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().execution.collect_statistics = cached;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let fields: Vec<Field> = vec![
            Field::new("v", DataType::Int64, false),
            Field::new("mode", DataType::Utf8View, true),
            Field::new("name", DataType::Utf8View, false),
            Field::new("code", DataType::Utf8View, false),
        ]
        .into_iter()
        .map(|f| if dictionaries.contains(f.name()) { f.with_data_type(dictionary_type()) } else { f })
        .collect();
        let url = ListingTableUrl::parse(format!("{}/", dir.display())).unwrap();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(Arc::new(Schema::new(fields)));
        let table = ListingTable::try_new(config).unwrap();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx
    }

    /// Rows of `sql` as text, and whether a scan's files carry a schema
    /// reading `mode` as a dictionary.
    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<String>, bool) {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let batches = datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let mut read_as_dictionary = false;
        plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<DataSourceExec>().and_then(|e| e.data_source().downcast_ref::<FileScanConfig>()) {
                read_as_dictionary |= scan.file_groups.iter().flat_map(FileGroup::iter).any(|f| {
                    f.arrow_schema.as_ref().is_some_and(|s| s.field_with_name("mode").unwrap().data_type() == &dictionary_type())
                });
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        (text.lines().map(str::to_string).collect(), read_as_dictionary)
    }

    #[tokio::test]
    async fn few_valued_text_is_chosen_and_read_as_dictionaries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.parquet");
        write(&file);

        // Only the column of four values passes: `name` has a dictionary as
        // large as its rows, `code` fell back to plain pages.
        use object_store::ObjectStoreExt;
        let store = object_store::local::LocalFileSystem::new();
        let meta = store.head(&object_store::path::Path::from_filesystem_path(&file).unwrap()).await.unwrap();
        let footer = DFParquetMetadata::new(&store, &meta).fetch_metadata().await.unwrap();
        let schema = Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("mode", DataType::Utf8View, true),
            Field::new("name", DataType::Utf8View, false),
            Field::new("code", DataType::Utf8View, false),
        ]);
        assert_eq!(dictionary_columns(&[footer], &schema), vec!["mode".to_string()]);

        let queries = [
            "SELECT mode, count(*), sum(v) FROM t GROUP BY mode ORDER BY mode",
            "SELECT count(*), sum(v) FROM t WHERE mode IN ('MAIL', 'SHIP') AND code < 'code-01000'",
            "SELECT count(*) FROM t WHERE mode LIKE 'T%' OR mode IS NULL",
            "SELECT mode, code, count(*) FROM t WHERE v % 7 = 0 GROUP BY mode, code ORDER BY count(*) DESC, mode, code LIMIT 5",
        ];
        let text = context(dir.path(), &[], true).await;
        let wanted = ["mode".to_string(), "code".to_string()];
        let dictionaries = context(dir.path(), &wanted, true).await;
        for sql in queries {
            let (expected, _) = run(&text, sql).await;
            let (got, read_as_dictionary) = run(&dictionaries, sql).await;
            assert_eq!(got, expected, "{sql}");
            assert!(read_as_dictionary, "{sql}: the footer is cached, mode is read as a dictionary");
            // Without the footer (a new context that does not gather
            // statistics) the file is read as text and cast.
            let (got, read_as_dictionary) = run(&context(dir.path(), &wanted, false).await, sql).await;
            assert_eq!(got, expected, "{sql}");
            assert!(!read_as_dictionary, "{sql}");
        }
        // The scan hands dictionaries to the plan, the file's plain pages
        // (`code`) included.
        let batches = dictionaries.sql("SELECT mode, code FROM t").await.unwrap().collect().await.unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), ROWS as usize);
        assert!(batches.iter().all(|b| b.column(0).data_type() == &dictionary_type() && b.column(1).data_type() == &dictionary_type()));
        let nulls: usize = batches.iter().map(|b| b.column(0).null_count()).sum();
        assert_eq!(nulls, (0..ROWS).filter(|v| v % 11 == 0).count());
        let count = dictionaries.sql("SELECT count(*) FROM t WHERE mode = 'AIR'").await.unwrap().collect().await.unwrap();
        assert_eq!(count[0].column(0).as_primitive::<Int64Type>().value(0), (0..ROWS).filter(|v| v % 11 != 0 && v % 4 == 0).count() as i64);
    }
}
