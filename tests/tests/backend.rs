//! Lakewave in front of a real MariaDB (a private instance per test): OLTP
//! statements pass through with MariaDB's own results and errors, databases
//! hold lake and MySQL tables side by side, and a backend that dies gives a
//! clear error and comes back.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};

use lakewave_tests::mariadb::TestMariaDb;
use lakewave_tests::{TestServer, fixtures};

fn server_error(r: Result<(), mysql_async::Error>) -> mysql_async::ServerError {
    match r {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

async fn setup() -> (TestMariaDb, TestServer, Conn, tempfile::TempDir) {
    let db = TestMariaDb::start();
    let server = TestServer::start_with_backend(&db).await;
    let files = tempfile::tempdir().expect("fixtures");
    fixtures::write_all(files.path());
    let conn = server.conn().await;
    (db, server, conn, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oltp_statements_pass_through_verbatim() {
    let (db, server, mut conn, files) = setup().await;
    conn.query_drop("CREATE DATABASE shop").await.expect("create database");
    conn.query_drop("USE shop").await.expect("use");
    conn.query_drop("CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(20), balance DECIMAL(12,2) NOT NULL)")
        .await
        .expect("create a MySQL table through Lakewave");
    conn.query_drop("INSERT INTO accounts VALUES (1, 'ada', 100.00), (2, 'bob', 50.00)").await.expect("insert");
    assert_eq!(conn.affected_rows(), 2, "affected rows relayed");
    conn.query_drop("INSERT INTO accounts (id, owner, balance) VALUES (3, 'cy', 0)").await.expect("insert");

    // The same data is in MariaDB itself.
    let mut direct = db.conn().await;
    let n: Option<i64> = direct.query_first("SELECT COUNT(*) FROM shop.accounts").await.expect("direct count");
    assert_eq!(n, Some(3));

    // MariaDB's own errors, codes and states.
    let e = server_error(conn.query_drop("INSERT INTO accounts VALUES (1, 'dup', 1)").await);
    assert_eq!((e.code, e.state.as_str()), (1062, "23000"), "{e:?}");
    let e = server_error(conn.query_drop("SELECT nope FROM accounts").await);
    assert_eq!((e.code, e.state.as_str()), (1054, "42S22"), "{e:?}");

    // Transactions: a rolled back transfer leaves nothing; a committed one sticks.
    let mut tx = conn.start_transaction(TxOpts::default()).await.expect("begin");
    tx.query_drop("UPDATE accounts SET balance = balance - 30 WHERE id = 1").await.expect("debit");
    tx.query_drop("UPDATE accounts SET balance = balance + 30 WHERE id = 2").await.expect("credit");
    tx.rollback().await.expect("rollback");
    let mut tx = conn.start_transaction(TxOpts::default()).await.expect("begin");
    tx.query_drop("UPDATE accounts SET balance = balance - 25 WHERE id = 1").await.expect("debit");
    tx.query_drop("UPDATE accounts SET balance = balance + 25 WHERE id = 2").await.expect("credit");
    tx.commit().await.expect("commit");
    let balances: Vec<(i32, String)> =
        conn.query("SELECT id, CAST(balance AS CHAR) FROM accounts ORDER BY id").await.expect("balances");
    assert_eq!(balances, vec![(1, "75.00".into()), (2, "75.00".into()), (3, "0.00".into())]);

    // Session variables and temporary tables live on the pinned connection.
    conn.query_drop("SET @x = 41").await.expect("set");
    let x: Option<i64> = conn.query_first("SELECT @x + 1").await.expect("user variable");
    assert_eq!(x, Some(42));
    conn.query_drop("CREATE TEMPORARY TABLE scratch (v INT)").await.expect("temp table");
    conn.query_drop("INSERT INTO scratch VALUES (7)").await.expect("insert temp");
    let v: Option<i32> = conn.query_first("SELECT v FROM scratch").await.expect("read temp");
    assert_eq!(v, Some(7));

    // Server-side prepared statements on a MySQL table.
    let owner: Option<String> = conn.exec_first("SELECT owner FROM accounts WHERE id = ?", (2,)).await.expect("prepared");
    assert_eq!(owner.as_deref(), Some("bob"));

    // Lake and MySQL tables share the database.
    let parquet = files.path().join("all_types.parquet").display().to_string();
    conn.query_drop(format!("CREATE EXTERNAL TABLE types STORED AS PARQUET LOCATION '{parquet}'")).await.expect("lake table");
    let tables: Vec<String> = conn.query("SHOW TABLES").await.expect("show tables");
    // Temporary tables are not listed, as in MySQL.
    assert_eq!(tables, vec!["accounts".to_string(), "types".to_string()]);
    let lake: Option<u64> = conn.query_first("SELECT u64 FROM types WHERE id = 1").await.expect("lake query");
    assert_eq!(lake, Some(u64::MAX));

    // A mixed multi-statement batch: lake, MySQL, lake.
    let mut r = conn.query_iter("SELECT COUNT(*) FROM types; SELECT COUNT(*) FROM accounts; SELECT 5").await.expect("batch");
    let a: Vec<i64> = r.collect().await.expect("first");
    let b: Vec<i64> = r.collect().await.expect("second");
    let c: Vec<i64> = r.collect().await.expect("third");
    drop(r);
    assert_eq!((a, b, c), (vec![3], vec![3], vec![5]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_is_reported_and_restarted() {
    let (db, server, mut conn, _files) = setup().await;
    conn.query_drop("CREATE DATABASE app").await.expect("create");
    conn.query_drop("CREATE TABLE app.t (v INT)").await.expect("create table");
    conn.query_drop("INSERT INTO app.t VALUES (1)").await.expect("insert");
    db.server.kill();
    let e = server_error(conn.query_drop("SELECT * FROM app.t").await);
    assert_eq!(e.code, 2013, "{e:?}");
    assert!(e.message.contains("Lost connection to the MySQL backend"), "{e:?}");
    // The managed server is restarted when the next session needs it.
    let mut fresh = server.conn().await;
    let v: Option<i32> = fresh.query_first("SELECT v FROM app.t").await.expect("works after restart");
    assert_eq!(v, Some(1));
    server.stop().await;
}

/// Sensor readings on the lake joined with an `assets` table in MySQL,
/// checked against the same computation done by MariaDB alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_joins_mysql_like_mariadb_alone() {
    let (db, server, mut conn, files) = setup().await;
    // Sensors on the lake; the asset master inserted through the Lakewave port.
    fixtures::plant_database(&mut conn, files.path(), 2000).await;

    let join = "SELECT a.site, s.day, COUNT(*) AS readings, SUM(CASE WHEN s.machine_failure THEN 1 ELSE 0 END) AS failures \
                FROM sensors s JOIN assets a ON a.asset_id = s.asset_id GROUP BY a.site, s.day ORDER BY a.site, s.day";
    let lakewave: Vec<(String, String, i64, i64)> = conn.query(join).await.expect("lake ⋈ MySQL join");
    assert!(!lakewave.is_empty());

    // MariaDB alone, after loading the sensor rows there.
    let mut direct = db.conn().await;
    direct
        .query_drop("CREATE TABLE plant.sensors (asset_id INT, day VARCHAR(10), machine_failure TINYINT)")
        .await
        .expect("sensor table in MariaDB");
    let rows: Vec<(i32, String, i64)> = conn
        .query("SELECT asset_id, day, CASE WHEN machine_failure THEN 1 ELSE 0 END FROM sensors")
        .await
        .expect("read sensors through Lakewave");
    assert_eq!(rows.len(), 2000);
    for chunk in rows.chunks(500) {
        let v: Vec<String> = chunk.iter().map(|(a, d, f)| format!("({a}, '{d}', {f})")).collect();
        direct.query_drop(format!("INSERT INTO plant.sensors VALUES {}", v.join(", "))).await.expect("load sensors");
    }
    let mariadb: Vec<(String, String, i64, i64)> = direct
        .query(
            "SELECT a.site, s.day, COUNT(*), SUM(s.machine_failure) FROM plant.sensors s \
             JOIN plant.assets a ON a.asset_id = s.asset_id GROUP BY a.site, s.day ORDER BY a.site, s.day",
        )
        .await
        .expect("MariaDB alone");
    assert_eq!(lakewave, mariadb);
    // MySQL's row estimate reaches join planning: the assets (the smaller
    // side) are the join's build side, listed above the lake scan.
    let plan: Vec<(String, String)> = conn.query(format!("EXPLAIN {join}")).await.expect("explain the join");
    let physical = &plan.iter().find(|(k, _)| k == "physical_plan").expect("physical plan").1;
    let mysql_scan = physical.find("MySqlScanExec: estimated_rows=").unwrap_or_else(|| panic!("MySQL scan with an estimate:\n{physical}"));
    let lake_scan = physical.find("DataSourceExec").unwrap_or_else(|| panic!("lake scan:\n{physical}"));
    assert!(mysql_scan < lake_scan, "the MySQL table is the build side:\n{physical}");

    // Filters and LIMIT reach MySQL: check its general log.
    let log = files.path().join("general.log");
    direct
        .query_drop(format!("SET GLOBAL general_log_file = '{}', GLOBAL general_log = ON", log.display()))
        .await
        .expect("general log on");
    let top: Vec<(i32, String)> = conn
        .query("SELECT a.asset_id, a.site FROM assets a JOIN sensors s ON s.asset_id = a.asset_id WHERE a.asset_id BETWEEN 3 AND 5 AND a.site = 'Riverside' GROUP BY a.asset_id, a.site ORDER BY a.asset_id")
        .await
        .expect("filtered join");
    let limited: Vec<i32> = conn.query("SELECT asset_id FROM assets LIMIT 3").await.expect("limit on MySQL alone");
    assert_eq!(limited.len(), 3);
    let _ = conn.query_drop("SELECT s.reading_id, a.site FROM sensors s, assets a WHERE a.asset_id = 7 LIMIT 1").await;
    direct.query_drop("SET GLOBAL general_log = OFF").await.expect("general log off");
    let logged = std::fs::read_to_string(&log).expect("general log");
    assert!(
        logged.contains("FROM `plant`.`assets` WHERE (`asset_id` >= 3) AND (`asset_id` <= 5) AND (`site` = 'Riverside')"),
        "filters pushed to MySQL:\n{logged}"
    );
    assert!(logged.contains("FROM `plant`.`assets` WHERE (`asset_id` = 7) LIMIT 1"), "LIMIT pushed:\n{logged}");
    assert!(logged.contains("SELECT asset_id FROM assets LIMIT 3"), "MySQL-only query passed through whole:\n{logged}");
    // EXPLAIN says where a query runs and what MySQL is sent.
    let plan: Vec<(String, String)> = conn
        .query("EXPLAIN SELECT s.day, a.site FROM sensors s JOIN assets a ON a.asset_id = s.asset_id WHERE a.asset_id = 7")
        .await
        .expect("explain a lake join");
    assert_eq!(plan[0], ("lakewave_routing".to_string(), "runs in the lakehouse engine (DataFusion)".to_string()));
    assert!(
        plan.iter().any(|(k, v)| k == "mysql_pushdown" && v.contains("FROM `plant`.`assets` WHERE (`asset_id` = 7)")),
        "{plan:?}"
    );
    let mysql_plan: Vec<mysql_async::Row> = conn.query("EXPLAIN SELECT * FROM assets WHERE asset_id = 7").await.expect("explain on MySQL");
    let select_type: Option<String> = mysql_plan[0].get("select_type");
    assert_eq!(select_type.as_deref(), Some("SIMPLE"), "MySQL-only queries are explained by MySQL");
    let expected: Vec<(i32, String)> = direct
        .query("SELECT a.asset_id, a.site FROM plant.assets a JOIN plant.sensors s ON s.asset_id = a.asset_id WHERE a.asset_id BETWEEN 3 AND 5 AND a.site = 'Riverside' GROUP BY a.asset_id, a.site ORDER BY a.asset_id")
        .await
        .expect("MariaDB alone");
    assert_eq!(top, expected);

    // A join and an aggregate between MySQL tables inside a lake query run
    // in MySQL as one query; only their result meets the lake rows.
    conn.query_drop("CREATE TABLE orders (id INT PRIMARY KEY, asset_id INT, qty INT, price DECIMAL(10,2))").await.expect("orders");
    let orders: Vec<String> = (1..=300).map(|i| format!("({i}, {}, {}, {}.{:02})", i % 40 + 1, i % 7, i % 50, i % 100)).collect();
    conn.query_drop(format!("INSERT INTO orders VALUES {}", orders.join(", "))).await.expect("insert orders");
    direct.query_drop("SET GLOBAL general_log = ON").await.expect("general log on");
    let pushed = "SELECT o.asset_id, o.total, o.n, o.avg_qty, COUNT(*) AS readings FROM sensors s JOIN \
                  (SELECT a.asset_id, SUM(x.qty * x.price) AS total, COUNT(*) AS n, AVG(x.qty) AS avg_qty \
                   FROM assets a JOIN orders x ON x.asset_id = a.asset_id WHERE x.qty > 1 GROUP BY a.asset_id) o \
                  ON o.asset_id = s.asset_id GROUP BY o.asset_id, o.total, o.n, o.avg_qty ORDER BY o.asset_id";
    let lakewave: Vec<(i32, String, i64, f64, i64)> = conn.query(pushed).await.expect("pushed-down join and aggregate");
    direct.query_drop("SET GLOBAL general_log = OFF").await.expect("general log off");
    let logged = std::fs::read_to_string(&log).expect("general log");
    let sent = logged.lines().find(|l| l.contains("GROUP BY") && l.contains("`plant`.`orders`")).unwrap_or_else(|| panic!("aggregate pushed:\n{logged}"));
    assert!(sent.contains(" JOIN ") && sent.contains("`plant`.`assets`") && sent.contains("(`qty` > 1)"), "{sent}");
    let mariadb: Vec<(i32, String, i64, f64, i64)> = direct
        .query(
            "SELECT o.asset_id, CAST(o.total AS CHAR), o.n, o.avg_qty, COUNT(*) FROM plant.sensors s JOIN \
             (SELECT a.asset_id, SUM(x.qty * x.price) AS total, COUNT(*) AS n, AVG(x.qty) AS avg_qty \
              FROM plant.assets a JOIN plant.orders x ON x.asset_id = a.asset_id WHERE x.qty > 1 GROUP BY a.asset_id) o \
             ON o.asset_id = s.asset_id GROUP BY o.asset_id, o.total, o.n, o.avg_qty ORDER BY o.asset_id",
        )
        .await
        .expect("MariaDB alone");
    assert!(!mariadb.is_empty());
    assert_eq!(lakewave, mariadb);
    let plan: Vec<(String, String)> = conn.query(format!("EXPLAIN {pushed}")).await.expect("explain");
    assert!(plan.iter().any(|(k, v)| k == "mysql_pushdown" && v.contains("GROUP BY")), "{plan:?}");
    // MySQL's `/` and `DIV` in an aggregate pushed down (a zero divisor
    // gives NULL; a quotient has the dividend's scale plus 4), and in the
    // engine over the pushed rows: MariaDB's own answers.
    let divided = |prefix: &str| {
        format!(
            "SELECT o.asset_id, CAST(o.per AS CHAR), o.d, CAST(o.per * 100 AS CHAR) FROM {prefix}sensors s JOIN \
             (SELECT asset_id, SUM(price) / (SUM(qty) - 1) AS per, SUM(qty) DIV 2 AS d FROM {prefix}orders WHERE qty < 2 GROUP BY asset_id) o \
             ON o.asset_id = s.asset_id GROUP BY o.asset_id, o.per, o.d ORDER BY o.asset_id"
        )
    };
    let lakewave: Vec<(i32, Option<String>, i64, Option<String>)> = conn.query(divided("")).await.expect("division");
    let mariadb: Vec<(i32, Option<String>, i64, Option<String>)> = direct.query(divided("plant.")).await.expect("MariaDB division");
    assert!(lakewave.iter().any(|r| r.1.is_none()) && lakewave.iter().any(|r| r.1.is_some()), "{lakewave:?}");
    assert_eq!(lakewave, mariadb);
    let plan: Vec<(String, String)> = conn.query(format!("EXPLAIN {}", divided(""))).await.expect("explain");
    assert!(plan.iter().any(|(k, v)| k == "mysql_pushdown" && v.contains(" / ") && v.contains(" DIV ")), "{plan:?}");
    // Grouping by text stays in the engine (MySQL's collation would merge
    // 'a' and 'A'): the scan sent has no GROUP BY.
    let plan: Vec<(String, String)> = conn
        .query("EXPLAIN SELECT s.day, g.site, g.n FROM sensors s JOIN (SELECT site, COUNT(*) AS n FROM assets GROUP BY site) g ON g.n = s.asset_id")
        .await
        .expect("explain");
    assert!(plan.iter().any(|(k, v)| k == "mysql_pushdown" && !v.contains("GROUP BY")), "{plan:?}");
    server.stop().await;
}

/// Every MySQL type read into the lakehouse engine (a lake query naming a
/// MySQL table) arrives with the right value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_types_map_into_the_engine() {
    let (db, server, mut conn, files) = setup().await;
    conn.query_drop("CREATE DATABASE typed").await.expect("create database");
    let mut direct = db.conn().await;
    direct.query_drop("SET SESSION sql_mode = ''").await.expect("allow zero dates");
    direct
        .query_drop(
            "CREATE TABLE typed.m (id INT PRIMARY KEY, tu TINYINT UNSIGNED, bu BIGINT UNSIGNED, d65 DECIMAL(65,30), \
             e ENUM('red','green'), st SET('a','b','c'), j JSON, bt BIT(10), bl BLOB, dt DATETIME(6), zd DATE, y YEAR, f FLOAT)",
        )
        .await
        .expect("create MySQL table");
    direct
        .query_drop(
            "INSERT INTO typed.m VALUES (1, 255, 18446744073709551615, '12345678901234567890123456789012345.123456789012345678901234567891', \
             'green', 'a,c', '{\"k\": [1, 2]}', b'1000000001', x'00ff10', '2026-01-31 23:59:58.123456', '0000-00-00', 2026, 1.5)",
        )
        .await
        .expect("insert");
    let parquet = files.path().join("all_types.parquet").display().to_string();
    conn.query_drop(format!("CREATE EXTERNAL TABLE typed.lake STORED AS PARQUET LOCATION '{parquet}'")).await.expect("lake table");
    let row: mysql_async::Row = conn
        .query_first(
            "SELECT m.tu, m.bu, CAST(m.d65 AS VARCHAR) AS d65, m.e, m.st, m.j, m.bt, m.bl, m.dt, m.zd, m.y, m.f \
             FROM typed.lake l JOIN typed.m m ON m.id = l.id",
        )
        .await
        .expect("join")
        .expect("one row");
    assert_eq!(row.get::<Option<u8>, _>("tu").flatten(), Some(255));
    assert_eq!(row.get::<Option<u64>, _>("bu").flatten(), Some(u64::MAX));
    assert_eq!(
        row.get::<Option<String>, _>("d65").flatten().as_deref(),
        Some("12345678901234567890123456789012345.123456789012345678901234567891")
    );
    assert_eq!(row.get::<Option<String>, _>("e").flatten().as_deref(), Some("green"));
    assert_eq!(row.get::<Option<String>, _>("st").flatten().as_deref(), Some("a,c"));
    let j = row.get::<Option<String>, _>("j").flatten().unwrap_or_default();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&j).ok(), Some(serde_json::json!({"k": [1, 2]})));
    assert_eq!(row.get::<Option<u64>, _>("bt").flatten(), Some(0b1000000001));
    assert_eq!(row.get::<Option<Vec<u8>>, _>("bl").flatten(), Some(vec![0, 0xff, 0x10]));
    assert_eq!(row.get::<Option<String>, _>("dt").flatten().as_deref(), Some("2026-01-31 23:59:58.123456"));
    assert_eq!(row.get::<Option<String>, _>("zd").flatten(), None, "zero dates read as NULL");
    assert_eq!(row.get::<Option<i64>, _>("y").flatten(), Some(2026));
    assert_eq!(row.get::<Option<f32>, _>("f").flatten(), Some(1.5));
    server.stop().await;
}

/// Inside a transaction, a query mixing lake and MySQL tables reads MySQL
/// through the session's own connection: it sees the transaction's
/// uncommitted writes, as MySQL would, and other sessions do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_queries_see_their_own_transaction() {
    let (_db, server, mut conn, files) = setup().await;
    conn.query_drop("CREATE DATABASE tx").await.expect("create database");
    conn.query_drop("USE tx").await.expect("use");
    let parquet = files.path().join("all_types.parquet").display().to_string();
    conn.query_drop(format!("CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '{parquet}'")).await.expect("lake table");
    conn.query_drop("CREATE TABLE notes (id INT PRIMARY KEY, note VARCHAR(20))").await.expect("MySQL table");
    conn.query_drop("INSERT INTO notes VALUES (1, 'committed')").await.expect("insert");
    let join = "SELECT l.id, n.note FROM lake l JOIN notes n ON n.id = l.id ORDER BY l.id";

    let mut tx = conn.start_transaction(TxOpts::default()).await.expect("begin");
    tx.query_drop("INSERT INTO notes VALUES (3, 'uncommitted')").await.expect("insert in transaction");
    let inside: Vec<(i32, String)> = tx.query(join).await.expect("join inside the transaction");
    assert_eq!(inside, vec![(1, "committed".into()), (3, "uncommitted".into())]);
    let mut other = server.conn().await;
    let outside: Vec<(i32, String)> = other.query(join.replace("FROM lake", "FROM tx.lake").replace("JOIN notes", "JOIN tx.notes")).await.expect("join elsewhere");
    assert_eq!(outside, vec![(1, "committed".into())], "other sessions do not see uncommitted rows");
    tx.rollback().await.expect("rollback");
    let after: Vec<(i32, String)> = conn.query(join).await.expect("join after rollback");
    assert_eq!(after, vec![(1, "committed".into())]);
    server.stop().await;
}

/// information_schema lists lake and MySQL tables together, with each
/// side's columns, while tables only MySQL has (PROCESSLIST) stay MySQL's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_schema_lists_both_sides() {
    let (_db, server, mut conn, files) = setup().await;
    conn.query_drop("CREATE DATABASE mixed").await.expect("create database");
    conn.query_drop("USE mixed").await.expect("use");
    conn.query_drop("CREATE TABLE accounts (id INT UNSIGNED PRIMARY KEY, owner VARCHAR(20))").await.expect("MySQL table");
    let csv = files.path().join("csv/people.csv").display().to_string();
    conn.query_drop(format!("CREATE EXTERNAL TABLE people STORED AS CSV LOCATION '{csv}' OPTIONS ('format.has_header' 'true')"))
        .await
        .expect("lake table");

    let tables: Vec<(String, String, Option<String>)> = conn
        .query("SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mixed' ORDER BY TABLE_NAME")
        .await
        .expect("tables");
    assert_eq!(
        tables,
        vec![
            ("accounts".into(), "BASE TABLE".into(), Some("InnoDB".into())),
            ("people".into(), "BASE TABLE".into(), Some("lakehouse".into())),
        ]
    );
    let columns: Vec<(String, String, String)> = conn
        .query(
            "SELECT table_name, column_name, column_type FROM information_schema.columns \
             WHERE table_schema = 'MIXED' ORDER BY table_name, ordinal_position",
        )
        .await
        .expect("columns");
    let accounts: Vec<_> = columns.iter().filter(|c| c.0 == "accounts").map(|c| (c.1.as_str(), c.2.as_str())).collect();
    assert_eq!(accounts, vec![("id", "int(10) unsigned"), ("owner", "varchar(20)")]);
    assert!(columns.iter().any(|c| c.0 == "people"), "lake columns listed: {columns:?}");

    // The result carries MySQL's upper-case column names for `SELECT *`.
    let row: mysql_async::Row = conn
        .query_first("SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'mixed'")
        .await
        .expect("schemata")
        .expect("the database is listed once");
    assert!(row.columns_ref().iter().any(|c| c.name_str() == "SCHEMA_NAME"), "{row:?}");
    let n: Option<i64> =
        conn.query_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'mixed'").await.expect("count");
    assert_eq!(n, Some(1), "a database on both sides is listed once");

    // MySQL-only information_schema tables still answer from MySQL.
    let ids: Vec<u64> = conn.query("SELECT ID FROM information_schema.PROCESSLIST").await.expect("processlist");
    assert!(!ids.is_empty());
    server.stop().await;
}

/// LOAD DATA LOCAL INFILE streams the client's file through Lakewave to MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_local_infile_reaches_mysql() {
    use lakewave_tests::clients::{DEPS_HINT, mariadb_cmd, run_client};
    let mariadb = lakewave_tests::require_program("mariadb", DEPS_HINT);
    let (db, server, mut conn, files) = setup().await;
    conn.query_drop("CREATE DATABASE bulk").await.expect("create database");
    conn.query_drop("CREATE TABLE bulk.items (id INT PRIMARY KEY, name VARCHAR(20))").await.expect("table");
    let data = files.path().join("items.tsv");
    let mut text = String::new();
    for i in 0..50_000 {
        text.push_str(&format!("{i}\titem {i}\n"));
    }
    std::fs::write(&data, text).expect("write data");
    let mut cmd = mariadb_cmd(&mariadb, server.port);
    cmd.arg("--local-infile=1")
        .arg("-e")
        .arg(format!("LOAD DATA LOCAL INFILE '{}' INTO TABLE bulk.items; SELECT COUNT(*), MAX(name) FROM bulk.items", data.display()));
    let run = run_client(cmd, None, std::time::Duration::from_secs(60)).await;
    run.assert_success();
    assert!(run.stdout().contains("50000\titem 9999"), "{}", run.report());

    // Loading the same keys again: with LOCAL, MySQL skips duplicates
    // (the file is already sent); into a missing table, MySQL's error.
    for (target, fails) in [("bulk.items", false), ("bulk.nope", true)] {
        let mut cmd = mariadb_cmd(&mariadb, server.port);
        cmd.arg("--local-infile=1")
            .arg("-e")
            .arg(format!("LOAD DATA LOCAL INFILE '{}' INTO TABLE {target}", data.display()));
        let run = run_client(cmd, None, std::time::Duration::from_secs(60)).await;
        if fails {
            assert!(!run.success() && run.stderr().contains("ERROR 1146"), "{}", run.report());
        } else {
            run.assert_success();
        }
    }

    // The session is still usable, and MariaDB holds the rows.
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM bulk.items").await.expect("count");
    assert_eq!(n, Some(50_000));
    let mut direct = db.conn().await;
    let n: Option<i64> = direct.query_first("SELECT COUNT(*) FROM bulk.items").await.expect("direct count");
    assert_eq!(n, Some(50_000));
    server.stop().await;
}

/// KILL QUERY reaches a statement the session relayed to MySQL: MariaDB
/// stops it (SLEEP then answers 1, or the statement fails with 1317; it
/// answers 0 when it slept through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_reaches_relayed_statements() {
    let (db, server, mut conn, _dir) = setup().await;
    let mut admin = server.conn().await;
    let mut direct = db.conn().await;
    let sleeping = tokio::spawn(async move { conn.query_first::<i64, _>("SELECT SLEEP(60)").await });
    // Wait (bounded) until MariaDB runs it, and find the session in
    // Lakewave's list.
    let mut target = None;
    for _ in 0..600 {
        let on_mysql: Vec<String> = direct.query("SELECT info FROM information_schema.processlist WHERE info = 'SELECT SLEEP(60)'").await.expect("MariaDB's processlist");
        let rows: Vec<(u32, String, String, Option<String>, String, u64, String, Option<String>, String)> =
            admin.query("SHOW PROCESSLIST").await.expect("processlist");
        if let Some(r) = rows.iter().find(|r| r.4 == "Query" && r.7.as_deref() == Some("SELECT SLEEP(60)")).filter(|_| !on_mysql.is_empty()) {
            target = Some(r.0);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let target = target.expect("the relayed statement never ran");
    // information_schema.PROCESSLIST is Lakewave's list too, not the
    // backend's: the ids are the ones KILL takes.
    let listed: Vec<(u64, String, Option<String>)> = admin
        .query("SELECT ID, COMMAND, INFO FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'")
        .await
        .expect("information_schema.PROCESSLIST");
    assert_eq!(listed, vec![(u64::from(target), "Query".to_string(), Some("SELECT SLEEP(60)".to_string()))]);
    admin.query_drop(format!("KILL QUERY {target}")).await.expect("kill query");
    match sleeping.await.expect("the statement's task") {
        Ok(slept) => assert_eq!(slept, Some(1), "SLEEP was not interrupted"),
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1317, "{e:?}"),
        Err(other) => panic!("the killed statement ended with {other}"),
    }
    server.stop().await;
}
