#!/usr/bin/env python3
"""Planning and scanning a table of many files, in place.

A table of N small Parquet files (100 hive partitions `part=000..099`) on
local disk and on an S3-compatible server (moto, on loopback). Measured
through the MySQL wire, median of --runs after a warm-up:

- CREATE EXTERNAL TABLE (lists the files, infers partitions and schema);
- EXPLAIN of a query filtered on one partition, and of a full aggregate
  (planning only: listing, partition pruning, statistics);
- the full aggregate itself (reads every file);

for the S3 table cold (after REFRESH TABLE, so the prefix is listed again)
and warm (listing cached), for an S3 table with `storage.list_cache_ttl`
0 (lists on every query), and for the local table. Full scans on S3 are
timed only with --s3-scan: moto serves each read slowly, so they measure
moto. DuckDB reads the local
files with the same glob for scale (its S3 support is a download this
machine cannot make).

    python3 benches/listing.py --lakewave target/release/lakewave --files 10000
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pymysql

HERE = Path(__file__).resolve().parent
BUCKET = "lakewave-listing"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_files(root, files):
    """N copies of one small Parquet file under root/part=PPP/."""
    one = root / "one.parquet"
    duckdb.sql(f"COPY (SELECT i AS id, i * 1.5 AS v FROM range(100) t(i)) TO '{one}' (FORMAT parquet)")
    data = root / "data"
    per = max(1, files // 100)
    n = 0
    for p in range(100):
        d = data / f"part={p:03d}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per):
            if n >= files:
                break
            shutil.copyfile(one, d / f"f-{k:05d}.parquet")
            n += 1
    one.unlink()
    return data, n


def start_s3(upload):
    proc = subprocess.Popen(
        [sys.executable, str(HERE.parent / "tests/servers/s3_server.py"), BUCKET, str(upload)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.match(r"READY (\d+)", line)
    if not m:
        raise SystemExit("the S3 test server did not start (pip install 'moto[server]')")
    return proc, int(m.group(1))


def start_lakewave(binary, data_dir, s3_port):
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "AWS_ALLOW_HTTP": "true",
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "LAKEWAVE_LOG": "warn"}
    proc = subprocess.Popen([binary, "serve", "--no-mysql", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stdout:
        m = re.search(r"Lakewave listening on [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    raise SystemExit("Lakewave did not start")


def timed(cur, sql):
    t = time.perf_counter()
    cur.execute(sql)
    rows = cur.fetchall()
    return time.perf_counter() - t, rows


def median_of(runs, f):
    f()  # warm-up
    return statistics.median(f() for _ in range(runs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lakewave", required=True)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--s3-scan", action="store_true",
                    help="also time full scans on S3 (moto answers each of the N reads slowly; minutes at 10,000 files)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lw-listing-"))
    try:
        data, n = make_files(work, args.files)
        log(f"{n} files under {data}; uploading to the S3 server ...")
        t = time.perf_counter()
        s3, s3_port = start_s3(data)
        log(f"uploaded in {time.perf_counter() - t:.0f} s")
        lw, port = start_lakewave(args.lakewave, work / "lw", s3_port)
        conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        cur = conn.cursor()
        cur.execute("CREATE DATABASE bench")
        cur.execute("USE bench")
        tables = {
            "s3": f"LOCATION 's3://{BUCKET}/'",
            "s3_ttl0": f"LOCATION 's3://{BUCKET}/' OPTIONS ('storage.list_cache_ttl' '0')",
            "local": f"LOCATION '{data}/'",
        }
        report = {"files": n, "runs": args.runs, "create_s": {}, "queries": {}}
        for name, where in tables.items():
            t, _ = timed(cur, f"CREATE EXTERNAL TABLE {name} STORED AS PARQUET {where}")
            report["create_s"][name] = t
            log(f"CREATE {name}: {t:.2f} s")

        expected = n * sum(i * 1.5 for i in range(100))
        queries = {
            "plan_one_partition": "EXPLAIN SELECT SUM(v) FROM {t} WHERE part = '042'",
            "plan_all": "EXPLAIN SELECT SUM(v) FROM {t}",
            "scan_all": "SELECT SUM(v) FROM {t}",
        }
        ddb = duckdb.connect()
        ddb_from = f"read_parquet('{data}/*/*.parquet', hive_partitioning = true)"
        for qname, q in queries.items():
            res = {}

            def run(t, refresh=False):
                def f():
                    if refresh:
                        cur.execute(f"REFRESH TABLE {t}")
                    secs, rows = timed(cur, q.format(t=t))
                    if qname == "scan_all":
                        assert abs(float(rows[0][0]) - expected) < 1e-6 * expected, rows
                    return secs
                return f

            if qname != "scan_all" or args.s3_scan:
                res["s3_cold"] = median_of(args.runs, run("s3", refresh=True))
                res["s3_warm"] = median_of(args.runs, run("s3"))
                res["s3_ttl0"] = median_of(args.runs, run("s3_ttl0"))
            res["local"] = median_of(args.runs, run("local"))

            def duck():
                sql = q.format(t=ddb_from).replace("part = '042'", "part = 42")
                t0 = time.perf_counter()
                ddb.sql(sql).fetchall()
                return time.perf_counter() - t0
            res["duckdb_local"] = median_of(args.runs, duck)
            report["queries"][qname] = res
            log(f"{qname}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in res.items()))

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        cols = list(next(iter(report["queries"].values())).keys())
        lines = [
            f"{n:,} Parquet files in 100 hive partitions; median of {args.runs} runs after a warm-up (ms). "
            "s3_cold lists the prefix again (REFRESH TABLE before each run); s3_warm uses the listing cache; "
            "s3_ttl0 is a table that lists on every query.",
            "",
            "| query | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        for qname, res in report["queries"].items():
            lines.append(f"| {qname} | " + " | ".join(f"{res[c] * 1000:.0f}" if c in res else "–" for c in cols) + " |")
        lines.append("")
        lines.append("CREATE EXTERNAL TABLE: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in report["create_s"].items()))
        (out / "listing.md").write_text("\n".join(lines) + "\n")
        (out / "listing.json").write_text(json.dumps(report, indent=2))
        print("\n".join(lines))
        lw.terminate()
        s3.stdin.close()
        s3.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
