//! The DataFusion provider over a loaded table: one immutable version,
//! chunks skipped by their min/max statistics, the rest spread over the
//! session's partitions.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Column, DFSchema, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;

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
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
        let mut sizes = vec![0usize; n];
        for (chunk, _) in self.data.chunks.iter().zip(keep).filter(|(_, k)| *k) {
            let batch = match &chunk.visible {
                Some(v) => filter_record_batch(&chunk.batch, v)?,
                None => chunk.batch.clone(),
            };
            if batch.num_rows() == 0 {
                continue;
            }
            // The least-filled partition takes the next chunk.
            let (i, _) = sizes.iter().enumerate().min_by_key(|(_, s)| **s).unwrap_or((0, &0));
            sizes[i] += batch.num_rows();
            partitions[i].push(batch);
        }
        partitions.retain(|p| !p.is_empty());
        if partitions.is_empty() {
            partitions.push(Vec::new());
        }
        let source = MemorySourceConfig::try_new(&partitions, schema, projection.cloned())?.with_limit(limit);
        Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
    }
}
