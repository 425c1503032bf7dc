//! An aggregation run by one of Lakewave's own groupings.
//!
//! [`crate::dict_group`] (partial aggregations grouped by dictionary codes)
//! and [`crate::dense_groups`] (final aggregations over a dense integer
//! key) each replace a DataFusion `AggregateExec` with one that finds the
//! groups its own way and feeds DataFusion's group accumulators. Both wrap
//! the `AggregateExec` they replace, which still gives the plan node's
//! properties, expressions and statistics: [`GroupedAggregateExec`] is
//! that wrapper, and a [`GroupingKind`] says how its partitions run.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{displayable, DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties, Statistics};
use futures::StreamExt;

/// Whether `agg` is an aggregation a [`GroupedAggregateExec`] can run
/// whatever its grouping: one grouping set, no limit, no dynamic filters
/// it produces, input in no particular order, and aggregates that have
/// group accumulators, without DISTINCT or ORDER BY.
pub(crate) fn plain_aggregation(agg: &AggregateExec) -> bool {
    agg.group_expr().is_single()
        && agg.limit_options().is_none()
        && agg.dynamic_expressions_produced().is_empty()
        && *agg.input_order_mode() == InputOrderMode::Linear
        && agg.aggr_expr().iter().all(|a| a.groups_accumulator_supported() && !a.is_distinct() && a.order_bys().is_empty())
}

/// `plan` with every aggregation `kind_of` finds a grouping for run by
/// that grouping (the body of the rules that put these nodes in plans).
pub(crate) fn replace_aggregations<K: GroupingKind>(
    plan: Arc<dyn ExecutionPlan>,
    kind_of: impl Fn(&AggregateExec) -> Result<Option<K>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(agg) = node.downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
        let Some(kind) = kind_of(agg)? else { return Ok(Transformed::no(node)) };
        let exec = GroupedAggregateExec::new(Arc::new(agg.clone()), kind);
        Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>))
    })
    .data()
}

/// How a [`GroupedAggregateExec`] finds its groups.
pub trait GroupingKind: fmt::Debug + Clone + Send + Sync + 'static {
    /// The plan node's name, as `EXPLAIN` shows it.
    const NAME: &'static str;

    /// What `EXPLAIN` shows between the name and the aggregation.
    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result;

    /// One partition of `agg`'s output, its compute time and rows counted
    /// in `metrics` (see [`grouped_stream`]).
    fn execute(
        &self,
        agg: &Arc<AggregateExec>,
        partition: usize,
        context: Arc<TaskContext>,
        metrics: BaselineMetrics,
    ) -> Result<SendableRecordBatchStream>;
}

/// `agg` run by the grouping `kind`.
#[derive(Debug)]
pub struct GroupedAggregateExec<K> {
    agg: Arc<AggregateExec>,
    kind: K,
    metrics: ExecutionPlanMetricsSet,
}

impl<K: GroupingKind> GroupedAggregateExec<K> {
    pub fn new(agg: Arc<AggregateExec>, kind: K) -> Self {
        Self { agg, kind, metrics: ExecutionPlanMetricsSet::new() }
    }
}

impl<K: GroupingKind> DisplayAs for GroupedAggregateExec<K> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let inner = displayable(self.agg.as_ref() as &dyn ExecutionPlan).one_line().to_string();
        let inner = inner.trim_end().strip_prefix("AggregateExec: ").unwrap_or(inner.trim_end());
        write!(f, "{}: ", K::NAME)?;
        self.kind.describe(f)?;
        write!(f, "{inner}")
    }
}

impl<K: GroupingKind> ExecutionPlan for GroupedAggregateExec<K> {
    fn name(&self) -> &str {
        K::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.agg.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let new = Arc::clone(&self.agg).replace_children(children, options)?;
        let Some(agg) = new.downcast_ref::<AggregateExec>() else {
            return internal_err!("{} wraps an AggregateExec", K::NAME);
        };
        Ok(Arc::new(Self::new(Arc::new(agg.clone()), self.kind.clone())))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn statistics_from_inputs(&self, input_stats: &[Arc<Statistics>], args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        self.agg.statistics_from_inputs(input_stats, args)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        self.agg.child_stats_requests(partition)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.kind.execute(&self.agg, partition, context, BaselineMetrics::new(&self.metrics, partition))
    }
}

/// An aggregation's groups as a stream feeds them: each input batch in
/// turn, then the end of the input. Both return the batches to pass on.
pub trait Grouping: Send + 'static {
    fn add(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>>;
    fn finish(&mut self) -> Result<Vec<RecordBatch>>;
}

/// The output of `groups` fed with `input`, its compute time and rows
/// counted in `metrics`.
pub fn grouped_stream(
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    groups: impl Grouping,
    metrics: BaselineMetrics,
) -> SendableRecordBatchStream {
    let state = State { input, groups, pending: VecDeque::new(), done: false, metrics };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.pending.pop_front() {
                s.metrics.record_output(b.num_rows());
                return Some((Ok(b), s));
            }
            if s.done {
                return None;
            }
            let step = match s.input.next().await {
                Some(Ok(batch)) => {
                    let _timer = s.metrics.elapsed_compute().timer();
                    s.groups.add(&batch)
                }
                Some(Err(e)) => Err(e),
                None => {
                    s.done = true;
                    let _timer = s.metrics.elapsed_compute().timer();
                    s.groups.finish()
                }
            };
            match step {
                Ok(batches) => s.pending.extend(batches),
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

struct State<G> {
    input: SendableRecordBatchStream,
    groups: G,
    pending: VecDeque<RecordBatch>,
    done: bool,
    metrics: BaselineMetrics,
}
