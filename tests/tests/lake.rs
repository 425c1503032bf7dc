//! Lake behaviour that needs more than an .slt file: error messages that name
//! files and lines, SHOW CREATE TABLE round trips with real paths, partition
//! pruning seen in EXPLAIN, and a server that keeps serving after bad input.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use lakewave_tests::{TestServer, fixtures};

struct Setup {
    server: TestServer,
    conn: Conn,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("fixture dir");
    fixtures::write_all(dir.path());
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE lake").await.expect("create database");
    conn.query_drop("USE lake").await.expect("use");
    Setup { server, conn, dir }
}

fn fx(s: &Setup, rel: &str) -> String {
    s.dir.path().join(rel).display().to_string()
}

/// Runs `sql` expecting a server error; returns (code, state, message).
async fn server_error(conn: &mut Conn, sql: &str) -> (u16, String, String) {
    match conn.query_drop(sql).await {
        Err(mysql_async::Error::Server(e)) => (e.code, e.state, e.message),
        Err(other) => panic!("`{sql}` failed with a non-server error: {other}"),
        Ok(()) => panic!("`{sql}` succeeded but should have failed"),
    }
}

async fn still_serving(conn: &mut Conn) {
    let one: Option<i64> = conn.query_first("SELECT 1").await.expect("server still answers");
    assert_eq!(one, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_with_wrong_column_count_names_file_and_line() {
    let mut s = setup().await;
    let path = fx(&s, "bad/wrong_columns.csv");
    s.conn
        .query_drop(format!("CREATE EXTERNAL TABLE w (a INT, b INT, c INT) STORED AS CSV LOCATION '{path}' OPTIONS ('has_header' 'true')"))
        .await
        .expect("create over a bad CSV succeeds (the data is read at query time)");
    let (code, state, msg) = server_error(&mut s.conn, "SELECT * FROM w").await;
    assert_eq!((code, state.as_str()), (1030, "HY000"), "{msg}");
    assert!(msg.contains(&path), "message names the file: {msg}");
    assert!(msg.contains("line 4"), "message names physical line 4: {msg}");
    still_serving(&mut s.conn).await;
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_fake_parquet_name_the_file() {
    let mut s = setup().await;
    // Inference fails at CREATE, naming the location.
    let truncated = fx(&s, "bad/truncated.parquet");
    let (code, _, msg) =
        server_error(&mut s.conn, &format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{truncated}'")).await;
    assert_eq!(code, 1030, "{msg}");
    assert!(msg.contains(&truncated), "{msg}");
    // With declared columns the table is created; the query names the file.
    let fake = fx(&s, "bad/not_parquet.parquet");
    s.conn
        .query_drop(format!("CREATE EXTERNAL TABLE f (id INT) STORED AS PARQUET LOCATION '{fake}'"))
        .await
        .expect("declared columns skip inference");
    let (code, _, msg) = server_error(&mut s.conn, "SELECT count(*) FROM f").await;
    assert_eq!(code, 1030, "{msg}");
    assert!(msg.contains(&fake), "{msg}");
    still_serving(&mut s.conn).await;
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_refused_with_mysql_errors() {
    let mut s = setup().await;
    let cases = [
        ("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/no/such/dir/'".to_string(), 1017, "HY000"),
        (format!("CREATE EXTERNAL TABLE x STORED AS ORC LOCATION '{}'", fx(&s, "all_types.parquet")), 1235, "42000"),
        ("CREATE TABLE x (a INT) ENGINE=lakehouse ENGINE_ATTRIBUTE='{not json'".to_string(), 3140, "22032"),
        ("CREATE TABLE x (a INT, a INT) ENGINE=lakehouse ENGINE_ATTRIBUTE='{\"file\": [{\"uri\": \"/tmp\"}]}'".to_string(), 1060, "42S21"),
        ("SELECT nope FROM information_schema.tables".to_string(), 1054, "42S22"),
        ("SELECT * FROM lake.nothing".to_string(), 1146, "42S02"),
        ("SELECT FROM WHERE".to_string(), 1064, "42000"),
    ];
    for (sql, code, state) in cases {
        let (c, st, msg) = server_error(&mut s.conn, &sql).await;
        assert_eq!((c, st.as_str()), (code, state), "`{sql}` gave: {msg}");
    }
    still_serving(&mut s.conn).await;
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_create_table_round_trips() {
    let mut s = setup().await;
    let hive = fx(&s, "hive/");
    let csv = fx(&s, "csv/people.csv");
    s.conn
        .query_drop(format!("CREATE EXTERNAL TABLE sales STORED AS PARQUET LOCATION '{hive}'"))
        .await
        .expect("create sales");
    s.conn
        .query_drop(format!(
            "CREATE TABLE people (id INT, name VARCHAR(40), score DOUBLE, joined DATE) ENGINE=lakehouse SECONDARY_ENGINE=RAPID \
             ENGINE_ATTRIBUTE='{{\"dialect\": {{\"format\": \"csv\", \"field_delimiter\": \",\", \"skip_rows\": 1}}, \"file\": [{{\"uri\": \"{csv}\"}}]}}'"
        ))
        .await
        .expect("create people");
    for table in ["sales", "people"] {
        let before: Vec<(String, String)> = s.conn.query(format!("SHOW CREATE TABLE {table}")).await.expect("show create");
        let ddl = before[0].1.clone();
        let rows_before: Option<i64> = s.conn.query_first(format!("SELECT count(*) FROM {table}")).await.expect("count");
        s.conn.query_drop(format!("DROP TABLE {table}")).await.expect("drop");
        s.conn.query_drop(&ddl).await.unwrap_or_else(|e| panic!("SHOW CREATE output must be valid DDL: {e}\n{ddl}"));
        let after: Vec<(String, String)> = s.conn.query(format!("SHOW CREATE TABLE {table}")).await.expect("show create");
        assert_eq!(after[0].1, ddl, "definition survives the round trip");
        let rows_after: Option<i64> = s.conn.query_first(format!("SELECT count(*) FROM {table}")).await.expect("count");
        assert_eq!(rows_before, rows_after);
    }
    let sales: Vec<(String, String)> = s.conn.query("SHOW CREATE TABLE sales").await.expect("show create");
    assert!(sales[0].1.contains("PARTITIONED BY (`region`, `year`)"), "{}", sales[0].1);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_filters_prune_files() {
    let mut s = setup().await;
    let hive = fx(&s, "hive/");
    s.conn
        .query_drop(format!("CREATE EXTERNAL TABLE sales STORED AS PARQUET LOCATION '{hive}'"))
        .await
        .expect("create sales");
    let plan: Vec<(String, String)> = s
        .conn
        .query("EXPLAIN SELECT sum(amount) FROM sales WHERE region = 'eu' AND year = '2025'")
        .await
        .expect("explain");
    let physical = plan.iter().find(|(k, _)| k == "physical_plan").map(|(_, v)| v.clone()).expect("physical plan row");
    assert!(physical.contains("region=eu/year=2025/part-0.parquet"), "{physical}");
    for other in ["region=us", "year=2026"] {
        assert!(!physical.contains(other), "pruned partition {other} still scanned:\n{physical}");
    }
    s.server.stop().await;
}

/// Redshift UNLOAD output read through its manifests: exactly the files
/// listed (gzip, zstd, bzip2; `|` between fields; NULL as an empty field;
/// ADDQUOTES), the schema of a MANIFEST VERBOSE when no columns are
/// declared, in both DDL dialects; every row compared with the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_unload_manifests() {
    use mysql_async::prelude::Queryable;
    let data = tempfile::tempdir().expect("temp dir");
    let [gz, zst, quoted] = lakewave_tests::fixtures::write_redshift_unload(&data.path().join("unload"));
    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = mysql_async::Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE rs").await.expect("database");
    conn.query_drop("USE rs").await.expect("use");
    type Row = (i64, String, Option<String>, Option<i64>, Option<String>);
    let all = lakewave_tests::fixtures::redshift_venues();
    let plain: Vec<Row> = all.iter().filter(|r| !r.1.contains('|')).cloned().collect();
    let columns = "(venueid INT, venuename VARCHAR(100), city VARCHAR(30), seats BIGINT, price DECIMAL(8,2))";
    let select = |t: &str| format!("SELECT venueid, venuename, city, seats, price FROM {t} ORDER BY venueid");

    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE venue_gz {columns} STORED AS CSV LOCATION '{}' OPTIONS ('manifest' '{}', 'delimiter' '|', 'has_header' 'false')",
        gz.parent().expect("dir").display(),
        gz.display()
    ))
    .await
    .expect("manifest in OPTIONS");
    let got: Vec<Row> = conn.query(select("venue_gz")).await.expect("read gz parts");
    assert_eq!(got, plain);

    // MySQL functions that are rewritten for the engine keep the names the
    // client wrote for their result columns.
    let sql = "SELECT GROUP_CONCAT(venueid ORDER BY venueid SEPARATOR '|'), IF(COUNT(*) > 0, 'y', 'n') FROM venue_gz WHERE venueid < 3";
    let mut result = conn.query_iter(sql).await.expect("rewritten functions");
    let names: Vec<String> = result.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
    let rows: Vec<(String, String)> = result.collect().await.expect("rows");
    assert_eq!(names, vec!["GROUP_CONCAT(venueid ORDER BY venueid SEPARATOR '|')", "IF(COUNT(*) > 0, 'y', 'n')"]);
    assert_eq!(rows, vec![("1|2".to_string(), "y".to_string())]);

    // MANIFEST VERBOSE: the schema comes from the manifest.
    conn.query_drop(format!(
        "CREATE TABLE venue_zst ENGINE=lakehouse SECONDARY_ENGINE=RAPID ENGINE_ATTRIBUTE='{{\"dialect\": {{\"format\": \"csv\"}}, \"file\": [{{\"manifest\": \"{}\"}}]}}'",
        zst.display()
    ))
    .await
    .expect("manifest file entry");
    let types: Vec<(String, String)> = conn
        .query("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'rs' AND TABLE_NAME = 'venue_zst' ORDER BY ORDINAL_POSITION")
        .await
        .expect("columns");
    let types: Vec<(&str, &str)> = types.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        types,
        vec![("venueid", "int"), ("venuename", "varchar(100)"), ("city", "varchar(30)"), ("seats", "bigint"), ("price", "decimal(8,2)")]
    );
    let got: Vec<Row> = conn.query(select("venue_zst")).await.expect("read zst part");
    assert_eq!(got, plain);

    // ADDQUOTES: quoted fields, delimiters inside names.
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE venue_quoted {columns} STORED AS CSV LOCATION '{}' OPTIONS ('manifest' '{}', 'delimiter' '|', 'quote' '\"', 'has_header' 'false')",
        quoted.parent().expect("dir").display(),
        quoted.display()
    ))
    .await
    .expect("quoted parts");
    let got: Vec<Row> = conn.query(select("venue_quoted")).await.expect("read quoted part");
    assert_eq!(got, all);

    // The folders themselves: the parts have no .csv suffix; compressed
    // parts are found by theirs, and the manifest beside them is skipped.
    for (name, dir) in [("gz_prefix", gz.parent().expect("dir")), ("zst_prefix", zst.parent().expect("dir"))] {
        conn.query_drop(format!(
            "CREATE EXTERNAL TABLE {name} {columns} STORED AS CSV LOCATION '{}/' OPTIONS ('delimiter' '|', 'has_header' 'false')",
            dir.display()
        ))
        .await
        .expect("UNLOAD folder without its manifest");
        let got: Vec<Row> = conn.query(select(name)).await.expect("read the parts");
        assert_eq!(got, plain, "{name}");
    }
    // A name prefix, as UNLOAD's TO '.../venue_' is written: the parts it
    // starts, not the manifest beside them.
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE by_prefix {columns} STORED AS CSV LOCATION '{}/venue_' OPTIONS ('delimiter' '|', 'has_header' 'false')",
        gz.parent().expect("dir").display()
    ))
    .await
    .expect("UNLOAD name prefix");
    let got: Vec<Row> = conn.query(select("by_prefix")).await.expect("read the parts by prefix");
    assert_eq!(got, plain, "by_prefix");

    // Uncompressed parts beside a manifest: the error points at it.
    let plain_dir = data.path().join("unload/plain");
    std::fs::create_dir_all(&plain_dir).expect("dir");
    std::fs::write(plain_dir.join("venue_0000_part_00"), "1|Hall|City|10|1.50\n").expect("part");
    std::fs::write(plain_dir.join("venue_manifest"), "{}").expect("manifest");
    let e = match conn
        .query_drop(format!("CREATE EXTERNAL TABLE plain {columns} STORED AS CSV LOCATION '{}/'", plain_dir.display()))
        .await
    {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(e.message.contains("use OPTIONS ('manifest'") && e.message.contains("venue_manifest"), "{e:?}");
    std::fs::remove_file(plain_dir.join("venue_manifest")).expect("remove");
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE plain {columns} STORED AS CSV LOCATION '{}/' OPTIONS ('delimiter' '|', 'has_header' 'false')",
        plain_dir.display()
    ))
    .await
    .expect("uncompressed parts alone");
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM plain").await.expect("count");
    assert_eq!(n, Some(1));

    let e = match conn
        .query_drop(format!(
            "CREATE EXTERNAL TABLE gone {columns} STORED AS CSV LOCATION '/tmp' OPTIONS ('manifest' '{}/nope_manifest')",
            data.path().display()
        ))
        .await
    {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(e.code, 1017, "{e:?}");

    // A part shorter than the manifest says (a cut-off copy) is refused.
    let cut = data.path().join("unload/gz/venue_0001_part_00.gz");
    let bytes = std::fs::read(&cut).expect("part");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).expect("cut");
    let e = match conn
        .query_drop(format!(
            "CREATE EXTERNAL TABLE cut {columns} STORED AS CSV LOCATION '{}' OPTIONS ('manifest' '{}', 'delimiter' '|', 'has_header' 'false')",
            gz.parent().expect("dir").display(),
            gz.display()
        ))
        .await
    {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(e.code, 1030, "{e:?}");
    assert!(e.message.contains("venue_0001_part_00.gz") && e.message.contains(&format!("{} bytes, but it has {}", bytes.len(), bytes.len() - 5)), "{e:?}");
}

async fn sum(conn: &mut Conn, sql: &str) -> (i64, i64) {
    conn.query_first(sql).await.expect("query").expect("one row")
}

async fn plan_cache_counts(conn: &mut Conn) -> (u64, u64) {
    let rows: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'lakewave_plan_cache%'").await.expect("status");
    let get = |name: &str| rows.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok()).expect(name);
    (get("lakewave_plan_cache_hits"), get("lakewave_plan_cache_misses"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_statements_reuse_plans_and_see_changes() {
    let mut s = setup().await;
    let one = s.dir.path().join("cache_one");
    let two = s.dir.path().join("cache_two");
    std::fs::create_dir_all(&one).expect("dir");
    std::fs::create_dir_all(&two).expect("dir");
    std::fs::write(one.join("a.csv"), "k,v\n1,10\n2,20\n3,30\n").expect("write");
    std::fs::write(two.join("a.csv"), "k,v\n1,100\n5,500\n").expect("write");
    let create = |dir: &std::path::Path| {
        format!("CREATE EXTERNAL TABLE c (k INT, v INT) STORED AS CSV LOCATION '{}/' OPTIONS ('has_header' 'true')", dir.display())
    };
    s.conn.query_drop(create(&one)).await.expect("create");
    let query = "SELECT count(*), sum(v) FROM c WHERE k > 1";

    let (hits, misses) = plan_cache_counts(&mut s.conn).await;
    assert_eq!(sum(&mut s.conn, query).await, (2, 50));
    assert_eq!(sum(&mut s.conn, "SELECT  count(*), sum(v)  FROM c WHERE k > 1").await, (2, 50));
    assert_eq!(plan_cache_counts(&mut s.conn).await, (hits + 1, misses + 1));

    // The table defined anew over other files: the same text, new answers.
    s.conn.query_drop("DROP TABLE c").await.expect("drop");
    s.conn.query_drop(create(&two)).await.expect("create again");
    assert_eq!(sum(&mut s.conn, query).await, (1, 500));
    assert_eq!(plan_cache_counts(&mut s.conn).await, (hits + 1, misses + 2));

    // A loaded copy is another table to the cache; unloading it goes back
    // to the files.
    s.conn.query_drop("ALTER TABLE c SECONDARY_ENGINE = RAPID").await.expect("mark");
    s.conn.query_drop("ALTER TABLE c SECONDARY_LOAD").await.expect("load");
    s.conn.query_drop("SET use_secondary_engine = FORCED").await.expect("set");
    assert_eq!(sum(&mut s.conn, query).await, (1, 500));
    assert_eq!(sum(&mut s.conn, query).await, (1, 500));
    assert_eq!(plan_cache_counts(&mut s.conn).await, (hits + 2, misses + 3));
    s.conn.query_drop("ALTER TABLE c SECONDARY_UNLOAD").await.expect("unload");
    s.conn.query_drop("SET use_secondary_engine = OFF").await.expect("set");
    std::fs::write(two.join("b.csv"), "k,v\n7,7\n").expect("write");
    s.conn.query_drop("REFRESH TABLE c").await.expect("refresh");
    assert_eq!(sum(&mut s.conn, query).await, (2, 507));

    // Statements whose optimized plan depends on the moment are not kept.
    let (hits, misses) = plan_cache_counts(&mut s.conn).await;
    for _ in 0..2 {
        let n: Option<i64> = s.conn.query_first("SELECT count(*) FROM c WHERE now() > '2000-01-01'").await.expect("now");
        assert_eq!(n, Some(3));
    }
    assert_eq!(plan_cache_counts(&mut s.conn).await, (hits, misses));
}
