//! `performance_schema.rpd_*`: the secondary engine's tables, columns and
//! memory, as HeatWave names them, built from the store on each read so
//! progress is current. `performance_schema.lakewave_read_errors` lists,
//! per table, what permissive text reads let through.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::error::Result;

use super::encode::chunk_bytes;
use super::{LoadStatus, RapidStore};

pub const PERFORMANCE_SCHEMA: &str = "performance_schema";
pub const TABLES: [&str; 5] = ["rpd_tables", "rpd_table_id", "rpd_columns", "rpd_nodes", "lakewave_read_errors"];

#[derive(Debug)]
pub struct RpdSchema {
    store: Arc<RapidStore>,
    read_stats: Arc<crate::text::ReadStats>,
}

impl RpdSchema {
    pub fn new(store: Arc<RapidStore>, read_stats: Arc<crate::text::ReadStats>) -> Self {
        Self { store, read_stats }
    }
}

fn ts(secs: Option<i64>) -> Option<i64> {
    secs.filter(|s| *s > 0).map(|s| s * 1_000_000)
}

fn u64s(v: Vec<u64>) -> ArrayRef {
    Arc::new(UInt64Array::from(v))
}

fn texts(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn times(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v))
}

fn field(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

impl RpdSchema {
    fn build(&self, name: &str) -> Result<Option<(SchemaRef, Vec<ArrayRef>)>> {
        let tables = self.store.tables();
        Ok(Some(match name {
            "rpd_tables" => {
                let schema = Schema::new(vec![
                    field("id", DataType::UInt64, false),
                    field("snapshot_scn", DataType::UInt64, false),
                    field("source_position", DataType::Utf8, true),
                    field("nrows", DataType::UInt64, false),
                    field("load_status", DataType::Utf8, false),
                    field("load_progress", DataType::Float64, false),
                    field("size_bytes", DataType::UInt64, false),
                    field("query_count", DataType::UInt64, false),
                    field("last_queried", ts_type(), true),
                    field("load_start_timestamp", ts_type(), true),
                    field("load_end_timestamp", ts_type(), true),
                    field("load_error", DataType::Utf8, true),
                    field("load_source", DataType::Utf8, true),
                    field("persisted_timestamp", ts_type(), true),
                    field("persisted_position", DataType::Utf8, true),
                ]);
                let (mut ids, mut scns, mut positions, mut nrows, mut statuses) = (vec![], vec![], vec![], vec![], vec![]);
                let (mut progress, mut size, mut queries, mut last, mut start, mut end, mut err) =
                    (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
                let (mut source, mut persisted_at, mut persisted_pos) = (vec![], vec![], vec![]);
                for t in &tables {
                    let s = t.status();
                    let data = t.raw_data();
                    ids.push(t.id);
                    scns.push(s.changes_applied);
                    positions.push(s.position.clone());
                    nrows.push(data.as_ref().map(|d| d.rows()).unwrap_or(0));
                    statuses.push(Some(s.status.name().to_string()));
                    progress.push(if s.status == LoadStatus::Available { 100.0 } else { s.progress });
                    size.push(data.as_ref().map(|d| d.size_bytes).unwrap_or(0));
                    queries.push(t.query_count());
                    last.push(ts(Some(t.last_queried())));
                    start.push(ts(s.load_start));
                    end.push(ts(s.load_end));
                    err.push(s.error.clone());
                    source.push(s.load_source.map(str::to_string));
                    persisted_at.push(ts(s.persisted_at));
                    persisted_pos.push(s.persisted_position.clone());
                }
                let arrays = vec![
                    u64s(ids),
                    u64s(scns),
                    texts(positions),
                    u64s(nrows),
                    texts(statuses),
                    Arc::new(Float64Array::from(progress)) as ArrayRef,
                    u64s(size),
                    u64s(queries),
                    times(last),
                    times(start),
                    times(end),
                    texts(err),
                    texts(source),
                    times(persisted_at),
                    texts(persisted_pos),
                ];
                (Arc::new(schema), arrays)
            }
            "rpd_table_id" => {
                let schema = Schema::new(vec![
                    field("id", DataType::UInt64, false),
                    field("name", DataType::Utf8, false),
                    field("schema_name", DataType::Utf8, false),
                    field("table_name", DataType::Utf8, false),
                ]);
                let arrays = vec![
                    u64s(tables.iter().map(|t| t.id).collect()),
                    texts(tables.iter().map(|t| Some(format!("{}.{}", t.db, t.name))).collect()),
                    texts(tables.iter().map(|t| Some(t.db.clone())).collect()),
                    texts(tables.iter().map(|t| Some(t.name.clone())).collect()),
                ];
                (Arc::new(schema), arrays)
            }
            "rpd_columns" => {
                let schema = Schema::new(vec![
                    field("table_id", DataType::UInt64, false),
                    field("column_id", DataType::UInt64, false),
                    field("column_name", DataType::Utf8, false),
                    field("encoding", DataType::Utf8, false),
                    field("size_bytes", DataType::UInt64, false),
                ]);
                let (mut ids, mut cids, mut names, mut encs, mut sizes) = (vec![], vec![], vec![], vec![], vec![]);
                for t in &tables {
                    let Some(data) = t.raw_data() else { continue };
                    for (i, f) in data.schema.fields().iter().enumerate() {
                        ids.push(t.id);
                        cids.push(i as u64);
                        names.push(Some(f.name().clone()));
                        let narrowed = data.chunks.iter().filter(|c| c.is_narrowed(i)).count();
                        let enc = if matches!(f.data_type(), DataType::Dictionary(_, _)) {
                            "DICTIONARY"
                        } else if narrowed > 0 && narrowed == data.chunks.len() {
                            "NARROW"
                        } else if narrowed > 0 {
                            "NARROW_PARTIAL"
                        } else {
                            "PLAIN"
                        };
                        encs.push(Some(enc.to_string()));
                        sizes.push(data.chunks.iter().map(|c| c.batch.column(i).get_array_memory_size() as u64).sum());
                    }
                }
                let arrays = vec![u64s(ids), u64s(cids), texts(names), texts(encs), u64s(sizes)];
                (Arc::new(schema), arrays)
            }
            "rpd_nodes" => {
                let schema = Schema::new(vec![
                    field("id", DataType::UInt64, false),
                    field("status", DataType::Utf8, false),
                    field("memory_usage", DataType::UInt64, false),
                    field("memory_total", DataType::UInt64, false),
                    field("baserel_memory_usage", DataType::UInt64, false),
                ]);
                let base: u64 = tables
                    .iter()
                    .filter_map(|t| t.raw_data())
                    .map(|d| d.chunks.iter().map(chunk_bytes).sum::<u64>())
                    .sum();
                let arrays = vec![
                    u64s(vec![0]),
                    texts(vec![Some("AVAIL_RNSTATE".into())]),
                    u64s(vec![self.store.used()]),
                    u64s(vec![self.store.limit()]),
                    u64s(vec![base]),
                ];
                (Arc::new(schema), arrays)
            }
            "lakewave_read_errors" => {
                let schema = Schema::new(vec![
                    field("table_name", DataType::Utf8, false),
                    field("bad_values", DataType::UInt64, false),
                    field("skipped_rows", DataType::UInt64, false),
                    field("missing_columns", DataType::UInt64, false),
                    field("last_problem", DataType::Utf8, true),
                ]);
                let stats = self.read_stats.snapshot();
                let arrays = vec![
                    texts(stats.iter().map(|(t, _)| Some(t.clone())).collect()),
                    u64s(stats.iter().map(|(_, s)| s.bad_values).collect()),
                    u64s(stats.iter().map(|(_, s)| s.skipped_rows).collect()),
                    u64s(stats.iter().map(|(_, s)| s.missing_columns).collect()),
                    texts(stats.iter().map(|(_, s)| s.last_problem.clone()).collect()),
                ];
                (Arc::new(schema), arrays)
            }
            _ => return Ok(None),
        }))
    }
}

#[async_trait]
impl SchemaProvider for RpdSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((schema, arrays)) = self.build(&name.to_lowercase())? else { return Ok(None) };
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Some(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name.to_lowercase().as_str())
    }
}
