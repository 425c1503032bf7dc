//! One computation for a subquery the plan repeats.
//!
//! DataFusion inlines a common table expression at each of its references
//! and plans every copy on its own, so `WITH r AS (SELECT ... GROUP BY ...)`
//! read twice aggregates its input twice (TPC-H Q15 scans and aggregates a
//! quarter of lineitem once to join it and once more for its maximum).
//!
//! [`ShareSubplans`] finds aggregations that appear more than once with the
//! same input, the same expressions and the same partitioning, and puts a
//! [`SharedSubplanExec`] over each copy. The copies share one result per
//! partition: the first reader of a partition computes it, keeping its
//! batches (charged to the query's memory pool), and the others read them.
//!
//! A subplan is shared only when its results cannot differ between copies:
//! its leaves are file scans (compared by every file and byte range they
//! read) or scans of loaded copies (compared by the chunks they read), and
//! none of its expressions is volatile (`rand()`, `uuid()`). Filters pushed
//! down at run time from a join above stop at the shared node: one copy's
//! join must not filter the rows the other copy reads.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties, displayable};
use datafusion::arrow::array::RecordBatch;
use futures::StreamExt;

use crate::rapid::scan::RapidSource;

/// Puts a [`SharedSubplanExec`] over each copy of a repeated aggregation.
#[derive(Debug, Default)]
pub struct ShareSubplans;

impl PhysicalOptimizerRule for ShareSubplans {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        // Most plans repeat no aggregation: the aggregations' own lines are
        // compared first, and whole subplans displayed only for those that
        // repeat (that took most of this rule's 0.3 ms a query).
        let mut lines: HashMap<String, usize> = HashMap::new();
        let mut line_of: Vec<(*const (), String)> = Vec::new();
        plan.apply(|node| {
            if let Some(line) = aggregation_line(node) {
                *lines.entry(line.clone()).or_default() += 1;
                line_of.push((Arc::as_ptr(node).cast(), line));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if !lines.values().any(|&n| n > 1) {
            return Ok(plan);
        }
        // Each aggregation's key, by node (the nodes are the same objects
        // in the rewrite below until one is replaced), and how often each
        // key occurs.
        let repeated: std::collections::HashSet<*const ()> =
            line_of.into_iter().filter(|(_, line)| lines.get(line).is_some_and(|&n| n > 1)).map(|(node, _)| node).collect();
        let mut keys: HashMap<*const (), String> = HashMap::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        plan.apply(|node| {
            let at: *const () = Arc::as_ptr(node).cast();
            if let Some(key) = repeated.contains(&at).then(|| sharing_key(node)).flatten() {
                *seen.entry(key.clone()).or_default() += 1;
                keys.insert(at, key);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if !seen.values().any(|&n| n > 1) {
            return Ok(plan);
        }
        let mut states: HashMap<String, Arc<SharedState>> = HashMap::new();
        let mut next_id = 0;
        plan.transform_down(|node| {
            let key = keys.get(&Arc::as_ptr(&node).cast::<()>()).filter(|k| seen.get(*k).is_some_and(|&n| n > 1));
            let Some(key) = key.cloned() else {
                return Ok(Transformed::no(node));
            };
            let state = states
                .entry(key)
                .or_insert_with(|| {
                    next_id += 1;
                    Arc::new(SharedState::new(next_id))
                })
                .clone();
            // The copy is shared whole: nothing below it is rewritten again.
            Ok(Transformed::new(Arc::new(SharedSubplanExec::new(node, state)) as _, true, TreeNodeRecursion::Jump))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lakewave_share_subplans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The line of an aggregation that may be shared (not a partial one): two
/// copies of a subplan have the same.
fn aggregation_line(node: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let agg = node.downcast_ref::<AggregateExec>()?;
    (!matches!(agg.mode(), AggregateMode::Partial)).then(|| displayable(node.as_ref()).one_line().to_string())
}

/// What identifies a shareable aggregation: its plan as displayed, plus the
/// exact data its leaves read (a display abbreviates long file lists and
/// does not name the chunks of a loaded copy). None when it is not one.
fn sharing_key(node: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let agg = node.downcast_ref::<AggregateExec>()?;
    if matches!(agg.mode(), AggregateMode::Partial) {
        return None;
    }
    let mut key = displayable(node.as_ref()).indent(true).to_string();
    let mut ok = true;
    node.apply(|n| {
        let mut volatile = false;
        n.apply_expressions(&mut |e: &Arc<dyn PhysicalExpr>| {
            volatile |= is_volatile(e);
            Ok(if volatile { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if volatile || n.downcast_ref::<SharedSubplanExec>().is_some() {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        if n.children().is_empty() {
            match leaf_identity(n) {
                Some(id) => key.push_str(&id),
                None => {
                    ok = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    ok.then_some(key)
}

/// The data a leaf reads, for the leaves whose data is known: files and
/// byte ranges of a file scan, chunks of a loaded copy, no data at all.
fn leaf_identity(leaf: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if leaf.downcast_ref::<EmptyExec>().is_some() || leaf.downcast_ref::<PlaceholderRowExec>().is_some() {
        return Some(String::new());
    }
    let source = leaf.downcast_ref::<DataSourceExec>()?.data_source();
    if let Some(files) = source.downcast_ref::<FileScanConfig>() {
        let mut id = format!("\nfiles of {}:", files.object_store_url.as_str());
        for group in &files.file_groups {
            id.push_str(" [");
            for file in group.iter() {
                let range = file.range.as_ref().map(|r| (r.start, r.end));
                id.push_str(&format!("{} {} {:?} {:?};", file.object_meta.location, file.object_meta.size, file.object_meta.last_modified, range));
            }
            id.push(']');
        }
        return Some(id);
    }
    source.downcast_ref::<RapidSource>().map(|rapid| format!("\nchunks: {}", rapid.identity()))
}

/// The result of one subplan, computed once per execution of the plan.
#[derive(Debug)]
pub struct SharedState {
    id: usize,
    run: Mutex<Option<Run>>,
}

/// One execution: the task context its copies run in (the same object for
/// every operator of one query), and each partition's result.
#[derive(Debug)]
struct Run {
    context: Weak<TaskContext>,
    partitions: Vec<Arc<tokio::sync::OnceCell<Arc<Computed>>>>,
}

#[derive(Debug)]
struct Computed {
    batches: Vec<RecordBatch>,
    _memory: MemoryReservation,
}

impl SharedState {
    fn new(id: usize) -> Self {
        Self { id, run: Mutex::new(None) }
    }

    /// The cell of `partition` for the execution `context` belongs to.
    fn cell(&self, partition: usize, partitions: usize, context: &Arc<TaskContext>) -> Arc<tokio::sync::OnceCell<Arc<Computed>>> {
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        let current = run.as_ref().is_some_and(|r| r.context.upgrade().is_some_and(|c| Arc::ptr_eq(&c, context)));
        if !current {
            *run = Some(Run {
                context: Arc::downgrade(context),
                partitions: (0..partitions).map(|_| Arc::default()).collect(),
            });
        }
        let run = run.as_ref().expect("set above");
        run.partitions[partition.min(run.partitions.len() - 1)].clone()
    }
}

/// One copy of a shared subplan (see the module documentation).
#[derive(Debug)]
pub struct SharedSubplanExec {
    input: Arc<dyn ExecutionPlan>,
    state: Arc<SharedState>,
}

impl SharedSubplanExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, state: Arc<SharedState>) -> Self {
        Self { input, state }
    }
}

impl DisplayAs for SharedSubplanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedSubplanExec: id={}", self.state.id)
    }
}

impl ExecutionPlan for SharedSubplanExec {
    fn name(&self) -> &str {
        "SharedSubplanExec"
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
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self { input: crate::only_child(self.name(), children)?, state: self.state.clone() }))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    /// A plan executed again from the start (a recursive query's step)
    /// computes its own result: the copy stops sharing with the others.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self { input: self.input.clone(), state: Arc::new(SharedState::new(self.state.id)) }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let partitions = self.input.output_partitioning().partition_count();
        if partition >= partitions {
            return internal_err!("SharedSubplanExec has {partitions} partitions, asked for {partition}");
        }
        let cell = self.state.cell(partition, partitions, &context);
        let input = self.input.clone();
        let id = self.state.id;
        let computed = async move {
            cell.get_or_try_init(|| async {
                let memory =
                    MemoryConsumer::new(format!("SharedSubplanExec[{id}, {partition}]")).register(context.memory_pool());
                let mut stream = input.execute(partition, context.clone())?;
                let mut batches = Vec::new();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    memory.try_grow(batch.get_array_memory_size())?;
                    batches.push(batch);
                }
                Ok::<_, datafusion::error::DataFusionError>(Arc::new(Computed { batches, _memory: memory }))
            })
            .await
            .cloned()
        };
        let batches = futures::stream::once(computed).flat_map(|result| match result {
            Ok(computed) => futures::stream::iter((0..computed.batches.len()).map(move |i| Ok(computed.batches[i].clone()))).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), batches)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    /// A context with Lakewave's physical rules over a Parquet table `t`
    /// of 1,000 rows in 4 files.
    async fn context(dir: &std::path::Path) -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(2);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(crate::runtime_filter::physical_optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        for f in 0..4 {
            let sql = format!(
                "COPY (SELECT v AS k, v % 10 AS g, CAST(v AS DOUBLE) AS x FROM generate_series({}, {}) AS s(v)) \
                 TO '{}/{f}.parquet' STORED AS PARQUET",
                f * 250,
                f * 250 + 249,
                dir.display()
            );
            ctx.sql(&sql).await.expect("copy").collect().await.expect("write");
        }
        ctx.register_parquet("t", dir.to_str().expect("path"), ParquetReadOptions::default()).await.expect("register");
        ctx
    }

    /// The rows each scan of the executed plan produced.
    fn scanned(plan: &Arc<dyn ExecutionPlan>) -> Vec<usize> {
        let mut rows = Vec::new();
        plan.apply(|n| {
            if n.downcast_ref::<DataSourceExec>().is_some() {
                rows.push(n.metrics().and_then(|m| m.output_rows()).unwrap_or(0));
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walk");
        rows
    }

    const Q: &str = "WITH r AS (SELECT g, SUM(x) AS total FROM t WHERE k < 900 GROUP BY g) \
                     SELECT g, total FROM r WHERE total = (SELECT MAX(total) FROM r)";

    #[tokio::test]
    async fn a_repeated_aggregation_is_computed_once() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = context(dir.path()).await;
        let plan = ctx.sql(Q).await.expect("plan").create_physical_plan().await.expect("physical");
        let text = displayable(plan.as_ref()).indent(false).to_string();
        assert_eq!(text.matches("SharedSubplanExec: id=1").count(), 2, "{text}");
        let batches = collect(plan.clone(), ctx.task_ctx()).await.expect("run");
        let out = datafusion::arrow::util::pretty::pretty_format_batches(&batches).expect("format").to_string();
        // Group 9 of k < 900: 9 + 19 + ... + 899 = 40,860.
        assert!(out.contains("| 9 | 40860.0 |"), "{out}");
        let rows = scanned(&plan);
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!(rows.iter().filter(|&&r| r > 0).count(), 1, "one copy reads the files: {rows:?}");
        assert_eq!(rows.iter().sum::<usize>(), 1000, "{rows:?}");

        // Executed again, the plan computes anew.
        let again = collect(plan.clone(), ctx.task_ctx()).await.expect("run again");
        assert_eq!(datafusion::arrow::util::pretty::pretty_format_batches(&again).expect("format").to_string(), out);
    }

    #[tokio::test]
    async fn different_or_volatile_subplans_are_not_shared() {
        let dir = tempfile::tempdir().expect("dir");
        let ctx = context(dir.path()).await;
        for sql in [
            "SELECT a.g, a.s, b.s FROM (SELECT g, SUM(x) AS s FROM t WHERE k < 500 GROUP BY g) a \
             JOIN (SELECT g, SUM(x) AS s FROM t WHERE k < 600 GROUP BY g) b ON a.g = b.g",
            "SELECT a.g, a.s, b.s FROM (SELECT g, SUM(x * random()) AS s FROM t GROUP BY g) a \
             JOIN (SELECT g, SUM(x * random()) AS s FROM t GROUP BY g) b ON a.g = b.g",
        ] {
            let plan = ctx.sql(sql).await.expect("plan").create_physical_plan().await.expect("physical");
            let text = displayable(plan.as_ref()).indent(false).to_string();
            assert!(!text.contains("SharedSubplanExec"), "{text}");
        }
        // Without the volatile column the two are the same again (the
        // planner drops the unused sums) and are shared.
        let sql = "SELECT a.g FROM (SELECT g, SUM(x * random()) AS s FROM t GROUP BY g) a \
                   JOIN (SELECT g, SUM(x * random()) AS s FROM t GROUP BY g) b ON a.g = b.g";
        let plan = ctx.sql(sql).await.expect("plan").create_physical_plan().await.expect("physical");
        let text = displayable(plan.as_ref()).indent(false).to_string();
        assert_eq!(text.matches("SharedSubplanExec: id=1").count(), 2, "{text}");
        assert_eq!(collect(plan, ctx.task_ctx()).await.expect("run").iter().map(|b| b.num_rows()).sum::<usize>(), 10);
    }
}
