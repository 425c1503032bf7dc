//! TPC-H at a tiny scale factor, as a smoke test of the benchmark queries
//! (`benches/tpch/q01.sql` .. `q22.sql`): all 22 run through the MySQL wire
//! on Parquet in place, then again with every table loaded into the
//! secondary engine (FORCED), and the answers must agree.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use lakewave_tests::{TestServer, workspace};

fn cell(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.as_sql(true),
    }
}

async fn answer(conn: &mut Conn, sql: &str, name: &str) -> Vec<Vec<String>> {
    let rows: Vec<Row> = conn.query(sql).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    rows.into_iter().map(|r| r.unwrap().iter().map(cell).collect()).collect()
}

/// The plan `EXPLAIN` prints for `sql`, as one text.
async fn explain(conn: &mut Conn, sql: &str, name: &str) -> String {
    answer(conn, &format!("EXPLAIN {sql}"), &format!("EXPLAIN {name}")).await.concat().join("\n")
}

/// `sql`'s subquery is computed as a window (its plan has a
/// `WindowAggExec` and no `replaced`), and `answer` (its non-empty
/// answer) is that of the same query with `from` replaced by `to` in the
/// subquery: a condition every row meets, which the rewrite does not
/// match, so that its plan keeps `replaced` and has no window.
async fn window_agrees(conn: &mut Conn, name: &str, sql: &str, answer: &[Vec<String>], from: &str, to: &str, replaced: &str) {
    let plan = explain(conn, sql, name).await;
    assert!(plan.contains("WindowAggExec") && !plan.contains(replaced), "{name} in place:\n{plan}");
    let unmatched = sql.replace(from, to);
    assert_ne!(unmatched, sql);
    let plan = explain(conn, &unmatched, name).await;
    assert!(plan.contains(replaced) && !plan.contains("WindowAggExec"), "{name} with its subquery:\n{plan}");
    assert!(!answer.is_empty(), "{name} finds rows at SF 0.01");
    assert!(same(&self::answer(conn, &unmatched, name).await, answer), "{name}: the window and the subquery disagree");
}

/// Equal, with numbers compared to a relative 1e-9 (sums of doubles may
/// differ in the last bits with another order of addition).
fn same(a: &[Vec<String>], b: &[Vec<String>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(u, v)| {
                    u == v
                        || match (u.parse::<f64>(), v.parse::<f64>()) {
                            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                            _ => false,
                        }
                })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_agree_in_place_and_in_memory() {
    let data = tempfile::tempdir().expect("data");
    samples::generate_tpch(data.path(), 0.01, 2).expect("generate TPC-H SF 0.01");
    let server = TestServer::start().await;
    let mut conn = server.conn().await;
    conn.query_drop("CREATE DATABASE tpch").await.expect("db");
    conn.query_drop("USE tpch").await.expect("use");
    for t in samples::TPCH_TABLES {
        conn.query_drop(format!("CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/{t}/'", data.path().display()))
            .await
            .expect("table");
    }
    let dir = workspace().join("benches/tpch");
    let queries: Vec<(String, String)> = (1..=22)
        .map(|i| {
            let name = format!("q{i:02}");
            let sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).expect("query file");
            (name, sql)
        })
        .collect();
    let mut in_place = Vec::new();
    for (name, sql) in &queries {
        in_place.push(answer(&mut conn, sql, name).await);
    }
    // Known shapes at any scale factor.
    assert_eq!(in_place[0].len(), 4, "Q1 has four flag/status groups");
    assert_eq!(in_place[0][0][..2], ["A".to_string(), "F".to_string()]);
    assert_eq!(in_place[5].len(), 1, "Q6 is one sum");
    assert!(in_place[2].len() == 10 && in_place[9].len() == 20, "Q3 and Q10 fill their LIMITs");
    // Q10's revenue is summed per order's customer before the customers
    // are joined (eager aggregation through a reordered join).
    let q10 = explain(&mut conn, &queries[9].1, "q10").await;
    assert!(q10.contains("mode=PartialReduce") && q10.contains("gby=[o_custkey@"), "Q10 in place:\n{q10}");
    // Q2's minimum cost per part is a window over the outer query's rows,
    // and Q11's bound a window totalling its groups.
    let (from, to) = ("and r_name = 'EUROPE')", "and r_name = 'EUROPE' and ps_supplycost >= 0)");
    window_agrees(&mut conn, "Q2", &queries[1].1, &in_place[1], from, to, "AggregateExec").await;
    let (from, to) = ("n_name = 'GERMANY')", "n_name = 'GERMANY' and ps_availqty >= 0)");
    window_agrees(&mut conn, "Q11", &queries[10].1, &in_place[10], from, to, "ScalarSubqueryExec").await;
    let empty: Vec<&str> = queries.iter().zip(&in_place).filter(|(_, a)| a.is_empty()).map(|((n, _), _)| n.as_str()).collect();
    assert!(empty.len() <= 3, "too many empty answers at SF 0.01: {empty:?}");

    let loaded: Vec<Row> = conn
        .query("CALL sys.heatwave_load(JSON_ARRAY('tpch'), JSON_OBJECT('mode', 'normal'))")
        .await
        .expect("load every table");
    assert_eq!(loaded.len(), 9, "eight tables and a total");
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let q10 = explain(&mut conn, &queries[9].1, "q10").await;
    assert!(q10.contains("mode=PartialReduce") && q10.contains("gby=[o_custkey@"), "Q10 in memory:\n{q10}");
    let q2 = explain(&mut conn, &queries[1].1, "q2").await;
    assert!(q2.contains("WindowAggExec"), "Q2 in memory:\n{q2}");
    for ((name, sql), expected) in queries.iter().zip(&in_place) {
        let got = answer(&mut conn, sql, name).await;
        assert!(same(&got, expected), "{name} differs in memory:\n{got:?}\nvs in place:\n{expected:?}");
    }
    server.stop().await;
}

/// The benchmark harness itself (`benches/tpch.py`) at SF 0.01, one run:
/// it generates the data, checks every system's answers against DuckDB's
/// (the in-process engine by row count), and writes its report with a row
/// per query and the wire's overhead. A smoke test: the timings mean
/// nothing in a debug build.
#[test]
fn benchmark_harness_runs_at_a_tiny_scale() {
    let python = lakewave_tests::require_program("python3", "install Python 3");
    let work = tempfile::tempdir().expect("work dir");
    let out = work.path().join("results");
    let status = std::process::Command::new(python)
        .arg(workspace().join("benches/tpch.py"))
        .args(["--lakewave", &lakewave_tests::lakewave_bin().display().to_string()])
        .args(["--sf", "0.01", "--runs", "1", "--no-chart", "--no-mysql"])
        .args(["--systems", "lakewave,lakewave_inprocess,lakewave_rapid,duckdb,duckdb_memory"])
        .args(["--work", &work.path().join("data").display().to_string()])
        .args(["--out", &out.display().to_string()])
        .status()
        .expect("run benches/tpch.py (pip install duckdb PyMySQL)");
    assert!(status.success(), "benches/tpch.py failed: {status}");
    let report = std::fs::read_to_string(out.join("tpch_sf0.01.md")).expect("the report");
    let query_rows = report.lines().filter(|l| l.starts_with("| q") && !l.starts_with("| query")).count();
    assert_eq!(query_rows, 22, "{report}");
    assert!(report.contains("| lakewave | lakewave_inprocess | lakewave_rapid | duckdb | duckdb_memory |"), "{report}");
    assert!(report.contains("Wire overhead (through the wire / in-process)"), "{report}");
    assert!(report.contains("Rust mysql_async client"), "{report}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("tpch_sf0.01.json")).expect("json")).expect("valid JSON");
    assert_eq!(json["queries"]["q06"]["rows"], 1);
}
