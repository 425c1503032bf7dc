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
