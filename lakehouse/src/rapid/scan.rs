//! The DataFusion provider over a loaded table: one immutable version,
//! chunks skipped by their min/max statistics, the rest spread over the
//! session's partitions. While a query runs, the partitions take chunks
//! from one shared queue, so a partition that is ahead (its rows filtered
//! more, or its share of the work downstream lighter) takes over chunks
//! planned for another instead of leaving its core idle at the end.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt64Array};
use datafusion::arrow::compute::{BatchCoalescer, and, cast};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ColumnStatistics, DFSchema, Statistics, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::source::{DataSource, DataSourceExec, OpenArgs};
use datafusion::common::SharedResult;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::utils::{conjunction as physical_conjunction, split_conjunction};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::filter_pushdown::{FilterPushdownPropagation, PushedDown};
use datafusion::physical_plan::projection::{all_alias_free_columns, new_projections_for_columns};
use datafusion::physical_plan::test::exec::StatisticsExec;
use datafusion::physical_plan::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan, Partitioning};
use datafusion::scalar::ScalarValue;

use super::filter::{self, Conjunct};
use crate::key_bitmap::{KeyBitmap, ScanKeyTests};
use super::{Chunk, RapidTable, TableData};

#[derive(Debug)]
pub struct RapidScanTable {
    table: Arc<RapidTable>,
    data: Arc<TableData>,
}

impl RapidScanTable {
    pub fn new(table: Arc<RapidTable>, data: Arc<TableData>) -> Self {
        Self { table, data }
    }

    /// Which version of the rows this scans (the plan cache's identity of
    /// the table: equal while the same version is alive).
    pub fn version_identity(&self) -> usize {
        Arc::as_ptr(&self.data) as usize
    }
}

struct ChunkStatistics<'a> {
    schema: &'a SchemaRef,
    chunks: &'a [Chunk],
}

impl ChunkStatistics<'_> {
    fn bound(&self, column: &Column, pick: impl Fn(&super::ColumnStats) -> Option<ScalarValue>) -> Option<ArrayRef> {
        let idx = self.schema.index_of(&column.name).ok()?;
        let values = self.chunks.iter().map(|c| pick(c.stats.get(idx)?)).collect::<Option<Vec<_>>>()?;
        let array = ScalarValue::iter_to_array(values).ok()?;
        let dt = self.schema.field(idx).data_type();
        if array.data_type() == dt { Some(array) } else { cast(&array, dt).ok() }
    }
}

impl PruningStatistics for ChunkStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, |s| s.min.clone())
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, |s| s.max.clone())
    }

    fn num_containers(&self) -> usize {
        self.chunks.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let idx = self.schema.index_of(&column.name).ok()?;
        let counts: Option<Vec<u64>> = self.chunks.iter().map(|c| c.stats.get(idx).map(|s| s.nulls)).collect();
        Some(Arc::new(UInt64Array::from(counts?)))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(self.chunks.iter().map(|c| c.batch.num_rows() as u64))))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

#[async_trait]
impl TableProvider for RapidScanTable {
    fn schema(&self) -> SchemaRef {
        self.data.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        let mut stats = Statistics::new_unknown(&self.data.schema);
        stats.num_rows = Precision::Exact(self.data.rows() as usize);
        stats.total_byte_size = Precision::Inexact(self.data.size_bytes as usize);
        Some(stats)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.table.note_query();
        let schema = self.data.schema.clone();
        let keep = match conjunction(filters.iter().cloned()) {
            Some(predicate) => {
                let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
                let physical = state.create_physical_expr(predicate, &df_schema)?;
                let stats = ChunkStatistics { schema: &schema, chunks: &self.data.chunks };
                // Pruning is an optimisation: any trouble means read all.
                PruningPredicateBuilder::new()
                    .with_file_schema(schema.clone())
                    .build(physical)
                    .and_then(|p| p.prune(&stats).ok())
                    .unwrap_or_else(|| vec![true; self.data.chunks.len()])
            }
            None => vec![true; self.data.chunks.len()],
        };
        let n = state.config().target_partitions().max(1);
        let (partitions, base) = self.data.scans.get_or_plan(n, keep, |keep| share_out(&self.data.chunks, keep, n));
        let source = RapidSource::over(schema, partitions, base, projection.cloned(), limit)?;
        Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
    }
}

/// The chunks `keep` picks shared out over `n` partitions: each chunk to
/// the partition with the fewest rows so far.
fn share_out(chunks: &[Chunk], keep: &[bool], n: usize) -> Vec<Vec<Chunk>> {
    let mut partitions: Vec<Vec<Chunk>> = vec![Vec::new(); n];
    let mut sizes = vec![0usize; n];
    for (chunk, _) in chunks.iter().zip(keep).filter(|(_, k)| **k) {
        let rows = chunk.live_rows();
        if rows == 0 {
            continue;
        }
        let (i, _) = sizes.iter().enumerate().min_by_key(|(_, s)| **s).unwrap_or((0, &0));
        sizes[i] += rows;
        partitions[i].push(chunk.clone());
    }
    partitions.retain(|p| !p.is_empty());
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    partitions
}

/// The last few ways a table version's chunks were shared out over
/// partitions, with their statistics once worked out: a version never
/// changes, and planning a short query over loaded tables otherwise spent
/// a tenth of its time sharing out chunks and summing their statistics
/// again, scan by scan.
#[derive(Debug, Default)]
pub struct ScanPlans(Mutex<Vec<ScanPlan>>);

/// A copy starts empty: whoever copies a version does so to change it.
impl Clone for ScanPlans {
    fn clone(&self) -> Self {
        Self::default()
    }
}

#[derive(Debug)]
struct ScanPlan {
    partitions: usize,
    keep: Vec<bool>,
    chunks: Arc<Vec<Vec<Chunk>>>,
    statistics: Arc<OnceLock<Vec<Statistics>>>,
}

impl ScanPlans {
    const KEPT: usize = 8;

    fn get_or_plan(
        &self,
        partitions: usize,
        keep: Vec<bool>,
        plan: impl FnOnce(&[bool]) -> Vec<Vec<Chunk>>,
    ) -> (Arc<Vec<Vec<Chunk>>>, Arc<OnceLock<Vec<Statistics>>>) {
        let mut plans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = plans.iter().position(|p| p.partitions == partitions && p.keep == keep) {
            // Most recently used last.
            let found = plans.remove(i);
            let out = (Arc::clone(&found.chunks), Arc::clone(&found.statistics));
            plans.push(found);
            return out;
        }
        let chunks = Arc::new(plan(&keep));
        let found = ScanPlan { partitions, keep, chunks, statistics: Arc::default() };
        let out = (Arc::clone(&found.chunks), Arc::clone(&found.statistics));
        if plans.len() >= Self::KEPT {
            plans.remove(0);
        }
        plans.push(found);
        out
    }
}

/// Per partition, then for all: statistics of a scan's projected columns.
type ScanStatistics = (Vec<Arc<Statistics>>, Arc<Statistics>);

/// The scan of a loaded table's chunks, partition by partition. Rows that
/// change capture hid are dropped as each chunk is read (projected columns
/// only). The partitions' statistics come from the chunks': exact row
/// counts, and column bounds (inexact: a chunk's bounds may come from rows
/// hidden since) so the planner can size joins and filters.
#[derive(Debug, Clone)]
pub struct RapidSource {
    schema: SchemaRef,
    projected_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    partitions: Arc<Vec<Vec<Chunk>>>,
    /// Per partition, the statistics of every column of its chunks, worked
    /// out once and shared by every rebuild of the scan over the same
    /// partitions (planning rebuilds it for projections, filters, limits).
    base: Arc<OnceLock<Vec<Statistics>>>,
    /// Per partition, the statistics of every column after `predicate`:
    /// shared by the rebuilds that keep the predicate (projections,
    /// limits), worked out when first asked for.
    filtered: Arc<OnceLock<SharedResult<Vec<Statistics>>>>,
    fetch: Option<usize>,
    /// Per partition, then for all: statistics of the projected columns,
    /// worked out when first asked for (most rebuilds during planning are
    /// never asked).
    statistics: Arc<OnceLock<SharedResult<ScanStatistics>>>,
    /// Filters the scan evaluates itself (see [`super::filter`]), over the
    /// table's columns; and the planner's default selectivity, for the
    /// statistics of a filtered scan.
    predicate: Arc<Vec<Conjunct>>,
    default_selectivity: u8,
    /// Rows produced per partition (EXPLAIN ANALYZE, and a running query's
    /// progress).
    metrics: ExecutionPlanMetricsSet,
    /// The join-key bitmaps the runtime filter above hands down, tested on
    /// the stored columns before they are widened. Never carried over to a
    /// rebuilt scan: the tests name this scan's output columns.
    key_tests: Option<Arc<ScanKeyTests>>,
}

impl RapidSource {
    /// A scan of `partitions` (whose unfiltered statistics are `base`)
    /// without filters.
    fn over(
        schema: SchemaRef,
        partitions: Arc<Vec<Vec<Chunk>>>,
        base: Arc<OnceLock<Vec<Statistics>>>,
        projection: Option<Vec<usize>>,
        fetch: Option<usize>,
    ) -> Result<Self> {
        let projected_schema = project_schema(&schema, projection.as_ref())?;
        Ok(Self {
            schema,
            projected_schema,
            projection,
            partitions,
            base,
            filtered: Arc::default(),
            fetch,
            statistics: Arc::default(),
            predicate: Arc::new(Vec::new()),
            default_selectivity: 20,
            metrics: ExecutionPlanMetricsSet::new(),
            key_tests: None,
        })
    }

    /// `scan` (a loaded table's) rebuilt to test the key bitmaps handed to
    /// `tests` on its stored columns; None for other plans, and for a scan
    /// with a limit (its first rows, not its first rows that join).
    pub(crate) fn testing_keys(scan: &Arc<dyn ExecutionPlan>, tests: Arc<ScanKeyTests>) -> Option<Arc<dyn ExecutionPlan>> {
        let exec = scan.downcast_ref::<DataSourceExec>()?;
        let source = exec.data_source().downcast_ref::<RapidSource>().filter(|s| s.fetch.is_none())?;
        let rebuilt = Self { key_tests: Some(tests), ..source.rebuilt(source.projection.clone(), None, None).ok()? };
        Some(Arc::new(exec.clone().with_data_source(Arc::new(rebuilt))))
    }

    /// This scan with other columns, limit or filters; the statistics
    /// worked out so far are kept where they still apply.
    fn rebuilt(&self, projection: Option<Vec<usize>>, fetch: Option<usize>, predicate: Option<(Arc<Vec<Conjunct>>, u8)>) -> Result<Self> {
        let projected_schema = project_schema(&self.schema, projection.as_ref())?;
        let same_columns = projection == self.projection;
        let (predicate, default_selectivity, filtered, same_filter) = match predicate {
            Some((p, d)) => (p, d, Arc::default(), false),
            None => (Arc::clone(&self.predicate), self.default_selectivity, Arc::clone(&self.filtered), true),
        };
        // A limit changes the statistics only as they are reported.
        let statistics = if same_columns && same_filter { Arc::clone(&self.statistics) } else { Arc::default() };
        Ok(Self {
            schema: self.schema.clone(),
            projected_schema,
            projection,
            partitions: Arc::clone(&self.partitions),
            base: Arc::clone(&self.base),
            filtered,
            fetch,
            statistics,
            predicate,
            default_selectivity,
            metrics: ExecutionPlanMetricsSet::new(),
            key_tests: None,
        })
    }

    /// The statistics of the projected columns, per partition and for all.
    fn scan_statistics(&self) -> Result<&ScanStatistics> {
        let computed = self.statistics.get_or_init(|| {
            let all = self.base.get_or_init(|| self.partitions.iter().map(|p| chunk_statistics(&self.schema, p)).collect());
            let each = if self.predicate.is_empty() {
                all
            } else {
                let filtered = self.filtered.get_or_init(|| {
                    let conditions: Vec<Arc<dyn PhysicalExpr>> = self.predicate.iter().map(|c| Arc::clone(&c.expr)).collect();
                    all.iter()
                        .map(|p| filtered_statistics(&self.schema, p.clone(), &conditions, self.default_selectivity))
                        .collect::<Result<Vec<_>>>()
                        .map_err(Arc::new)
                });
                filtered.as_ref().map_err(Arc::clone)?
            };
            projected_statistics(&self.schema, &self.projected_schema, each, self.projection.as_deref()).map_err(Arc::new)
        });
        computed.as_ref().map_err(|e| DataFusionError::Shared(Arc::clone(e)))
    }

    /// Which rows of which stored chunks this scan reads, and which
    /// columns: equal for two scans exactly when they return the same data.
    pub fn identity(&self) -> String {
        let mut id = format!("{:?}", self.projection);
        for part in self.partitions.iter() {
            id.push_str(" [");
            for chunk in part {
                let visible = chunk.visible.as_ref().map_or(std::ptr::null(), |v| v.values().inner().as_ptr());
                id.push_str(&format!("{}@{:p}/{:p};", chunk.id, Arc::as_ptr(&chunk.stats), visible));
            }
            id.push(']');
        }
        if let Some(n) = self.fetch {
            id.push_str(&format!(" fetch {n}"));
        }
        for c in self.predicate.iter() {
            id.push_str(&format!(" where {}", c.expr));
        }
        id
    }

    fn columns(&self) -> Vec<usize> {
        self.projection.clone().unwrap_or_else(|| (0..self.schema.fields().len()).collect())
    }
}

/// Whether partitions share their chunks while running
/// (`LAKEWAVE_RAPID_STEALING=off` in the server's environment keeps each
/// partition to the chunks planned for it, for comparisons).
fn stealing_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !crate::switched_off("LAKEWAVE_RAPID_STEALING"))
}

/// Whether scans report column bounds (`LAKEWAVE_RAPID_STATS=off` in the
/// server's environment reports row counts only, for comparisons).
fn bounds_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !crate::switched_off("LAKEWAVE_RAPID_STATS"))
}

/// Whether `plan` scans every row of a loaded table: no filter of its own,
/// no limit.
pub(crate) fn whole_table(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<DataSourceExec>()
        .and_then(|e| e.data_source().downcast_ref::<RapidSource>())
        .is_some_and(|s| s.predicate.is_empty() && s.fetch.is_none())
}

/// How many distinct values the dictionary-encoded column that output
/// column `index` of `plan` (a loaded table's scan) reads can take: the
/// values of its chunks' dictionaries, counted once (an upper bound: a
/// value may belong to hidden rows only). None for other plans and columns.
pub(crate) fn dictionary_distinct(plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<u64> {
    let source = plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<RapidSource>()?;
    let column = source.projection.as_ref().map_or(Some(index), |p| p.get(index).copied())?;
    if !matches!(source.schema.field(column).data_type(), DataType::Dictionary(..)) {
        return None;
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for chunk in source.partitions.iter().flatten() {
        let dictionary = chunk.batch.column(column).as_any_dictionary_opt()?;
        let values = dictionary.values().as_string_opt::<i32>()?;
        seen.extend(values.iter().flatten());
    }
    Some(seen.len() as u64)
}

/// Statistics of every column of a partition's chunks.
fn chunk_statistics(schema: &SchemaRef, chunks: &[Chunk]) -> Statistics {
    let rows: usize = chunks.iter().map(|c| c.live_rows()).sum();
    let hidden = chunks.iter().any(|c| c.visible.is_some());
    let mut total_bytes = 0usize;
    let mut column_statistics = Vec::with_capacity(schema.fields().len());
    for i in 0..schema.fields().len() {
        let mut bytes = 0usize;
        let dictionary = matches!(schema.field(i).data_type(), DataType::Dictionary(..));
        let mut min: Option<ScalarValue> = None;
        let mut max: Option<ScalarValue> = None;
        let mut bounded = !dictionary && !chunks.is_empty() && bounds_enabled();
        let mut nulls = 0usize;
        // Every chunk's NULLs counted: the sum is exact.
        let mut counted = true;
        for c in chunks {
            bytes += c.bytes.get(i).copied().unwrap_or_default();
            let Some(s) = c.stats.get(i) else {
                bounded = false;
                counted = false;
                continue;
            };
            nulls += s.nulls as usize;
            if !bounded {
                continue;
            }
            match (&s.min, &s.max) {
                (Some(lo), Some(hi)) if !lo.is_null() && !hi.is_null() => {
                    if min.as_ref().is_none_or(|m| lo.partial_cmp(m) == Some(std::cmp::Ordering::Less)) {
                        min = Some(lo.clone());
                    }
                    if max.as_ref().is_none_or(|m| hi.partial_cmp(m) == Some(std::cmp::Ordering::Greater)) {
                        max = Some(hi.clone());
                    }
                }
                // An all-null chunk bounds nothing.
                (Some(lo), Some(hi)) if lo.is_null() && hi.is_null() => {}
                _ => bounded = false,
            }
        }
        let mut cs = ColumnStatistics::new_unknown();
        cs.null_count = match (counted, hidden) {
            (false, _) => Precision::Absent,
            (true, true) => Precision::Inexact(nulls),
            (true, false) => Precision::Exact(nulls),
        };
        cs.byte_size = Precision::Inexact(bytes);
        total_bytes += bytes;
        if bounded {
            if let (Some(lo), Some(hi)) = (min, max) {
                cs.min_value = Precision::Inexact(lo);
                cs.max_value = Precision::Inexact(hi);
            }
        }
        column_statistics.push(cs);
    }
    Statistics { num_rows: Precision::Exact(rows), total_byte_size: Precision::Inexact(total_bytes), column_statistics }
}

/// `stats` of every column narrowed to `columns`, with their bytes only.
fn projected(stats: &Statistics, columns: &[usize]) -> Statistics {
    let column_statistics: Vec<ColumnStatistics> = columns.iter().map(|i| stats.column_statistics[*i].clone()).collect();
    let bytes = column_statistics.iter().map(|c| c.byte_size.get_value().copied().unwrap_or_default()).sum();
    Statistics { num_rows: stats.num_rows, total_byte_size: Precision::Inexact(bytes), column_statistics }
}

/// Per partition, then for all: the statistics `partitions` (every column
/// of the table) give for the projected columns.
fn projected_statistics(
    schema: &SchemaRef,
    projected_schema: &SchemaRef,
    partitions: &[Statistics],
    projection: Option<&[usize]>,
) -> Result<ScanStatistics> {
    let columns: Vec<usize> = projection.map(<[usize]>::to_vec).unwrap_or_else(|| (0..schema.fields().len()).collect());
    let each: Vec<Statistics> = partitions.iter().map(|p| projected(p, &columns)).collect();
    let all = Statistics::try_merge_iter(&each, projected_schema)?;
    Ok((each.into_iter().map(Arc::new).collect(), Arc::new(all)))
}

/// What DataFusion's `FilterExec` would estimate for the conditions over
/// rows with the statistics `all` (every column of the table), with the
/// row count of a filter it cannot analyse as a whole lowered to the
/// estimate of its conditions (see `crate::selectivity`); inexact, for
/// every column.
fn filtered_statistics(
    schema: &SchemaRef,
    all: Statistics,
    conditions: &[Arc<dyn PhysicalExpr>],
    default_selectivity: u8,
) -> Result<Statistics> {
    let rows = all.num_rows.get_value().copied();
    let predicate = physical_conjunction(conditions.iter().cloned());
    let fraction = crate::selectivity::conjunct_fraction(schema, &all, conditions, default_selectivity)?;
    let input = Arc::new(StatisticsExec::new(all, schema.as_ref().clone()));
    let filter = FilterExec::try_new(predicate, input)?.with_default_selectivity(default_selectivity)?;
    let estimate = StatisticsContext::new().compute(&filter, &StatisticsArgs::new())?;
    let mut out = Arc::unwrap_or_clone(estimate).to_inexact();
    if let (Some(rows), Some(fraction)) = (rows, fraction) {
        out = crate::selectivity::lower_to(out, rows, fraction);
    }
    Ok(out)
}

/// The live rows of one chunk that pass `predicate` and whose keys are in
/// the `keys` bitmaps (by output column), projected; and how many rows the
/// bitmaps dropped.
fn read_chunk(
    chunk: &Chunk,
    columns: &[usize],
    schema: &SchemaRef,
    predicate: &[Conjunct],
    keys: &[(usize, Arc<KeyBitmap>)],
) -> Result<(RecordBatch, usize)> {
    let mut mask = if predicate.is_empty() { chunk.visible.clone() } else { filter::select(chunk, predicate)? };
    let selected = |m: &Option<BooleanArray>| m.as_ref().map_or(chunk.batch.num_rows(), BooleanArray::true_count);
    let before = selected(&mask);
    for (column, bitmap) in keys {
        let Some(found) = columns.get(*column).and_then(|i| filter::key_rows(chunk, *i, bitmap)) else { continue };
        mask = Some(match mask {
            Some(m) => and(&m, &found)?,
            None => found,
        });
    }
    // Counted again only when bitmaps narrowed the selection.
    let rows = if keys.is_empty() { before } else { selected(&mask) };
    let dropped = before - rows;
    if rows == 0 {
        return Ok((RecordBatch::new_empty(schema.clone()), dropped));
    }
    let arrays: Vec<ArrayRef> = columns.iter().map(|i| filter::column_rows(chunk, *i, mask.as_ref())).collect::<Result<_>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok((RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?, dropped))
}

/// The chunks of one execution of a scan, each read by whichever partition
/// asks first (see [`RapidSource::create_sibling_state`]).
#[derive(Debug)]
struct SharedChunks {
    partitions: Arc<Vec<Vec<Chunk>>>,
    /// (partition, chunk) in the order they are handed out.
    order: Vec<(usize, usize)>,
    next: AtomicUsize,
}

impl SharedChunks {
    /// The partitions' chunks taken one from each in turn: the order the
    /// plan's assignment would read them in, so rows keep roughly the
    /// table's order within each partition.
    fn interleaved(partitions: &Arc<Vec<Vec<Chunk>>>) -> Self {
        let longest = partitions.iter().map(Vec::len).max().unwrap_or(0);
        let order = (0..longest)
            .flat_map(|i| partitions.iter().enumerate().filter(move |(_, p)| i < p.len()).map(move |(p, _)| (p, i)))
            .collect();
        Self { partitions: Arc::clone(partitions), order, next: AtomicUsize::new(0) }
    }

    fn take(&self) -> Option<(usize, usize)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.order.get(i).copied()
    }
}

/// Where a partition's reader takes its chunks from: the chunks are read
/// in place in the plan's assignment, never copied (a chunk's batch is a
/// column list of shared arrays, and copying it costs an allocation and a
/// count change on every column's array, which all the readers of the
/// table share).
enum ChunkSource {
    Own { partition: usize, next: usize },
    Shared(Arc<SharedChunks>),
}

impl ChunkSource {
    /// The next chunk to read: (partition, chunk) of `partitions`.
    fn next(&mut self, partitions: &[Vec<Chunk>]) -> Option<(usize, usize)> {
        match self {
            Self::Own { partition, next } => {
                let at = (*partition, *next);
                (partitions.get(at.0).is_some_and(|p| at.1 < p.len())).then(|| {
                    *next += 1;
                    at
                })
            }
            Self::Shared(queue) => queue.take(),
        }
    }
}

/// One partition's chunks read in turn: hidden and filtered rows dropped,
/// the limit applied, small pieces gathered.
struct ChunkReader {
    partitions: Arc<Vec<Vec<Chunk>>>,
    chunks: ChunkSource,
    columns: Vec<usize>,
    schema: SchemaRef,
    predicate: Arc<Vec<Conjunct>>,
    remaining: Option<usize>,
    coalescer: Option<BatchCoalescer>,
    done: bool,
    /// Where the runtime filter above hands down key bitmaps, and this
    /// reader's partition; the bitmaps handed down so far.
    key_tests: Option<(Arc<ScanKeyTests>, usize)>,
    keys: Vec<(usize, Arc<KeyBitmap>)>,
}

impl ChunkReader {
    fn step(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(b) = self.coalescer.as_mut().and_then(BatchCoalescer::next_completed_batch) {
                return Ok(Some(b));
            }
            if self.done {
                return Ok(None);
            }
            let next = if self.remaining == Some(0) { None } else { self.chunks.next(&self.partitions) };
            let Some((p, i)) = next else {
                self.done = true;
                if let Some(c) = self.coalescer.as_mut() {
                    c.finish_buffered_batch()?;
                }
                continue;
            };
            let dropped = match &self.key_tests {
                Some((tests, partition)) => tests.refresh(*partition, &mut self.keys),
                None => None,
            };
            let (mut batch, n) = read_chunk(&self.partitions[p][i], &self.columns, &self.schema, &self.predicate, &self.keys)?;
            if let Some(count) = dropped {
                count.add(n);
            }
            if batch.num_rows() == 0 {
                continue;
            }
            if let Some(left) = self.remaining.as_mut() {
                let take = batch.num_rows().min(*left);
                *left -= take;
                batch = batch.slice(0, take);
            }
            match self.coalescer.as_mut() {
                Some(c) => c.push_batch(batch)?,
                None => return Ok(Some(batch)),
            }
        }
    }
}

impl Iterator for ChunkReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.done = true;
                self.coalescer = None;
                Some(Err(e))
            }
        }
    }
}

impl RapidSource {
    fn stream(&self, chunks: ChunkSource, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        // A filtered scan gathers the few rows each chunk keeps into full
        // batches, as FilterExec would; large pieces pass through uncopied.
        let coalescer = (!self.predicate.is_empty() || self.key_tests.is_some()).then(|| {
            let size = context.session_config().batch_size().max(1);
            BatchCoalescer::new(self.projected_schema.clone(), size).with_biggest_coalesce_batch_size(Some(size / 2))
        });
        let partitions = match &chunks {
            ChunkSource::Shared(queue) => Arc::clone(&queue.partitions),
            ChunkSource::Own { .. } => Arc::clone(&self.partitions),
        };
        let reader = ChunkReader {
            partitions,
            chunks,
            columns: self.columns(),
            schema: self.projected_schema.clone(),
            predicate: Arc::clone(&self.predicate),
            remaining: self.fetch,
            coalescer,
            done: false,
            key_tests: self.key_tests.clone().map(|t| (t, partition)),
            keys: Vec::new(),
        };
        let produced = BaselineMetrics::new(&self.metrics, partition);
        let batches = reader.inspect(move |b| {
            if let Ok(b) = b {
                produced.record_output(b.num_rows());
            }
        });
        Ok(Box::pin(cooperative(RecordBatchStreamAdapter::new(self.projected_schema.clone(), futures::stream::iter(batches)))))
    }
}

impl DataSource for RapidSource {
    fn open(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.stream(ChunkSource::Own { partition, next: 0 }, partition, context)
    }

    /// One queue of the chunks per execution, shared by the partitions (the
    /// setting that turns work stealing off for file scans turns it off
    /// here too: executors that run partitions apart need each to read its
    /// own).
    fn create_sibling_state(&self, config: &ConfigOptions) -> Option<Arc<dyn Any + Send + Sync>> {
        if self.partitions.len() < 2 || !config.execution.enable_file_stream_work_stealing || !stealing_enabled() {
            return None;
        }
        Some(Arc::new(SharedChunks::interleaved(&self.partitions)))
    }

    fn open_with_args(&self, args: OpenArgs) -> Result<SendableRecordBatchStream> {
        match args.sibling_state.and_then(|state| state.downcast::<SharedChunks>().ok()) {
            Some(queue) => self.stream(ChunkSource::Shared(queue), args.partition, args.context),
            None => self.open(args.partition, args.context),
        }
    }

    fn metrics(&self) -> ExecutionPlanMetricsSet {
        self.metrics.clone()
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let chunks: usize = self.partitions.iter().map(Vec::len).sum();
        let rows = self.scan_statistics().ok().and_then(|s| s.1.num_rows.get_value().copied()).unwrap_or(0);
        match t {
            DisplayFormatType::TreeRender => writeln!(f, "format=rapid\nchunks={chunks}\nrows={rows}"),
            _ => {
                write!(f, "format=rapid, partitions={}, chunks={chunks}, rows={rows}", self.partitions.len())?;
                if let Some(n) = self.fetch {
                    write!(f, ", fetch={n}")?;
                }
                if !self.predicate.is_empty() {
                    let exprs: Vec<String> = self.predicate.iter().map(|c| c.expr.to_string()).collect();
                    write!(f, ", predicate={}", exprs.join(" AND "))?;
                }
                Ok(())
            }
        }
    }

    fn output_partitioning(&self) -> Partitioning {
        Partitioning::UnknownPartitioning(self.partitions.len())
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        EquivalenceProperties::new(self.projected_schema.clone())
    }

    fn scheduling_type(&self) -> SchedulingType {
        SchedulingType::Cooperative
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let statistics = self.scan_statistics()?;
        let (stats, parts) = match partition {
            Some(p) => (statistics.0.get(p).cloned().unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.projected_schema))), 1),
            None => (statistics.1.clone(), self.partitions.len()),
        };
        if self.fetch.is_none() {
            return Ok(stats);
        }
        Ok(Arc::new(stats.as_ref().clone().with_fetch(self.fetch, 0, parts)?))
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        self.rebuilt(self.projection.clone(), limit, None).ok().map(|s| Arc::new(s) as _)
    }

    fn fetch(&self) -> Option<usize> {
        self.fetch
    }

    fn try_swapping_with_projection(&self, projection: &ProjectionExprs) -> Result<Option<Arc<dyn DataSource>>> {
        let exprs: Vec<_> = projection.iter().cloned().collect();
        if !all_alias_free_columns(&exprs) {
            return Ok(None);
        }
        let columns = new_projections_for_columns(&exprs, &self.columns());
        Ok(Some(Arc::new(self.rebuilt(Some(columns), self.fetch, None)?)))
    }

    /// Static filters are evaluated in the scan, before the rows are
    /// widened; dynamic (join) filters are left to the runtime filter above.
    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn DataSource>>> {
        // Rows limited before the filter must stay so.
        if !filter::enabled() || self.fetch.is_some() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(vec![PushedDown::No; filters.len()]));
        }
        let columns = self.columns();
        let mut taken = Vec::new();
        let mut answers = Vec::with_capacity(filters.len());
        for f in &filters {
            if filter::is_dynamic(f) {
                answers.push(PushedDown::No);
                continue;
            }
            for part in split_conjunction(f) {
                taken.push(filter::conjunct(part, &columns, &self.schema)?);
            }
            answers.push(PushedDown::Yes);
        }
        let propagation = FilterPushdownPropagation::with_parent_pushdown_result(answers);
        if taken.is_empty() {
            return Ok(propagation);
        }
        let mut predicate = self.predicate.as_ref().clone();
        predicate.extend(taken);
        let source = self.rebuilt(self.projection.clone(), self.fetch, Some((Arc::new(predicate), config.optimizer.default_filter_selectivity)))?;
        Ok(propagation.with_updated_node(Arc::new(source)))
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::tree_node::TreeNode;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use crate::rapid::encode::EncodingPlan;

    /// Four chunks of 1,000 rows: keys 0..4,000 (every 97th null), dates
    /// over 50 days, prices, and a text column of few values.
    fn batches() -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("d", DataType::Date32, false),
            Field::new("price", DataType::Decimal128(15, 2), false),
            Field::new("s", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ]));
        (0..4)
            .map(|c| {
                let rows = (c * 1000)..(c * 1000 + 1000);
                let k = Int64Array::from_iter(rows.clone().map(|i| if i % 97 == 0 { None } else { Some(i) }));
                let d = Date32Array::from_iter_values(rows.clone().map(|i| 9_000 + (i / 80) as i32));
                let price = Decimal128Array::from_iter_values(rows.clone().map(|i| 100_000 + (i as i128 * 7919) % 50_000))
                    .with_precision_and_scale(15, 2)
                    .expect("decimal");
                let s = StringArray::from_iter_values(rows.clone().map(|i| ["alpha", "beta", "gamma"][(i % 3) as usize]));
                // 2024-01-01 00:00:00 plus i seconds.
                let ts = TimestampMicrosecondArray::from_iter_values(rows.map(|i| 1_704_067_200_000_000 + i * 1_000_000));
                let columns: Vec<ArrayRef> = vec![Arc::new(k), Arc::new(d), Arc::new(price), Arc::new(s), Arc::new(ts)];
                RecordBatch::try_new(schema.clone(), columns).expect("batch")
            })
            .collect()
    }

    /// The same rows as a loaded table (`t`, one chunk's rows 500..700
    /// hidden as change capture would) and as a plain memory table (`m`).
    fn context() -> Result<SessionContext> {
        let (data, kept) = loaded()?;
        let table = Arc::new(RapidTable::new(1, "db", "t", super::super::SourceKind::Lake));
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(RapidScanTable::new(table, data)))?;
        ctx.register_table("m", Arc::new(MemTable::try_new(kept[0].schema(), vec![kept])?))?;
        Ok(ctx)
    }

    /// [`batches`] loaded (one chunk each, rows 500..700 of the second
    /// hidden), and the rows that stay visible.
    fn loaded() -> Result<(Arc<TableData>, Vec<RecordBatch>)> {
        let source = batches();
        let plan = EncodingPlan::choose(&source[0].schema(), &source);
        let mut chunks: Vec<Chunk> = source.iter().map(|b| plan.encode(b)).collect::<Result<_>>()?;
        for (i, c) in chunks.iter_mut().enumerate() {
            c.id = i as u64;
        }
        assert!([0, 1, 2, 4].iter().all(|i| chunks[0].is_narrowed(*i)), "the test needs narrowed columns");
        chunks[1].visible = Some(BooleanArray::from_iter((0..1000).map(|i| Some(!(500..700).contains(&i)))));
        let kept: Vec<RecordBatch> = source
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 1 { datafusion::arrow::compute::filter_record_batch(b, chunks[1].visible.as_ref().expect("mask")) } else { Ok(b.clone()) })
            .collect::<std::result::Result<_, _>>()?;
        let data = Arc::new(TableData { schema: plan.schema.clone(), chunks, size_bytes: 0, files: None, scans: Default::default() });
        Ok((data, kept))
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn filters_evaluated_in_the_scan_keep_the_rows_a_filter_keeps() -> Result<()> {
        let ctx = context()?;
        let wheres = [
            "k >= 1500 AND k < 2600",
            "k > 3999 OR k < 0",
            "5 < k AND k <= 40",
            "d = DATE '1994-09-01'",
            "d <> DATE '1994-09-01' AND d >= DATE '1994-08-20'",
            "price > 400.00 AND price <= 420.50",
            "price = 1000.00",
            "s LIKE '%mm%' AND k % 7 = 0",
            "k IS NULL",
            "k IS NULL OR k BETWEEN 590 AND 610",
            "k >= 1000 AND s = 'beta' AND price * 2 > 1000.00",
            "k < -5",
            // Decided by every chunk's bounds: all rows pass, or none.
            "d >= DATE '1994-01-01'",
            "d < DATE '1994-01-01' OR k = 5",
            "d < DATE '1994-01-01'",
            "ts >= TIMESTAMP '2024-01-01 00:20:00' AND ts < TIMESTAMP '2024-01-01 00:45:30'",
            "ts = TIMESTAMP '2024-01-01 00:50:00' OR ts > TIMESTAMP '2024-01-01 01:05:00'",
            // Fails on k = 1600, a hidden row: never evaluated there.
            "100 / (k - 1600) > 0",
        ];
        for w in wheres {
            let cols = "count(*) n, count(k) nk, sum(k) sk, min(d) lo, max(d) hi, sum(price) sp, count(DISTINCT s) ds";
            let got = rows(&ctx, &format!("SELECT {cols} FROM t WHERE {w}")).await?;
            let want = rows(&ctx, &format!("SELECT {cols} FROM m WHERE {w}")).await?;
            assert_eq!(got, want, "WHERE {w}");
        }
        // Rows themselves, and a limit after the filter.
        let got = rows(&ctx, "SELECT k, d, price, s FROM t WHERE k BETWEEN 1490 AND 1710 ORDER BY k").await?;
        let want = rows(&ctx, "SELECT k, d, price, s FROM m WHERE k BETWEEN 1490 AND 1710 ORDER BY k").await?;
        assert_eq!(got, want);
        let got = rows(&ctx, "SELECT count(*) FROM (SELECT k FROM t WHERE s = 'gamma' LIMIT 10)").await?;
        assert!(got.contains("| 10 "), "{got}");
        Ok(())
    }

    #[tokio::test]
    async fn the_scan_takes_the_filter_and_no_filter_is_left_above_it() -> Result<()> {
        let ctx = context()?;
        let plan = ctx.sql("SELECT sum(price) FROM t WHERE d >= DATE '1994-09-01' AND s = 'beta'").await?.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        assert!(text.contains("format=rapid") && text.contains("predicate="), "{text}");
        assert!(!text.contains("FilterExec"), "{text}");
        // Its row estimate is the filter's, not the table's.
        let mut scan_rows = None;
        plan.apply(|node| {
            if node.downcast_ref::<datafusion::datasource::source::DataSourceExec>().is_some() {
                scan_rows = Some(StatisticsContext::new().compute(node.as_ref(), &StatisticsArgs::new())?.num_rows);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        match scan_rows {
            Some(Precision::Inexact(n)) => assert!(n < 3800, "estimated {n} rows"),
            other => panic!("scan statistics {other:?}"),
        }
        Ok(())
    }

    /// The loaded scans in `sql`'s physical plan: their partitions, and
    /// the statistics they report.
    async fn planned_scans(ctx: &SessionContext, sql: &str) -> Result<Vec<(Arc<Vec<Vec<Chunk>>>, Arc<Statistics>)>> {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let mut scans = Vec::new();
        plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<datafusion::datasource::source::DataSourceExec>()
                && let Some(source) = scan.data_source().downcast_ref::<RapidSource>()
            {
                scans.push((Arc::clone(&source.partitions), source.partition_statistics(None)?));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(scans)
    }

    /// The dictionary-encoded text column of the four chunks takes three
    /// values: each chunk's dictionary holds all three, counted once.
    #[tokio::test]
    async fn dictionary_columns_count_their_values_across_chunks() -> Result<()> {
        let ctx = context()?;
        let plan = ctx.sql("SELECT s, k FROM t").await?.create_physical_plan().await?;
        let mut scans = Vec::new();
        plan.apply(|node| {
            if node.downcast_ref::<DataSourceExec>().is_some() {
                scans.push(Arc::clone(node));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        assert_eq!(scans.len(), 1);
        let s = scans[0].schema().index_of("s")?;
        let k = scans[0].schema().index_of("k")?;
        assert_eq!(dictionary_distinct(&scans[0], s), Some(3));
        assert_eq!(dictionary_distinct(&scans[0], k), None, "not a dictionary");
        Ok(())
    }

    #[tokio::test]
    async fn scans_of_one_version_share_out_its_chunks_once() -> Result<()> {
        let ctx = context()?;
        let pruned = "SELECT sum(price) FROM t WHERE k >= 3000";
        let first = planned_scans(&ctx, pruned).await?;
        let again = planned_scans(&ctx, pruned).await?;
        let whole = planned_scans(&ctx, "SELECT sum(price) FROM t").await?;
        assert_eq!((first.len(), again.len(), whole.len()), (1, 1, 1));
        // The same chunks kept by the same filter: the same assignment.
        assert!(Arc::ptr_eq(&first[0].0, &again[0].0));
        assert_eq!(first[0].1, again[0].1);
        // Other chunks kept: another assignment, and other statistics.
        assert!(!Arc::ptr_eq(&first[0].0, &whole[0].0));
        let chunks = |s: &Arc<Vec<Vec<Chunk>>>| s.iter().map(Vec::len).sum::<usize>();
        assert!(chunks(&first[0].0) < chunks(&whole[0].0), "the filter prunes chunks");
        assert_eq!(whole[0].1.num_rows, Precision::Exact(3800));
        assert!(matches!(first[0].1.num_rows, Precision::Inexact(n) if n < 3800), "{:?}", first[0].1.num_rows);
        // A copy of a version (made to change it) plans afresh.
        let (data, _) = loaded()?;
        data.scans.get_or_plan(2, vec![true; data.chunks.len()], |keep| share_out(&data.chunks, keep, 2));
        assert_eq!(data.scans.0.lock().expect("plans").len(), 1);
        assert_eq!(data.as_ref().clone().scans.0.lock().expect("plans").len(), 0);
        Ok(())
    }

    /// Rows read by each partition of a two-partition scan when the first
    /// partition is read to its end before the second starts.
    async fn rows_per_partition(stealing: bool) -> Result<(Vec<usize>, Vec<i64>)> {
        let (data, _) = loaded()?;
        let planned = vec![vec![data.chunks[0].clone(), data.chunks[2].clone()], vec![data.chunks[1].clone(), data.chunks[3].clone()]];
        let source = RapidSource::over(data.schema.clone(), Arc::new(planned), Arc::default(), Some(vec![0]), None)?;
        let plan = datafusion::datasource::source::DataSourceExec::from_data_source(source);
        let mut config = datafusion::prelude::SessionConfig::new();
        config.options_mut().execution.enable_file_stream_work_stealing = stealing;
        let task = SessionContext::new_with_config(config).task_ctx();
        let mut counts = Vec::new();
        let mut keys = Vec::new();
        for partition in 0..2 {
            let batches = datafusion::physical_plan::common::collect(plan.execute(partition, task.clone())?).await?;
            counts.push(batches.iter().map(RecordBatch::num_rows).sum());
            for b in &batches {
                let k = cast(b.column(0), &DataType::Int64)?;
                keys.extend(k.as_any().downcast_ref::<Int64Array>().expect("keys").iter().flatten());
            }
        }
        keys.sort_unstable();
        Ok((counts, keys))
    }

    #[tokio::test]
    async fn partitions_take_chunks_from_one_queue_while_running() -> Result<()> {
        // Each visible row once; the partition read first takes every chunk.
        let want: Vec<i64> = (0..4000).filter(|i| i % 97 != 0 && !(1500..1700).contains(i)).collect();
        let (counts, keys) = rows_per_partition(true).await?;
        assert_eq!(counts, vec![3800, 0]);
        assert_eq!(keys, want);
        // Without stealing each partition reads the chunks planned for it.
        let (counts, keys) = rows_per_partition(false).await?;
        assert_eq!(counts, vec![2000, 1800]);
        assert_eq!(keys, want);
        Ok(())
    }

    /// A join whose build keys are too sparse for DataFusion's array: once
    /// its runtime filter moves to a bitmap of the keys, the loaded scan of
    /// the probe side tests the bitmap on its stored (narrow) key column
    /// and passes on only the rows that join. Same answer as a plain
    /// memory table's, null keys never joining.
    #[tokio::test]
    async fn join_key_bitmaps_are_tested_by_the_loaded_scan() -> Result<()> {
        use datafusion::execution::session_state::SessionStateBuilder;
        use datafusion::prelude::SessionConfig;
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Int64, false)]));
        // Keys 1,000,000 + i, every 1000th null (from i = 7): narrowed to
        // offsets from each chunk's smallest key.
        let probe: Vec<RecordBatch> = (0..100_000i64)
            .collect::<Vec<_>>()
            .chunks(8192)
            .map(|rows| {
                let k = Int64Array::from_iter(rows.iter().map(|i| (i % 1000 != 7).then_some(1_000_000 + i)));
                let v = Int64Array::from_iter_values(rows.iter().copied());
                RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(v)])
            })
            .collect::<std::result::Result<_, _>>()?;
        let plan = EncodingPlan::choose(&schema, &probe);
        let mut chunks: Vec<Chunk> = probe.iter().map(|b| plan.encode(b)).collect::<Result<_>>()?;
        for (i, c) in chunks.iter_mut().enumerate() {
            c.id = i as u64;
        }
        assert!(chunks[0].is_narrowed(0), "the test needs a narrowed key column");
        let data = Arc::new(TableData { schema: plan.schema.clone(), chunks, size_bytes: 0, files: None, scans: Default::default() });
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features()
            .with_physical_optimizer_rules(crate::runtime_filter::physical_optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let table = Arc::new(RapidTable::new(1, "db", "big", super::super::SourceKind::Lake));
        ctx.register_table("big", Arc::new(RapidScanTable::new(table, data)))?;
        ctx.register_table("plain", Arc::new(MemTable::try_new(schema.clone(), vec![probe])?))?;
        // 2,000 keys, one in fifty (and a null), spread over the range.
        let keys = Int64Array::from_iter((0..100_000i64).step_by(50).map(|i| Some(1_000_000 + i)).chain([None]));
        let spread = RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])), vec![Arc::new(keys)])?;
        ctx.register_table("spread", Arc::new(MemTable::try_new(spread.schema(), vec![vec![spread]])?))?;

        let sql = "SELECT count(*) n, sum(big.v) s FROM spread JOIN big ON spread.k = big.k";
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let got = pretty_format_batches(&datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx()).await?)?.to_string();
        let want = rows(&ctx, &sql.replace("big", "plain")).await?;
        assert_eq!(got, want);
        // Every multiple of 50 joins (no null falls on one): 50 * (0 + ... + 1999).
        assert!(got.contains("| 2000 | 99950000 |"), "{got}");
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        assert!(text.contains("(key bitmaps tested in the scan)"), "{text}");
        let mut dropped = None;
        plan.apply(|node| {
            if node.name() == "RuntimeFilterExec" {
                let metrics = node.metrics().expect("metrics");
                let count = |name: &str| metrics.sum_by_name(name).map(|m| m.as_usize()).unwrap_or(0);
                assert!(count("key_bitmaps") >= 1, "{text}");
                dropped = Some(count("rows_dropped_in_scan"));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        // A partition tries the join's own filter on its first 32K rows
        // before it moves to the bitmap; the rows after are dropped in the
        // scan.
        let dropped = dropped.expect("a runtime filter over the scan");
        assert!(dropped > 1_000 && dropped <= 100_000 - 32 * 1024, "dropped in the scan: {dropped}");
        Ok(())
    }
}
