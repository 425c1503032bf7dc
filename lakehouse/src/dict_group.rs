//! Grouping on dictionary-encoded text by the dictionaries' codes.
//!
//! DataFusion groups rows by two or more columns through its row format,
//! and for dictionary-encoded columns that means turning every row's key
//! back into its text before the group is looked up. The loaded copies
//! keep low-cardinality text as dictionaries (one per chunk), so TPC-H Q1's
//! `GROUP BY l_returnflag, l_linestatus` spent about 30% of its time there.
//!
//! [`DictionaryGroups`] replaces a partial aggregation whose grouping
//! columns are all dictionary-encoded text with a [`DictionaryGroupExec`].
//! Per batch it interns each dictionary's few values once, combines the
//! rows' keys into one small code, and maps codes to groups through a
//! table the size of the batch's possible combinations: per row, a
//! multiply-add and an array lookup. The aggregates are DataFusion's own
//! group accumulators, fed exactly as its aggregation feeds them, and the
//! output has the partial aggregation's schema, so the final aggregation
//! above is unchanged. When the groups outgrow [`MAX_GROUPS`] or the
//! query's memory, the groups so far are emitted and counting starts again
//! (a partial aggregation may emit a group more than once; the final one
//! merges them).
//!
//! `LAKEWAVE_DICTIONARY_GROUPS=off` in the server's environment turns the
//! rule off, for comparisons.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, DictionaryArray, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int32Type, Int64Type, SchemaRef, UInt64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::cast::as_boolean_array;
use datafusion::common::{internal_err, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::ExecutionPlan;

use crate::grouped_exec::{grouped_stream, plain_aggregation, replace_aggregations, GroupedAggregateExec, Grouping, GroupingKind};

/// Most groups held before the partial results are emitted.
/// (Small in unit tests, so that they emit early.)
pub const MAX_GROUPS: usize = if cfg!(test) { 1000 } else { 1 << 16 };

/// Largest table of a batch's key combinations; batches with more possible
/// combinations look each row's combination up by hashing.
const MAX_LOCAL_CODES: usize = if cfg!(test) { 4096 } else { 1 << 16 };

/// Most groups in a batch for which sums and counts are added up before
/// they reach the accumulators.
const MAX_PRESUMMED_GROUPS: usize = 256;

/// Most grouping columns (their codes are packed into 128 bits).
const MAX_COLUMNS: usize = 4;

/// A group column's value that is NULL.
const NULL_CODE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub struct DictionaryGroups;

impl PhysicalOptimizerRule for DictionaryGroups {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_DICTIONARY_GROUPS") {
            return Ok(plan);
        }
        replace_aggregations(plan, |agg| Ok(applies(agg)?.then_some(DictionaryCodes)))
    }

    fn name(&self) -> &str {
        "DictionaryGroups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Puts [`DictionaryGroups`], then [`crate::group_keys::ViewGroupKeys`]
/// (which leaves the aggregations grouped by codes alone), last but
/// DataFusion's sanity check: they replace aggregations the other rules
/// have finished with.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    crate::insert_before_sanity_check(rules, Arc::new(DictionaryGroups));
    crate::insert_before_sanity_check(rules, Arc::new(crate::group_keys::ViewGroupKeys));
}

/// Whether `agg` is a plain partial aggregation grouped only by
/// dictionary-encoded text, with aggregates that have group accumulators.
fn applies(agg: &AggregateExec) -> Result<bool> {
    let group_by = agg.group_expr();
    if *agg.mode() != AggregateMode::Partial
        || group_by.expr().is_empty()
        || group_by.expr().len() > MAX_COLUMNS
        || !plain_aggregation(agg)
    {
        return Ok(false);
    }
    let input = agg.input_schema();
    for (e, _) in group_by.expr() {
        if !crate::group_keys::is_dictionary_text(&e.data_type(&input)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A partial aggregation grouped by dictionary codes (see the module).
pub type DictionaryGroupExec = GroupedAggregateExec<DictionaryCodes>;

/// The grouping of [`DictionaryGroupExec`].
#[derive(Debug, Clone, Copy)]
pub struct DictionaryCodes;

impl GroupingKind for DictionaryCodes {
    const NAME: &'static str = "DictionaryGroupExec";

    fn describe(&self, _f: &mut fmt::Formatter) -> fmt::Result {
        Ok(())
    }

    fn execute(
        &self,
        agg: &Arc<AggregateExec>,
        partition: usize,
        context: Arc<TaskContext>,
        metrics: BaselineMetrics,
    ) -> Result<SendableRecordBatchStream> {
        let input = agg.input().execute(partition, context.clone())?;
        let groups = Groups::new(agg, &context, partition)?;
        Ok(grouped_stream(input, agg.schema(), groups, metrics))
    }
}

impl Grouping for Groups {
    fn add(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        if self.update(batch)? { self.emit() } else { Ok(vec![]) }
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.emit()
    }
}

/// A multiply-shift hasher for the packed codes of the hashed path.
#[derive(Default)]
struct CodeHasher(u64);

impl Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64 ^ (v >> 64) as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type CodeMap = HashMap<u128, u32, BuildHasherDefault<CodeHasher>>;

/// The values one grouping column has taken, each with its code.
#[derive(Default)]
struct Interner {
    codes: HashMap<String, u32>,
    values: Vec<String>,
    /// Memory held, counted as values are added.
    bytes: usize,
}

impl Interner {
    fn code(&mut self, v: &str) -> u32 {
        if let Some(c) = self.codes.get(v) {
            return *c;
        }
        let c = self.values.len() as u32;
        self.values.push(v.to_string());
        self.codes.insert(v.to_string(), c);
        self.bytes += 2 * v.len() + 64;
        c
    }
}

/// The groups of one partition and their accumulators.
struct Groups {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Per aggregate: its argument expressions and optional filter.
    args: Vec<(Vec<Arc<dyn PhysicalExpr>>, Option<Arc<dyn PhysicalExpr>>)>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    interners: Vec<Interner>,
    /// Packed column codes of each group -> its index.
    index: CodeMap,
    /// Per group column, each group's code.
    group_codes: Vec<Vec<u32>>,
    schema: SchemaRef,
    batch_size: usize,
    reservation: MemoryReservation,
    /// How each aggregate can be summed per group here, if it can.
    kinds: Vec<Kind>,
    /// Scratch space reused across batches: combinations to their dense
    /// numbers, each row's dense number and group, each dense number's group.
    local: Vec<u32>,
    dense: Vec<u32>,
    indices: Vec<usize>,
    batch_groups: Vec<usize>,
}

impl Groups {
    fn new(agg: &AggregateExec, context: &Arc<TaskContext>, partition: usize) -> Result<Self> {
        let group_exprs: Vec<_> = agg.group_expr().expr().iter().map(|(e, _)| e.clone()).collect();
        let aggs = agg.aggr_expr();
        let args = aggs.iter().zip(agg.filter_expr()).map(|(a, f)| (a.expressions(), f.clone())).collect();
        let accumulators = aggs.iter().map(|a| a.create_groups_accumulator()).collect::<Result<Vec<_>>>()?;
        let reservation = MemoryConsumer::new(format!("DictionaryGroupExec[{partition}]")).register(context.memory_pool());
        Ok(Self {
            interners: group_exprs.iter().map(|_| Interner::default()).collect(),
            group_codes: vec![Vec::new(); group_exprs.len()],
            group_exprs,
            args,
            accumulators,
            index: CodeMap::default(),
            schema: agg.schema(),
            batch_size: context.session_config().batch_size(),
            reservation,
            kinds: aggs.iter().map(|a| Kind::of(a)).collect::<Result<Vec<_>>>()?,
            local: Vec::new(),
            dense: Vec::new(),
            indices: Vec::new(),
            batch_groups: Vec::new(),
        })
    }

    fn groups(&self) -> usize {
        self.group_codes[0].len()
    }

    /// Adds a batch; true when the groups should be emitted now.
    fn update(&mut self, batch: &RecordBatch) -> Result<bool> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(false);
        }
        // Per column: each row's dictionary key (the dictionary's length
        // for NULL) and the codes of the dictionary's values.
        let mut keys: Vec<Vec<u32>> = Vec::with_capacity(self.group_exprs.len());
        let mut value_codes: Vec<Vec<u32>> = Vec::with_capacity(self.group_exprs.len());
        for (i, e) in self.group_exprs.iter().enumerate() {
            let array = e.evaluate(batch)?.into_array(rows)?;
            let (k, codes) = dictionary_keys(&array, &mut self.interners[i])?;
            keys.push(k);
            value_codes.push(codes);
        }
        let combinations = value_codes.iter().try_fold(1usize, |acc, c| acc.checked_mul(c.len()));
        self.indices.clear();
        self.indices.reserve(rows);
        match combinations {
            Some(n) if n <= MAX_LOCAL_CODES => {
                // The row's combined key indexes a table of this batch's
                // combinations, filled as they are met.
                self.local.clear();
                self.local.resize(n, u32::MAX);
                let mut combined = std::mem::take(&mut keys[0]);
                for (k, codes) in keys.iter().zip(&value_codes).skip(1) {
                    let width = codes.len() as u32;
                    for (c, k) in combined.iter_mut().zip(k) {
                        *c = *c * width + k;
                    }
                }
                // Each combination met gets a dense number in this batch.
                self.batch_groups.clear();
                self.dense.clear();
                self.dense.reserve(rows);
                for c in combined {
                    let mut d = self.local[c as usize];
                    if d == u32::MAX {
                        d = self.batch_groups.len() as u32;
                        let g = self.group_of(decompose(c, &value_codes));
                        self.batch_groups.push(g as usize);
                        self.local[c as usize] = d;
                    }
                    self.dense.push(d);
                }
            }
            _ => {
                self.batch_groups.clear();
                for r in 0..rows {
                    let packed = pack(keys.iter().zip(&value_codes).map(|(k, codes)| codes[k[r] as usize]));
                    let g = self.group_of(packed);
                    self.indices.push(g as usize);
                }
            }
        }
        let total = self.groups();
        // With few groups in the batch, sums, counts and averages are
        // added up here per group and merged into the accumulators as
        // partial states: one update per group instead of one per row.
        let few = !self.batch_groups.is_empty() && self.batch_groups.len() <= MAX_PRESUMMED_GROUPS;
        let mut sorted: Option<ByGroup> = None;
        for ((acc, (args, filter)), kind) in self.accumulators.iter_mut().zip(&self.args).zip(&self.kinds) {
            let values = args.iter().map(|a| a.evaluate(batch)?.into_array(rows)).collect::<Result<Vec<_>>>()?;
            // Logical NULLs: a NULL literal's array, or a dictionary with
            // NULL values, has them without a null buffer.
            if few && filter.is_none() && values.iter().all(|v| v.logical_null_count() == 0) {
                let sorted = sorted.get_or_insert_with(|| ByGroup::new(&self.dense, self.batch_groups.len()));
                if let Some(states) = kind.presummed(&values, sorted)? {
                    acc.merge_batch(&states, &self.batch_groups, total)?;
                    continue;
                }
            }
            let filter = filter.as_ref().map(|f| f.evaluate(batch)?.into_array(rows)).transpose()?;
            let filter = filter.as_deref().map(as_boolean_array).transpose()?;
            if self.indices.len() != rows {
                self.indices.extend(self.dense.iter().map(|d| self.batch_groups[*d as usize]));
            }
            acc.update_batch(&values, &self.indices, filter, total)?;
        }
        let size = self.size();
        let over_memory = self.reservation.try_resize(size).is_err();
        Ok(total >= MAX_GROUPS || over_memory)
    }

    /// The group of packed column codes, made when new.
    fn group_of(&mut self, packed: u128) -> u32 {
        let next = self.group_codes[0].len() as u32;
        let g = *self.index.entry(packed).or_insert(next);
        if g == next {
            for (i, codes) in self.group_codes.iter_mut().enumerate() {
                codes.push((packed >> (32 * i)) as u32);
            }
        }
        g
    }

    fn size(&self) -> usize {
        self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self.index.capacity() * 24
            + self.group_codes.iter().map(|c| c.capacity() * 4).sum::<usize>()
            + self.interners.iter().map(|i| i.bytes).sum::<usize>()
    }

    /// The partial results of all groups so far, in batches; starts over.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        if self.groups() == 0 {
            return Ok(vec![]);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, codes) in self.group_codes.iter().enumerate() {
            // Only the values groups use, numbered anew: the interner also
            // holds values of batches' dictionaries that no row used, and
            // the schema's key type may be narrow.
            let interned = &self.interners[i].values;
            let mut renumbered = vec![u32::MAX; interned.len()];
            let mut used: Vec<&str> = Vec::new();
            let keys: Int32Array = codes
                .iter()
                .map(|c| {
                    if *c == NULL_CODE {
                        return None;
                    }
                    let c = *c as usize;
                    let slot = &mut renumbered[c];
                    if *slot == u32::MAX {
                        *slot = used.len() as u32;
                        used.push(&interned[c]);
                    }
                    Some(*slot as i32)
                })
                .collect();
            let values = StringArray::from_iter_values(used);
            let array: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values))?);
            let want = self.schema.field(i).data_type();
            columns.push(if array.data_type() == want { array } else { cast(&array, want)? });
        }
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.index = CodeMap::default();
        self.group_codes.iter_mut().for_each(Vec::clear);
        self.interners.iter_mut().for_each(|i| *i = Interner::default());
        self.reservation.try_resize(self.size()).ok();
        let size = self.batch_size.max(1);
        Ok((0..batch.num_rows()).step_by(size).map(|at| batch.slice(at, size.min(batch.num_rows() - at))).collect())
    }
}

/// An aggregate whose partial state this operator can compute for a
/// batch's groups: the state's types are DataFusion's (`state_fields`).
enum Kind {
    /// `SUM` of DECIMAL or 64-bit integers: the wrapping sum, as
    /// DataFusion's accumulator adds.
    Sum(DataType),
    /// `COUNT` of one argument: the non-NULL rows.
    Count,
    /// `AVG` of DECIMAL: the row count and the wrapping sum.
    Avg(DataType),
    Other,
}

impl Kind {
    fn of(agg: &datafusion::physical_expr::aggregate::AggregateFunctionExpr) -> Result<Self> {
        let args = agg.expressions();
        let state = agg.state_fields()?;
        let types: Vec<&DataType> = state.iter().map(|f| f.data_type()).collect();
        if args.len() != 1 {
            return Ok(Kind::Other);
        }
        Ok(match (agg.fun().name(), types.as_slice()) {
            ("sum", [t @ (DataType::Decimal128(..) | DataType::Int64 | DataType::UInt64)]) => Kind::Sum((*t).clone()),
            ("count", [DataType::Int64]) => Kind::Count,
            ("avg", [DataType::UInt64, t @ DataType::Decimal128(..)]) => Kind::Avg((*t).clone()),
            _ => Kind::Other,
        })
    }

    /// The partial states of the batch's groups, or None when this
    /// aggregate or its input is not one summed here.
    fn presummed(&self, values: &[ArrayRef], by_group: &mut ByGroup) -> Result<Option<Vec<ArrayRef>>> {
        let [v] = values else { return Ok(None) };
        let mut sum = |t: &DataType| -> Option<ArrayRef> {
            match (t, v.data_type()) {
                (DataType::Decimal128(_, s), DataType::Decimal128(_, input)) if s == input => {
                    Some(Arc::new(Decimal128Array::from(by_group.decimal_sums(v)).with_data_type(t.clone())))
                }
                (DataType::Int64, DataType::Int64) => {
                    Some(Arc::new(Int64Array::from(by_group.sums(v.as_primitive::<Int64Type>().values(), i64::wrapping_add))))
                }
                (DataType::UInt64, DataType::UInt64) => {
                    Some(Arc::new(UInt64Array::from(by_group.sums(v.as_primitive::<UInt64Type>().values(), u64::wrapping_add))))
                }
                _ => None,
            }
        };
        let counts = |by_group: &ByGroup| by_group.counts.clone();
        Ok(match self {
            Kind::Sum(t) => sum(t).map(|s| vec![s]),
            Kind::Count => Some(vec![Arc::new(Int64Array::from_iter_values(counts(by_group).into_iter().map(|c| c as i64)))]),
            Kind::Avg(t) => sum(t).map(|s| vec![Arc::new(UInt64Array::from(counts(by_group))) as ArrayRef, s]),
            Kind::Other => None,
        })
    }
}

/// A batch's rows' groups, for adding up values per group: each row's
/// value goes to one of four running sums of its group, by the row's
/// position, so that the additions of consecutive rows of one group do not
/// wait on each other.
struct ByGroup<'a> {
    /// Each row's group among the batch's.
    dense: &'a [u32],
    groups: usize,
    /// Each group's rows.
    counts: Vec<u64>,
    /// DECIMAL sums already taken in this batch, by their input (`SUM(x)`
    /// and `AVG(x)` of one query read the same array).
    decimal_sums: Vec<(ArrayRef, Vec<i128>)>,
}

impl<'a> ByGroup<'a> {
    fn new(dense: &'a [u32], groups: usize) -> Self {
        let mut lanes = vec![0u64; groups * 4];
        for (r, d) in dense.iter().enumerate() {
            lanes[*d as usize * 4 + (r & 3)] += 1;
        }
        let counts = lanes.chunks_exact(4).map(|l| l.iter().sum()).collect();
        Self { dense, groups, counts, decimal_sums: Vec::new() }
    }

    fn decimal_sums(&mut self, values: &ArrayRef) -> Vec<i128> {
        if let Some((_, sums)) = self.decimal_sums.iter().find(|(a, _)| Arc::ptr_eq(a, values)) {
            return sums.clone();
        }
        let sums = self.sums(values.as_primitive::<Decimal128Type>().values(), i128::wrapping_add);
        self.decimal_sums.push((values.clone(), sums.clone()));
        sums
    }

    /// Per group, the wrapping sum of its rows' values.
    fn sums<T: Copy + Default>(&self, values: &[T], add: impl Fn(T, T) -> T) -> Vec<T> {
        if self.groups == 1 {
            return vec![sum4(values.iter().copied(), &add)];
        }
        let mut lanes = vec![T::default(); self.groups * 4];
        let (dense, values) = (self.dense.chunks_exact(4), values.chunks_exact(4));
        let (dense_rest, values_rest) = (dense.remainder(), values.remainder());
        for (d, v) in dense.zip(values) {
            for k in 0..4 {
                let slot = &mut lanes[d[k] as usize * 4 + k];
                *slot = add(*slot, v[k]);
            }
        }
        for (d, v) in dense_rest.iter().zip(values_rest) {
            let slot = &mut lanes[*d as usize * 4];
            *slot = add(*slot, *v);
        }
        lanes.chunks_exact(4).map(|l| add(add(l[0], l[1]), add(l[2], l[3]))).collect()
    }
}

fn sum4<T: Copy + Default>(mut values: impl Iterator<Item = T>, add: &impl Fn(T, T) -> T) -> T {
    let (mut a, mut b, mut c, mut d) = (T::default(), T::default(), T::default(), T::default());
    loop {
        let Some(x) = values.next() else { break };
        a = add(a, x);
        let Some(x) = values.next() else { break };
        b = add(b, x);
        let Some(x) = values.next() else { break };
        c = add(c, x);
        let Some(x) = values.next() else { break };
        d = add(d, x);
    }
    add(add(a, b), add(c, d))
}

/// Packs per-column codes, 32 bits each.
fn pack(codes: impl Iterator<Item = u32>) -> u128 {
    codes.enumerate().fold(0u128, |acc, (i, c)| acc | (u128::from(c) << (32 * i)))
}

/// The packed column codes of a batch's combined key.
fn decompose(mut combined: u32, value_codes: &[Vec<u32>]) -> u128 {
    let mut packed = 0u128;
    for (i, codes) in value_codes.iter().enumerate().rev() {
        let width = codes.len() as u32;
        packed |= u128::from(codes[(combined % width) as usize]) << (32 * i);
        combined /= width;
    }
    packed
}

/// A dictionary column's keys as indexes into `codes`, and `codes`: the
/// interned code of each dictionary value, then [`NULL_CODE`] for NULL keys.
fn dictionary_keys(array: &ArrayRef, interner: &mut Interner) -> Result<(Vec<u32>, Vec<u32>)> {
    let Some(dict) = array.as_any_dictionary_opt() else {
        return internal_err!("DictionaryGroupExec expects dictionary-encoded groups, got {}", array.data_type());
    };
    let values = dict.values();
    let Some(text) = values.as_string_opt::<i32>() else {
        return internal_err!("DictionaryGroupExec expects text dictionaries, got {}", values.data_type());
    };
    let mut codes: Vec<u32> =
        (0..text.len()).map(|i| if text.is_null(i) { NULL_CODE } else { interner.code(text.value(i)) }).collect();
    let null_slot = codes.len() as u32;
    codes.push(NULL_CODE);
    let nulls = dict.keys().logical_nulls();
    let mut keys: Vec<u32> = match array.as_dictionary_opt::<Int32Type>() {
        // A dictionary without values has only NULL keys (Arrow's
        // normalised keys refuse it).
        _ if text.is_empty() => vec![null_slot; array.len()],
        Some(d) => d.keys().values().iter().map(|k| *k as u32).collect(),
        None => dict.normalized_keys().into_iter().map(|k| k as u32).collect(),
    };
    if let Some(nulls) = nulls {
        for (k, valid) in keys.iter_mut().zip(nulls.iter()) {
            if !valid {
                *k = null_slot;
            }
        }
    }
    // A NULL key's slot may hold any value; keep keys inside the table.
    if keys.iter().any(|k| *k > null_slot) {
        return internal_err!("a dictionary key is out of range");
    }
    Ok((keys, codes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::displayable;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// The same GROUP BY over dictionary-encoded columns gives the same
    /// groups with the rule on as DataFusion's own aggregation, including
    /// NULL keys, NULL dictionary values, dictionaries without values,
    /// `COUNT(NULL)` and more groups than one batch.
    #[tokio::test]
    async fn same_groups_as_datafusion() -> Result<()> {
        let config = SessionConfig::new().with_target_partitions(2).with_batch_size(1000);
        let ctx = SessionContext::new_with_config(config);
        ctx.sql(
            "CREATE TABLE t AS SELECT arrow_cast(CASE WHEN v % 13 = 0 THEN NULL ELSE chr(65 + v % 5) END, 'Dictionary(Int32, Utf8)') AS a, \
                    arrow_cast(CAST(v % 7 AS VARCHAR), 'Dictionary(Int8, Utf8)') AS b, \
                    arrow_cast(CAST(v % 3001 AS VARCHAR), 'Dictionary(Int32, Utf8)') AS c, v, \
                    arrow_cast(v * 7, 'Decimal128(15, 2)') AS d, CASE WHEN v % 11 = 0 THEN NULL ELSE v END AS n, \
                    arrow_cast(CAST(NULL AS VARCHAR), 'Dictionary(Int8, Utf8)') AS e \
             FROM generate_series(1, 20000) AS g(v)",
        )
        .await?
        .collect()
        .await?;
        let queries = [
            "SELECT a, b, count(*), sum(v), avg(v), min(v), max(v) FROM t GROUP BY a, b ORDER BY a, b",
            "SELECT a, b, sum(d), avg(d), sum(d * d), count(n), sum(n), avg(n) FROM t GROUP BY a, b ORDER BY a, b",
            "SELECT a, c, sum(d), avg(d), count(n) FROM t GROUP BY a, c ORDER BY a, c",
            "SELECT a, c, count(*) FILTER (WHERE v % 2 = 0), sum(v) FROM t GROUP BY a, c ORDER BY a, c",
            "SELECT c, count(*) FROM t WHERE v > 100 GROUP BY c ORDER BY c",
            "SELECT a, b, c, sum(v) FROM t GROUP BY a, b, c ORDER BY a, b, c",
            "SELECT a, count(NULL), count(a), count(v) FROM t GROUP BY a ORDER BY a",
            "SELECT e, count(*) FROM t GROUP BY e ORDER BY e",
            "SELECT b, count(*) FROM t WHERE c = '7' GROUP BY b ORDER BY b",
        ];
        for q in queries {
            let rule = DictionaryGroups;
            let df = ctx.sql(q).await?;
            let expected = pretty_format_batches(&df.clone().collect().await?)?.to_string();
            let plan = df.create_physical_plan().await?;
            let plan = rule.optimize(plan, &ConfigOptions::default())?;
            let shown = displayable(plan.as_ref()).indent(false).to_string();
            assert!(shown.contains("DictionaryGroupExec"), "{q}: {shown}");
            let got = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
            assert_eq!(pretty_format_batches(&got)?.to_string(), expected, "{q}");
        }
        Ok(())
    }

    /// Values of a batch's dictionary that no row uses do not count toward
    /// the emitted keys: 300 values met, 3 used, in a column with 1-byte
    /// keys (which hold at most 128).
    #[tokio::test]
    async fn unused_dictionary_values_fit_narrow_keys() -> Result<()> {
        use datafusion::arrow::array::Int8Array;
        use datafusion::arrow::datatypes::{Field, Int8Type, Schema};
        use datafusion::datasource::MemTable;
        let key = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        let schema = Arc::new(Schema::new(vec![Field::new("k", key, true), Field::new("v", DataType::Int64, false)]));
        let batches = (0..3)
            .map(|b| {
                let values = StringArray::from_iter_values((0..100).map(|i| format!("{}", b * 100 + i)));
                let keys = DictionaryArray::<Int8Type>::try_new(Int8Array::from(vec![99i8; 10]), Arc::new(values))?;
                Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(keys), Arc::new(Int64Array::from(vec![2i64; 10]))])?)
            })
            .collect::<Result<Vec<_>>>()?;
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        ctx.register_table("u", Arc::new(MemTable::try_new(schema, vec![batches])?))?;
        let df = ctx.sql("SELECT k, count(*), sum(v) FROM u GROUP BY k ORDER BY k").await?;
        let plan = DictionaryGroups.optimize(df.create_physical_plan().await?, &ConfigOptions::default())?;
        assert!(displayable(plan.as_ref()).indent(false).to_string().contains("DictionaryGroupExec"));
        let got = pretty_format_batches(&datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?)?.to_string();
        let want = ["+-----+----------+----------+", "| k   | count(*) | sum(u.v) |", "+-----+----------+----------+",
            "| 199 | 10       | 20       |", "| 299 | 10       | 20       |", "| 99  | 10       | 20       |",
            "+-----+----------+----------+"].join("\n");
        assert_eq!(got, want);
        Ok(())
    }
}
