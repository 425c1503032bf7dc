//! The secondary engine (RAPID): lake and MySQL tables loaded into memory,
//! queries offloaded to the copies with the same answers, change capture
//! from MariaDB's binlog with read-your-writes, memory limits, estimates,
//! and reloading after restarts. Each test runs its own MariaDB.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use lakewave_tests::{ServerProcess, TestServer, fixtures};
use lakewave_tests::mariadb::TestMariaDb;

fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// A query's rows as text, for comparing answers of two servers.
async fn rows(conn: &mut Conn, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<Row> = conn.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|r| r.unwrap().iter().map(text).collect()).collect()
}

async fn error_of(conn: &mut Conn, sql: &str) -> mysql_async::ServerError {
    match conn.query_drop(sql).await {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected an error from {sql}, got {other:?}"),
    }
}

async fn status_of(conn: &mut Conn, table: &str) -> (String, u64) {
    let r: Option<(String, u64)> = conn
        .query_first(format!(
            "SELECT t.LOAD_STATUS, t.NROWS FROM performance_schema.rpd_tables t JOIN performance_schema.rpd_table_id i \
             ON i.ID = t.ID WHERE i.NAME = '{table}'"
        ))
        .await
        .expect("rpd_tables");
    r.unwrap_or_else(|| ("(not listed)".to_string(), 0))
}

/// Waits (polling, with a deadline) until a table's copy is available.
async fn wait_available(conn: &mut Conn, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, _) = status_of(conn, table).await;
        if status == "AVAIL_RPDGSTABSTATE" {
            return;
        }
        assert!(Instant::now() < deadline, "{table} never became available (last status {status})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn offload_count(conn: &mut Conn) -> u64 {
    let r: Option<(String, String)> = conn.query_first("SHOW STATUS LIKE 'rapid_query_offload_count'").await.expect("status");
    r.expect("rapid_query_offload_count").1.parse().expect("a number")
}

const JOIN: &str = "SELECT a.site, s.day, COUNT(*) AS readings, SUM(CASE WHEN s.machine_failure THEN 1 ELSE 0 END) AS failures, \
                    SUM(s.tool_wear_min) AS wear FROM sensors s JOIN assets a ON a.asset_id = s.asset_id \
                    GROUP BY a.site, s.day ORDER BY a.site, s.day";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_tables_answer_like_their_sources() {
    let db = TestMariaDb::start();
    let dir = tempfile::tempdir().expect("data dir");
    let server = TestServer::start_configured(dir.path(), Some(&db), None).await;
    let mut conn = server.conn().await;
    fixtures::plant_database(&mut conn, dir.path(), 3000).await;

    conn.query_drop("SET use_secondary_engine = OFF").await.expect("set");
    let in_place = rows(&mut conn, JOIN).await;
    let mysql_only = "SELECT site, COUNT(*), SUM(asset_id), MIN(commissioned) FROM assets GROUP BY site ORDER BY site";
    let on_mysql = rows(&mut conn, mysql_only).await;
    assert!(!in_place.is_empty() && !on_mysql.is_empty());
    conn.query_drop("SET use_secondary_engine = ON").await.expect("set");

    // Loading needs the mark first, as in MySQL.
    let e = error_of(&mut conn, "ALTER TABLE sensors SECONDARY_LOAD").await;
    assert_eq!((e.code, e.state.as_str()), (3889, "HY000"), "{e:?}");
    assert!(e.message.contains("SECONDARY_ENGINE = RAPID"), "{e:?}");
    let e = error_of(&mut conn, "ALTER TABLE nope SECONDARY_ENGINE = RAPID").await;
    assert_eq!(e.code, 1146, "{e:?}");

    for t in ["sensors", "assets"] {
        conn.query_drop(format!("ALTER TABLE {t} SECONDARY_ENGINE = RAPID")).await.expect("mark");
        conn.query_drop(format!("ALTER TABLE {t} SECONDARY_LOAD")).await.expect("load");
    }
    assert_eq!(status_of(&mut conn, "plant.sensors").await, ("AVAIL_RPDGSTABSTATE".into(), 3000));
    assert_eq!(status_of(&mut conn, "plant.assets").await, ("AVAIL_RPDGSTABSTATE".into(), 50));
    let encodings: Vec<(String, String)> = conn
        .query("SELECT c.COLUMN_NAME, c.ENCODING FROM performance_schema.rpd_columns c JOIN performance_schema.rpd_table_id i ON i.ID = c.TABLE_ID WHERE i.NAME = 'plant.sensors'")
        .await
        .expect("rpd_columns");
    assert!(encodings.contains(&("asset_type".into(), "DICTIONARY".into())), "{encodings:?}");
    // Integer-like columns are stored as offsets from each chunk's minimum
    // in fewer bytes; floats stay as they are.
    assert!(encodings.contains(&("reading_id".into(), "NARROW".into())), "{encodings:?}");
    assert!(encodings.contains(&("air_temp_k".into(), "PLAIN".into())), "{encodings:?}");

    // Offloaded: the same answers, and EXPLAIN says so.
    let before = offload_count(&mut conn).await;
    assert_eq!(rows(&mut conn, JOIN).await, in_place);
    assert_eq!(rows(&mut conn, mysql_only).await, on_mysql);
    assert_eq!(offload_count(&mut conn).await, before + 2);
    let plan = rows(&mut conn, &format!("EXPLAIN {JOIN}")).await;
    assert!(
        plan.iter().any(|r| r[0].as_deref() == Some("secondary_engine")
            && r[1].as_deref() == Some("Using secondary engine RAPID for plant.sensors, plant.assets")
            || r[1].as_deref() == Some("Using secondary engine RAPID for plant.assets, plant.sensors")),
        "{plan:?}"
    );
    // Filters on the copy skip chunks by their min/max and stay exact.
    let filtered = "SELECT COUNT(*), SUM(tool_wear_min) FROM sensors WHERE reading_id BETWEEN 100 AND 1100";
    let on_copy = rows(&mut conn, filtered).await;
    conn.query_drop("SET use_secondary_engine = OFF").await.expect("set");
    assert_eq!(rows(&mut conn, filtered).await, on_copy);
    assert_eq!(on_copy[0][0].as_deref(), Some("1001"));
    conn.query_drop("SET use_secondary_engine = ON").await.expect("set");
    // The copy's scan counts the rows it produced (EXPLAIN ANALYZE, and a
    // running query's progress in SHOW PROCESSLIST).
    let analyzed = rows(&mut conn, &format!("EXPLAIN ANALYZE {filtered}")).await;
    let scan = analyzed
        .iter()
        .filter_map(|r| r[1].as_deref())
        .flat_map(str::lines)
        .find(|l| l.contains("format=rapid"))
        .unwrap_or_else(|| panic!("{analyzed:?}"));
    assert!(scan.contains("output_rows=1001") || scan.contains("output_rows=1.00 K"), "{scan}");

    // A primary-key lookup stays on MySQL (its EXPLAIN is MySQL's); FORCED
    // offloads it anyway.
    let point: Vec<Row> = conn.query("EXPLAIN SELECT * FROM assets WHERE asset_id = 7").await.expect("explain");
    assert_eq!(point[0].get::<String, _>("select_type").as_deref(), Some("SIMPLE"));
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("set");
    let forced = rows(&mut conn, "SELECT site FROM assets WHERE asset_id = 7").await;
    assert_eq!(forced.len(), 1);

    // Unloaded tables under FORCED are an error, not a silent MySQL run.
    conn.query_drop("ALTER TABLE assets SECONDARY_UNLOAD").await.expect("unload");
    assert_eq!(status_of(&mut conn, "plant.assets").await.0, "NOLOAD_RPDGSTABSTATE");
    let e = error_of(&mut conn, mysql_only).await;
    assert_eq!((e.code, e.state.as_str()), (3889, "HY000"), "{e:?}");
    assert!(e.message.contains("plant.assets"), "{e:?}");
    conn.query_drop("SET use_secondary_engine = ON").await.expect("set");
    assert_eq!(rows(&mut conn, mysql_only).await, on_mysql, "served by MySQL again");
    conn.query_drop("ALTER TABLE assets SECONDARY_ENGINE = NULL").await.expect("clear the mark");
    let ids: Vec<String> = conn.query("SELECT NAME FROM performance_schema.rpd_table_id ORDER BY NAME").await.expect("ids");
    assert_eq!(ids, vec!["plant.sensors".to_string()]);
    // A larger MySQL table is read by several connections sharing one
    // snapshot (taken under a brief global read lock), one key range each.
    let mut direct = db.conn().await;
    direct.query_drop("USE plant").await.expect("use");
    direct
        .query_drop("CREATE TABLE plant.big (id BIGINT PRIMARY KEY, v INT, s VARCHAR(8)) SELECT seq AS id, seq % 97 AS v, CONCAT('s', seq % 13) AS s FROM seq_1_to_100000")
        .await
        .expect("100k rows in MariaDB");
    let flushes = |r: Option<(String, u64)>| r.expect("Com_flush").1;
    let before = flushes(direct.query_first("SHOW GLOBAL STATUS LIKE 'Com_flush'").await.expect("status"));
    conn.query_drop("ALTER TABLE big SECONDARY_ENGINE = RAPID").await.expect("mark");
    conn.query_drop("ALTER TABLE big SECONDARY_LOAD").await.expect("load");
    let after = flushes(direct.query_first("SHOW GLOBAL STATUS LIKE 'Com_flush'").await.expect("status"));
    assert_eq!(after, before + 1, "one FLUSH TABLES WITH READ LOCK for the parallel snapshot");
    assert_eq!(status_of(&mut conn, "plant.big").await, ("AVAIL_RPDGSTABSTATE".into(), 100_000));
    let big = "SELECT COUNT(*), SUM(id), SUM(v), COUNT(DISTINCT s), MIN(id), MAX(id) FROM big";
    let on_copy = rows(&mut conn, big).await;
    assert_eq!(on_copy, rows(&mut direct, &big.replace("big", "plant.big")).await);
    assert_eq!(on_copy[0][0].as_deref(), Some("100000"));
    // MySQL never saw the Lakewave-only variable.
    let e = error_of(&mut direct, "SET use_secondary_engine = OFF").await;
    assert_eq!(e.code, 1193, "{e:?}");
    server.stop().await;
}

/// A writer changes a loaded MySQL table continuously through Lakewave and
/// directly on MariaDB; after each commit an offloaded aggregate (FORCED, so
/// it cannot fall back to MySQL) equals MariaDB's own answer. Lakewave and
/// MariaDB are each restarted along the way; at the end the copy equals the
/// table row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_mysql_tables_follow_every_commit() {
    let seconds: u64 = std::env::var("LAKEWAVE_SYNC_TEST_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let db = TestMariaDb::start();
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = TestServer::start_configured(dir.path(), Some(&db), None).await;
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE bank").await.expect("db");
    conn.query_drop("USE bank").await.expect("use");
    conn.query_drop(
        "CREATE TABLE accounts (id INT PRIMARY KEY, grp VARCHAR(8) NOT NULL, amount DECIMAL(12,2), opened DATETIME(6), note VARCHAR(40)) SECONDARY_ENGINE = RAPID",
    )
    .await
    .expect("create with SECONDARY_ENGINE");
    let initial: Vec<String> = (1..=2000)
        .map(|i| format!("({i}, 'g{}', {}.{:02}, '2024-01-{:02} 10:00:00.{:06}', {})", i % 7, i * 3, i % 100, i % 28 + 1, i, if i % 5 == 0 { "NULL".to_string() } else { format!("'n{i}'") }))
        .collect();
    conn.query_drop(format!("INSERT INTO accounts VALUES {}", initial.join(", "))).await.expect("rows");
    conn.query_drop("ALTER TABLE accounts SECONDARY_LOAD").await.expect("load");
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let mut direct = db.conn().await;
    direct.query_drop("USE bank").await.expect("use");

    let check = "SELECT grp, COUNT(*), SUM(amount), COUNT(note), MAX(opened) FROM accounts GROUP BY grp ORDER BY grp";
    let started = Instant::now();
    let mut next_id = 10_000;
    let mut checks = 0u64;
    let mut restarted_lakewave = false;
    let mut restarted_mariadb = false;
    let mut step = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        step += 1;
        let id = 1 + (step * 7919) % 2000;
        let sql = match step % 5 {
            0 => format!("INSERT INTO accounts VALUES ({next_id}, 'g{}', {}.50, NOW(6), 'new')", step % 9, step % 1000),
            1 => format!("UPDATE accounts SET amount = amount + 1.25, note = CONCAT('u', {step}) WHERE id = {id}"),
            2 => format!("DELETE FROM accounts WHERE id = {id}"),
            3 => format!("UPDATE accounts SET grp = 'g{}' WHERE id BETWEEN {id} AND {}", step % 11, id + 3),
            _ => "BEGIN; INSERT INTO accounts VALUES (0, 'g0', 1, NULL, NULL) ON DUPLICATE KEY UPDATE amount = amount + 1; COMMIT".to_string(),
        };
        if step.is_multiple_of(5) {
            next_id += 1;
        }
        // Every third change goes straight to MariaDB, around Lakewave.
        if step.is_multiple_of(3) {
            direct.query_drop(&sql).await.expect("direct write");
        } else {
            conn.query_drop(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let copy = rows(&mut conn, check).await;
        let truth = rows(&mut direct, check).await;
        assert_eq!(copy, truth, "after `{sql}` (step {step})");
        checks += 1;

        if !restarted_lakewave && started.elapsed() > Duration::from_secs(seconds / 3) {
            restarted_lakewave = true;
            server.stop().await;
            server = TestServer::start_configured(dir.path(), Some(&db), None).await;
            conn = server.conn().await;
            conn.query_drop("USE bank").await.expect("use");
            wait_available(&mut conn, "bank.accounts").await;
            conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
        }
        if !restarted_mariadb && started.elapsed() > Duration::from_secs(2 * seconds / 3) {
            restarted_mariadb = true;
            db.server.kill();
            // The next session restarts the managed server.
            conn = server.conn().await;
            conn.query_drop("USE bank").await.expect("use after the backend restarted");
            conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
            direct = db.conn().await;
            direct.query_drop("USE bank").await.expect("use");
        }
    }
    assert!(restarted_lakewave && restarted_mariadb && checks > 20, "{checks} checks");
    let all = "SELECT id, grp, amount, opened, note FROM accounts ORDER BY id";
    let copy = rows(&mut conn, all).await;
    let truth = rows(&mut direct, all).await;
    assert_eq!(copy.len(), truth.len());
    assert_eq!(copy, truth, "the copy equals the table row for row");
    let explained = rows(&mut conn, &format!("EXPLAIN {check}")).await;
    assert!(explained.iter().any(|r| r[1].as_deref() == Some("Using secondary engine RAPID for bank.accounts")), "{explained:?}");

    // DDL on the table reloads the copy; TRUNCATE empties it.
    direct.query_drop("ALTER TABLE accounts ADD COLUMN extra INT DEFAULT 7").await.expect("alter");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cols: Vec<String> = conn
            .query("SELECT c.COLUMN_NAME FROM performance_schema.rpd_columns c JOIN performance_schema.rpd_table_id i ON i.ID = c.TABLE_ID WHERE i.NAME = 'bank.accounts'")
            .await
            .expect("rpd_columns");
        if cols.iter().any(|c| c == "extra") && status_of(&mut conn, "bank.accounts").await.0 == "AVAIL_RPDGSTABSTATE" {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never picked up the new column: {cols:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let extra: Vec<Vec<Option<String>>> = rows(&mut conn, "SELECT SUM(extra) FROM accounts").await;
    let expected = rows(&mut direct, "SELECT SUM(extra) FROM accounts").await;
    assert_eq!(extra, expected);
    direct.query_drop("TRUNCATE TABLE accounts").await.expect("truncate");
    assert_eq!(rows(&mut conn, "SELECT COUNT(*) FROM accounts").await, vec![vec![Some("0".to_string())]]);
    server.stop().await;
}

/// A loaded table's status, where its copy came from, whether it has a
/// checkpoint, and the source position that checkpoint holds.
type Source = (String, Option<String>, bool, Option<String>);

async fn load_source(conn: &mut Conn, table: &str) -> Source {
    let r: Option<(String, Option<String>, i64, Option<String>)> = conn
        .query_first(format!(
            "SELECT t.LOAD_STATUS, t.LOAD_SOURCE, t.PERSISTED_TIMESTAMP IS NOT NULL, t.PERSISTED_POSITION FROM performance_schema.rpd_tables t \
             JOIN performance_schema.rpd_table_id i ON i.ID = t.ID WHERE i.NAME = '{table}'"
        ))
        .await
        .expect("rpd_tables");
    r.map(|(a, b, c, d)| (a, b, c != 0, d)).unwrap_or_else(|| ("(not listed)".to_string(), None, false, None))
}

/// Polls until `done` holds for a table's [`Source`].
async fn wait_source(conn: &mut Conn, table: &str, what: &str, done: impl Fn(&Source) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = load_source(conn, table).await;
        if done(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "{table} never {what} (last: {s:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect_plant(server: &ServerProcess) -> Conn {
    let mut conn = Conn::from_url(server.url()).await.expect("connect to lakewave");
    conn.query_drop("USE plant").await.expect("use");
    conn
}

/// Loaded tables come back after a restart from their checkpoints instead
/// of their sources. After `kill -9`, change capture resumes at the
/// checkpoint's binlog position, so what committed since (also while
/// Lakewave was down) is applied once. When that binlog was purged, or the
/// table's columns changed, the copy is read from MySQL again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_restore_checkpoints_and_resume_capture() {
    let db = TestMariaDb::start();
    let dir = tempfile::tempdir().expect("data dir");
    let url = db.url();
    let args = ["--mysql", url.as_str(), "--rapid-checkpoint-interval", "0.2"];
    let mut server = ServerProcess::start(dir.path(), &args);
    let mut conn = Conn::from_url(server.url()).await.expect("connect to lakewave");
    fixtures::plant_database(&mut conn, dir.path(), 5000).await;
    for t in ["sensors", "assets"] {
        conn.query_drop(format!("ALTER TABLE {t} SECONDARY_ENGINE = RAPID")).await.expect("mark");
        conn.query_drop(format!("ALTER TABLE {t} SECONDARY_LOAD")).await.expect("load");
    }
    for t in ["plant.sensors", "plant.assets"] {
        wait_source(&mut conn, t, "was checkpointed", |s| s.0 == "AVAIL_RPDGSTABSTATE" && s.2).await;
    }
    let assets = load_source(&mut conn, "plant.assets").await;
    assert_eq!(assets.1.as_deref(), Some("MySQL"));
    assert!(assets.3.as_deref().is_some_and(|p| p.contains(':')), "a binlog file:pos: {assets:?}");
    assert_eq!(load_source(&mut conn, "plant.sensors").await.1.as_deref(), Some("Files"));
    conn.query_drop("SET use_secondary_engine = OFF").await.expect("set");
    let joined = rows(&mut conn, JOIN).await;
    assert!(!joined.is_empty());

    let mut direct = db.conn().await;
    direct.query_drop("USE plant").await.expect("use");
    for sql in [
        "UPDATE assets SET site = 'moved' WHERE asset_id <= 5",
        "DELETE FROM assets WHERE asset_id = 7",
        "INSERT INTO assets VALUES (1001, 'pump', 'north', 'L9', '2024-05-01')",
    ] {
        direct.query_drop(sql).await.expect(sql);
    }
    server.kill9();
    // While Lakewave is down.
    for sql in [
        "INSERT INTO assets VALUES (1002, 'press', 'south', 'L1', '2024-06-01')",
        "UPDATE assets SET line = 'L0' WHERE asset_id IN (10, 1001)",
        "DELETE FROM assets WHERE asset_id = 8",
    ] {
        direct.query_drop(sql).await.expect(sql);
    }
    server = ServerProcess::start(dir.path(), &args);
    conn = connect_plant(&server).await;
    for t in ["plant.sensors", "plant.assets"] {
        wait_source(&mut conn, t, "was restored", |s| s.0 == "AVAIL_RPDGSTABSTATE").await;
        assert_eq!(load_source(&mut conn, t).await.1.as_deref(), Some("Checkpoint"), "{t} restored from its checkpoint");
    }
    let all = "SELECT asset_id, asset_type, site, line, commissioned FROM assets ORDER BY asset_id";
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let truth = rows(&mut direct, all).await;
    assert_eq!(truth.len(), 50 - 2 + 2);
    assert_eq!(rows(&mut conn, all).await, truth, "the restored copy caught up with every change since its checkpoint");
    let unchanged_join = rows(&mut conn, "SELECT COUNT(*), SUM(tool_wear_min), COUNT(DISTINCT asset_id) FROM sensors").await;
    conn.query_drop("SET use_secondary_engine = OFF").await.expect("set");
    assert_eq!(rows(&mut conn, "SELECT COUNT(*), SUM(tool_wear_min), COUNT(DISTINCT asset_id) FROM sensors").await, unchanged_join);
    assert_eq!(unchanged_join[0][0].as_deref(), Some("5000"));
    // Capture keeps following after the restore.
    direct.query_drop("UPDATE assets SET site = 'again' WHERE asset_id = 1002").await.expect("update");
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    assert_eq!(rows(&mut conn, all).await, rows(&mut direct, all).await);
    let offloaded_join = rows(&mut conn, JOIN).await;
    conn.query_drop("SET use_secondary_engine = OFF").await.expect("set");
    assert_eq!(offloaded_join, rows(&mut conn, JOIN).await);
    assert_ne!(offloaded_join, joined, "the join sees the changed sites");

    // The binlog at the checkpoint's position is purged while Lakewave is
    // down: the copy is read from MySQL again.
    assert!(server.terminate().success(), "a clean stop");
    direct.query_drop("INSERT INTO assets VALUES (1003, 'lathe', 'east', 'L2', '2024-07-01')").await.expect("insert");
    direct.query_drop("FLUSH BINARY LOGS").await.expect("flush binary logs");
    let status: Row = direct.query_first("SHOW MASTER STATUS").await.expect("status").expect("a binlog");
    let file: String = status.get(0).expect("binlog file name");
    // MariaDB keeps a file a dump thread still reads (the stopped reader's
    // connection may not be noticed at once): purge until only one is left.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        direct.query_drop(format!("PURGE BINARY LOGS TO '{file}'")).await.expect("purge");
        let logs: Vec<Row> = direct.query("SHOW BINARY LOGS").await.expect("binary logs");
        if logs.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "older binary logs were never purged ({} left)", logs.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server = ServerProcess::start(dir.path(), &args);
    conn = connect_plant(&server).await;
    wait_source(&mut conn, "plant.assets", "was read from MySQL again", |s| s.0 == "AVAIL_RPDGSTABSTATE" && s.1.as_deref() == Some("MySQL")).await;
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    assert_eq!(rows(&mut conn, all).await, rows(&mut direct, all).await);

    // Columns changed while Lakewave was down: not restored, read again.
    wait_source(&mut conn, "plant.assets", "was checkpointed again", |s| s.2 && s.1.as_deref() == Some("MySQL")).await;
    assert!(server.terminate().success(), "a clean stop");
    direct.query_drop("ALTER TABLE assets ADD COLUMN note VARCHAR(8) DEFAULT 'x'").await.expect("alter");
    server = ServerProcess::start(dir.path(), &args);
    conn = connect_plant(&server).await;
    wait_source(&mut conn, "plant.assets", "was read from MySQL again", |s| s.0 == "AVAIL_RPDGSTABSTATE" && s.1.as_deref() == Some("MySQL")).await;
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let with_note = "SELECT asset_id, note FROM assets ORDER BY asset_id";
    assert_eq!(rows(&mut conn, with_note).await, rows(&mut direct, with_note).await);
    assert_eq!(load_source(&mut conn, "plant.sensors").await.1.as_deref(), Some("Checkpoint"));

    // Unloading drops the checkpoint: the next start has nothing to restore.
    conn.query_drop("ALTER TABLE sensors SECONDARY_UNLOAD").await.expect("unload");
    let checkpoints = dir.path().join("rapid");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let manifest = std::fs::read_to_string(checkpoints.join("manifest.json")).expect("manifest");
        let files = std::fs::read_dir(&checkpoints).expect("checkpoint dir").filter(|f| f.as_ref().is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".arrows"))).count();
        if !manifest.contains("\"sensors\"") && files == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the sensors checkpoint stayed: {files} data files, manifest {manifest}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
}

/// Estimates are close to what a load really takes; a load beyond the
/// memory limit fails before taking the memory, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimates_and_memory_limit() {
    let db = TestMariaDb::start();
    let dir = tempfile::tempdir().expect("data dir");
    let server = TestServer::start_configured(dir.path(), Some(&db), None).await;
    let mut conn = server.conn().await;
    fixtures::plant_database(&mut conn, dir.path(), 20_000).await;

    let dry = rows(&mut conn, "CALL sys.heatwave_load(JSON_ARRAY('plant'), JSON_OBJECT('mode', 'dryrun'))").await;
    assert_eq!(dry.len(), 3, "two tables and a total: {dry:?}");
    let find = |rows: &[Vec<Option<String>>], name: &str, col: usize| -> u64 {
        let r = rows.iter().find(|r| r[1].as_deref() == Some(name)).unwrap_or_else(|| panic!("{name} in {rows:?}"));
        r[col].as_deref().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("column {col} of {r:?}"))
    };
    assert_eq!(find(&dry, "sensors", 3), 20_000);
    assert_eq!(find(&dry, "assets", 3), 50);
    assert!(dry[2][6].as_deref().is_some_and(|o| o.contains("1 node(s)")), "{dry:?}");
    let loaded: Vec<String> = conn.query("SELECT NAME FROM performance_schema.rpd_table_id").await.expect("ids");
    assert!(loaded.is_empty(), "a dry run loads nothing: {loaded:?}");

    // NULL options mean the defaults, as in HeatWave: a normal load.
    let done = rows(&mut conn, "CALL sys.heatwave_load(JSON_ARRAY('plant'), NULL)").await;
    for t in ["sensors", "assets"] {
        let (estimated, used) = (find(&dry, t, 4) as f64, find(&done, t, 5) as f64);
        assert!((estimated - used).abs() <= 0.2 * used, "{t}: estimated {estimated} bytes, loaded {used}");
        assert_eq!(status_of(&mut conn, &format!("plant.{t}")).await.0, "AVAIL_RPDGSTABSTATE");
    }
    let sensors_bytes = find(&done, "sensors", 5);
    server.stop().await;

    // Restarted with 512 KiB: the assets fit, the sensor readings do not.
    let server = TestServer::start_configured(dir.path(), Some(&db), Some(1 << 19)).await;
    assert!(sensors_bytes > 1 << 19, "the test needs sensors above the limit: {sensors_bytes}");
    let mut conn = server.conn().await;
    conn.query_drop("USE plant").await.expect("use");
    wait_available(&mut conn, "plant.assets").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_of(&mut conn, "plant.sensors").await.0 != "NOLOAD_RPDGSTABSTATE" {
        assert!(Instant::now() < deadline, "the reload of sensors should fail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = error_of(&mut conn, "ALTER TABLE sensors SECONDARY_LOAD").await;
    assert_eq!((e.code, e.state.as_str()), (3889, "HY000"), "{e:?}");
    assert!(e.message.contains("Out of memory for table 'plant.sensors'") && e.message.contains("512.0 KiB"), "{e:?}");
    let used: Option<(String, String)> = conn.query_first("SHOW STATUS LIKE 'rapid_memory_used'").await.expect("status");
    let used: u64 = used.expect("rapid_memory_used").1.parse().expect("number");
    // The assets came back from their checkpoint, in buffers sized to their
    // rows (a fresh load's buffers may have room to spare).
    let assets_now: Option<u64> = conn
        .query_first("SELECT t.SIZE_BYTES FROM performance_schema.rpd_tables t JOIN performance_schema.rpd_table_id i ON i.ID = t.ID WHERE i.NAME = 'plant.assets'")
        .await
        .expect("rpd_tables");
    let assets_now = assets_now.expect("assets listed");
    assert_eq!(used, assets_now, "only the assets hold memory");
    assert!(assets_now > 0 && assets_now <= find(&done, "assets", 5), "{assets_now}");
    // The server keeps serving: the join reads the files in place.
    assert!(!rows(&mut conn, JOIN).await.is_empty());
    server.stop().await;
}

/// ENUM and SET columns keep their names through change capture (row images
/// carry an index and a bit mask; the table map's metadata names them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_and_set_columns_follow_by_name() {
    let db = TestMariaDb::start();
    let dir = tempfile::tempdir().expect("data dir");
    let server = TestServer::start_configured(dir.path(), Some(&db), None).await;
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE shop").await.expect("db");
    conn.query_drop("USE shop").await.expect("use");
    conn.query_drop(
        "CREATE TABLE items (id INT PRIMARY KEY, size ENUM('small','medium','large'), tags SET('new','sale','gift','eco')) SECONDARY_ENGINE = RAPID",
    )
    .await
    .expect("create");
    conn.query_drop("INSERT INTO items VALUES (1, 'small', 'new'), (2, 'large', ''), (3, NULL, 'sale,eco')").await.expect("rows");
    conn.query_drop("ALTER TABLE items SECONDARY_LOAD").await.expect("load");
    conn.query_drop("INSERT INTO items VALUES (4, 'medium', 'gift,new'), (5, 'large', 'eco,sale,gift,new')").await.expect("insert");
    conn.query_drop("UPDATE items SET size = 'large', tags = 'sale' WHERE id = 1").await.expect("update");
    let mut direct = db.conn().await;
    direct.query_drop("UPDATE shop.items SET size = 'small', tags = 'gift,eco' WHERE id = 3").await.expect("direct update");
    let sql = "SELECT id, size, tags FROM items ORDER BY id";
    conn.query_drop("SET use_secondary_engine = OFF").await.expect("off");
    let on_mysql = rows(&mut conn, sql).await;
    assert_eq!(on_mysql[4], vec![Some("5".into()), Some("large".into()), Some("new,sale,gift,eco".into())]);
    // The direct write arrives through capture; wait for it.
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let copy = rows(&mut conn, sql).await;
        if copy == on_mysql {
            break;
        }
        assert!(Instant::now() < deadline, "the copy {copy:?} never matched MariaDB's {on_mysql:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
