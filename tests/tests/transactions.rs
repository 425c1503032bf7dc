//! Concurrent bank transfers through Lakewave in front of a private MariaDB,
//! driven by real clients (PyMySQL and MariaDB Connector/J): explicit
//! transactions with row locks, deadlocks retried, overdrafts rolled back, a
//! duplicate key error relayed with its code and SQLSTATE. The client checks
//! its own invariants; the test then re-checks the totals directly on MariaDB.
//!
//! The client programs live in `tests/clients/` (`bank_pymysql.py`,
//! `BankTransfer.java`); `scripts/test-deps.sh` installs what they need.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use lakewave_tests::mariadb::TestMariaDb;
use lakewave_tests::{TestServer, require_program, workspace};

const DEPS_HINT: &str = "run `bash scripts/test-deps.sh` to install the clients the end-to-end tests drive";
/// Longest run allowed to one client program.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// MariaDB Connector/J as Debian's libmariadb-java installs it.
const DEFAULT_CONNECTOR_J: &str = "/usr/share/java/mariadb-java-client.jar";
const ACCOUNTS: i32 = 10;

/// The exit status (None: killed at the timeout) and output of a program.
struct Run {
    what: String,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn report(&self) -> String {
        let status = self.status.map_or_else(|| format!("killed after {} s", CLIENT_TIMEOUT.as_secs()), |s| s.to_string());
        format!("{} ({status})\n--- stdout ---\n{}\n--- stderr ---\n{}", self.what, self.stdout, self.stderr)
    }

    fn assert_success(&self) {
        assert!(self.status.is_some_and(|s| s.success()), "client program failed: {}", self.report());
        println!("{}", self.report());
    }

    /// The number after `key=` in the summary line.
    fn summary_value(&self, key: &str) -> u64 {
        let prefix = format!("{key}=");
        self.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{key}=` in the client's summary: {}", self.report()))
    }
}

/// Runs a program on a blocking thread, so the in-process server keeps
/// serving on the runtime, killing it at the timeout.
async fn run(mut cmd: Command) -> Run {
    tokio::task::spawn_blocking(move || {
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        }
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {what}: {e}"),
            }
        };
        Run { what, status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
    })
    .await
    .expect("client thread")
}

fn client_file(name: &str) -> PathBuf {
    workspace().join("tests").join("clients").join(name)
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
async fn verify_directly(db: &TestMariaDb, client: &Run) {
    let committed = client.summary_value("committed");
    let overdrafts = client.summary_value("rolled_back_overdraft");
    println!(
        "deadlocks retried: {}, lock wait timeouts retried: {}",
        client.summary_value("deadlocks_retried"),
        client.summary_value("lock_timeouts_retried")
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
    let outcome = run(cmd).await;
    outcome.assert_success();
    verify_directly(&db, &outcome).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jdbc_bank_transfers() {
    let javac = require_program("javac", DEPS_HINT);
    let java = require_program("java", DEPS_HINT);
    let jar = std::env::var_os("MARIADB_JAVA_CLIENT_JAR").map_or_else(|| PathBuf::from(DEFAULT_CONNECTOR_J), PathBuf::from);
    assert!(jar.is_file(), "MariaDB Connector/J is not installed at {}; {DEPS_HINT}", jar.display());

    let classes = tempfile::tempdir().expect("temp dir for the compiled client");
    let mut compile = Command::new(javac);
    compile.arg("-cp").arg(&jar).arg("-d").arg(classes.path()).arg(client_file("BankTransfer.java"));
    run(compile).await.assert_success();

    let (db, server) = setup().await;
    let mut classpath = classes.path().as_os_str().to_owned();
    classpath.push(":");
    classpath.push(&jar);
    let mut cmd = Command::new(java);
    cmd.arg("-cp").arg(classpath).arg("BankTransfer").arg("127.0.0.1").arg(server.port.to_string());
    let outcome = run(cmd).await;
    outcome.assert_success();
    verify_directly(&db, &outcome).await;
    server.stop().await;
}
