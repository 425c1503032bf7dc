#!/usr/bin/env python3
"""Many clients at once: --clients connections (default 64) each running
short analytic queries in turn (TPC-H Q6, Q14 and Q1 at --sf, default 0.1)
for --seconds, with the Rust client `lakewave bench-clients`; throughput
(queries/s) and latency percentiles per system:

- Lakewave, Parquet in place;
- Lakewave, every table loaded into the secondary engine (FORCED);
- MariaDB InnoDB (the managed server) with --mariadb (slow: it is here to
  show the gap, not to race).

Results go to benches/results/concurrency.md and .json.

    python3 benches/concurrency.py --lakewave target/release/lakewave --clients 64 --seconds 20
"""

import argparse
import json
import subprocess
from pathlib import Path

from samples_join import connect, load_innodb, log, start_lakewave
from tpch import MARIADB_DDL, TABLES

HERE = Path(__file__).resolve().parent
QUERIES = ["q06", "q14", "q01"]


def one_line(sql):
    return " ".join(line.split("--")[0] for line in sql.splitlines()).strip().rstrip(";")


def run_clients(binary, port, db, queries, clients, seconds, setup=()):
    cmd = [binary, "bench-clients", "--url", f"mysql://root@127.0.0.1:{port}/{db}", "--clients", str(clients),
           "--seconds", str(seconds)]
    for q in queries:
        cmd += ["--sql", q]
    for s in setup:
        cmd += ["--setup", s]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lakewave", required=True)
    ap.add_argument("--sf", type=float, default=0.1)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--mariadb", action="store_true")
    ap.add_argument("--work", default="/tmp/lakewave-tpch")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()

    queries = [one_line((HERE / "tpch" / f"{q}.sql").read_text()) for q in QUERIES]
    work = Path(args.work)
    data = work / f"sf{args.sf:g}"
    subprocess.run([args.lakewave, "tpch-data", "--sf", str(args.sf), "--out", str(data)], check=True)
    proc, lake_port, mysql_port = start_lakewave(args.lakewave, work / "lakewave-concurrency")
    results = {}
    try:
        lw = connect(lake_port)
        c = lw.cursor()
        c.execute("DROP DATABASE IF EXISTS tpch")
        c.execute("CREATE DATABASE tpch")
        c.execute("USE tpch")
        for t in TABLES:
            c.execute(f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data}/{t}/'")
        log("Lakewave in place")
        results["lakewave"] = run_clients(args.lakewave, lake_port, "tpch", queries, args.clients, args.seconds,
                                          ["SET use_secondary_engine = OFF"])
        c.execute("CALL sys.heatwave_load(JSON_ARRAY('tpch'), JSON_OBJECT('mode', 'normal'))")
        c.fetchall()
        log("Lakewave RAPID")
        results["lakewave_rapid"] = run_clients(args.lakewave, lake_port, "tpch", queries, args.clients, args.seconds,
                                                ["SET use_secondary_engine = FORCED"])
        if args.mariadb:
            import duckdb
            my = connect(mysql_port)
            m = my.cursor()
            m.execute("CREATE DATABASE IF NOT EXISTS tpch_innodb_small")
            m.execute("USE tpch_innodb_small")
            for t in ["lineitem", "part"]:
                m.execute(f"DROP TABLE IF EXISTS {t}")
                ddl = MARIADB_DDL.get(t, "p_partkey BIGINT PRIMARY KEY, p_name VARCHAR(55), p_mfgr CHAR(25), p_brand CHAR(10), "
                                          "p_type VARCHAR(25), p_size INT, p_container CHAR(10), p_retailprice DECIMAL(15,2), p_comment VARCHAR(23)")
                load_innodb(m, duckdb.connect(), t, ddl, f"SELECT * FROM read_parquet('{data}/{t}/*.parquet')", work)
            log("MariaDB")
            results["mariadb"] = run_clients(args.lakewave, mysql_port, "tpch_innodb_small", queries, args.clients, args.seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    lines = [
        f"{args.clients} clients for {args.seconds:g} s each running TPC-H {', '.join(QUERIES)} in turn at SF {args.sf:g} "
        f"(Rust client, mysql_async).",
        "",
        "| system | queries | errors | queries/s | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['queries']} | {r['errors']} | {r['qps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "concurrency.md").write_text(report)
    (out / "concurrency.json").write_text(json.dumps({"sf": args.sf, "clients": args.clients, "seconds": args.seconds,
                                                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
