//! Join build keys as a bitmap, for the runtime filters of the probe side.
//!
//! A hash join's runtime filter tests a probe row with the join's own hash
//! table once the build keys are too many for a short list and too sparse
//! for DataFusion's direct-indexed array: the key is hashed and looked up,
//! about 25 ns a row. In TPC-H Q4 on the loaded copies that was 96 ms of CPU
//! for 3.8M `lineitem` rows, against 57,000 order keys spread over 6M.
//!
//! When a join has one integer key, [`CollectBuildKeys`] puts a
//! [`BuildKeysExec`] above its build side, which keeps the key columns of
//! the rows going by and their range (the join concatenates its build
//! batches, so the columns kept are memory of their own, reserved in the
//! query's memory pool: without room, or once the range is past any
//! bitmap's, they are let go), and gives the same [`BuildKeys`] to the
//! [`RuntimeFilterExec`]s that evaluate the join's filter. Once every
//! partition of the build side has been read and the filter has proved
//! selective on a scan's first rows, that scan tests its rows against a
//! bitmap of the keys from then on: one bit per value over the keys' range
//! (6M bits, 750 KB, in Q4), made by the first scan that needs it and
//! shared with the others.
//!
//! The bitmap keeps exactly the rows whose key is among the build keys,
//! which is what the join's own filter keeps (its bounds and its lookup),
//! so it stands in for it. For a partitioned join it is the union of every
//! partition's keys, which needs none of the routing by hash that the
//! join's filter does. Keys spread too thinly (see [`KeySpan::bits`]) leave
//! the join's filter as it is. `LAKEWAVE_KEY_BITMAPS=off` in the server's
//! environment turns this off, for comparisons.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef,
    UInt16Type, UInt32Type, UInt8Type,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{NullEquality, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::metrics::Count;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::{Stream, StreamExt};

use crate::runtime_filter::RuntimeFilterExec;

/// Keys over a range of up to this many values always get a bitmap
/// (1 MB): setting it up costs well under a millisecond.
const SMALL_RANGE: u64 = 1 << 23;
/// Wider ranges need at least one key per this many values...
const MIN_DENSITY: u64 = 128;
/// ...and never more than this many bits (32 MB).
const MAX_RANGE: u64 = 1 << 28;

/// Whether a key of this type is an integer that converts to `i64` without
/// loss, the values a bitmap is set up over.
pub(crate) fn bitmap_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Date32
            | DataType::Date64
    )
}

/// The native types of [`bitmap_type`]'s, widened to `i64` without loss.
trait Widen: Copy {
    fn widen(self) -> i64;
}

macro_rules! widen_from {
    ($($t:ty),*) => {$(impl Widen for $t {
        #[inline]
        fn widen(self) -> i64 {
            i64::from(self)
        }
    })*};
}
widen_from!(i8, i16, i32, i64, u8, u16, u32);

/// What is done with an array's values, for each native type.
trait ValuesVisitor {
    type Output;
    fn visit<T: ArrowPrimitiveType>(self, array: &PrimitiveArray<T>) -> Self::Output
    where
        T::Native: Widen;
}

/// Runs `visitor` over the array's values, for the types of
/// [`bitmap_type`]; None for the others.
fn visit_values<V: ValuesVisitor>(array: &dyn Array, visitor: V) -> Option<V::Output> {
    Some(match array.data_type() {
        DataType::Int8 => visitor.visit(array.as_primitive::<Int8Type>()),
        DataType::Int16 => visitor.visit(array.as_primitive::<Int16Type>()),
        DataType::Int32 => visitor.visit(array.as_primitive::<Int32Type>()),
        DataType::Int64 => visitor.visit(array.as_primitive::<Int64Type>()),
        DataType::UInt8 => visitor.visit(array.as_primitive::<UInt8Type>()),
        DataType::UInt16 => visitor.visit(array.as_primitive::<UInt16Type>()),
        DataType::UInt32 => visitor.visit(array.as_primitive::<UInt32Type>()),
        DataType::Date32 => visitor.visit(array.as_primitive::<Date32Type>()),
        DataType::Date64 => visitor.visit(array.as_primitive::<Date64Type>()),
        _ => return None,
    })
}

/// The lowest and highest non-null value and how many there are.
struct Span;

impl ValuesVisitor for Span {
    type Output = KeySpan;
    fn visit<T: ArrowPrimitiveType>(self, array: &PrimitiveArray<T>) -> Self::Output
    where
        T::Native: Widen,
    {
        let mut span = KeySpan::EMPTY;
        if array.null_count() == 0 {
            // A loop the compiler vectorises.
            let (mut low, mut high) = (i64::MAX, i64::MIN);
            for v in array.values().iter() {
                low = low.min(v.widen());
                high = high.max(v.widen());
            }
            span.add(KeySpan { low, high, count: array.len() as u64 });
        } else {
            for v in array.iter().flatten() {
                span.add(KeySpan { low: v.widen(), high: v.widen(), count: 1 });
            }
        }
        span
    }
}

/// The lowest and highest of some keys, and how many there are.
#[derive(Debug, Clone, Copy)]
struct KeySpan {
    low: i64,
    high: i64,
    count: u64,
}

impl KeySpan {
    const EMPTY: KeySpan = KeySpan { low: i64::MAX, high: i64::MIN, count: 0 };

    fn add(&mut self, other: KeySpan) {
        if other.count > 0 {
            self.low = self.low.min(other.low);
            self.high = self.high.max(other.high);
            self.count += other.count;
        }
    }

    /// The number of bits a bitmap of these keys takes, when that is not
    /// too many for them: a range of up to [`SMALL_RANGE`] values, or one
    /// with a key for every [`MIN_DENSITY`] values at least, up to
    /// [`MAX_RANGE`].
    /// Whether more keys could still make the span narrow enough.
    fn could_fit(&self) -> bool {
        self.count == 0 || i128::from(self.high) - i128::from(self.low) < i128::from(MAX_RANGE)
    }

    fn bits(&self) -> Option<u64> {
        if self.count == 0 {
            return Some(0);
        }
        let range = (i128::from(self.high) - i128::from(self.low) + 1) as u128;
        let allowed = SMALL_RANGE.max(self.count.saturating_mul(MIN_DENSITY)).min(MAX_RANGE);
        (range <= u128::from(allowed)).then_some(range as u64)
    }
}

/// Sets the bits of the non-null values.
struct Set<'a>(&'a mut KeyBitmap);

impl ValuesVisitor for Set<'_> {
    type Output = ();
    fn visit<T: ArrowPrimitiveType>(self, array: &PrimitiveArray<T>) -> Self::Output
    where
        T::Native: Widen,
    {
        let (low, words) = (self.0.low, &mut self.0.words);
        let mut set = |v: i64| {
            let at = v.wrapping_sub(low) as u64;
            words[(at >> 6) as usize] |= 1 << (at & 63);
        };
        if array.null_count() == 0 {
            array.values().iter().for_each(|v| set(v.widen()));
        } else {
            array.iter().flatten().for_each(|v| set(v.widen()));
        }
    }
}

/// Whether `base + value` is a key, for every value (nulls included: they
/// are masked out after).
struct Test<'a>(&'a KeyBitmap, i64);

impl ValuesVisitor for Test<'_> {
    type Output = BooleanBuffer;
    fn visit<T: ArrowPrimitiveType>(self, array: &PrimitiveArray<T>) -> Self::Output
    where
        T::Native: Widen,
    {
        let values = array.values();
        let Test(bitmap, base) = self;
        BooleanBuffer::collect_bool(values.len(), |i| bitmap.has(base.wrapping_add(values[i].widen())))
    }
}

/// One bit for each value of `[low, low + len)`, set for the keys present.
#[derive(Debug)]
pub struct KeyBitmap {
    low: i64,
    len: u64,
    words: Vec<u64>,
}

impl KeyBitmap {
    /// The bitmap of `keys`, whose span is `span`.
    fn over(span: KeySpan, keys: &[ArrayRef]) -> Option<KeyBitmap> {
        let len = span.bits()?;
        let mut bitmap = KeyBitmap { low: span.low, len, words: vec![0u64; len.div_ceil(64) as usize] };
        for array in keys {
            visit_values(array.as_ref(), Set(&mut bitmap))?;
        }
        Some(bitmap)
    }

    #[inline]
    fn has(&self, value: i64) -> bool {
        let at = value.wrapping_sub(self.low) as u64;
        // Below `low`, the difference wraps far past `len`.
        at < self.len && self.words[(at >> 6) as usize] >> (at & 63) & 1 == 1
    }

    /// Which of `array`'s values are keys (nulls are not); None for a type
    /// other than [`bitmap_type`]'s.
    pub fn contains(&self, array: &dyn Array) -> Option<BooleanArray> {
        self.contains_from(array, 0)
    }

    /// Which of the values `base + offset` are keys, for the offsets of a
    /// column stored narrow (unsigned, from the chunk's smallest value);
    /// nulls are not. None for offsets too wide for a bitmap's types.
    pub fn contains_offsets(&self, offsets: &dyn Array, base: i128) -> Option<BooleanArray> {
        let unsigned = matches!(offsets.data_type(), DataType::UInt8 | DataType::UInt16 | DataType::UInt32);
        self.contains_from(offsets, i64::try_from(base).ok().filter(|_| unsigned)?)
    }

    fn contains_from(&self, array: &dyn Array, base: i64) -> Option<BooleanArray> {
        let found = visit_values(array, Test(self, base))?;
        let found = match array.logical_nulls() {
            Some(nulls) => &found & nulls.inner(),
            None => found,
        };
        Some(BooleanArray::new(found, None))
    }
}

/// The bitmaps of join keys a [`RuntimeFilterExec`] hands down to the scan
/// of a loaded table below it, per partition: the scan tests its key
/// column while it is still stored narrow, and widens and passes on only
/// the rows that can join (see `rapid::scan`). The runtime filter keeps
/// testing too: rows read before it handed a bitmap down, and scans that
/// cannot test a column, are filtered as before.
#[derive(Debug, Default)]
pub struct ScanKeyTests {
    partitions: Mutex<Vec<Option<PartitionTests>>>,
}

/// One partition's tests: (column of the scan's output, bitmap), and the
/// count of rows they drop.
#[derive(Debug, Clone)]
struct PartitionTests {
    tests: Vec<(usize, Arc<KeyBitmap>)>,
    dropped: Count,
}

impl ScanKeyTests {
    /// A new execution of `partition`: the tests of an earlier one are
    /// forgotten (their keys may not be this one's).
    pub fn start(&self, partition: usize, dropped: Count) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        if partitions.len() <= partition {
            partitions.resize(partition + 1, None);
        }
        partitions[partition] = Some(PartitionTests { tests: Vec::new(), dropped });
    }

    /// From now on, the scan's rows of `partition` must have their key in
    /// `column` among the bitmap's keys.
    pub fn add(&self, partition: usize, column: usize, bitmap: Arc<KeyBitmap>) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(p)) = partitions.get_mut(partition) {
            p.tests.push((column, bitmap));
        }
    }

    /// Brings `tests` up to the partition's (tests are only added during an
    /// execution); the count of the rows they drop.
    pub fn refresh(&self, partition: usize, tests: &mut Vec<(usize, Arc<KeyBitmap>)>) -> Option<Count> {
        let partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let p = partitions.get(partition)?.as_ref()?;
        if p.tests.len() != tests.len() {
            tests.clone_from(&p.tests);
        }
        Some(p.dropped.clone())
    }
}

/// The keys of one join's build side, gathered by its [`BuildKeysExec`]
/// and read by the runtime filters of its probe side.
#[derive(Debug)]
pub struct BuildKeys {
    partitions: usize,
    /// The key columns seen, and their span; None once a column was not of
    /// a [`bitmap_type`].
    keys: Mutex<Option<(Vec<ArrayRef>, KeySpan)>>,
    /// The memory the kept columns take, then the bitmap's.
    reservation: OnceLock<MemoryReservation>,
    started: Mutex<Vec<bool>>,
    finished: AtomicUsize,
    /// Set when a partition failed or was read twice: the keys gathered
    /// may then not be the join's, and no bitmap is made.
    spoiled: AtomicBool,
    bitmap: OnceLock<Option<Arc<KeyBitmap>>>,
}

impl BuildKeys {
    fn new(partitions: usize) -> Self {
        Self {
            partitions,
            keys: Mutex::new(Some((Vec::new(), KeySpan::EMPTY))),
            reservation: OnceLock::new(),
            started: Mutex::new(vec![false; partitions]),
            finished: AtomicUsize::new(0),
            spoiled: AtomicBool::new(false),
            bitmap: OnceLock::new(),
        }
    }

    fn start(&self, partition: usize, pool: &Arc<dyn MemoryPool>) {
        self.reservation.get_or_init(|| MemoryConsumer::new("BuildKeysExec").register(pool));
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        match started.get_mut(partition) {
            Some(seen) if !*seen => *seen = true,
            _ => self.spoiled.store(true, Ordering::Release),
        }
    }

    fn add(&self, keys: ArrayRef) {
        let span = visit_values(keys.as_ref(), Span);
        let mut gathered = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let Some((arrays, seen)) = gathered.as_mut() else { return };
        let mut widened = *seen;
        let kept = span.is_some_and(|span| {
            widened.add(span);
            widened.could_fit()
                && self.reservation.get().is_some_and(|r| r.try_grow(keys.get_array_memory_size()).is_ok())
        });
        if kept {
            arrays.push(keys);
            *seen = widened;
        } else {
            *gathered = None;
            if let Some(r) = self.reservation.get() {
                r.free();
            }
        }
    }

    /// Whether every partition of the build side has been read to its end
    /// and its keys are narrow enough for a bitmap (see [`KeySpan::bits`]).
    pub fn fit(&self) -> bool {
        if self.spoiled.load(Ordering::Acquire) || self.finished.load(Ordering::Acquire) < self.partitions {
            return false;
        }
        let gathered = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        gathered.as_ref().is_some_and(|(_, span)| span.bits().is_some())
    }

    /// The bitmap of the keys, once they [`fit`](Self::fit); made by the
    /// first caller, shared with the others.
    pub fn bitmap(&self) -> Option<Arc<KeyBitmap>> {
        if let Some(made) = self.bitmap.get() {
            return made.clone();
        }
        if !self.fit() {
            return None;
        }
        self.bitmap
            .get_or_init(|| {
                // The lock is held while the bitmap is made, so `fit` waits
                // for it; the columns are let go after.
                let mut gathered = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                let (keys, span) = gathered.as_mut()?;
                let reservation = self.reservation.get()?;
                let bytes = span.bits()?.div_ceil(64) as usize * 8;
                let made = reservation.try_grow(bytes).ok().and_then(|()| KeyBitmap::over(*span, keys)).map(Arc::new);
                keys.clear();
                reservation.resize(if made.is_some() { bytes } else { 0 });
                made
            })
            .clone()
    }
}

/// Passes its input on unchanged, keeping the join key of every row in a
/// [`BuildKeys`].
#[derive(Debug, Clone)]
pub struct BuildKeysExec {
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    keys: Arc<BuildKeys>,
}

impl DisplayAs for BuildKeysExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BuildKeysExec: key={}", self.key)
    }
}

impl ExecutionPlan for BuildKeysExec {
    fn name(&self) -> &str {
        "BuildKeysExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.key)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self { input: crate::only_child(self.name(), children)?, ..Self::clone(&self) }))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.keys.start(partition, context.memory_pool());
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(BuildKeysStream {
            schema: input.schema(),
            input,
            key: Arc::clone(&self.key),
            keys: Arc::clone(&self.keys),
            done: false,
        }))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<datafusion::physical_plan::statistics::ChildStats> {
        vec![datafusion::physical_plan::statistics::ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<datafusion::common::Statistics>],
        _args: &datafusion::physical_plan::StatisticsArgs,
    ) -> Result<Arc<datafusion::common::Statistics>> {
        Ok(match input_stats.first() {
            Some(s) => Arc::clone(s),
            None => Arc::new(datafusion::common::Statistics::new_unknown(&self.schema())),
        })
    }
}

struct BuildKeysStream {
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    key: Arc<dyn PhysicalExpr>,
    keys: Arc<BuildKeys>,
    done: bool,
}

impl BuildKeysStream {
    fn keep(&self, batch: &RecordBatch) -> Result<()> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        self.keys.add(keys);
        Ok(())
    }
}

impl Stream for BuildKeysStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                if let Err(e) = self.keep(batch) {
                    self.keys.spoiled.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(e)));
                }
            }
            Poll::Ready(Some(Err(_))) => self.keys.spoiled.store(true, Ordering::Release),
            Poll::Ready(None) if !self.done => {
                self.done = true;
                self.keys.finished.fetch_add(1, Ordering::AcqRel);
            }
            _ => {}
        }
        polled
    }
}

impl RecordBatchStream for BuildKeysStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// Gives every hash join with one integer key whose filter a
/// [`RuntimeFilterExec`] evaluates a [`BuildKeysExec`] over its build side,
/// and the runtime filters its [`BuildKeys`]. Runs after the runtime
/// filters have their filters (just before DataFusion's sanity check).
#[derive(Debug, Default)]
pub struct CollectBuildKeys;

impl PhysicalOptimizerRule for CollectBuildKeys {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_KEY_BITMAPS") {
            return Ok(plan);
        }
        // The filters the runtime filters evaluate, by identity.
        let mut evaluated = std::collections::HashSet::new();
        plan.apply(|node| {
            if let Some(wrapper) = node.downcast_ref::<RuntimeFilterExec>() {
                evaluated.extend(wrapper.filters().iter().filter_map(|f| join_filter_id(f)));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if evaluated.is_empty() {
            return Ok(plan);
        }
        // The joins producing them, with one key of an integer type.
        let mut gathered: HashMap<u64, Arc<BuildKeys>> = HashMap::new();
        let plan = plan
            .transform_up(|node| {
                let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
                let Some(id) = join.dynamic_expressions_produced().iter().find_map(|f| f.expression_id()) else {
                    return Ok(Transformed::no(node));
                };
                let [(build_key, probe_key)] = join.on() else { return Ok(Transformed::no(node)) };
                let (left, right) = (join.left().schema(), join.right().schema());
                let typed = build_key.data_type(&left).ok().filter(bitmap_type);
                if !evaluated.contains(&id)
                    || join.null_equality() != NullEquality::NullEqualsNothing
                    || typed.is_none()
                    || typed != probe_key.data_type(&right).ok()
                {
                    return Ok(Transformed::no(node));
                }
                let keys = Arc::new(BuildKeys::new(join.left().output_partitioning().partition_count()));
                gathered.insert(id, Arc::clone(&keys));
                let build = Arc::new(BuildKeysExec { input: Arc::clone(join.left()), key: Arc::clone(build_key), keys });
                let children = vec![build as Arc<dyn ExecutionPlan>, Arc::clone(join.right())];
                Ok(Transformed::yes(node.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep))?))
            })?
            .data;
        if gathered.is_empty() {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(wrapper) = node.downcast_ref::<RuntimeFilterExec>() else { return Ok(Transformed::no(node)) };
            let keys: Vec<(u64, Arc<BuildKeys>)> = wrapper
                .filters()
                .iter()
                .filter_map(|f| join_filter_id(f))
                .filter_map(|id| gathered.get(&id).map(|k| (id, Arc::clone(k))))
                .collect();
            if keys.is_empty() {
                return Ok(Transformed::no(node));
            }
            let mut wrapper = wrapper.clone().with_build_keys(keys);
            let tests = Arc::new(ScanKeyTests::default());
            if let Some(scan) = crate::rapid::scan::RapidSource::testing_keys(wrapper.input(), Arc::clone(&tests)) {
                wrapper = wrapper.with_scan_tests(scan, tests);
            }
            Ok(Transformed::yes(Arc::new(wrapper) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lakewave_collect_build_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The identity of a dynamic filter over one key column (the shape of a
/// single-key join's filter), None for other filters.
pub(crate) fn join_filter_id(filter: &Arc<dyn PhysicalExpr>) -> Option<u64> {
    let dynamic = filter.downcast_ref::<DynamicFilterPhysicalExpr>()?;
    (dynamic.children().len() == 1).then(|| filter.expression_id()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitmap of the non-null values of `keys`, as a join's build keys
    /// make it.
    fn bitmap_of(keys: &[ArrayRef]) -> Option<KeyBitmap> {
        let mut span = KeySpan::EMPTY;
        for array in keys {
            span.add(visit_values(array.as_ref(), Span)?);
        }
        KeyBitmap::over(span, keys)
    }
    use datafusion::arrow::array::{Int32Array, Int64Array};

    #[test]
    fn a_bitmap_keeps_exactly_the_keys() {
        let keys: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(7), None, Some(100), Some(-3)])),
            Arc::new(Int64Array::from(vec![64, 7, 65])),
        ];
        let bitmap = bitmap_of(&keys).expect("a narrow range");
        let probe = Int64Array::from(vec![Some(-4), Some(-3), Some(0), Some(7), None, Some(63), Some(64), Some(65), Some(100), Some(101), Some(i64::MIN), Some(i64::MAX)]);
        let found = bitmap.contains(&probe).expect("integers");
        let expected = [false, true, false, true, false, false, true, true, true, false, false, false];
        assert_eq!(found.iter().map(|b| b == Some(true)).collect::<Vec<_>>(), expected);
        assert_eq!(found.null_count(), 0);
    }

    #[test]
    fn narrower_integers_and_dates_widen() {
        let keys: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![3, 1_000]))];
        let bitmap = bitmap_of(&keys).expect("a narrow range");
        let probe = Int32Array::from(vec![1, 3, 999, 1_000, i32::MIN]);
        let found = bitmap.contains(&probe).expect("integers");
        assert_eq!(found.true_count(), 2);
        assert!(found.value(1) && found.value(3));
        let dates = datafusion::arrow::array::Date32Array::from(vec![3]);
        assert_eq!(bitmap.contains(&dates).expect("dates").true_count(), 1);
        let text = datafusion::arrow::array::StringArray::from(vec!["3"]);
        assert!(bitmap.contains(&text).is_none());
    }

    #[test]
    fn sparse_keys_get_no_bitmap() {
        // Two keys 2^40 apart: far too sparse.
        let keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![0, 1i64 << 40]))];
        assert!(bitmap_of(&keys).is_none());
        // Extreme values do not overflow the range computation.
        let keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![i64::MIN, i64::MAX]))];
        assert!(bitmap_of(&keys).is_none());
        // Wide, but dense enough: 100,000 keys over 10M values.
        let keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values((0..100_000).map(|k| k * 100)))];
        let bitmap = bitmap_of(&keys).expect("dense enough");
        assert_eq!(bitmap.contains(&Int64Array::from(vec![0, 50, 9_999_900, 9_999_901])).expect("ints").true_count(), 2);
        // No keys at all keep nothing.
        let keys: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![None::<i64>]))];
        let empty = bitmap_of(&keys).expect("empty");
        assert_eq!(empty.contains(&Int64Array::from(vec![0, 1])).expect("ints").true_count(), 0);
    }

    fn pool(bytes: Option<usize>) -> Arc<dyn MemoryPool> {
        use datafusion::execution::memory_pool::{GreedyMemoryPool, UnboundedMemoryPool};
        match bytes {
            Some(limit) => Arc::new(GreedyMemoryPool::new(limit)),
            None => Arc::new(UnboundedMemoryPool::default()),
        }
    }

    #[test]
    fn keys_read_twice_or_unfinished_give_no_bitmap() {
        let unbounded = pool(None);
        let keys = BuildKeys::new(2);
        keys.start(0, &unbounded);
        keys.add(Arc::new(Int64Array::from(vec![1, 2])));
        keys.finished.fetch_add(1, Ordering::AcqRel);
        assert!(keys.bitmap().is_none(), "one partition of two is done");
        keys.start(1, &unbounded);
        keys.finished.fetch_add(1, Ordering::AcqRel);
        assert!(keys.bitmap().is_some());
        // The columns are let go once the bitmap is made; the bitmap's
        // memory (one word) stays reserved.
        assert_eq!(unbounded.reserved(), 8);

        let twice = BuildKeys::new(1);
        twice.start(0, &unbounded);
        twice.start(0, &unbounded);
        twice.finished.fetch_add(2, Ordering::AcqRel);
        assert!(twice.bitmap().is_none());
    }

    #[test]
    fn keys_are_let_go_without_room_or_past_any_bitmap() {
        let finished = |keys: &BuildKeys| keys.finished.fetch_add(1, Ordering::AcqRel);
        // A pool too small for the columns.
        let small = pool(Some(64));
        let keys = BuildKeys::new(1);
        keys.start(0, &small);
        keys.add(Arc::new(Int64Array::from_iter_values(0..1_000)));
        finished(&keys);
        assert!(!keys.fit());
        assert!(keys.bitmap().is_none());
        assert_eq!(small.reserved(), 0);

        // Keys 2^40 apart: nothing more is kept after them.
        let unbounded = pool(None);
        let keys = BuildKeys::new(1);
        keys.start(0, &unbounded);
        keys.add(Arc::new(Int64Array::from(vec![0, 1i64 << 40])));
        keys.add(Arc::new(Int64Array::from(vec![5])));
        finished(&keys);
        assert!(keys.keys.lock().expect("lock").is_none());
        assert!(keys.bitmap().is_none());
        assert_eq!(unbounded.reserved(), 0);
    }
}
