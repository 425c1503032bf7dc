//! Parquet scans shared among their partitions row group by row group,
//! largest first.
//!
//! DataFusion 55 lets the partitions of a file scan take their work from
//! one queue while they run: a partition that is ahead reads the next file
//! planned for another. The unit it hands out is a planned file or byte
//! range, so with a few large files (TPC-H's lineitem: four files of two
//! row groups each) the last file is read by one partition while the other
//! cores wait; on the 2-core benchmark machine one core idled for about 8
//! ms at the end of a 70 ms scan.
//!
//! [`SplitScans`] hands out row groups instead. For every Parquet file of a
//! scan whose footer DataFusion has already cached (it reads and caches
//! the footers when it gathers the table's statistics, before this rule
//! runs), each row group becomes a one-byte range at the row group's first
//! page, which is how the Parquet reader picks the row groups of a range.
//! The pieces are queued largest first, so the queue ends with the small
//! ones and the partitions finish close together. A file whose footer is
//! not cached, or that carries an access plan of its own, stays whole.
//! Row groups are the smallest unit: a piece of a row group would decompress
//! the pages at its edges twice.
//!
//! Only scans that share their queue are split: not those that keep or
//! declare their files' order or whose file groups are the plan's
//! partitioning, and none
//! when work stealing is switched off (`datafusion.execution.
//! enable_file_stream_work_stealing`, for executors that run partitions
//! apart). `LAKEWAVE_SPLIT_SCANS=off` in the server's environment turns the
//! rule off, for comparisons.

use std::cmp::Reverse;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct SplitScans {
    footers: Arc<FileMetadataCache>,
}

impl SplitScans {
    pub fn new(footers: Arc<FileMetadataCache>) -> Self {
        Self { footers }
    }

    /// The byte offset and compressed size of each row group of `file`
    /// within its range, when its footer is cached and still current.
    fn row_groups(&self, file: &PartitionedFile) -> Option<Vec<(i64, i64)>> {
        if !file.extensions.is_empty() {
            return None;
        }
        let footer = cached_footer(self.footers.as_ref(), file)?;
        // Row groups that give the same start (a writer's mistake) are read
        // by every range holding it: they make one piece, or each piece
        // would read them all.
        let mut groups: Vec<(i64, i64)> = Vec::new();
        for group in footer.row_groups() {
            let first = group.columns().first()?;
            let start = first.dictionary_page_offset().unwrap_or_else(|| first.data_page_offset());
            if !file.range.as_ref().is_none_or(|r| r.contains(start)) {
                continue;
            }
            match groups.iter_mut().find(|(s, _)| *s == start) {
                Some((_, bytes)) => *bytes += group.compressed_size(),
                None => groups.push((start, group.compressed_size())),
            }
        }
        Some(groups)
    }

    /// The scan with its files split into row groups, or `None` when no
    /// file or range was split.
    fn split(&self, scan: &FileScanConfig) -> Option<FileScanConfig> {
        let mut pieces: Vec<(i64, PartitionedFile)> = Vec::new();
        let mut split = false;
        for file in scan.file_groups.iter().flat_map(FileGroup::iter) {
            match self.row_groups(file) {
                // A whole file of one row group stays as it is.
                Some(groups) if groups.len() == 1 && file.range.is_none() => pieces.push((groups[0].1, file.clone())),
                // A planned range is weighed by the row groups it holds too
                // (it may hold none, or a large one in a few bytes).
                Some(groups) => {
                    split = true;
                    for (start, bytes) in groups {
                        pieces.push((bytes, file.clone().with_range(start, start + 1)));
                    }
                }
                None => {
                    let bytes = file.range.as_ref().map_or(file.object_meta.size as i64, |r| r.end - r.start);
                    pieces.push((bytes, file.clone()));
                }
            }
        }
        if !split {
            return None;
        }
        // The partitions take from the front of the groups laid end to end:
        // largest first, the same number of groups as planned, each a run
        // of the order.
        pieces.sort_by_key(|(bytes, _)| Reverse(*bytes));
        let n = scan.file_groups.len().max(1);
        let total = pieces.len();
        let mut pieces = pieces.into_iter().map(|(_, f)| f);
        // The groups' statistics are left unknown: their files changed (the
        // scan's own statistics stay).
        let groups = (0..n)
            .map(|i| {
                let take = (i + 1) * total / n - i * total / n;
                FileGroup::new(pieces.by_ref().take(take).collect())
            })
            .collect();
        Some(FileScanConfigBuilder::from(scan.clone()).with_file_groups(groups).build())
    }
}

/// The footer of `file` in the runtime's metadata cache, when it is there
/// and still current.
pub(crate) fn cached_footer(footers: &FileMetadataCache, file: &PartitionedFile) -> Option<Arc<ParquetMetaData>> {
    let entry = footers.get(&file.object_meta.location)?;
    if !entry.is_valid_for(&file.object_meta) {
        return None;
    }
    Some(Arc::clone(entry.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>()?.parquet_metadata()))
}

/// `plan` with each Parquet file scan for which `rewrite` gives a new
/// configuration replaced by it.
pub(crate) fn rewrite_parquet_scans(
    plan: Arc<dyn ExecutionPlan>,
    rewrite: impl Fn(&FileScanConfig) -> Option<FileScanConfig>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(scan) = exec.data_source().downcast_ref::<FileScanConfig>() else {
            return Ok(Transformed::no(node));
        };
        if scan.file_source.file_type() != "parquet" {
            return Ok(Transformed::no(node));
        }
        match rewrite(scan) {
            Some(new) => Ok(Transformed::yes(Arc::new(exec.clone().with_data_source(Arc::new(new))) as Arc<dyn ExecutionPlan>)),
            None => Ok(Transformed::no(node)),
        }
    })
    .data()
}

impl PhysicalOptimizerRule for SplitScans {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.execution.enable_file_stream_work_stealing || crate::switched_off("LAKEWAVE_SPLIT_SCANS") {
            return Ok(plan);
        }
        rewrite_parquet_scans(plan, |scan| {
            // A declared order (files sorted by their metadata) would be
            // lost with the row groups reordered, even where the scan was
            // told order does not matter (a limit pushed into it).
            let ordered = scan.preserve_order || !scan.output_ordering.is_empty() || scan.output_partitioning.is_some();
            if ordered { None } else { self.split(scan) }
        })
    }

    fn name(&self) -> &str {
        "SplitScans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Puts the rule last, before DataFusion's sanity check: it changes which
/// partition reads what, nothing the other rules look at.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>, footers: Arc<FileMetadataCache>) {
    crate::insert_before_sanity_check(rules, Arc::new(SplitScans::new(footers)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::execution::runtime_env::RuntimeEnv;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    /// `rows` values from `first` on, in row groups of at most 1,000.
    fn write(path: &std::path::Path, first: i64, rows: i64) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(1000)).build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), Some(props)).unwrap();
        let values = Int64Array::from_iter_values(first..first + rows);
        writer.write(&RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap()).unwrap();
        writer.close().unwrap();
    }

    async fn context(dir: &std::path::Path, stealing: bool) -> SessionContext {
        context_with(dir, stealing, ParquetReadOptions::default()).await
    }

    async fn context_with(dir: &std::path::Path, stealing: bool, options: ParquetReadOptions<'_>) -> SessionContext {
        let runtime = Arc::new(RuntimeEnv::default());
        let mut rules = PhysicalOptimizer::new().rules;
        insert_rule(&mut rules, runtime.cache_manager.get_file_metadata_cache());
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().execution.enable_file_stream_work_stealing = stealing;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_parquet("t", dir.to_str().unwrap(), options).await.unwrap();
        ctx
    }

    /// The answer of `sql`, and the scan's file groups as (range length or
    /// whole file, file name) pairs.
    async fn run(ctx: &SessionContext, sql: &str) -> (i64, Vec<Vec<(Option<i64>, String)>>) {
        let df = ctx.sql(sql).await.unwrap();
        let rows = df.clone().collect().await.unwrap();
        let answer = rows[0].column(0).as_primitive::<Int64Type>().value(0);
        let plan = df.create_physical_plan().await.unwrap();
        let mut groups = Vec::new();
        plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<DataSourceExec>().and_then(|e| e.data_source().downcast_ref::<FileScanConfig>()) {
                groups = scan
                    .file_groups
                    .iter()
                    .map(|g| g.iter().map(|f| (f.range.as_ref().map(|r| r.end - r.start), f.object_meta.location.filename().unwrap().to_string())).collect())
                    .collect();
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        (answer, groups)
    }

    #[tokio::test]
    async fn row_groups_of_cached_footers_are_queued_largest_first() {
        let dir = tempfile::tempdir().unwrap();
        // Row groups of 1,000, 1,000 and 500 rows; and one of 700.
        write(&dir.path().join("a.parquet"), 0, 2500);
        write(&dir.path().join("b.parquet"), 2500, 700);
        let sql = "SELECT sum(v) FROM t WHERE v % 3 <> 1";
        let want: i64 = (0..3200).filter(|v| v % 3 != 1).sum();

        let ctx = context(dir.path(), true).await;
        let (answer, groups) = run(&ctx, sql).await;
        assert_eq!(answer, want);
        // Two groups, as planned; a.parquet's three row groups are one-byte
        // ranges, b.parquet stays whole, and the largest pieces come first.
        assert_eq!(groups.len(), 2, "{groups:?}");
        let pieces: Vec<_> = groups.concat();
        assert_eq!(pieces.len(), 4, "{groups:?}");
        assert_eq!(pieces.iter().filter(|(r, f)| *r == Some(1) && f == "a.parquet").count(), 3, "{groups:?}");
        assert!(pieces.contains(&(None, "b.parquet".to_string())), "{groups:?}");
        assert_eq!(pieces[3], (Some(1), "a.parquet".to_string()), "the 500-row group is last: {groups:?}");
        // Every row is read once whichever partition reads a piece.
        let (answer, _) = run(&ctx, "SELECT count(*) FROM t WHERE v >= 0").await;
        assert_eq!(answer, 3200);

        // Without work stealing the planned groups stay.
        let ctx = context(dir.path(), false).await;
        let (answer, groups) = run(&ctx, sql).await;
        assert_eq!(answer, want);
        assert!(groups.concat().iter().all(|(r, _)| *r != Some(1)), "{groups:?}");

        // Files declared sorted are not split, with a limit pushed into the
        // scan or without.
        let sorted = ParquetReadOptions::default().file_sort_order(vec![vec![datafusion::prelude::col("v").sort(true, false)]]);
        let ctx = context_with(dir.path(), true, sorted).await;
        let (answer, groups) = run(&ctx, "SELECT count(*) FROM (SELECT v FROM t LIMIT 10)").await;
        assert_eq!(answer, 10);
        assert!(groups.concat().iter().all(|(r, _)| *r != Some(1)), "{groups:?}");
        let (answer, groups) = run(&ctx, sql).await;
        assert_eq!(answer, want);
        assert!(groups.concat().iter().all(|(r, _)| *r != Some(1)), "{groups:?}");
    }
}
