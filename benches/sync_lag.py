#!/usr/bin/env python3
"""Change-propagation lag of the secondary engine: how long after a MySQL
commit an offloaded query sees it.

A table of 10,000 rows in the managed MariaDB is loaded into Lakewave's
in-memory secondary engine (RAPID). A writer commits on MariaDB directly (as
any application would) at a target rate of row changes per second, in
transactions every 10 ms, each stamping its rows with an increasing sequence
number. A reader polls `SELECT MAX(seq)` through Lakewave with
`use_secondary_engine = FORCED` (the answer must come from the copy) and
`rapid_sync_wait_ms = 0` (read the copy as it is, no read-your-writes wait);
a transaction's lag is the time from its COMMIT returning to the first poll
that sees its sequence number.

    python3 benches/sync_lag.py --lakewave target/release/lakewave --rates 1000,10000 --seconds 20

Writes benches/results/sync_lag.md and .json.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path


from samples_join import connect, log, start_lakewave

ROWS = 10_000


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def measure(lake_port, mysql_port, rate, seconds):
    per_tx = max(1, rate // 100)
    committed = {}
    seen = {}
    stop = threading.Event()
    first = [None]

    def writer():
        my = connect(mysql_port, "lag")
        cur = my.cursor()
        cur.execute("SELECT MAX(seq) FROM t")
        seq = int(cur.fetchone()[0] or 0)
        first[0] = seq + 1
        my.autocommit(False)
        next_at = time.perf_counter()
        start = 0
        while not stop.is_set():
            seq += 1
            lo = start % ROWS
            hi = lo + per_tx - 1
            start += per_tx
            cur.execute(f"UPDATE t SET seq = {seq}, v = v + 1 WHERE id BETWEEN {lo} AND {hi}")
            if hi >= ROWS:
                cur.execute(f"UPDATE t SET seq = {seq}, v = v + 1 WHERE id BETWEEN 0 AND {hi - ROWS}")
            my.commit()
            committed[seq] = time.perf_counter()
            next_at += 0.01
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def reader():
        lw = connect(lake_port, "lag")
        cur = lw.cursor()
        cur.execute("SET use_secondary_engine = FORCED")
        cur.execute("SET rapid_sync_wait_ms = 0")
        while first[0] is None:
            time.sleep(0.001)
        last = first[0] - 1
        while not stop.is_set():
            cur.execute("SELECT MAX(seq) FROM t")
            m = int(cur.fetchone()[0] or 0)
            now = time.perf_counter()
            for s in range(last + 1, m + 1):
                seen[s] = now
            last = max(last, m)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    lags = [(seen[s] - committed[s]) * 1000 for s in committed if s in seen and seen[s] >= committed[s] - 0.0005]
    achieved = len(committed) * per_tx / seconds
    return {
        "target_rows_per_s": rate,
        "achieved_rows_per_s": round(achieved),
        "transactions": len(committed),
        "measured": len(lags),
        "lag_ms_p50": round(statistics.median(lags), 2) if lags else None,
        "lag_ms_p99": round(pct(lags, 99), 2) if lags else None,
        "lag_ms_max": round(max(lags), 2) if lags else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lakewave", required=True)
    ap.add_argument("--rates", default="1000,10000", help="row changes per second, comma-separated")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lakewave-lag-"))
    proc, lake_port, mysql_port = start_lakewave(args.lakewave, work / "data")
    try:
        lw = connect(lake_port)
        cur = lw.cursor()
        cur.execute("CREATE DATABASE lag")
        cur.execute("USE lag")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, seq BIGINT NOT NULL, v INT NOT NULL, pad VARCHAR(40)) SECONDARY_ENGINE = RAPID")
        values = ", ".join(f"({i}, 0, 0, 'row {i}')" for i in range(ROWS))
        cur.execute(f"INSERT INTO t VALUES {values}")
        cur.execute("ALTER TABLE t SECONDARY_LOAD")
        results = []
        for rate in [int(r) for r in args.rates.split(",")]:
            r = measure(lake_port, mysql_port, rate, args.seconds)
            log(f"{rate} row changes/s: {r}")
            results.append(r)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            f"Commit-to-visible lag of the secondary engine ({ROWS:,}-row table, transactions every 10 ms, "
            f"{args.seconds} s per rate; binary: {Path(args.lakewave).name} {'release' if 'release' in args.lakewave else 'debug'}).",
            "",
            "| target rows/s | achieved rows/s | transactions | lag p50 (ms) | lag p99 (ms) | lag max (ms) |",
            "|---|---|---|---|---|---|",
        ]
        for r in results:
            lines.append(
                f"| {r['target_rows_per_s']} | {r['achieved_rows_per_s']} | {r['transactions']} | "
                f"{r['lag_ms_p50']} | {r['lag_ms_p99']} | {r['lag_ms_max']} |"
            )
        text = "\n".join(lines) + "\n"
        (out / "sync_lag.md").write_text(text)
        (out / "sync_lag.json").write_text(json.dumps(results, indent=2))
        print(text)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
