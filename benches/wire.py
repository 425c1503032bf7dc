#!/usr/bin/env python3
"""Wire throughput: streaming a large result to a client.

--rows rows (default 10,000,000) of ten columns of mixed types (BIGINT,
INT, DECIMAL(12,2), DOUBLE, BOOLEAN, a short code, a name, DATE, DATETIME
and a text column with NULLs) are written once as Parquet (DuckDB) and
served two ways:

- Lakewave: an external table over the Parquet file, in place;
- MariaDB: the same rows loaded into an InnoDB table of the managed server
  (buffer pool warm after the first run).

`SELECT * FROM t` is streamed to completion by two clients: the Rust
`mysql_async` client (`lakewave bench-fetch`) and PyMySQL with an
unbuffered cursor (the first --pymysql-rows rows only, default 1,000,000:
PyMySQL decodes in Python at about 100k rows/s, which would otherwise take
minutes per run and measure Python). Runs are interleaved; medians, rows/s and the ratio
Lakewave / MariaDB go to benches/results/wire.md and .json.

    python3 benches/wire.py --lakewave target/release/lakewave --rows 10000000
"""

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import duckdb
import pymysql
import pymysql.cursors

from samples_join import connect, load_innodb, log, start_lakewave

HERE = Path(__file__).resolve().parent

COLUMNS = (
    "id BIGINT, qty INT, price DECIMAL(12,2), ratio DOUBLE, flag BOOLEAN, code VARCHAR(8), "
    "name VARCHAR(40), day DATE, ts DATETIME(6), note VARCHAR(60)"
)


def make_data(path, rows):
    duckdb.sql(f"""
        COPY (SELECT i AS id, (i % 1000)::INT AS qty, ((i % 100000) / 100.0)::DECIMAL(12,2) AS price,
                     i / 7.0 AS ratio, i % 3 = 0 AS flag, 'C' || (i % 997)::VARCHAR AS code,
                     'customer name ' || (i % 12345)::VARCHAR AS name,
                     DATE '2020-01-01' + (i % 2000)::INT AS day,
                     TIMESTAMP '2020-01-01 00:00:00' + to_microseconds(i * 1000003) AS ts,
                     CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || (i % 777)::VARCHAR END AS note
              FROM range({rows}) t(i))
        TO '{path}' (FORMAT parquet)""")


def pymysql_fetch(port, db, sql):
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", database=db,
                           cursorclass=pymysql.cursors.SSCursor)
    try:
        cur = conn.cursor()
        t = time.perf_counter()
        cur.execute(sql)
        n = 0
        while True:
            chunk = cur.fetchmany(10000)
            if not chunk:
                break
            n += len(chunk)
        return n, time.perf_counter() - t
    finally:
        conn.close()


def rust_fetch(binary, port, db, sql):
    out = subprocess.run([binary, "bench-fetch", "--url", f"mysql://root@127.0.0.1:{port}/{db}", "--sql", sql,
                          "--runs", "1"], check=True, capture_output=True, text=True).stdout
    run = json.loads(out)["runs"][0]
    return run["rows"], run["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lakewave", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pymysql-rows", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/lakewave-wire")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"wide_{args.rows}.parquet"
    if not data.exists():
        log(f"writing {args.rows} rows to {data}")
        make_data(data, args.rows)
    proc, lake_port, mysql_port = start_lakewave(args.lakewave, work / "lakewave-data")
    try:
        lw = connect(lake_port)
        c = lw.cursor()
        c.execute("CREATE DATABASE IF NOT EXISTS wire")
        c.execute("USE wire")
        c.execute("DROP TABLE IF EXISTS lake_rows")
        c.execute(f"CREATE EXTERNAL TABLE lake_rows ({COLUMNS}) STORED AS PARQUET LOCATION '{data}'")
        my = connect(mysql_port)
        m = my.cursor()
        m.execute("CREATE DATABASE IF NOT EXISTS wire_innodb")
        m.execute("USE wire_innodb")
        m.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'wire_innodb' AND TABLE_NAME = 'rows_innodb'")
        if not m.fetchone()[0]:
            secs = load_innodb(m, duckdb.connect(), "rows_innodb", f"{COLUMNS.replace('BOOLEAN', 'TINYINT(1)')}, PRIMARY KEY (id)",
                               f"SELECT * REPLACE (CASE WHEN flag THEN 1 ELSE 0 END AS flag) FROM read_parquet('{data}')", work)
            log(f"MariaDB: {args.rows} rows loaded into InnoDB in {secs:.0f} s")

        py_rows = min(args.pymysql_rows, args.rows)
        limit = f" LIMIT {py_rows}" if py_rows < args.rows else ""
        cases = {
            ("lakewave", "mysql_async"): lambda: rust_fetch(args.lakewave, lake_port, "wire", "SELECT * FROM lake_rows"),
            ("mariadb", "mysql_async"): lambda: rust_fetch(args.lakewave, mysql_port, "wire_innodb", "SELECT * FROM rows_innodb"),
            ("lakewave", "pymysql"): lambda: pymysql_fetch(lake_port, "wire", "SELECT * FROM lake_rows" + limit),
            ("mariadb", "pymysql"): lambda: pymysql_fetch(mysql_port, "wire_innodb", "SELECT * FROM rows_innodb" + limit),
        }
        expected = {"mysql_async": args.rows, "pymysql": py_rows}
        times = {k: [] for k in cases}
        for run in range(args.runs + 1):
            for k, f in cases.items():
                n, secs = f()
                if n != expected[k[1]]:
                    raise SystemExit(f"{k}: {n} rows streamed, not {expected[k[1]]}")
                if run > 0:  # the first round warms caches
                    times[k].append(secs)
                log(f"run {run} {k[0]} via {k[1]}: {secs:.2f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"Wire throughput: `SELECT *` of {args.rows:,} rows x 10 mixed-type columns streamed to the client, "
        f"median of {args.runs} runs after a warm-up.",
        "",
        "| client | Lakewave (s) | MariaDB (s) | Lakewave rows/s | MariaDB rows/s | Lakewave throughput / MariaDB |",
        "|---|---|---|---|---|---|",
    ]
    for client in ["mysql_async", "pymysql"]:
        lw_s, my_s = med[("lakewave", client)], med[("mariadb", client)]
        n = args.rows if client == "mysql_async" else min(args.pymysql_rows, args.rows)
        lines.append(f"| {client} ({n:,} rows) | {lw_s:.2f} | {my_s:.2f} | {n / lw_s:,.0f} | {n / my_s:,.0f} | {my_s / lw_s:.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "wire.md").write_text(report)
    (out / "wire.json").write_text(json.dumps({"rows": args.rows, "runs": args.runs,
                                               "seconds": {f"{k[0]}/{k[1]}": v for k, v in times.items()}}, indent=2))


if __name__ == "__main__":
    main()
