//! Fixture files for the SQL and client tests, written fresh into a temp
//! directory: one table of every column type with known values, CSV files
//! in several dialects and compressions, Hive-partitioned and glob layouts,
//! JSON lines, and deliberately broken files.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;

/// Rows of `all_types` (id 1: minimums and a unicode string, id 2: all
/// NULL, id 3: maximums and empty values). Tests assert these values.
pub fn all_types_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("u8", DataType::UInt8, true),
        Field::new("u16", DataType::UInt16, true),
        Field::new("u32", DataType::UInt32, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("dec", DataType::Decimal128(12, 3), true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Binary, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
    ]));
    // 2026-01-31 is day 20484 since the epoch.
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2, 3])),
        Arc::new(Int8Array::from(vec![Some(i8::MIN), None, Some(i8::MAX)])),
        Arc::new(Int16Array::from(vec![Some(i16::MIN), None, Some(i16::MAX)])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(i32::MAX)])),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(i64::MAX)])),
        Arc::new(UInt8Array::from(vec![Some(u8::MAX), None, Some(0)])),
        Arc::new(UInt16Array::from(vec![Some(u16::MAX), None, Some(0)])),
        Arc::new(UInt32Array::from(vec![Some(u32::MAX), None, Some(0)])),
        Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(0)])),
        Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.5)])),
        Arc::new(Float64Array::from(vec![Some(-2.25), None, Some(1e300)])),
        Arc::new(
            Decimal128Array::from(vec![Some(12_345_678), None, Some(-1)])
                .with_precision_and_scale(12, 3)
                .expect("valid decimal"),
        ),
        Arc::new(StringArray::from(vec![Some("héllo, wörld"), None, Some("")])),
        Arc::new(BinaryArray::from(vec![Some(&[0u8, 1, 255][..]), None, Some(&[][..])])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(Date32Array::from(vec![Some(20_484), None, Some(0)])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(20_484 * 86_400_000_000 + 86_398_123_456),
            None,
            Some(0),
        ])),
        Arc::new(Time64MicrosecondArray::from(vec![Some(45_296_500_000), None, Some(0)])),
    ];
    RecordBatch::try_new(schema, columns).expect("all_types batch")
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("fixture dir");
    }
    let file = fs::File::create(path).expect("fixture file");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("parquet writer");
    w.write(batch).expect("write parquet");
    w.close().expect("close parquet");
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("fixture dir");
    }
    fs::write(path, bytes).expect("write fixture");
}

fn small_batch(region: &str, ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Float64Array::from(ids.iter().map(|i| *i as f64 * 1.5).collect::<Vec<_>>())),
            Arc::new(StringArray::from(ids.iter().map(|i| format!("{region}-{i}")).collect::<Vec<_>>())),
        ],
    )
    .expect("small batch")
}

pub const PEOPLE_CSV: &str = "id,name,score,joined\n1,Ada,91.5,2024-01-15\n2,\"Grace, H.\",88.25,2023-11-02\n3,Linus,,2025-06-30\n";

/// Writes every fixture under `dir`.
pub fn write_all(dir: &Path) {
    write_parquet(&dir.join("all_types.parquet"), &all_types_batch());

    // CSV dialects and compressions.
    write(&dir.join("csv/people.csv"), PEOPLE_CSV.as_bytes());
    // Fixed-point numbers, where doubles get TPC-H Q6's range wrong.
    write(
        &dir.join("csv_decimal/lineitem.csv"),
        b"l_quantity,l_extendedprice,l_discount\n1,100.00,0.05\n2,200.00,0.06\n3,300.00,0.07\n4,400.00,0.08\n5,-0.50,0.00\n",
    );
    write(&dir.join("csv_semicolon/people.txt"), b"id;name;score\n1;'Ada; L';91.5\n2;Grace;NA\n");
    write(&dir.join("csv_noheader/people.csv"), b"1|Ada|91.5\n2|Grace|88.25\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(PEOPLE_CSV.as_bytes()).expect("gzip");
    write(&dir.join("csv_gz/people.csv.gz"), &gz.finish().expect("gzip"));
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(PEOPLE_CSV.as_bytes()).expect("bzip2");
    write(&dir.join("csv_bz2/people.csv.bz2"), &bz.finish().expect("bzip2"));
    write(&dir.join("csv_zst/people.csv.zst"), &zstd::encode_all(PEOPLE_CSV.as_bytes(), 3).expect("zstd"));
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(PEOPLE_CSV.as_bytes()).expect("xz");
    write(&dir.join("csv_xz/people.csv.xz"), &xz.finish().expect("xz"));

    // Hive partitions: region=eu|us / year=2025|2026.
    let mut next = 1;
    for region in ["eu", "us"] {
        for year in ["2025", "2026"] {
            let ids: Vec<i64> = (next..next + 3).collect();
            next += 3;
            write_parquet(&dir.join(format!("hive/region={region}/year={year}/part-0.parquet")), &small_batch(region, &ids));
        }
    }
    write(&dir.join("hive/_SUCCESS"), b"");

    // Glob layout: months, plus a folder the glob must not match.
    write_parquet(&dir.join("glob/2026-01/part-0.parquet"), &small_batch("jan", &[1, 2]));
    write_parquet(&dir.join("glob/2026-02/part-0.parquet"), &small_batch("feb", &[3, 4, 5]));
    write_parquet(&dir.join("glob/2025-12/part-0.parquet"), &small_batch("dec", &[6]));
    write_parquet(&dir.join("glob/2026-02/other-0.parquet"), &small_batch("other", &[7]));

    // JSON lines.
    write(
        &dir.join("json/events.json"),
        b"{\"id\": 1, \"kind\": \"start\", \"value\": 2.5}\n{\"id\": 2, \"kind\": \"stop\", \"value\": null}\n{\"id\": 3, \"kind\": \"start\", \"value\": 4}\n",
    );

    // Broken inputs.
    let good = fs::read(dir.join("all_types.parquet")).expect("read parquet fixture");
    write(&dir.join("bad/truncated.parquet"), &good[..good.len() / 2]);
    write(&dir.join("bad/not_parquet.parquet"), b"this is not a parquet file\n");
    write(&dir.join("bad/wrong_columns.csv"), b"a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n11,12,13\n");
}

/// The plant database used by the backend and secondary-engine tests:
/// `rows` generated sensor readings as the lake table `plant.sensors`
/// (Parquet under `dir/samples`) and the generator's 50 assets inserted
/// into the MySQL table `plant.assets` through the connection (a Lakewave
/// session with a backend). Leaves the session in database `plant`.
pub async fn plant_database(conn: &mut mysql_async::Conn, dir: &Path, rows: u64) {
    use mysql_async::prelude::Queryable;
    let samples_dir = dir.join("samples");
    samples::generate(&samples_dir, &samples::SampleOptions { rows, ..Default::default() }).expect("samples");
    conn.query_drop("CREATE DATABASE plant").await.expect("create database");
    conn.query_drop("USE plant").await.expect("use");
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE sensors STORED AS PARQUET LOCATION '{}/sensors/parquet/'",
        samples_dir.display()
    ))
    .await
    .expect("lake table");
    conn.query_drop("CREATE TABLE assets (asset_id INT PRIMARY KEY, asset_type VARCHAR(16), site VARCHAR(32), line VARCHAR(8), commissioned DATE)")
        .await
        .expect("MySQL table");
    let csv = fs::read_to_string(samples_dir.join("assets.csv")).expect("assets.csv");
    let values: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("({}, '{}', '{}', '{}', '{}')", f[0], f[1], f[2], f[3], f[4])
        })
        .collect();
    conn.query_drop(format!("INSERT INTO assets VALUES {}", values.join(", "))).await.expect("insert assets");
}

/// Writes an Aurora/RDS snapshot export tree under `root` the way the
/// service lays it out: `export_info_*.json` and `export_tables_info_*.json`
/// at the root, and per table `<database>/<database>.<table>/<n>/part-*.gz.parquet`
/// (Parquet with GZIP pages). Returns each table's rows in key order:
/// `shop.customers` (id, name with awkward text, balance DECIMAL(12,2),
/// signup DATE, NULLs) split over two partition folders, and `shop.orders`
/// (id, customer_id, total DOUBLE, placed TIMESTAMP).
pub fn write_aurora_export(root: &Path) -> Vec<(&'static str, RecordBatch)> {
    use datafusion::parquet::basic::{Compression, GzipLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let id = "lakewave-export-1";
    write(
        &root.join(format!("export_info_{id}.json")),
        format!(r#"{{"exportTaskIdentifier":"{id}","sourceArn":"arn:aws:rds:us-east-1:123456789012:cluster-snapshot:shop","status":"COMPLETE"}}"#)
            .as_bytes(),
    );
    write(
        &root.join(format!("export_tables_info_{id}_from_1_to_2.json")),
        br#"{"perTableStatus":[{"target":"shop.customers","status":"COMPLETE"},{"target":"shop.orders","status":"COMPLETE"}]}"#,
    );
    let customers_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("balance", DataType::Decimal128(12, 2), true),
        Field::new("signup", DataType::Date32, true),
    ]));
    let names = ["Ada", "O'Brien, \"Pat\"", "line\nbreak", "", "Zoë|pipe"];
    let n = 40i64;
    let customers = RecordBatch::try_new(
        customers_schema,
        vec![
            Arc::new(Int64Array::from_iter_values(1..=n)) as ArrayRef,
            Arc::new(StringArray::from_iter((1..=n).map(|i| (i % 7 != 0).then(|| names[i as usize % names.len()].to_string())))),
            Arc::new(
                Decimal128Array::from_iter((1..=n).map(|i| (i % 5 != 0).then_some(i as i128 * 12_345 - 99)))
                    .with_precision_and_scale(12, 2)
                    .expect("decimal"),
            ),
            Arc::new(Date32Array::from_iter((1..=n).map(|i| (i % 6 != 0).then_some(19_000 + i as i32)))),
        ],
    )
    .expect("customers");
    let orders_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("total", DataType::Float64, true),
        Field::new("placed", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    let m = 25i64;
    let orders = RecordBatch::try_new(
        orders_schema,
        vec![
            Arc::new(Int64Array::from_iter_values(1..=m)) as ArrayRef,
            Arc::new(Int64Array::from_iter_values((1..=m).map(|i| i % n + 1))),
            Arc::new(Float64Array::from_iter((1..=m).map(|i| (i % 4 != 0).then_some(i as f64 * 2.5)))),
            Arc::new(TimestampMicrosecondArray::from_iter((1..=m).map(|i| Some(1_700_000_000_000_000 + i * 3_600_000_000)))),
        ],
    )
    .expect("orders");
    let props = WriterProperties::builder().set_compression(Compression::GZIP(GzipLevel::default())).build();
    let write_gz = |path: &Path, batch: &RecordBatch| {
        fs::create_dir_all(path.parent().expect("parent")).expect("export dir");
        let file = fs::File::create(path).expect("export file");
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props.clone())).expect("parquet writer");
        w.write(batch).expect("write parquet");
        w.close().expect("close parquet");
    };
    let table_dir = |t: &str| root.join("shop").join(format!("shop.{t}"));
    write_gz(&table_dir("customers").join("1/part-00000-3f2a.gz.parquet"), &customers.slice(0, 25));
    write_gz(&table_dir("customers").join("2/part-00000-9c1e.gz.parquet"), &customers.slice(25, 15));
    write_gz(&table_dir("orders").join("1/part-00000-77d0.gz.parquet"), &orders);
    vec![("customers", customers), ("orders", orders)]
}

/// The rows Redshift UNLOAD fixtures hold: (venueid, venuename, city,
/// seats, price NUMERIC(8,2) as text).
pub fn redshift_venues() -> Vec<(i64, String, Option<String>, Option<i64>, Option<String>)> {
    let names = ["Lincoln Hall", "O'Hare \"Dome\"", "Café, Zürich", "Arena 7", "Stadium|Pipe"];
    (1..=30i64)
        .map(|i| {
            (
                i,
                names[i as usize % names.len()].to_string(),
                (i % 4 != 0).then(|| format!("City {}", i % 9)),
                (i % 5 != 0).then_some(i * 100),
                (i % 3 != 0).then(|| format!("{}.{:02}", i * 7, i % 100)),
            )
        })
        .collect()
}

/// Writes Redshift UNLOAD outputs of [`redshift_venues`] under `dir`, the
/// way Redshift names and formats them (`|` between fields, NULL as an
/// empty field, `<prefix>0000_part_00[.gz|.bz2|.zst]` files, a
/// `<prefix>manifest` JSON of `entries` with `url` and
/// `meta.content_length`, plus `schema` with MANIFEST VERBOSE):
/// - `gz/`: two gzip parts and a plain manifest (names with `|` left out:
///   this layout has no quoting);
/// - `zst/`: one zstd part and a verbose manifest;
/// - `quoted/`: ADDQUOTES (every field in double quotes, `|` inside names),
///   bzip2, plain manifest.
/// Returns the manifest paths in that order.
pub fn write_redshift_unload(dir: &Path) -> [std::path::PathBuf; 3] {
    let rows = redshift_venues();
    let line = |r: &(i64, String, Option<String>, Option<i64>, Option<String>), quoted: bool| {
        let q = |s: String| if quoted { format!("\"{}\"", s.replace('"', "\"\"")) } else { s };
        let fields = [
            q(r.0.to_string()),
            q(r.1.clone()),
            r.2.clone().map(q).unwrap_or_default(),
            r.3.map(|v| q(v.to_string())).unwrap_or_default(),
            r.4.clone().map(q).unwrap_or_default(),
        ];
        format!("{}\n", fields.join("|"))
    };
    let plain: Vec<_> = rows.iter().filter(|r| !r.1.contains('|')).collect();
    let text = |rows: &[&(i64, String, Option<String>, Option<i64>, Option<String>)], quoted: bool| {
        rows.iter().map(|r| line(r, quoted)).collect::<String>()
    };
    let manifest = |files: &[(std::path::PathBuf, usize)], schema: bool| {
        let entries: Vec<serde_json::Value> = files
            .iter()
            .map(|(p, len)| serde_json::json!({"url": p.to_string_lossy(), "meta": {"content_length": len}}))
            .collect();
        let mut doc = serde_json::json!({"entries": entries});
        if schema {
            doc["schema"] = serde_json::json!({"elements": [
                {"name": "venueid", "type": {"base": "integer"}},
                {"name": "venuename", "type": {"base": "character varying", "max_length": 100}},
                {"name": "city", "type": {"base": "character varying", "max_length": 30}},
                {"name": "seats", "type": {"base": "bigint"}},
                {"name": "price", "type": {"base": "numeric", "precision": 8, "scale": 2}},
            ]});
            doc["meta"] = serde_json::json!({"content_length": files.iter().map(|f| f.1).sum::<usize>(), "record_count": 0});
        }
        doc.to_string()
    };
    let put = |path: std::path::PathBuf, bytes: Vec<u8>| {
        let len = bytes.len();
        write(&path, &bytes);
        (path, len)
    };
    let gzip = |s: &str| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(s.as_bytes()).expect("gzip");
        gz.finish().expect("gzip")
    };
    let half = plain.len() / 2;
    let gz_files = [
        put(dir.join("gz/venue_0000_part_00.gz"), gzip(&text(&plain[..half], false))),
        put(dir.join("gz/venue_0001_part_00.gz"), gzip(&text(&plain[half..], false))),
    ];
    let gz_manifest = dir.join("gz/venue_manifest");
    write(&gz_manifest, manifest(&gz_files, false).as_bytes());
    let zst_files = [put(dir.join("zst/venue_0000_part_00.zst"), zstd::encode_all(text(&plain, false).as_bytes(), 3).expect("zstd"))];
    let zst_manifest = dir.join("zst/venue_manifest");
    write(&zst_manifest, manifest(&zst_files, true).as_bytes());
    let all: Vec<_> = rows.iter().collect();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(text(&all, true).as_bytes()).expect("bzip2");
    let quoted_files = [put(dir.join("quoted/venue_0000_part_00.bz2"), bz.finish().expect("bzip2"))];
    let quoted_manifest = dir.join("quoted/venue_manifest");
    write(&quoted_manifest, manifest(&quoted_files, false).as_bytes());
    [gz_manifest, zst_manifest, quoted_manifest]
}
