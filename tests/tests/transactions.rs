//! Concurrent bank transfers through Lakewave in front of a private MariaDB,
//! driven by real clients (PyMySQL and MariaDB Connector/J): explicit
//! transactions with row locks, deadlocks retried, overdrafts rolled back, a
//! duplicate key error relayed with its code and SQLSTATE. The client checks
//! its own invariants; the test then re-checks the totals directly on MariaDB.
//!
//! The client programs live in `tests/clients/` (`bank_pymysql.py`,
//! `BankTransfer.java`); `scripts/test-deps.sh` installs what they need.

use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use lakewave_tests::mariadb::TestMariaDb;
use lakewave_tests::clients::{ClientRun, DEPS_HINT, JavaProgram, client_file, run_client};
use lakewave_tests::{TestServer, require_program};

/// Longest run allowed to one client program.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const ACCOUNTS: i32 = 10;

/// The number after `key=` in a client's summary line.
fn summary_value(run: &ClientRun, key: &str) -> u64 {
    let prefix = format!("{key}=");
    run.stdout()
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no `{key}=` in the client's summary: {}", run.report()))
}

/// A private MariaDB, Lakewave in front of it, and the bank schema created
/// through Lakewave.
async fn setup() -> (TestMariaDb, TestServer) {
    let db = TestMariaDb::start();
    let server = TestServer::start_with_backend(&db).await;
    let mut conn = server.conn().await;
    let accounts: Vec<String> = (1..=ACCOUNTS).map(|id| format!("({id}, 1000.00)")).collect();
    let statements = [
        "CREATE DATABASE bank".to_string(),
        "CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL) ENGINE=InnoDB".into(),
        format!("INSERT INTO bank.accounts (id, balance) VALUES {}", accounts.join(", ")),
        "CREATE TABLE bank.transfers (id INT PRIMARY KEY, src INT, dst INT, amount DECIMAL(12,2)) ENGINE=InnoDB".into(),
    ];
    for sql in &statements {
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("setup statement failed: {sql}\n{e}"));
    }
    let total: Option<String> =
        conn.query_first("SELECT CAST(SUM(balance) AS CHAR) FROM bank.accounts").await.expect("initial total");
    assert_eq!(total.as_deref(), Some("10000.00"), "initial total through Lakewave");
    conn.disconnect().await.expect("disconnect after setup");
    (db, server)
}

/// Re-checks the outcome on MariaDB itself: the total is exact, no balance
/// is negative, the transfers log has the committed transfers, and every
/// balance is 1000 plus what the log says it received minus what it sent.
async fn verify_directly(db: &TestMariaDb, client: &ClientRun) {
    let committed = summary_value(client, "committed");
    let overdrafts = summary_value(client, "rolled_back_overdraft");
    println!(
        "deadlocks retried: {}, lock wait timeouts retried: {}",
        summary_value(client, "deadlocks_retried"),
        summary_value(client, "lock_timeouts_retried")
    );
    assert!(committed > 0, "no transfer committed: {}", client.report());
    assert!(overdrafts > 0, "no overdraft rolled back: {}", client.report());

    let mut direct = db.conn().await;
    let total: Option<String> =
        direct.query_first("SELECT CAST(SUM(balance) AS CHAR) FROM bank.accounts").await.expect("total");
    assert_eq!(total.as_deref(), Some("10000.00"), "sum of balances on MariaDB");
    let (n, negative): (i64, i64) = direct
        .query_first("SELECT COUNT(*), COALESCE(SUM(balance < 0), 0) FROM bank.accounts")
        .await
        .expect("accounts")
        .expect("a row");
    assert_eq!((n, negative), (i64::from(ACCOUNTS), 0), "accounts and negative balances on MariaDB");
    let rows: Option<u64> = direct.query_first("SELECT COUNT(*) FROM bank.transfers").await.expect("transfers");
    assert_eq!(rows, Some(committed), "transfers rows on MariaDB vs committed transfers reported by the client");
    let moved: Option<String> = direct
        .query_first("SELECT CAST(COALESCE(SUM(amount), 0) AS CHAR) FROM bank.transfers")
        .await
        .expect("moved");
    println!("total moved: {}", moved.unwrap_or_default());

    let mismatches: Vec<(i32, String, String)> = direct
        .query(
            "SELECT a.id, CAST(a.balance AS CHAR), CAST(x.expected AS CHAR) FROM bank.accounts a \
             JOIN (SELECT acc.id, 1000.00 \
                     + (SELECT COALESCE(SUM(amount), 0) FROM bank.transfers WHERE dst = acc.id) \
                     - (SELECT COALESCE(SUM(amount), 0) FROM bank.transfers WHERE src = acc.id) AS expected \
                   FROM bank.accounts acc) x ON x.id = a.id \
             WHERE a.balance <> x.expected ORDER BY a.id",
        )
        .await
        .expect("balances vs the transfers log");
    assert!(mismatches.is_empty(), "balances (id, balance, expected from transfers) differ: {mismatches:?}");
    let bad: Option<i64> = direct
        .query_first(
            "SELECT COUNT(*) FROM bank.transfers \
             WHERE src = dst OR amount <= 0 OR src NOT BETWEEN 1 AND 10 OR dst NOT BETWEEN 1 AND 10",
        )
        .await
        .expect("transfers sanity");
    assert_eq!(bad, Some(0), "malformed transfers rows");
    direct.disconnect().await.expect("disconnect from MariaDB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pymysql_bank_transfers() {
    let python = require_program("python3", DEPS_HINT);
    let (db, server) = setup().await;
    let mut cmd = Command::new(python);
    cmd.arg(client_file("bank_pymysql.py")).arg("127.0.0.1").arg(server.port.to_string());
    cmd.env("PYTHONIOENCODING", "utf-8").env("PYTHONDONTWRITEBYTECODE", "1");
    let outcome = run_client(cmd, None, CLIENT_TIMEOUT).await;
    outcome.assert_success();
    verify_directly(&db, &outcome).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jdbc_bank_transfers() {
    let program = JavaProgram::compile("BankTransfer.java").await;
    let (db, server) = setup().await;
    let mut cmd = program.command("BankTransfer");
    cmd.arg("127.0.0.1").arg(server.port.to_string());
    let outcome = run_client(cmd, None, CLIENT_TIMEOUT).await;
    outcome.assert_success();
    verify_directly(&db, &outcome).await;
    server.stop().await;
}
