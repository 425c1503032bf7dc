//! Optimized logical plans kept between statements.
//!
//! DataFusion's analyzer and optimizer rules take 1-8 ms on a TPC-H query,
//! about as long as a short query over loaded copies runs. Dashboards and
//! applications send the same statements again and again, so the optimized
//! plan of a statement is kept and reused when the same statement comes
//! back over the same tables in the same state:
//!
//! * the key is the statement's plan before optimization (the SQL as
//!   DataFusion resolved it, so spelling and whitespace do not matter), the
//!   session's DataFusion options, and the identity of every table read:
//!   the provider object of a lake table (a new one is built when the table
//!   is defined anew or refreshed) and the version of a loaded copy's rows;
//! * a kept plan holds those objects, so an identity cannot be reused by
//!   another table while its plan is kept; the whole cache is emptied when
//!   a loaded copy changes or a table is redefined, so old versions of
//!   loaded rows are not kept alive by plans that can no longer match;
//! * only plans that read lake tables and loaded copies alone are kept:
//!   not those reading MySQL tables (their pushdown depends on the
//!   session's transaction), information_schema or performance_schema
//!   (rebuilt on every read), nor statements with functions that are not
//!   immutable (`NOW()` is folded to a constant by the optimizer), with
//!   parameters or variables, or EXPLAIN.
//!
//! Physical planning still runs for every statement: it lists files and
//! prunes chunks for the data as it is now.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::{TableProvider, source_as_provider};
use datafusion::error::Result;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};

/// How many plans are kept, the least recently used dropped first.
const CAPACITY: usize = 256;

#[derive(Debug)]
struct Entry {
    hash: u64,
    plan: LogicalPlan,
    tables: Vec<usize>,
    optimized: LogicalPlan,
}

#[derive(Debug, Default)]
pub struct PlanCache {
    entries: Mutex<VecDeque<Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PlanCache {
    /// Forgets every kept plan (a loaded copy changed, a table was
    /// redefined).
    pub fn clear(&self) {
        // Taken out under the lock, dropped (with the versions the plans
        // held) after it is released.
        let dropped = std::mem::take(&mut *self.entries.lock().unwrap_or_else(|p| p.into_inner()));
        drop(dropped);
    }

    /// Statements whose optimized plan was reused, and those optimized.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `state.optimize(plan)`, or the plan kept for the same statement over
    /// the same tables. `identity` names a table provider that may be kept
    /// (None: the plan is not kept).
    pub fn optimize(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        identity: impl Fn(&Arc<dyn TableProvider>) -> Option<usize>,
    ) -> Result<LogicalPlan> {
        let Some(tables) = cacheable_tables(plan, &identity) else {
            return state.optimize(plan);
        };
        let mut hasher = DefaultHasher::new();
        plan.hash(&mut hasher);
        tables.hash(&mut hasher);
        for entry in state.config_options().entries() {
            (entry.key, entry.value).hash(&mut hasher);
        }
        let hash = hasher.finish();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = entries.iter().position(|e| e.hash == hash && e.tables == tables && e.plan == *plan) {
                let entry = entries.remove(i).expect("position is in range");
                let optimized = entry.optimized.clone();
                entries.push_back(entry);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(optimized);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let optimized = state.optimize(plan)?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Entry { hash, plan: plan.clone(), tables, optimized: optimized.clone() });
        Ok(optimized)
    }
}

/// The identities of the tables `plan` reads (subqueries included), in
/// order, when the plan may be kept.
fn cacheable_tables(plan: &LogicalPlan, identity: &impl Fn(&Arc<dyn TableProvider>) -> Option<usize>) -> Option<Vec<usize>> {
    let mut tables = Vec::new();
    let mut cacheable = true;
    let walked = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                match source_as_provider(&scan.source).ok().as_ref().and_then(identity) {
                    Some(id) => tables.push(id),
                    None => cacheable = false,
                }
            }
            LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::RecursiveQuery(_) => cacheable = false,
            _ => {}
        }
        if !cacheable {
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                let fixed = match e {
                    Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Immutable,
                    Expr::Placeholder(_) | Expr::ScalarVariable(..) => false,
                    _ => true,
                };
                if fixed {
                    Ok(TreeNodeRecursion::Continue)
                } else {
                    cacheable = false;
                    Ok(TreeNodeRecursion::Stop)
                }
            })
        })?;
        Ok(if cacheable { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    (walked.is_ok() && cacheable && !tables.is_empty()).then_some(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    fn table(values: &[i64]) -> Arc<dyn TableProvider> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap();
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
    }

    fn identity(p: &Arc<dyn TableProvider>) -> Option<usize> {
        Some(Arc::as_ptr(p) as *const () as usize)
    }

    async fn optimized(cache: &PlanCache, ctx: &SessionContext, sql: &str) -> LogicalPlan {
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        cache.optimize(&ctx.state(), &plan, identity).unwrap()
    }

    #[tokio::test]
    async fn same_statement_same_tables_reuses_the_plan() {
        let ctx = SessionContext::new();
        ctx.register_table("t", table(&[1, 2, 3])).unwrap();
        let cache = PlanCache::default();
        let sql = "SELECT sum(v) FROM t WHERE v > 1 + 0";
        let first = optimized(&cache, &ctx, sql).await;
        let again = optimized(&cache, &ctx, "SELECT   sum(v) FROM t WHERE v > 1 + 0").await;
        assert_eq!(cache.counts(), (1, 1));
        assert_eq!(first, again);
        // Another constant is another statement.
        optimized(&cache, &ctx, "SELECT sum(v) FROM t WHERE v > 2").await;
        assert_eq!(cache.counts(), (1, 2));
        // Another provider under the same name is another table.
        ctx.deregister_table("t").unwrap();
        ctx.register_table("t", table(&[5])).unwrap();
        optimized(&cache, &ctx, sql).await;
        assert_eq!(cache.counts(), (1, 3));
        let df = ctx.execute_logical_plan(optimized(&cache, &ctx, sql).await).await.unwrap();
        let batches = df.collect().await.unwrap();
        let sum = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(sum, 5);
        assert_eq!(cache.counts(), (2, 3));
        cache.clear();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn volatile_functions_settings_and_unknown_tables_are_not_kept() {
        let ctx = SessionContext::new();
        ctx.register_table("t", table(&[1])).unwrap();
        let cache = PlanCache::default();
        for _ in 0..2 {
            optimized(&cache, &ctx, "SELECT v, now() FROM t").await;
            optimized(&cache, &ctx, "SELECT v FROM t WHERE random() < 2").await;
            optimized(&cache, &ctx, "SELECT 1").await;
        }
        assert_eq!(cache.counts(), (0, 0));
        assert!(cache.is_empty());
        // A table the caller does not know is not kept.
        let plan = ctx.state().create_logical_plan("SELECT v FROM t").await.unwrap();
        cache.optimize(&ctx.state(), &plan, |_| None).unwrap();
        assert!(cache.is_empty());
        // Other DataFusion options are another key.
        optimized(&cache, &ctx, "SELECT v FROM t").await;
        ctx.sql("SET datafusion.optimizer.max_passes = 2").await.unwrap();
        optimized(&cache, &ctx, "SELECT v FROM t").await;
        assert_eq!(cache.counts(), (0, 2));
        optimized(&cache, &ctx, "SELECT v FROM t").await;
        assert_eq!(cache.counts(), (1, 2));
    }
}
