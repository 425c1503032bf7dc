//! Final aggregations grouped by one integer column whose keys fill a
//! known range (and partial ones, over a small range).
//!
//! DataFusion looks every row's group up in a hash table. Grouped by an
//! order, part or customer key, the final aggregation holds millions of
//! groups: TPC-H Q18's `GROUP BY l_orderkey` puts 60M rows in 15M groups
//! at SF 10, and nearly every new group is a cache miss in a table of
//! hundreds of megabytes (3.2 s of the query's 6 s of CPU there).
//!
//! When the key column's statistics bound its values to a range small
//! against the rows (at most [`SLOTS_PER_ROW`] slots per input row over all
//! partitions, and [`MAX_SLOTS`] in all), [`DenseKeyGroups`] replaces the
//! aggregation with a [`DenseGroupExec`]: a row's group is found at its
//! key's offset in an array over the range. Keys of a table's rows come
//! mostly in runs and in order (`lineitem` by order), so those lookups
//! walk the array instead of jumping about a hash table; a key outside the
//! range (statistics can be stale) goes to a hash map, NULL to a group of
//! its own. The aggregates are DataFusion's own group accumulators, fed as
//! its aggregation feeds them, and the output is the aggregation's.
//!
//! The array is charged to the query's memory. Unlike DataFusion's, this
//! aggregation does not spill: under a bounded memory pool it runs
//! DataFusion's aggregation instead.
//! `LAKEWAVE_DENSE_GROUPS=off` in the server's environment turns it off,
//! for comparisons.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type, SchemaRef};
use datafusion::common::cast::as_boolean_array;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{
    aggregate_expressions, AggregateExec, AggregateInputMode, AggregateMode, AggregateOutputMode,
};
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::ExecutionPlan;

use crate::grouped_exec::{grouped_stream, plain_aggregation, replace_aggregations, GroupedAggregateExec, Grouping, GroupingKind};

/// Most array slots of one partition: 256 MiB of group numbers.
pub const MAX_SLOTS: u64 = 1 << 26;

/// Most array slots of a partial aggregation's partition. A partial
/// aggregation runs in every partition of its input, each with its own
/// array, and passes its groups on to be merged: it is grouped through an
/// array only over a small range (a machine, supplier or nation key), where
/// the array stays in cache.
pub const MAX_PARTIAL_SLOTS: u64 = 1 << 16;

/// Most slots, over all partitions, per estimated input row.
pub const SLOTS_PER_ROW: u64 = 4;

#[derive(Debug, Default)]
pub struct DenseKeyGroups;

impl PhysicalOptimizerRule for DenseKeyGroups {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_DENSE_GROUPS") {
            return Ok(plan);
        }
        replace_aggregations(plan, key_range)
    }

    fn name(&self) -> &str {
        "DenseKeyGroups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Puts [`DenseKeyGroups`] last but DataFusion's sanity check: it replaces
/// aggregations the other rules have finished with.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    crate::insert_before_sanity_check(rules, Arc::new(DenseKeyGroups));
}

/// The range of keys (lowest, number of slots) of an aggregation this
/// operator can run: a final one (its output the aggregates' values), or
/// a partial one over at most [`MAX_PARTIAL_SLOTS`] keys (its output their
/// states), grouped by one integer column whose statistics bound it to a range
/// small against the input's estimated rows, with aggregates that have
/// group accumulators and no ordering or DISTINCT.
fn key_range(agg: &AggregateExec) -> Result<Option<KeyRange>> {
    let group_by = agg.group_expr();
    let partial = *agg.mode() == AggregateMode::Partial;
    let final_output = matches!(agg.mode().output_mode(), AggregateOutputMode::Final);
    if !(final_output || partial) || group_by.expr().len() != 1 || !plain_aggregation(agg) {
        return Ok(None);
    }
    let Some(column) = group_by.expr()[0].0.downcast_ref::<Column>() else { return Ok(None) };
    let input = agg.input_schema();
    if !matches!(input.field(column.index()).data_type(), DataType::Int64 | DataType::Int32) {
        return Ok(None);
    }
    let Ok(stats) = StatisticsContext::new().compute(agg.input().as_ref(), &StatisticsArgs::new()) else { return Ok(None) };
    let Some(rows) = stats.num_rows.get_value().copied() else { return Ok(None) };
    let Some(c) = stats.column_statistics.get(column.index()) else { return Ok(None) };
    let bound = |v: Option<&ScalarValue>| match v {
        Some(ScalarValue::Int64(Some(x))) => Some(i128::from(*x)),
        Some(ScalarValue::Int32(Some(x))) => Some(i128::from(*x)),
        _ => None,
    };
    let (Some(low), Some(high)) = (bound(c.min_value.get_value()), bound(c.max_value.get_value())) else { return Ok(None) };
    if high < low {
        return Ok(None);
    }
    let slots = (high - low + 1) as u64;
    let partitions = agg.properties().output_partitioning().partition_count().max(1) as u64;
    let most = if partial { MAX_PARTIAL_SLOTS } else { MAX_SLOTS };
    let fits = slots <= most && slots.saturating_mul(partitions) <= SLOTS_PER_ROW.saturating_mul(rows as u64);
    Ok(fits.then_some(KeyRange { low: low as i64, slots: slots as usize }))
}

/// The range of a [`DenseGroupExec`]'s keys: the lowest, and how many
/// slots from it.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange {
    low: i64,
    slots: usize,
}

/// A final aggregation grouped through an array over its key's range (see
/// the module).
pub type DenseGroupExec = GroupedAggregateExec<KeyRange>;

impl GroupingKind for KeyRange {
    const NAME: &'static str = "DenseGroupExec";

    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "keys from {} over {} slots, ", self.low, self.slots)
    }

    fn execute(
        &self,
        agg: &Arc<AggregateExec>,
        partition: usize,
        context: Arc<TaskContext>,
        metrics: BaselineMetrics,
    ) -> Result<SendableRecordBatchStream> {
        // A bounded pool may need the aggregation to spill, which only
        // DataFusion's does.
        if !matches!(context.memory_pool().memory_limit(), MemoryLimit::Infinite) {
            return agg.execute(partition, context);
        }
        let input = agg.input().execute(partition, context.clone())?;
        let groups = Groups::new(agg, *self, &context, partition)?;
        Ok(grouped_stream(input, agg.schema(), groups, metrics))
    }
}

impl Grouping for Groups {
    fn add(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        self.update(batch).map(|()| vec![])
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.emit()
    }
}

/// `n` empty slots. They are not zeros: a zeroed allocation maps every
/// page to the kernel's shared zero page until it is written, and a slot
/// read before it is written then costs a second fault, the copy of the
/// page, and a TLB flush on every core that runs the query (measured: 28%
/// of TPC-H Q18's CPU time at SF 10, the slots holding group + 1 with 0
/// for none). Written first, a page costs one fault.
fn empty_slots(n: usize) -> Vec<u32> {
    vec![EMPTY; n]
}

/// A slot no key has reached.
const EMPTY: u32 = u32::MAX;

/// The groups of one partition and their accumulators.
struct Groups {
    key: Arc<dyn PhysicalExpr>,
    /// Per aggregate: its input expressions (arguments, or the partial
    /// states' columns) and optional filter.
    inputs: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// Whether the input is rows (`update_batch`) or partial states
    /// (`merge_batch`).
    raw: bool,
    /// Whether the output is partial states (`state`) or values
    /// (`evaluate`).
    states_out: bool,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    low: i64,
    /// Per key offset from `low`, its group ([`EMPTY`]: none yet).
    slots: Vec<u32>,
    /// Groups of keys outside the range.
    outside: HashMap<i64, u32>,
    null_group: Option<u32>,
    /// Each group's key.
    keys: Vec<i64>,
    indices: Vec<usize>,
    schema: SchemaRef,
    batch_size: usize,
    reservation: MemoryReservation,
}

impl Groups {
    fn new(agg: &AggregateExec, range: KeyRange, context: &Arc<TaskContext>, partition: usize) -> Result<Self> {
        let key = Arc::clone(&agg.group_expr().expr()[0].0);
        let aggs = agg.aggr_expr();
        let inputs = aggregate_expressions(aggs, agg.mode(), 1)?;
        let raw = matches!(agg.mode().input_mode(), AggregateInputMode::Raw);
        let states_out = matches!(agg.mode().output_mode(), AggregateOutputMode::Partial);
        let filters = if raw { agg.filter_expr().to_vec() } else { vec![None; aggs.len()] };
        let accumulators = aggs.iter().map(|a| a.create_groups_accumulator()).collect::<Result<Vec<_>>>()?;
        let reservation = MemoryConsumer::new(format!("DenseGroupExec[{partition}]")).register(context.memory_pool());
        reservation.try_grow(range.slots * 4)?;
        Ok(Self {
            key,
            inputs,
            filters,
            raw,
            states_out,
            accumulators,
            low: range.low,
            slots: empty_slots(range.slots),
            outside: HashMap::new(),
            null_group: None,
            keys: Vec::new(),
            indices: Vec::new(),
            schema: agg.schema(),
            batch_size: context.session_config().batch_size(),
            reservation,
        })
    }

    fn new_group(keys: &mut Vec<i64>, key: i64) -> u32 {
        keys.push(key);
        (keys.len() - 1) as u32
    }

    /// The group of a key, made when new.
    #[inline]
    fn group_of(&mut self, key: i64) -> u32 {
        let offset = key.wrapping_sub(self.low) as u64;
        if offset < self.slots.len() as u64 {
            let slot = &mut self.slots[offset as usize];
            if *slot == EMPTY {
                *slot = Self::new_group(&mut self.keys, key);
            }
            *slot
        } else {
            let keys = &mut self.keys;
            *self.outside.entry(key).or_insert_with(|| Self::new_group(keys, key))
        }
    }

    fn assign<T>(&mut self, values: &[T], nulls: Option<&datafusion::arrow::buffer::NullBuffer>)
    where
        T: Copy + Into<i64>,
    {
        self.indices.clear();
        self.indices.reserve(values.len());
        // Keys come in runs: a row with its predecessor's key takes its
        // group without a lookup.
        let mut last: Option<(i64, u32)> = None;
        for (i, v) in values.iter().enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                let g = match self.null_group {
                    Some(g) => g,
                    None => {
                        let g = Self::new_group(&mut self.keys, 0);
                        self.null_group = Some(g);
                        g
                    }
                };
                self.indices.push(g as usize);
                continue;
            }
            let key: i64 = (*v).into();
            let g = match last {
                Some((k, g)) if k == key => g,
                _ => self.group_of(key),
            };
            last = Some((key, g));
            self.indices.push(g as usize);
        }
    }

    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let keys = self.key.evaluate(batch)?.into_array(rows)?;
        match keys.data_type() {
            DataType::Int64 => {
                let a = keys.as_primitive::<Int64Type>();
                self.assign(a.values(), a.nulls());
            }
            DataType::Int32 => {
                let a = keys.as_primitive::<Int32Type>();
                self.assign(a.values(), a.nulls());
            }
            other => return internal_err!("DenseGroupExec grouped by {other}"),
        }
        let total = self.keys.len();
        for ((acc, inputs), filter) in self.accumulators.iter_mut().zip(&self.inputs).zip(&self.filters) {
            let values = inputs.iter().map(|e| e.evaluate(batch)?.into_array(rows)).collect::<Result<Vec<_>>>()?;
            if self.raw {
                let filter = filter.as_ref().map(|f| f.evaluate(batch)?.into_array(rows)).transpose()?;
                let filter = filter.as_deref().map(as_boolean_array).transpose()?;
                acc.update_batch(&values, &self.indices, filter, total)?;
            } else {
                acc.merge_batch(&values, &self.indices, total)?;
            }
        }
        let size = self.slots.len() * 4
            + self.keys.capacity() * 8
            + self.outside.capacity() * 16
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>();
        self.reservation.try_resize(size)
    }

    /// Every group's key and aggregates, in batches.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        let groups = self.keys.len();
        if groups == 0 {
            return Ok(vec![]);
        }
        let null = self.null_group.map(|g| g as usize);
        let keys = std::mem::take(&mut self.keys);
        let key: ArrayRef = match self.schema.field(0).data_type() {
            DataType::Int64 => {
                Arc::new(keys.iter().enumerate().map(|(i, k)| (Some(i) != null).then_some(*k)).collect::<Int64Array>())
            }
            DataType::Int32 => Arc::new(
                keys.iter().enumerate().map(|(i, k)| (Some(i) != null).then_some(*k as i32)).collect::<Int32Array>(),
            ),
            other => return internal_err!("DenseGroupExec grouped by {other}"),
        };
        let mut columns = vec![key];
        for acc in &mut self.accumulators {
            if self.states_out {
                columns.extend(acc.state(EmitTo::All)?);
            } else {
                columns.push(acc.evaluate(EmitTo::All)?);
            }
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.slots = Vec::new();
        self.outside = HashMap::new();
        self.reservation.free();
        let size = self.batch_size.max(1);
        Ok((0..groups).step_by(size).map(|at| batch.slice(at, size.min(groups - at))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    /// `k` in runs of eight over 1..=5000 with NULLs, `k32` the same as a
    /// 32-bit integer, `v` to aggregate (with NULLs).
    fn write(path: &std::path::Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("k32", DataType::Int32, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let n = 40_000i64;
        let k: Int64Array = (0..n).map(|i| (i % 997 != 0).then_some(1 + i / 8)).collect();
        let k32: Int32Array = (0..n).map(|i| (i % 997 != 0).then_some((1 + i / 8) as i32)).collect();
        let v: Int64Array = (0..n).map(|i| (i % 13 != 0).then_some(i % 100)).collect();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(k32), Arc::new(v)]).unwrap();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn sorted_text(batches: &[RecordBatch]) -> Vec<String> {
        let text = datafusion::arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    /// The plan of `sql` with its final aggregation replaced by `replace`;
    /// whether one was.
    async fn run(
        ctx: &SessionContext,
        sql: &str,
        replace: impl Fn(&AggregateExec) -> Option<DenseGroupExec>,
    ) -> (Vec<String>, bool) {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let mut replaced = false;
        let plan = plan
            .transform_up(|node| {
                let Some(agg) = node.downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
                match replace(agg) {
                    Some(exec) => {
                        replaced = true;
                        Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>))
                    }
                    None => Ok(Transformed::no(node)),
                }
            })
            .data()
            .unwrap();
        let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await.unwrap();
        (sorted_text(&batches), replaced)
    }

    #[tokio::test]
    async fn groups_by_a_dense_key_as_by_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.parquet");
        write(&file);
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        ctx.register_parquet("t", file.to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
        let queries = [
            "SELECT k, sum(v), count(*), count(v), min(v), max(v), avg(v) FROM t GROUP BY k",
            "SELECT k32, sum(v) FILTER (WHERE v > 50), count(*) FROM t GROUP BY k32 HAVING count(*) > 1",
            "SELECT k, sum(v) FROM t WHERE v < 0 GROUP BY k",
        ];
        for sql in queries {
            let expected = sorted_text(&ctx.sql(sql).await.unwrap().collect().await.unwrap());
            // The rule's choice: the footer bounds the key to 1..=5000, 8
            // rows a key.
            let (got, replaced) = run(&ctx, sql, |agg| Some(DenseGroupExec::new(Arc::new(agg.clone()), key_range(agg).unwrap()?))).await;
            assert!(replaced || sql.contains("v < 0"), "{sql}: grouped through the array");
            assert_eq!(got, expected, "{sql}");
            // A range narrower than the keys (stale statistics): the keys
            // outside it are grouped in the hash map, with the same answer.
            let narrow = KeyRange { low: 1000, slots: 1000 };
            let (got, _) = run(&ctx, sql, |agg| {
                key_range(agg).unwrap().map(|_| DenseGroupExec::new(Arc::new(agg.clone()), narrow))
            })
            .await;
            assert_eq!(got, expected, "{sql} over a narrow range");
        }
        // The partial aggregation below the final one is grouped through an
        // array too (5,000 keys), and gave the same answers above.
        let plan = ctx.sql(queries[0]).await.unwrap().create_physical_plan().await.unwrap();
        let mut partial = 0;
        plan.apply(|node| {
            if let Some(agg) = node.downcast_ref::<AggregateExec>()
                && *agg.mode() == AggregateMode::Partial
                && key_range(agg)?.is_some()
            {
                partial += 1;
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        assert_eq!(partial, 1);
        // Too few rows for the range: left to DataFusion.
        let sparse = dir.path().join("sparse.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 1_000_000, 2_000_000]))]).unwrap();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&sparse).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        ctx.register_parquet("s", sparse.to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
        let (_, replaced) = run(&ctx, "SELECT k, count(*) FROM s GROUP BY k", |agg| {
            key_range(agg).unwrap().map(|r| DenseGroupExec::new(Arc::new(agg.clone()), r))
        })
        .await;
        assert!(!replaced);
    }
}
