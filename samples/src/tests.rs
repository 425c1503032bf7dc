//! End-to-end tests: generate small data sets and read every format back.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{SampleOptions, ensure_generated, generate};

fn small(rows: u64) -> SampleOptions {
    SampleOptions {
        rows,
        seed: 7,
        days: 3,
        assets: 20,
        ..SampleOptions::default()
    }
}

/// All files under `dir`, relative path → bytes.
fn read_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn parquet_batches(out: &Path, day: &str) -> Vec<RecordBatch> {
    let path = out.join(format!("sensors/parquet/day={day}/part-00000.parquet"));
    let file = File::open(path).expect("open parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet reader")
        .build()
        .expect("build reader");
    reader.map(|b| b.expect("batch")).collect()
}

#[test]
fn same_seed_gives_identical_files() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    let opts = small(5_000);
    generate(a.path(), &opts).expect("generate a");
    generate(b.path(), &opts).expect("generate b");
    let tree_a = read_tree(a.path());
    let tree_b = read_tree(b.path());
    assert_eq!(tree_a.len(), 3 * 5 + 3, "files: {:?}", tree_a.keys());
    assert_eq!(
        tree_a.keys().collect::<Vec<_>>(),
        tree_b.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &tree_a {
        assert!(tree_b[path] == *bytes, "{} differs", path.display());
    }

    let c = tempfile::tempdir().expect("temp dir");
    let other_seed = SampleOptions { seed: 8, ..opts };
    generate(c.path(), &other_seed).expect("generate c");
    let tree_c = read_tree(c.path());
    let csv = Path::new("sensors/csv/day=2026-01-01/part-00000.csv");
    assert_ne!(tree_a[csv], tree_c[csv]);
}

#[test]
fn parquet_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = small(10_000);
    let summary = generate(dir.path(), &opts).expect("generate");
    assert_eq!(summary.rows, 10_000);
    assert_eq!(summary.files, 3 * 5 + 2);
    assert_eq!(summary.out, dir.path());

    let mut total = 0usize;
    let mut failures = 0u64;
    let mut air_nulls = 0usize;
    let mut next_id = 1i64;
    for day in ["2026-01-01", "2026-01-02", "2026-01-03"] {
        let batches = parquet_batches(dir.path(), day);
        for batch in &batches {
            let schema = batch.schema();
            assert_eq!(schema.fields().len(), 15);
            assert_eq!(
                schema.field(1).data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, None)
            );
            assert!(!schema.field(0).is_nullable());
            let ids = batch.column(0).as_primitive::<Int64Type>();
            for id in ids.values().iter() {
                assert_eq!(*id, next_id);
                next_id += 1;
            }
            let failure = batch.column(9).as_boolean();
            failures += failure.true_count() as u64;
            air_nulls += batch.column(4).null_count();
            total += batch.num_rows();
        }
    }
    assert_eq!(total, 10_000);
    assert_eq!(failures, summary.failures);
    assert!(failures > 0, "no failures");
    assert!(failures < 2_000, "too many failures: {failures}");
    assert!(
        air_nulls > 0 && air_nulls < 200,
        "air_temp_k NULLs: {air_nulls}"
    );

    // Statistics are written.
    let file = File::open(
        dir.path()
            .join("sensors/parquet/day=2026-01-02/part-00000.parquet"),
    )
    .expect("open");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("reader");
    let row_group = builder.metadata().row_group(0);
    assert!(row_group.column(0).statistics().is_some());
}

#[test]
fn csv_header_and_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), &small(3_000)).expect("generate");
    let text =
        std::fs::read_to_string(dir.path().join("sensors/csv/day=2026-01-02/part-00000.csv"))
            .expect("read csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "reading_id,ts,asset_id,asset_type,air_temp_k,process_temp_k,rotation_speed_rpm,\
             torque_nm,tool_wear_min,machine_failure,twf,hdf,pwf,osf,rnf"
        )
    );
    let first: Vec<&str> = lines.next().expect("a row").split(',').collect();
    assert_eq!(first.len(), 15);
    assert_eq!(first[0], "1001"); // day 1 holds readings 1..=1000
    assert_eq!(first[1], "2026-01-02 00:00:00.000000");
    let asset: i32 = first[2].parse().expect("asset_id");
    assert!((1..=20).contains(&asset));
    assert!(["CNC_MILL", "LATHE", "PRESS", "GRINDER"].contains(&first[3]));
    let process: f64 = first[5].parse().expect("process_temp_k");
    assert!((300.0..325.0).contains(&process));
    let speed: i32 = first[6].parse().expect("speed");
    assert!((1000..3000).contains(&speed));
    let wear: i32 = first[8].parse().expect("wear");
    assert!((0..=250).contains(&wear));
    for flag in &first[9..] {
        assert!(*flag == "true" || *flag == "false");
    }
    assert_eq!(text.lines().count(), 1 + 1_000);

    // The gzip file holds exactly the same bytes.
    let gz = File::open(
        dir.path()
            .join("sensors/csv_gz/day=2026-01-02/part-00000.csv.gz"),
    )
    .expect("open gz");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut unzipped)
        .expect("gunzip");
    assert_eq!(unzipped, text);

    // CSV and Parquet agree on the first row.
    let batch = &parquet_batches(dir.path(), "2026-01-02")[0];
    let process_pq = batch
        .column(5)
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .value(0);
    assert_eq!(process_pq, process);
}

#[test]
fn json_lines_parse() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), &small(3_000)).expect("generate");
    let text = std::fs::read_to_string(
        dir.path()
            .join("sensors/json/day=2026-01-03/part-00000.json"),
    )
    .expect("read json");
    let mut rows = 0;
    let mut nulls = 0;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
        let object = value.as_object().expect("object");
        assert_eq!(object.len(), 15);
        assert!(
            object["ts"]
                .as_str()
                .expect("ts string")
                .starts_with("2026-01-03 ")
        );
        if object["torque_nm"].is_null() {
            nulls += 1;
        }
        rows += 1;
    }
    assert_eq!(rows, 1_000);
    assert!(nulls < 50);
}

#[test]
fn avro_reads_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), &small(3_000)).expect("generate");
    let file = File::open(
        dir.path()
            .join("sensors/avro/day=2026-01-01/part-00000.avro"),
    )
    .expect("open avro");
    let reader = apache_avro::Reader::new(file).expect("avro reader");
    let mut count = 0;
    for value in reader {
        let value = value.expect("record");
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("not a record: {value:?}");
        };
        assert_eq!(fields.len(), 15);
        assert_eq!(fields[0].0, "reading_id");
        assert_eq!(fields[0].1, apache_avro::types::Value::Long(count + 1));
        assert!(matches!(
            fields[1].1,
            apache_avro::types::Value::TimestampMicros(_)
        ));
        count += 1;
    }
    assert_eq!(count, 1_000);
}

#[test]
fn ensure_generated_runs_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = small(1_000);
    let first = ensure_generated(dir.path(), &opts).expect("first run");
    assert_eq!(first.map(|s| s.rows), Some(1_000));
    let marker = dir.path().join("_SUCCESS");
    let modified = std::fs::metadata(&marker).and_then(|m| m.modified()).ok();
    assert!(
        ensure_generated(dir.path(), &opts)
            .expect("second run")
            .is_none()
    );
    assert_eq!(
        std::fs::metadata(&marker).and_then(|m| m.modified()).ok(),
        modified
    );
}

#[test]
fn regeneration_removes_stale_days() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), &small(1_000)).expect("first");
    let fewer = SampleOptions {
        days: 2,
        ..small(1_000)
    };
    generate(dir.path(), &fewer).expect("second");
    assert!(!dir.path().join("sensors/parquet/day=2026-01-03").exists());
    assert!(dir.path().join("sensors/parquet/day=2026-01-02").exists());
    // No temporary files are left behind.
    let tree = read_tree(dir.path());
    assert!(tree.keys().all(|p| !p.to_string_lossy().ends_with(".tmp")));
    assert_eq!(tree.len(), 2 * 5 + 3);
}

/// Registers the generated files in a plain DataFusion session (with
/// `CREATE SCHEMA` standing in for Lakewave's `CREATE DATABASE`) and runs the
/// analytic queries of `quickstart.sql`.
#[tokio::test(flavor = "multi_thread")]
async fn datafusion_reads_every_format_and_runs_the_quickstart() {
    use datafusion::arrow::datatypes::Float64Type;
    use datafusion::prelude::{SessionConfig, SessionContext};

    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), &small(3_000)).expect("generate");

    let config = SessionConfig::new().with_default_catalog_and_schema("datafusion", "samples");
    let ctx = SessionContext::new_with_config(config);
    for statement in crate::registration_sql(dir.path()) {
        let statement = statement.replace("CREATE DATABASE", "CREATE SCHEMA");
        ctx.sql(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    let script = include_str!("../quickstart.sql");
    let without_comments: String = script
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut results = Vec::new();
    for statement in without_comments.split(';') {
        let statement = statement.trim();
        let upper = statement.to_ascii_uppercase();
        if statement.is_empty()
            || upper.starts_with("USE ")
            || upper.starts_with("SHOW ")
            || upper.starts_with("DESCRIBE ")
        {
            continue;
        }
        let batches = ctx
            .sql(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
        results.push(batches);
    }
    assert_eq!(results.len(), 6);

    // 4: hourly averages of one day: 24 hours.
    let hours: usize = results[3].iter().map(|b| b.num_rows()).sum();
    assert_eq!(hours, 24);

    // 5: every format has all rows.
    let mut counts = Vec::new();
    for batch in &results[4] {
        let column = batch.column(1).as_primitive::<Int64Type>();
        counts.extend(column.values().iter().copied());
    }
    assert_eq!(counts, vec![3_000; 5]);

    // 6: the power rule recomputed in SQL matches the pwf flag.
    let batch = &results[5][0];
    let mismatches = batch.column(3).as_primitive::<Int64Type>().value(0);
    assert_eq!(mismatches, 0);

    // The formats agree on values, not just counts.
    let sums = ctx
        .sql(
            "SELECT (SELECT SUM(air_temp_k) FROM sensors), (SELECT SUM(air_temp_k) FROM sensors_csv), \
             (SELECT SUM(air_temp_k) FROM sensors_json), (SELECT SUM(air_temp_k) FROM sensors_avro)",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let row: Vec<f64> = (0..4)
        .map(|i| sums[0].column(i).as_primitive::<Float64Type>().value(0))
        .collect();
    for value in &row[1..] {
        assert!((value - row[0]).abs() <= 1e-9 * row[0].abs(), "{row:?}");
    }
}
