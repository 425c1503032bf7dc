#!/usr/bin/env python3
"""Two builds (or two settings) of Lakewave side by side on TPC-H, through
the wire: an A/B for an engine or build change.

Each side is its own `lakewave serve --no-mysql` over the same Parquet files
(data from `lakewave tpch-data`, as benches/tpch.py makes it), queried with
the Rust client (`lakewave bench-client`). Row counts must agree; each query
runs once per side as a warm-up, then --runs times with the sides taking
turns. Prints per-query medians, the ratio B/A and the geometric mean of the
ratios, and writes them as JSON with --out.

    python3 benches/ab.py --a old/lakewave --b new/lakewave --sf 10 --runs 5
    python3 benches/ab.py --a lakewave --b lakewave --b-env LAKEWAVE_EAGER_AGGREGATION=off --loaded

--loaded loads every table into the in-memory secondary engine on both
sides and times the queries on the loaded copies (use_secondary_engine =
FORCED), after the loads' first checkpoint is written.
"""

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tpch import QUERY_DIR, TABLES, WireClient


class Side:
    def __init__(self, name, binary, env, data, loaded):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"lakewave-ab-{name}-")
        extra = dict(kv.split("=", 1) for kv in env)
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", self.dir, "--listen", "127.0.0.1:0", "--no-mysql"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "info", **extra})
        port = None
        for line in self.proc.stdout:
            m = re.search(r"Lakewave listening on [\d.]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            raise SystemExit(f"side {name}: the server did not start")
        # Keep reading the server's output so its pipe never fills.
        subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)
        setup = WireClient(binary, port, "")
        setup.run("CREATE DATABASE IF NOT EXISTS tpch")
        setup.run("USE tpch")
        for t in TABLES:
            setup.run(f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data}/{t}/'")
        if loaded:
            setup.run("CALL sys.heatwave_load(JSON_ARRAY('tpch'), NULL)")
            started = time.perf_counter()
            while setup.run("SELECT 1 FROM performance_schema.rpd_tables WHERE PERSISTED_TIMESTAMP IS NULL") > 0:
                if time.perf_counter() - started > 600:
                    raise SystemExit(f"side {name}: the loaded tables were not checkpointed within 10 minutes")
                time.sleep(0.5)
        setup.close()
        self.client = WireClient(binary, port, "tpch")
        self.client.run(f"SET use_secondary_engine = {'FORCED' if loaded else 'OFF'}")

    def close(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="lakewave binary of side A")
    ap.add_argument("--b", required=True, help="lakewave binary of side B")
    ap.add_argument("--a-env", action="append", default=[], help="KEY=VALUE for side A's server (repeatable)")
    ap.add_argument("--b-env", action="append", default=[], help="KEY=VALUE for side B's server (repeatable)")
    ap.add_argument("--sf", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,6")
    ap.add_argument("--work", default="/tmp/lakewave-tpch", help="where the TPC-H data is kept")
    ap.add_argument("--loaded", action="store_true", help="time the loaded copies (see above)")
    ap.add_argument("--out", help="JSON file for the results")
    args = ap.parse_args()

    numbers = []
    for part in args.queries.split(","):
        a, _, b = part.partition("-")
        numbers.extend(range(int(a), int(b or a) + 1))
    data = Path(args.work) / f"sf{args.sf:g}"
    subprocess.run([args.a, "tpch-data", "--sf", str(args.sf), "--out", str(data)], check=True)

    sides = [Side("a", args.a, args.a_env, data, args.loaded), Side("b", args.b, args.b_env, data, args.loaded)]
    results = {}
    try:
        for n in numbers:
            name = f"q{n:02d}"
            sql = (QUERY_DIR / f"{name}.sql").read_text()
            rows = [s.client.run(sql) for s in sides]
            if rows[0] != rows[1]:
                raise SystemExit(f"{name}: A returned {rows[0]} rows, B {rows[1]}")
            times = {s.name: [] for s in sides}
            for i in range(args.runs):
                for s in sides if i % 2 == 0 else reversed(sides):
                    t = time.perf_counter()
                    s.client.run(sql)
                    times[s.name].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}
            results[name] = {"median_s": med, "all_s": times, "ratio": med["b"] / med["a"]}
            print(f"{name}: A {med['a'] * 1000:.0f} ms, B {med['b'] * 1000:.0f} ms, B/A {med['b'] / med['a']:.3f}", flush=True)
    finally:
        for s in sides:
            s.close()
    geo = math.exp(sum(math.log(r["ratio"]) for r in results.values()) / len(results))
    print(f"geomean B/A: {geo:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"sf": args.sf, "runs": args.runs, "a": args.a, "b": args.b,
                                              "a_env": args.a_env, "b_env": args.b_env, "loaded": args.loaded, "queries": results,
                                              "geomean_ratio": geo}, indent=1))


if __name__ == "__main__":
    main()
