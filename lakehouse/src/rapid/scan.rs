//! The DataFusion provider over a loaded table: one immutable version,
//! chunks skipped by their min/max statistics, the rest spread over the
//! session's partitions.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt64Array};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ColumnStatistics, DFSchema, Statistics, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::source::DataSource;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::physical_plan::projection::{all_alias_free_columns, new_projections_for_columns};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayFormatType, ExecutionPlan, Partitioning};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

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
        let mut partitions: Vec<Vec<Chunk>> = vec![Vec::new(); n];
        let mut sizes = vec![0usize; n];
        for (chunk, _) in self.data.chunks.iter().zip(keep).filter(|(_, k)| *k) {
            let rows = chunk.live_rows();
            if rows == 0 {
                continue;
            }
            // The least-filled partition takes the next chunk.
            let (i, _) = sizes.iter().enumerate().min_by_key(|(_, s)| **s).unwrap_or((0, &0));
            sizes[i] += rows;
            partitions[i].push(chunk.clone());
        }
        partitions.retain(|p| !p.is_empty());
        if partitions.is_empty() {
            partitions.push(Vec::new());
        }
        let source = RapidSource::try_new(schema, partitions, projection.cloned(), limit)?;
        Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
    }
}

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
    fetch: Option<usize>,
    /// Per partition, then for all: statistics of the projected columns.
    statistics: Arc<(Vec<Arc<Statistics>>, Arc<Statistics>)>,
}

impl RapidSource {
    pub fn try_new(schema: SchemaRef, partitions: Vec<Vec<Chunk>>, projection: Option<Vec<usize>>, fetch: Option<usize>) -> Result<Self> {
        let projected_schema = project_schema(&schema, projection.as_ref())?;
        let partitions = Arc::new(partitions);
        let statistics = Arc::new(compute_statistics(&schema, &projected_schema, &partitions, projection.as_deref())?);
        Ok(Self { schema, projected_schema, projection, partitions, fetch, statistics })
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
        id
    }

    fn columns(&self) -> Vec<usize> {
        self.projection.clone().unwrap_or_else(|| (0..self.schema.fields().len()).collect())
    }
}

/// Whether scans report column bounds (`LAKEWAVE_RAPID_STATS=off` in the
/// server's environment reports row counts only, for comparisons).
fn bounds_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !std::env::var("LAKEWAVE_RAPID_STATS").is_ok_and(|v| v.eq_ignore_ascii_case("off")))
}

fn chunk_statistics(schema: &SchemaRef, chunks: &[Chunk], columns: &[usize]) -> Statistics {
    let rows: usize = chunks.iter().map(|c| c.live_rows()).sum();
    let hidden = chunks.iter().any(|c| c.visible.is_some());
    let mut bytes = 0usize;
    let mut column_statistics = Vec::with_capacity(columns.len());
    for &i in columns {
        let dictionary = matches!(schema.field(i).data_type(), DataType::Dictionary(..));
        let mut min: Option<ScalarValue> = None;
        let mut max: Option<ScalarValue> = None;
        let mut bounded = !dictionary && !chunks.is_empty() && bounds_enabled();
        let mut nulls = 0usize;
        for c in chunks {
            bytes += c.batch.column(i).get_array_memory_size();
            let Some(s) = c.stats.get(i) else {
                bounded = false;
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
        cs.null_count = if hidden { Precision::Inexact(nulls) } else { Precision::Exact(nulls) };
        if bounded {
            if let (Some(lo), Some(hi)) = (min, max) {
                cs.min_value = Precision::Inexact(lo);
                cs.max_value = Precision::Inexact(hi);
            }
        }
        column_statistics.push(cs);
    }
    Statistics { num_rows: Precision::Exact(rows), total_byte_size: Precision::Inexact(bytes), column_statistics }
}

fn compute_statistics(
    schema: &SchemaRef,
    projected: &SchemaRef,
    partitions: &[Vec<Chunk>],
    projection: Option<&[usize]>,
) -> Result<(Vec<Arc<Statistics>>, Arc<Statistics>)> {
    let columns: Vec<usize> = projection.map(<[usize]>::to_vec).unwrap_or_else(|| (0..schema.fields().len()).collect());
    let each: Vec<Statistics> = partitions.iter().map(|p| chunk_statistics(schema, p, &columns)).collect();
    let all = Statistics::try_merge_iter(&each, projected)?;
    Ok((each.into_iter().map(Arc::new).collect(), Arc::new(all)))
}

/// The live rows of one chunk, projected.
fn read_chunk(chunk: &Chunk, columns: &[usize], schema: &SchemaRef) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns.iter().map(|i| chunk.column(*i)).collect::<Result<_>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(chunk.batch.num_rows()));
    let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?;
    Ok(match &chunk.visible {
        Some(v) => filter_record_batch(&batch, v)?,
        None => batch,
    })
}

impl DataSource for RapidSource {
    fn open(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let chunks: Vec<Chunk> = self.partitions.get(partition).cloned().unwrap_or_default();
        let columns = self.columns();
        let schema = self.projected_schema.clone();
        let mut remaining = self.fetch;
        let batches = futures::stream::iter(chunks).filter_map(move |chunk| {
            let out = match remaining {
                Some(0) => None,
                _ => match read_chunk(&chunk, &columns, &schema) {
                    Ok(b) if b.num_rows() == 0 => None,
                    Ok(b) => match remaining.as_mut() {
                        Some(left) => {
                            let take = b.num_rows().min(*left);
                            *left -= take;
                            Some(Ok(b.slice(0, take)))
                        }
                        None => Some(Ok(b)),
                    },
                    Err(e) => Some(Err(e)),
                },
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(cooperative(RecordBatchStreamAdapter::new(self.projected_schema.clone(), batches))))
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let chunks: usize = self.partitions.iter().map(Vec::len).sum();
        let rows = self.statistics.1.num_rows.get_value().copied().unwrap_or(0);
        match t {
            DisplayFormatType::TreeRender => writeln!(f, "format=rapid\nchunks={chunks}\nrows={rows}"),
            _ => {
                write!(f, "format=rapid, partitions={}, chunks={chunks}, rows={rows}", self.partitions.len())?;
                if let Some(n) = self.fetch {
                    write!(f, ", fetch={n}")?;
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
        let (stats, parts) = match partition {
            Some(p) => (self.statistics.0.get(p).cloned().unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.projected_schema))), 1),
            None => (self.statistics.1.clone(), self.partitions.len()),
        };
        if self.fetch.is_none() {
            return Ok(stats);
        }
        Ok(Arc::new(stats.as_ref().clone().with_fetch(self.fetch, 0, parts)?))
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        let mut s = self.clone();
        s.fetch = limit;
        Some(Arc::new(s))
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
        let partitions = self.partitions.as_ref().clone();
        Ok(Some(Arc::new(RapidSource::try_new(self.schema.clone(), partitions, Some(columns), self.fetch)?)))
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}
