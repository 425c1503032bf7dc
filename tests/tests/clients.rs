//! End-to-end tests through real MySQL clients: PyMySQL, MySQL
//! Connector/Python, MariaDB Connector/J, the `mariadb` command-line client
//! and `mysql_async`. Each test starts an in-process server, registers the
//! fixtures and a 2000-row sample data set, and drives one client against it.
//!
//! The external clients are installed by `scripts/test-deps.sh`; a missing one
//! fails the test with that hint. Their check programs live in `tests/clients/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use lakewave_tests::clients::{DEPS_HINT, JavaProgram, client_file, mariadb_cmd, run_client};
use lakewave_tests::{TestServer, fixtures, require_program, workspace};

const SAMPLE_ROWS: u64 = 2000;
/// Longest run allowed to one external client program.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------
// Shared setup

/// A running server with the fixtures and the sample data set registered.
struct Env {
    server: TestServer,
    dir: tempfile::TempDir,
}

impl Env {
    fn fixtures_dir(&self) -> PathBuf {
        self.dir.path().join("fixtures")
    }

    fn port(&self) -> String {
        self.server.port.to_string()
    }

    async fn conn(&self) -> Conn {
        self.server.conn().await
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// Starts a server, writes the fixtures and 2000 sample rows into a temp
/// directory and registers them (database `fixtures`, database `samples`).
async fn setup() -> Env {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir for the test data");
    let fixtures_dir = dir.path().join("fixtures");
    let samples_dir = dir.path().join("samples");
    let (f, s) = (fixtures_dir.clone(), samples_dir.clone());
    tokio::task::spawn_blocking(move || {
        fixtures::write_all(&f);
        samples::generate(&s, &samples::SampleOptions { rows: SAMPLE_ROWS, ..Default::default() })
            .expect("generate the sample data set");
    })
    .await
    .expect("writing the test data");

    let mut conn = server.conn().await;
    let all_types = fixtures_dir.join("all_types.parquet");
    let mut statements = samples::registration_sql(&samples_dir);
    statements.push("CREATE DATABASE fixtures".into());
    statements.push(format!(
        "CREATE EXTERNAL TABLE fixtures.all_types STORED AS PARQUET LOCATION '{}'",
        all_types.display().to_string().replace('\'', "''")
    ));
    for sql in &statements {
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("setup statement failed: {sql}\n{e}"));
    }
    conn.disconnect().await.expect("disconnect after setup");
    Env { server, dir }
}


/// Runs one of the Python check scripts against the server.
async fn python_check(script: &str) {
    let python = require_program("python3", DEPS_HINT);
    let env = setup().await;
    let mut cmd = Command::new(python);
    cmd.arg(client_file(script)).arg("127.0.0.1").arg(env.port()).arg(env.fixtures_dir());
    cmd.env("PYTHONIOENCODING", "utf-8").env("PYTHONDONTWRITEBYTECODE", "1");
    let outcome = run_client(cmd, None, CLIENT_TIMEOUT).await;
    env.stop().await;
    outcome.assert_success();
}

// ---------------------------------------------------------------------------
// External clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymysql() {
    python_check("pymysql_check.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_connector_python() {
    python_check("connector_python_check.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_j() {
    let program = JavaProgram::compile("ConnectorJCheck.java").await;
    let env = setup().await;
    let mut cmd = program.command("ConnectorJCheck");
    cmd.arg("127.0.0.1").arg(env.port());
    let outcome = run_client(cmd, None, CLIENT_TIMEOUT).await;
    env.stop().await;
    outcome.assert_success();
}

/// Lines of a `--batch` result: a header, then one tab-separated line per row.
fn batch(out: &mut Vec<u8>, header: &[&str], rows: &[Vec<&[u8]>]) {
    out.extend_from_slice(header.join("\t").as_bytes());
    out.push(b'\n');
    for row in rows {
        out.extend_from_slice(&row.join(&b'\t'));
        out.push(b'\n');
    }
}

/// Shows where two outputs first differ, line by line.
fn first_difference(got: &[u8], expected: &[u8]) -> String {
    let g: Vec<&[u8]> = got.split(|b| *b == b'\n').collect();
    let e: Vec<&[u8]> = expected.split(|b| *b == b'\n').collect();
    for i in 0..g.len().max(e.len()) {
        let (gl, el) = (g.get(i).copied(), e.get(i).copied());
        if gl != el {
            let show = |l: Option<&[u8]>| l.map_or("<missing>".to_string(), |l| format!("{:?}", String::from_utf8_lossy(l)));
            return format!("line {}: got {}, expected {}", i + 1, show(gl), show(el));
        }
    }
    "no difference".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli() {
    let mariadb = require_program("mariadb", DEPS_HINT);
    let env = setup().await;
    let port = env.port();

    // The per-type numbers the CLI must print, computed through mysql_async.
    let mut conn = env.conn().await;
    let per_type: Vec<(String, u64, u64)> = conn
        .query(
            "SELECT asset_type, COUNT(*), SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) \
             FROM samples.sensors GROUP BY asset_type ORDER BY asset_type",
        )
        .await
        .expect("failures per asset type");
    conn.disconnect().await.expect("disconnect");
    assert_eq!(per_type.len(), 4, "asset types: {per_type:?}");
    assert_eq!(per_type.iter().map(|r| r.1).sum::<u64>(), SAMPLE_ROWS, "readings per type: {per_type:?}");

    let mut expected = Vec::new();
    batch(
        &mut expected,
        &["id", "i8", "u64", "dec", "s", "d", "ts"],
        &[
            vec![b"1", b"-128", b"18446744073709551615", b"12345.678", "héllo, wörld".as_bytes(), b"2026-01-31", b"2026-01-31 23:59:58.123456"],
            vec![b"2", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL"],
            vec![b"3", b"127", b"0", b"-0.001", b"", b"1970-01-01", b"1970-01-01 00:00:00.000000"],
        ],
    );
    batch(
        &mut expected,
        &["id", "i16", "i32", "i64", "u8", "u16", "u32", "f32", "f64", "flag", "t"],
        &[
            vec![b"1", b"-32768", b"-2147483648", b"-9223372036854775808", b"255", b"65535", b"4294967295", b"1.5", b"-2.25", b"1", b"12:34:56.500000"],
            vec![b"2", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL", b"NULL"],
            vec![b"3", b"32767", b"2147483647", b"9223372036854775807", b"0", b"0", b"0", b"-0.5", b"1e300", b"0", b"00:00:00.000000"],
        ],
    );
    // --batch escapes NUL as \0; other bytes pass through.
    batch(&mut expected, &["id", "b"], &[vec![b"1", b"\\0\x01\xff"], vec![b"2", b"NULL"], vec![b"3", b""]]);
    batch(&mut expected, &["db"], &[vec![b"samples"]]);
    let total = SAMPLE_ROWS.to_string();
    batch(
        &mut expected,
        &["format", "row_count"],
        &["avro", "csv", "csv.gz", "json", "parquet"].map(|f| vec![f.as_bytes(), total.as_bytes()]),
    );
    let per_type_text: Vec<[String; 3]> =
        per_type.iter().map(|(t, n, f)| [t.clone(), n.to_string(), f.to_string()]).collect();
    let per_type_rows: Vec<Vec<&[u8]>> =
        per_type_text.iter().map(|r| r.iter().map(|c| c.as_bytes()).collect()).collect();
    for _ in ["sensors", "sensors_avro"] {
        batch(&mut expected, &["asset_type", "readings", "failures"], &per_type_rows);
    }

    let script = run_client(mariadb_cmd(&mariadb, &port), Some(&client_file("cli_check.sql")), CLIENT_TIMEOUT).await;
    // A user's plain connection: no TLS options, no batch flag.
    let mut plain = Command::new(&mariadb);
    plain.args(["-h", "127.0.0.1", "-P", &port, "-u", "root", "-e", "SELECT 1 + 1 AS two"]);
    let plain = run_client(plain, None, CLIENT_TIMEOUT).await;
    // The quickstart script runs start to end.
    let mut quickstart = mariadb_cmd(&mariadb, &port);
    quickstart.arg("--table");
    let quickstart = run_client(quickstart, Some(&workspace().join("samples").join("quickstart.sql")), CLIENT_TIMEOUT).await;
    // Errors: a missing table and a syntax error end the client with status 1.
    let mut missing = mariadb_cmd(&mariadb, &port);
    missing.args(["-D", "samples", "-e", "select * from nosuch"]);
    let missing = run_client(missing, None, CLIENT_TIMEOUT).await;
    let mut syntax = mariadb_cmd(&mariadb, &port);
    syntax.args(["-e", "SELEC 1"]);
    let syntax = run_client(syntax, None, CLIENT_TIMEOUT).await;
    env.stop().await;

    script.assert_success();
    assert!(
        script.stdout == expected,
        "cli_check.sql output differs: {}\n--- got ---\n{}\n--- expected ---\n{}",
        first_difference(&script.stdout, &expected),
        script.stdout(),
        String::from_utf8_lossy(&expected)
    );

    plain.assert_success();
    assert_eq!(plain.stdout(), "two\n2\n", "plain connection: {}", plain.report());

    quickstart.assert_success();
    let q = quickstart.stdout();
    for needle in ["| Tables_in_samples |", "| sensors_csv_gz    |", "| mismatches |", "| parquet |      2000 |", "| avro    |      2000 |"] {
        assert!(q.contains(needle), "quickstart output lacks {needle:?}: {}", quickstart.report());
    }
    let last = q.lines().rev().nth(1).unwrap_or_default();
    assert!(last.trim_end().ends_with("|          0 |"), "quickstart power rule mismatches: {last}\n{}", quickstart.report());

    assert!(!missing.success(), "select from a missing table succeeded: {}", missing.report());
    assert!(
        missing.stderr().contains("ERROR 1146 (42S02)") && missing.stderr().contains("nosuch"),
        "missing table error: {}",
        missing.report()
    );
    assert!(!syntax.success(), "a syntax error succeeded: {}", syntax.report());
    assert!(syntax.stderr().contains("ERROR 1064 (42000)"), "syntax error: {}", syntax.report());
}

// ---------------------------------------------------------------------------
// mysql_async (in Rust)

const ALL_TYPES_COLUMNS: &str = "id, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, dec, s, b, flag, d, ts, t";

/// Typed values of one all_types row (decimals as text: mysql_async is built
/// without a decimal type).
#[derive(Debug, PartialEq)]
struct AllTypes {
    id: i32,
    i8: Option<i8>,
    i16: Option<i16>,
    i32: Option<i32>,
    i64: Option<i64>,
    u8: Option<u8>,
    u16: Option<u16>,
    u32: Option<u32>,
    u64: Option<u64>,
    f32: Option<f32>,
    f64: Option<f64>,
    dec: Option<String>,
    s: Option<String>,
    b: Option<Vec<u8>>,
    flag: Option<bool>,
}

fn typed(row: &Row) -> AllTypes {
    fn get<T: FromValue>(row: &Row, name: &str) -> T {
        row.get_opt::<T, _>(name)
            .unwrap_or_else(|| panic!("column {name} missing"))
            .unwrap_or_else(|e| panic!("column {name}: {e}"))
    }
    AllTypes {
        id: get(row, "id"),
        i8: get(row, "i8"),
        i16: get(row, "i16"),
        i32: get(row, "i32"),
        i64: get(row, "i64"),
        u8: get(row, "u8"),
        u16: get(row, "u16"),
        u32: get(row, "u32"),
        u64: get(row, "u64"),
        f32: get(row, "f32"),
        f64: get(row, "f64"),
        dec: get(row, "dec"),
        s: get(row, "s"),
        b: get(row, "b"),
        flag: get(row, "flag"),
    }
}

fn expected_all_types() -> Vec<AllTypes> {
    vec![
        AllTypes {
            id: 1,
            i8: Some(i8::MIN),
            i16: Some(i16::MIN),
            i32: Some(i32::MIN),
            i64: Some(i64::MIN),
            u8: Some(u8::MAX),
            u16: Some(u16::MAX),
            u32: Some(u32::MAX),
            u64: Some(u64::MAX),
            f32: Some(1.5),
            f64: Some(-2.25),
            dec: Some("12345.678".into()),
            s: Some("héllo, wörld".into()),
            b: Some(vec![0, 1, 255]),
            flag: Some(true),
        },
        AllTypes {
            id: 2,
            i8: None,
            i16: None,
            i32: None,
            i64: None,
            u8: None,
            u16: None,
            u32: None,
            u64: None,
            f32: None,
            f64: None,
            dec: None,
            s: None,
            b: None,
            flag: None,
        },
        AllTypes {
            id: 3,
            i8: Some(i8::MAX),
            i16: Some(i16::MAX),
            i32: Some(i32::MAX),
            i64: Some(i64::MAX),
            u8: Some(0),
            u16: Some(0),
            u32: Some(0),
            u64: Some(0),
            f32: Some(-0.5),
            f64: Some(1e300),
            dec: Some("-0.001".into()),
            s: Some(String::new()),
            b: Some(Vec::new()),
            flag: Some(false),
        },
    ]
}

/// Column definitions as a client sees them.
fn check_columns(rows: &[Row], how: &str) {
    let cols = rows.first().expect("a row").columns_ref();
    let names: Vec<String> = cols.iter().map(|c| c.name_str().into_owned()).collect();
    assert_eq!(names.join(", "), ALL_TYPES_COLUMNS, "{how}: column names");
    let col = |name: &str| cols.iter().find(|c| c.name_str() == name).expect("column");
    let expect = [
        ("id", ColumnType::MYSQL_TYPE_LONG, false),
        ("i8", ColumnType::MYSQL_TYPE_TINY, false),
        ("i16", ColumnType::MYSQL_TYPE_SHORT, false),
        ("i32", ColumnType::MYSQL_TYPE_LONG, false),
        ("i64", ColumnType::MYSQL_TYPE_LONGLONG, false),
        ("u8", ColumnType::MYSQL_TYPE_TINY, true),
        ("u16", ColumnType::MYSQL_TYPE_SHORT, true),
        ("u32", ColumnType::MYSQL_TYPE_LONG, true),
        ("u64", ColumnType::MYSQL_TYPE_LONGLONG, true),
        ("f32", ColumnType::MYSQL_TYPE_FLOAT, false),
        ("f64", ColumnType::MYSQL_TYPE_DOUBLE, false),
        ("dec", ColumnType::MYSQL_TYPE_NEWDECIMAL, false),
        ("s", ColumnType::MYSQL_TYPE_BLOB, false),
        ("b", ColumnType::MYSQL_TYPE_BLOB, false),
        ("flag", ColumnType::MYSQL_TYPE_TINY, false),
        ("d", ColumnType::MYSQL_TYPE_DATE, false),
        ("ts", ColumnType::MYSQL_TYPE_DATETIME, false),
        ("t", ColumnType::MYSQL_TYPE_TIME, false),
    ];
    for (name, ty, unsigned) in expect {
        let c = col(name);
        assert_eq!(c.column_type(), ty, "{how}: type of {name}");
        assert_eq!(c.flags().contains(ColumnFlags::UNSIGNED_FLAG), unsigned, "{how}: UNSIGNED flag of {name}");
        assert_eq!(c.table_str(), "all_types", "{how}: table of {name}");
    }
    // Text columns carry the connection's collation (mysql_async asks for
    // utf8mb4_general_ci, 45); binary columns the binary collation 63.
    assert_eq!(col("s").character_set(), 45, "{how}: character set of s (TEXT)");
    assert_eq!(col("b").character_set(), 63, "{how}: character set of b (BLOB)");
    assert!(col("b").flags().contains(ColumnFlags::BINARY_FLAG), "{how}: BINARY flag of b");
    assert_eq!(col("i64").character_set(), 63, "{how}: character set of i64");
    assert_eq!(col("dec").decimals(), 3, "{how}: decimals of dec");
    assert_eq!(col("ts").decimals(), 6, "{how}: decimals of ts");
    assert_eq!(col("t").decimals(), 6, "{how}: decimals of t");
    assert_eq!(col("flag").column_length(), 1, "{how}: display width of flag (TINYINT(1))");
    assert_eq!(col("i32").column_length(), 11, "{how}: display width of i32");
}

fn server_error(result: Result<impl std::fmt::Debug, mysql_async::Error>, sql: &str) -> mysql_async::ServerError {
    match result {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("{sql}: expected a server error, got {other:?}"),
    }
}

async fn check_all_types(conn: &mut Conn) {
    // Text protocol.
    let sql = format!("SELECT {ALL_TYPES_COLUMNS} FROM fixtures.all_types ORDER BY id");
    let rows: Vec<Row> = conn.query(&sql).await.expect("all_types in the text protocol");
    assert_eq!(rows.len(), 3, "all_types rows");
    assert_eq!(rows.iter().map(typed).collect::<Vec<_>>(), expected_all_types(), "all_types (text protocol)");
    // Temporal values arrive as text.
    let text = |r: usize, c: &str| rows[r][c].clone();
    assert_eq!(text(0, "d"), Value::Bytes(b"2026-01-31".to_vec()));
    assert_eq!(text(0, "ts"), Value::Bytes(b"2026-01-31 23:59:58.123456".to_vec()));
    assert_eq!(text(0, "t"), Value::Bytes(b"12:34:56.500000".to_vec()));
    assert_eq!(text(1, "d"), Value::NULL);
    assert_eq!(text(2, "d"), Value::Bytes(b"1970-01-01".to_vec()));
    assert_eq!(text(2, "ts"), Value::Bytes(b"1970-01-01 00:00:00.000000".to_vec()));
    assert_eq!(text(2, "t"), Value::Bytes(b"00:00:00.000000".to_vec()));
    assert_eq!(text(0, "u64"), Value::Bytes(b"18446744073709551615".to_vec()));

    // Binary protocol (a server-side prepared statement).
    let sql = format!("SELECT {ALL_TYPES_COLUMNS} FROM fixtures.all_types WHERE id >= ? ORDER BY id");
    let rows: Vec<Row> = conn.exec(&sql, (0,)).await.expect("all_types in the binary protocol");
    assert_eq!(rows.len(), 3, "all_types rows (binary)");
    assert_eq!(rows.iter().map(typed).collect::<Vec<_>>(), expected_all_types(), "all_types (binary protocol)");
    let v = |r: usize, c: &str| rows[r][c].clone();
    assert_eq!(v(0, "i8"), Value::Int(-128));
    assert_eq!(v(0, "i64"), Value::Int(i64::MIN));
    assert_eq!(v(0, "u64"), Value::UInt(u64::MAX));
    assert_eq!(v(0, "f32"), Value::Float(1.5));
    assert_eq!(v(0, "f64"), Value::Double(-2.25));
    assert_eq!(v(0, "dec"), Value::Bytes(b"12345.678".to_vec()));
    assert_eq!(v(0, "s"), Value::Bytes("héllo, wörld".as_bytes().to_vec()));
    assert_eq!(v(0, "b"), Value::Bytes(vec![0, 1, 255]));
    assert_eq!(v(0, "flag"), Value::Int(1));
    assert_eq!(v(0, "d"), Value::Date(2026, 1, 31, 0, 0, 0, 0));
    assert_eq!(v(0, "ts"), Value::Date(2026, 1, 31, 23, 59, 58, 123_456));
    assert_eq!(v(0, "t"), Value::Time(false, 0, 12, 34, 56, 500_000));
    for c in ["i8", "u64", "f32", "dec", "s", "b", "flag", "d", "ts", "t"] {
        assert_eq!(v(1, c), Value::NULL, "{c} of row 2 (binary)");
    }
    assert_eq!(v(2, "f64"), Value::Double(1e300));
    assert_eq!(v(2, "d"), Value::Date(1970, 1, 1, 0, 0, 0, 0));
    assert_eq!(v(2, "ts"), Value::Date(1970, 1, 1, 0, 0, 0, 0));
    assert_eq!(v(2, "t"), Value::Time(false, 0, 0, 0, 0, 0));
}

async fn check_parameters(conn: &mut Conn) {
    let s: Option<Option<String>> =
        conn.exec_first("SELECT s FROM fixtures.all_types WHERE id = ?", (1,)).await.expect("exec by id");
    assert_eq!(s, Some(Some("héllo, wörld".into())), "s of id 1");
    let id: Option<i32> = conn
        .exec_first("SELECT id FROM fixtures.all_types WHERE s = ? AND u64 = ?", ("héllo, wörld", u64::MAX))
        .await
        .expect("exec by string and u64");
    assert_eq!(id, Some(1), "id by unicode string and max unsigned");
    let id: Option<i32> = conn
        .exec_first(
            "SELECT id FROM fixtures.all_types WHERE d = ? AND ts = ?",
            (Value::Date(2026, 1, 31, 0, 0, 0, 0), Value::Date(2026, 1, 31, 23, 59, 58, 123_456)),
        )
        .await
        .expect("exec by date and datetime");
    assert_eq!(id, Some(1), "id by date and datetime");
    let n: Option<i64> = conn
        .exec_first("SELECT COUNT(*) FROM fixtures.all_types WHERE i8 = ?", (Value::NULL,))
        .await
        .expect("exec with NULL");
    assert_eq!(n, Some(0), "comparison with a NULL parameter");

    // One statement, executed several times, then closed.
    let stmt = conn.prep("SELECT s, u64 FROM fixtures.all_types WHERE id = ?").await.expect("prepare");
    assert_eq!(stmt.num_params(), 1, "parameters of the prepared statement");
    assert_eq!(stmt.num_columns(), 2, "columns of the prepared statement");
    for (id, expected) in [
        (3, (Some(String::new()), Some(0u64))),
        (1, (Some("héllo, wörld".to_string()), Some(u64::MAX))),
        (2, (None, None)),
    ] {
        let got: Option<(Option<String>, Option<u64>)> = conn.exec_first(&stmt, (id,)).await.expect("exec");
        assert_eq!(got, Some(expected), "re-executed statement with id {id}");
    }
    conn.close(stmt).await.expect("close the statement");
}

/// Column definitions of all_types in both protocols.
async fn check_column_definitions(conn: &mut Conn) {
    let sql = format!("SELECT {ALL_TYPES_COLUMNS} FROM fixtures.all_types ORDER BY id");
    let rows: Vec<Row> = conn.query(&sql).await.expect("all_types in the text protocol");
    check_columns(&rows, "text protocol");
    let sql = format!("SELECT {ALL_TYPES_COLUMNS} FROM fixtures.all_types WHERE id >= ? ORDER BY id");
    let rows: Vec<Row> = conn.exec(&sql, (0,)).await.expect("all_types in the binary protocol");
    check_columns(&rows, "binary protocol");
}

/// A bytes parameter that is not valid UTF-8 must compare equal to the
/// stored BLOB value.
async fn check_binary_parameter(conn: &mut Conn) {
    let id: Option<i32> = conn
        .exec_first("SELECT id FROM fixtures.all_types WHERE b = ?", (vec![0u8, 1, 255],))
        .await
        .expect("exec by bytes");
    assert_eq!(id, Some(1), "SELECT id FROM fixtures.all_types WHERE b = ? with [0, 1, 255]");
    let id: Option<i32> = conn
        .exec_first("SELECT id FROM fixtures.all_types WHERE b = ?", (Vec::<u8>::new(),))
        .await
        .expect("exec by empty bytes");
    assert_eq!(id, Some(3), "SELECT id FROM fixtures.all_types WHERE b = ? with []");
}

async fn check_samples(conn: &mut Conn) {
    conn.query_drop("USE samples").await.expect("USE samples");
    let db: Option<String> = conn.query_first("SELECT DATABASE()").await.expect("DATABASE()");
    assert_eq!(db.as_deref(), Some("samples"));
    let mut tables: Vec<String> = conn.query("SHOW TABLES").await.expect("SHOW TABLES");
    tables.sort();
    assert_eq!(tables, ["assets_csv", "sensors", "sensors_avro", "sensors_csv", "sensors_csv_gz", "sensors_json"]);

    let mut counts: Vec<(String, u64)> = conn
        .query(
            "SELECT 'parquet' AS format, COUNT(*) AS row_count FROM sensors \
             UNION ALL SELECT 'csv', COUNT(*) FROM sensors_csv \
             UNION ALL SELECT 'csv.gz', COUNT(*) FROM sensors_csv_gz \
             UNION ALL SELECT 'json', COUNT(*) FROM sensors_json \
             UNION ALL SELECT 'avro', COUNT(*) FROM sensors_avro",
        )
        .await
        .expect("row counts per format");
    counts.sort();
    let expected: Vec<(String, u64)> =
        ["avro", "csv", "csv.gz", "json", "parquet"].iter().map(|f| (f.to_string(), SAMPLE_ROWS)).collect();
    assert_eq!(counts, expected, "row counts per format");

    let failures: Option<u64> =
        conn.query_first("SELECT COUNT(*) FROM sensors WHERE machine_failure").await.expect("failures");
    let failures = failures.expect("a count");
    assert!(failures > 0 && failures < SAMPLE_ROWS, "failures: {failures}");

    let per_type = |table: &str| {
        format!(
            "SELECT asset_type, COUNT(*), SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) \
             FROM {table} GROUP BY asset_type ORDER BY asset_type"
        )
    };
    let parquet: Vec<(String, u64, u64)> = conn.query(per_type("sensors")).await.expect("per type");
    let types: Vec<&str> = parquet.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(types, ["CNC_MILL", "GRINDER", "LATHE", "PRESS"], "asset types");
    assert_eq!(parquet.iter().map(|r| r.1).sum::<u64>(), SAMPLE_ROWS, "readings per type");
    assert_eq!(parquet.iter().map(|r| r.2).sum::<u64>(), failures, "failures per type");
    for table in ["sensors_csv", "sensors_csv_gz", "sensors_json", "sensors_avro"] {
        let other: Vec<(String, u64, u64)> = conn.query(per_type(table)).await.expect("per type");
        assert_eq!(other, parquet, "failures per type of {table} vs sensors");
    }
    // The same through a prepared statement with a parameter.
    for (asset_type, readings, fails) in &parquet {
        let got: Option<(u64, u64)> = conn
            .exec_first(
                "SELECT COUNT(*), SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) FROM sensors WHERE asset_type = ?",
                (asset_type.as_str(),),
            )
            .await
            .expect("per type, prepared");
        assert_eq!(got, Some((*readings, *fails)), "prepared count of {asset_type}");
    }
}

async fn check_errors(conn: &mut Conn) {
    let cases = [
        ("SELECT * FROM fixtures.nosuch", 1146, "42S02"),
        ("SELEC 1", 1064, "42000"),
        ("SELECT nosuch_column FROM fixtures.all_types", 1054, "42S22"),
    ];
    for (sql, code, state) in cases {
        let e = server_error(conn.query_drop(sql).await, sql);
        assert_eq!((e.code, e.state.as_str()), (code, state), "{sql}: {e:?}");
        assert!(!e.message.is_empty(), "{sql}: empty message");
        let one: Option<i64> = conn.query_first("SELECT 1").await.expect("SELECT 1 after an error");
        assert_eq!(one, Some(1));
    }
    // Errors at prepare time.
    let sql = "SELECT * FROM fixtures.nosuch WHERE id = ?";
    let e = server_error(conn.prep(sql).await, sql);
    assert_eq!((e.code, e.state.as_str()), (1146, "42S02"), "prepare {sql}: {e:?}");
    let one: Option<i64> = conn.exec_first("SELECT ? + 1", (0,)).await.expect("exec after a failed prepare");
    assert_eq!(one, Some(1));
    // A multi-statement text stops at the first error.
    let mut result = conn.query_iter("SELECT 1; SELECT 2").await.expect("multi-statement");
    let first: Vec<i64> = result.collect().await.expect("first result");
    let second: Vec<i64> = result.collect().await.expect("second result");
    drop(result);
    assert_eq!((first, second), (vec![1], vec![2]), "multi-statement results");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_async() {
    let env = setup().await;
    let mut conn = env.conn().await;
    let version = conn.server_version();
    assert!(version >= (8, 0, 0), "server version {version:?}");
    check_all_types(&mut conn).await;
    check_parameters(&mut conn).await;
    check_samples(&mut conn).await;
    check_errors(&mut conn).await;
    check_column_definitions(&mut conn).await;
    check_binary_parameter(&mut conn).await;
    conn.ping().await.expect("ping");
    conn.reset().await.expect("COM_RESET_CONNECTION");
    let one: Option<i64> = conn.query_first("SELECT 1").await.expect("SELECT 1 after reset");
    assert_eq!(one, Some(1));
    conn.query_drop("SET @kept = 1").await.expect("set a user variable");
    conn.change_user(mysql_async::ChangeUserOpts::default().with_db_name(Some("samples".into())))
        .await
        .expect("COM_CHANGE_USER");
    let (db, kept): (Option<String>, Option<i64>) =
        conn.query_first("SELECT DATABASE(), @kept").await.expect("after change user").expect("a row");
    assert_eq!((db.as_deref(), kept), (Some("samples"), None), "change user switches db and resets the session");
    conn.disconnect().await.expect("disconnect");
    env.stop().await;
}
