#!/usr/bin/env python3
"""Refreshing a lake table loaded in the secondary engine.

A table of N Parquet files (default 1,000 files of 1,000 rows) on local
disk is loaded with ALTER TABLE ... SECONDARY_LOAD. Then, --runs times,
one file is rewritten and the copy brought up to date two ways:

- REFRESH TABLE (reads only the changed file);
- a full reload (SECONDARY_UNLOAD, then SECONDARY_LOAD: every file).

Both are timed through the MySQL wire, medians reported beside DuckDB
re-creating an in-memory table from the same files (it has no incremental
refresh). After each refresh the loaded copy's total is checked against
the files.

    python3 benches/refresh.py --lakewave target/release/lakewave --files 1000
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import pymysql

from samples_join import log, start_lakewave

HERE = Path(__file__).resolve().parent


def write_file(path, first, rows, factor):
    duckdb.sql(
        f"COPY (SELECT {first} + i AS id, (i % 7)::INT AS region, ({first} + i) * {factor} AS amount "
        f"FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lakewave", required=True)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1000, help="rows per file")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "refresh"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "sales"
        data.mkdir()
        log(f"writing {args.files} files of {args.rows} rows")
        for i in range(args.files):
            write_file(data / f"part-{i:05}.parquet", i * args.rows, args.rows, 1)
        proc, port, _ = start_lakewave(args.lakewave, tmp / "lw", no_mysql=True)
        try:
            conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
            cur = conn.cursor()
            cur.execute("CREATE DATABASE bench")
            cur.execute("USE bench")
            cur.execute(f"CREATE EXTERNAL TABLE sales STORED AS PARQUET LOCATION '{data}/'")
            cur.execute("ALTER TABLE sales SECONDARY_ENGINE = RAPID")
            t = time.perf_counter()
            cur.execute("ALTER TABLE sales SECONDARY_LOAD")
            first_load = time.perf_counter() - t
            log(f"first load: {first_load:.2f} s")

            def check(expected_sum):
                cur.execute("SET use_secondary_engine = FORCED")
                cur.execute("SELECT SUM(amount) FROM sales")
                got = cur.fetchone()[0]
                cur.execute("SET use_secondary_engine = ON")
                if int(got) != expected_sum:
                    raise SystemExit(f"loaded copy total {got} != files' total {expected_sum}")

            def files_total():
                return int(duckdb.sql(f"SELECT SUM(amount) FROM read_parquet('{data}/*.parquet')").fetchall()[0][0])

            times = {"refresh": [], "full_reload": [], "duckdb_reload": []}
            duck = duckdb.connect()
            for run in range(args.runs):
                victim = data / f"part-{(run * 37) % args.files:05}.parquet"
                first = (run * 37) % args.files * args.rows
                write_file(victim, first, args.rows, run + 2)
                total = files_total()
                t = time.perf_counter()
                cur.execute("REFRESH TABLE sales")
                times["refresh"].append(time.perf_counter() - t)
                check(total)
                t = time.perf_counter()
                cur.execute("ALTER TABLE sales SECONDARY_UNLOAD")
                cur.execute("ALTER TABLE sales SECONDARY_LOAD")
                times["full_reload"].append(time.perf_counter() - t)
                check(total)
                t = time.perf_counter()
                duck.execute(f"CREATE OR REPLACE TABLE sales AS SELECT * FROM read_parquet('{data}/*.parquet')")
                times["duckdb_reload"].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
        finally:
            proc.terminate()
            proc.wait()

    lines = [
        f"Refresh of a loaded lake table: {args.files} Parquet files x {args.rows} rows, one file rewritten per run, "
        f"median of {args.runs} (first load {first_load:.2f} s)",
        "",
        "| Operation | Median (s) | vs REFRESH TABLE |",
        "|---|---|---|",
    ]
    for k, label in [("refresh", "REFRESH TABLE (1 changed file read)"), ("full_reload", "SECONDARY_UNLOAD + SECONDARY_LOAD (all files)"),
                     ("duckdb_reload", "DuckDB CREATE OR REPLACE TABLE ... read_parquet")]:
        lines.append(f"| {label} | {med[k]:.3f} | {med[k] / med['refresh']:.1f}x |")
    report = "\n".join(lines)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(report + "\n")
    out.with_suffix(".json").write_text(json.dumps({"files": args.files, "rows_per_file": args.rows, "runs": times,
                                                     "median": med, "first_load": first_load}, indent=2))


if __name__ == "__main__":
    main()
