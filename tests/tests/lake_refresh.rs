//! Refreshing a lake table loaded in the secondary engine: files added,
//! replaced and deleted under it are picked up by `REFRESH TABLE`, by
//! `ALTER TABLE ... SECONDARY_LOAD` and by `heatwave_load` with
//! `refresh_external_tables`, reading only those files; the copy then
//! answers exactly as the files read in place do.

use std::path::Path;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// A CSV file of rows `first..first+n` with amounts `id * factor`.
fn write_part(dir: &Path, name: &str, first: i64, n: i64, factor: i64) {
    let mut text = String::from("id,region,amount\n");
    for id in first..first + n {
        text.push_str(&format!("{id},r{},{}.{:02}\n", id % 4, id * factor, id % 100));
    }
    std::fs::write(dir.join(name), text).expect("write part");
}

/// (rows, sum of ids, sum of amounts as text) read offloaded (FORCED) and
/// read in place (OFF); both must agree.
async fn totals(conn: &mut Conn) -> (i64, i64, String) {
    let sql = "SELECT COUNT(*), SUM(id), CAST(SUM(amount) AS CHAR) FROM sales";
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let copy: Option<(i64, i64, String)> = conn.query_first(sql).await.expect("offloaded");
    conn.query_drop("SET use_secondary_engine = OFF").await.expect("off");
    let in_place: Option<(i64, i64, String)> = conn.query_first(sql).await.expect("in place");
    conn.query_drop("SET use_secondary_engine = ON").await.expect("on");
    assert_eq!(copy, in_place, "the loaded copy answers as the files do");
    copy.expect("a row")
}

async fn info_of(conn: &mut Conn, sql: &str) -> String {
    conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.info().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_lake_tables_refresh_only_changed_files() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("sales");
    std::fs::create_dir_all(&dir).expect("dir");
    for i in 0..12 {
        write_part(&dir, &format!("part-{i}.csv"), i * 100, 100, 1);
    }
    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE shop").await.expect("database");
    conn.query_drop("USE shop").await.expect("use");
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE sales (id BIGINT, region VARCHAR(4), amount DECIMAL(12,2)) STORED AS CSV LOCATION '{}/'",
        dir.display()
    ))
    .await
    .expect("create");
    conn.query_drop("ALTER TABLE sales SECONDARY_ENGINE = RAPID").await.expect("mark");
    conn.query_drop("ALTER TABLE sales SECONDARY_LOAD").await.expect("load");
    let (rows, ids, _) = totals(&mut conn).await;
    assert_eq!((rows, ids), (1200, (0..1200).sum()));

    // Add one file, replace one (new content, new size), delete one.
    write_part(&dir, "part-12.csv", 1200, 50, 1);
    write_part(&dir, "part-1.csv", 100, 120, 3);
    std::fs::remove_file(dir.join("part-3.csv")).expect("delete");
    let info = info_of(&mut conn, "REFRESH TABLE sales").await;
    assert!(info.contains("1 files added, 1 changed, 1 removed, 10 unchanged"), "{info}");
    let (rows, ids, amount) = totals(&mut conn).await;
    let expected_ids: i64 = (0..1200).sum::<i64>() - (300..400).sum::<i64>() + (200..220).sum::<i64>() + (1200..1250).sum::<i64>();
    assert_eq!((rows, ids), (1200 - 100 + 20 + 50, expected_ids));
    assert!(!amount.is_empty());

    // Nothing changed: nothing is read.
    let info = info_of(&mut conn, "ALTER TABLE sales SECONDARY_LOAD").await;
    assert!(info.contains("0 files added, 0 changed, 0 removed, 12 unchanged"), "{info}");

    // A rewrite of the same size is caught by its modification time.
    let before = std::fs::metadata(dir.join("part-0.csv")).expect("meta").len();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = std::fs::read_to_string(dir.join("part-0.csv")).expect("read").replace("r0,", "r9,");
    std::fs::write(dir.join("part-0.csv"), text).expect("rewrite");
    assert_eq!(std::fs::metadata(dir.join("part-0.csv")).expect("meta").len(), before);
    let info = info_of(&mut conn, "ALTER TABLE sales SECONDARY_LOAD").await;
    assert!(info.contains("0 files added, 1 changed, 0 removed, 11 unchanged"), "{info}");
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let r9: Option<i64> = conn.query_first("SELECT COUNT(*) FROM sales WHERE region = 'r9'").await.expect("r9");
    assert_eq!(r9, Some(25));
    conn.query_drop("SET use_secondary_engine = ON").await.expect("on");

    // heatwave_load leaves loaded tables alone unless asked to refresh them.
    std::fs::remove_file(dir.join("part-12.csv")).expect("delete");
    let rows: Vec<mysql_async::Row> =
        conn.query("CALL sys.heatwave_load(JSON_ARRAY('shop'), JSON_OBJECT('mode', 'normal'))").await.expect("heatwave_load");
    let outcome: Vec<String> = rows.iter().filter_map(|r| r.get::<Option<String>, _>(r.len() - 1).flatten()).collect();
    assert!(outcome.iter().any(|o| o.contains("already loaded")), "{outcome:?}");
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM sales").await.expect("count");
    assert_eq!(n, Some(1170), "the copy is not refreshed yet");
    conn.query_drop("SET use_secondary_engine = ON").await.expect("on");
    let rows: Vec<mysql_async::Row> = conn
        .query("CALL sys.heatwave_load(JSON_ARRAY('shop'), JSON_OBJECT('mode', 'normal', 'refresh_external_tables', TRUE))")
        .await
        .expect("heatwave_load refresh");
    let outcome: Vec<String> = rows.iter().filter_map(|r| r.get::<Option<String>, _>(r.len() - 1).flatten()).collect();
    assert!(outcome.iter().any(|o| o.contains("0 files added, 0 changed, 1 removed, 11 unchanged")), "{outcome:?}");
    let (rows, _, _) = totals(&mut conn).await;
    assert_eq!(rows, 1120);

    // A reload from scratch reads all files in one scan and still knows
    // which rows each gave.
    conn.query_drop("ALTER TABLE sales SECONDARY_UNLOAD").await.expect("unload");
    conn.query_drop("ALTER TABLE sales SECONDARY_LOAD").await.expect("load");
    std::fs::remove_file(dir.join("part-7.csv")).expect("delete");
    let info = info_of(&mut conn, "REFRESH TABLE sales").await;
    assert!(info.contains("0 files added, 0 changed, 1 removed, 10 unchanged"), "{info}");
    let (rows, ids, _) = totals(&mut conn).await;
    assert_eq!((rows, ids), (1020, expected_ids - (1200..1250).sum::<i64>() - (700..800).sum::<i64>()));
}
