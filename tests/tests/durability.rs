//! The catalog survives restarts and crashes: definitions acknowledged to a
//! client are there after a clean restart and after `kill -9` in the middle
//! of a burst of DDL. These tests run the real `lakewave` binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use lakewave_tests::{ServerProcess, fixtures};

async fn connect(server: &ServerProcess) -> Conn {
    Conn::from_url(server.url()).await.expect("connect to lakewave")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_survive_a_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("fixture dir");
    fixtures::write_all(files.path());
    let csv = files.path().join("csv/people.csv").display().to_string();
    let parquet = files.path().join("all_types.parquet").display().to_string();

    let mut server = ServerProcess::start(data.path(), &["--no-mysql"]);
    let mut conn = connect(&server).await;
    conn.query_drop("CREATE DATABASE keep").await.expect("create db");
    conn.query_drop(format!("CREATE EXTERNAL TABLE keep.types STORED AS PARQUET LOCATION '{parquet}'")).await.expect("t1");
    conn.query_drop(format!(
        "CREATE TABLE keep.people (id INT, name VARCHAR(40), score DOUBLE, joined DATE) ENGINE=lakehouse \
         ENGINE_ATTRIBUTE='{{\"dialect\": {{\"format\": \"csv\", \"field_delimiter\": \",\", \"has_header\": true}}, \"file\": [{{\"uri\": \"{csv}\"}}]}}'"
    ))
    .await
    .expect("t2");
    conn.query_drop("CREATE DATABASE gone").await.expect("create db");
    conn.query_drop("DROP DATABASE gone").await.expect("drop db");
    let before: Vec<(String, String)> = conn.query("SHOW CREATE TABLE keep.people").await.expect("show create");
    drop(conn);
    assert!(server.terminate().success(), "clean shutdown on SIGTERM");

    let server = ServerProcess::start(data.path(), &["--no-mysql"]);
    let mut conn = connect(&server).await;
    let dbs: Vec<String> = conn.query("SHOW DATABASES").await.expect("show databases");
    assert_eq!(dbs, vec!["information_schema".to_string(), "keep".to_string()]);
    let tables: Vec<String> = conn.query("SHOW TABLES FROM keep").await.expect("show tables");
    assert_eq!(tables, vec!["people".to_string(), "types".to_string()]);
    let after: Vec<(String, String)> = conn.query("SHOW CREATE TABLE keep.people").await.expect("show create");
    assert_eq!(before, after);
    let n: Option<i64> = conn.query_first("SELECT count(*) FROM keep.people").await.expect("query after restart");
    assert_eq!(n, Some(3));
    let u: Option<u64> = conn.query_first("SELECT u64 FROM keep.types WHERE id = 1").await.expect("query after restart");
    assert_eq!(u, Some(u64::MAX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ddl_survives_kill_9() {
    let data = tempfile::tempdir().expect("data dir");
    let files = tempfile::tempdir().expect("fixture dir");
    fixtures::write_all(files.path());
    let parquet = files.path().join("all_types.parquet").display().to_string();

    let mut server = ServerProcess::start(data.path(), &["--no-mysql"]);
    let mut conn = connect(&server).await;
    conn.query_drop("CREATE DATABASE burst").await.expect("create db");

    // A client creates (and sometimes drops) tables as fast as it can and
    // records what the server acknowledged.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    // The statement in flight when the server dies may or may not have landed.
    let in_flight = Arc::new(std::sync::Mutex::new(None::<String>));
    let count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let acked = acked.clone();
        let in_flight = in_flight.clone();
        let count = count.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let name = format!("t{i}");
                let sql = format!("CREATE EXTERNAL TABLE burst.{name} STORED AS PARQUET LOCATION '{parquet}'");
                *in_flight.lock().expect("in flight") = Some(name.clone());
                if conn.query_drop(sql).await.is_err() {
                    return;
                }
                acked.lock().expect("ack list").push((name.clone(), true));
                if i % 5 == 4 {
                    if conn.query_drop(format!("DROP TABLE burst.{name}")).await.is_err() {
                        return;
                    }
                    acked.lock().expect("ack list").push((name, false));
                }
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Wait (bounded) for a good number of acknowledgements, then crash.
    for _ in 0..600 {
        if count.load(Ordering::SeqCst) >= 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(count.load(Ordering::SeqCst) >= 40, "the DDL burst made too little progress");
    server.kill9();
    let _ = writer.await;

    let server = ServerProcess::start(data.path(), &["--no-mysql"]);
    let mut conn = connect(&server).await;
    let tables: Vec<String> = conn.query("SHOW TABLES FROM burst").await.expect("catalog loads after kill -9");
    let mut expected = std::collections::BTreeSet::new();
    for (name, exists) in acked.lock().expect("ack list").iter() {
        if *exists {
            expected.insert(name.clone());
        } else {
            expected.remove(name);
        }
    }
    let uncertain = in_flight.lock().expect("in flight").clone();
    for name in &expected {
        if Some(name) == uncertain.as_ref() {
            continue;
        }
        assert!(tables.contains(name), "acknowledged table {name} lost after kill -9");
    }
    // At most one unacknowledged create may have landed just before the kill.
    assert!(tables.len() <= expected.len() + 1, "{} tables, {} acknowledged", tables.len(), expected.len());
    let n: Option<i64> = conn
        .query_first(format!("SELECT count(*) FROM burst.{}", expected.iter().next().expect("some table")))
        .await
        .expect("a recovered table reads");
    assert_eq!(n, Some(3));
}
