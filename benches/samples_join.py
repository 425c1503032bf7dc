#!/usr/bin/env python3
"""The samples join, side by side: Lakewave (lake Parquet joined with a MySQL
table, through the MySQL wire), Lakewave with both tables loaded into its
in-memory secondary engine (RAPID), DuckDB (the same Parquet files and the
asset table exported to CSV), DuckDB on in-memory tables, and MariaDB alone
(the sensor rows loaded into InnoDB).

Every system answers the same queries; answers are checked against each
other before any time counts. Runs are interleaved per query (system A, B, C,
A, B, C, ...) so machine drift hits all alike; the report gives the median of
the timed runs and each system's ratio to Lakewave.

    python3 benches/samples_join.py --lakewave target/release/lakewave --rows 10000000

Needs: PyMySQL and duckdb (pip), mariadb-server (Lakewave manages a private
instance). Build Lakewave in release mode first; debug timings mean nothing.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pymysql

QUERIES = {
    "join_group": (
        "SELECT a.site, s.day, COUNT(*) AS readings, "
        "SUM(CASE WHEN s.machine_failure THEN 1 ELSE 0 END) AS failures "
        "FROM sensors s JOIN assets a ON a.asset_id = s.asset_id "
        "GROUP BY a.site, s.day ORDER BY a.site, s.day"
    ),
    "join_filtered": (
        "SELECT a.line, COUNT(*) AS readings, ROUND(AVG(s.torque_nm), 3) AS torque "
        "FROM sensors s JOIN assets a ON a.asset_id = s.asset_id "
        "WHERE a.asset_type = 'PRESS' AND s.rotation_speed_rpm > 1500 "
        "GROUP BY a.line ORDER BY a.line"
    ),
    "failures_by_type": (
        "SELECT a.asset_type, a.site, SUM(CASE WHEN s.twf THEN 1 ELSE 0 END) AS twf, "
        "SUM(CASE WHEN s.osf THEN 1 ELSE 0 END) AS osf, MAX(s.tool_wear_min) AS max_wear "
        "FROM sensors s JOIN assets a ON a.asset_id = s.asset_id "
        "WHERE a.commissioned < '2020-01-01' GROUP BY a.asset_type, a.site ORDER BY a.asset_type, a.site"
    ),
}

ASSETS_DDL = (
    "CREATE TABLE assets (asset_id INT PRIMARY KEY, asset_type VARCHAR(16), site VARCHAR(32), "
    "line VARCHAR(8), commissioned DATE)"
)
SENSORS_DDL = (
    "CREATE TABLE sensors (asset_id INT NOT NULL, day CHAR(10) NOT NULL, rotation_speed_rpm INT, "
    "torque_nm DOUBLE, tool_wear_min INT, machine_failure TINYINT, twf TINYINT, osf TINYINT) ENGINE=InnoDB"
)
SENSOR_COLUMNS = "asset_id, day, rotation_speed_rpm, torque_nm, tool_wear_min, machine_failure, twf, osf"
# The same columns as DuckDB exports them (booleans as 0/1).
EXPORT_SELECT = "asset_id, day, rotation_speed_rpm, torque_nm, tool_wear_min, machine_failure::INT, twf::INT, osf::INT"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def normalise(rows):
    """Rows as comparable tuples: text for keys, floats rounded."""
    out = []
    for row in rows:
        vals = []
        for v in row:
            if v is None:
                vals.append(None)
            elif isinstance(v, bool):
                vals.append(int(v))
            elif isinstance(v, (int,)):
                vals.append(v)
            elif isinstance(v, float) or type(v).__name__ == "Decimal":
                vals.append(round(float(v), 2))
            else:
                vals.append(str(v))
        out.append(tuple(vals))
    return out


def start_lakewave(binary, data_dir, no_mysql=False):
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"] + (["--no-mysql"] if no_mysql else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "info"},
    )
    lake_port = mysql_port = None
    for line in proc.stdout:
        m = re.search(r"managed MySQL server ready on 127\.0\.0\.1:(\d+)", line)
        if m:
            mysql_port = int(m.group(1))
        m = re.search(r"Lakewave listening on [\d.]+:(\d+)", line)
        if m:
            lake_port = int(m.group(1))
            break
    if lake_port is None or (mysql_port is None and not no_mysql):
        proc.kill()
        raise SystemExit("Lakewave did not start with a managed MariaDB (is mariadb-server installed?)")
    return proc, lake_port, mysql_port


def load_innodb(cur, duck, table, ddl, select, work):
    """Creates `table` (columns `ddl`) in InnoDB through the MySQL cursor
    `cur` and fills it with the rows of a DuckDB query (run on `duck`),
    exported as tab-separated text and read with LOAD DATA LOCAL INFILE;
    returns the load's seconds."""
    export = Path(work) / f"{table}.tsv"
    duck.execute(f"COPY ({select}) TO '{export}' (HEADER false, DELIMITER '\t', NULLSTR '\\N')")
    cur.execute(f"CREATE TABLE {table} ({ddl}) ENGINE=InnoDB")
    t = time.perf_counter()
    cur.execute(f"LOAD DATA LOCAL INFILE '{export}' INTO TABLE {table}")
    export.unlink()
    return time.perf_counter() - t


def connect(port, db=None):
    return pymysql.connect(host="127.0.0.1", port=port, user="root", password="", database=db,
                           local_infile=True, autocommit=True)


def interleaved(systems, sql, runs):
    """Runs `sql` `runs` times on each system, the systems taking turns so
    machine drift hits all alike; returns the medians and all times (s).
    Each round starts one system further on, so no system always runs
    right after the same other one (a slow MariaDB query leaves the disk
    and its background threads busy for whatever runs next)."""
    times = {s: [] for s in systems}
    names = list(systems)
    for r in range(runs):
        start = r % len(names)
        for name in names[start:] + names[:start]:
            t = time.perf_counter()
            systems[name](sql)
            times[name].append(time.perf_counter() - t)
    return {s: statistics.median(v) for s, v in times.items()}, times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lakewave", required=True, help="path to a release build of the lakewave binary")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query and system (after one warm-up)")
    ap.add_argument("--work", help="working directory (kept; sample data is reused when present)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="where the Markdown and JSON reports go")
    ap.add_argument("--skip-mariadb", action="store_true", help="leave MariaDB alone out (loading it takes minutes)")
    ap.add_argument("--skip-rapid", action="store_true", help="leave out Lakewave's in-memory secondary engine and DuckDB's in-memory tables")
    args = ap.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="lakewave-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    samples = work / f"samples-{args.rows}"
    if not (samples / "_SUCCESS").exists():
        log(f"generating {args.rows} sensor rows in {samples}")
        subprocess.run([args.lakewave, "samples", "--out", str(samples), "--rows", str(args.rows)], check=True)
    parquet = samples / "sensors" / "parquet"
    assets_csv = samples / "assets.csv"

    data_dir = work / "lakewave-data"
    if data_dir.exists():
        subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    proc, lake_port, mysql_port = start_lakewave(args.lakewave, data_dir)
    try:
        lw = connect(lake_port)
        cur = lw.cursor()
        # This session reads in place even once the tables are loaded.
        cur.execute("SET use_secondary_engine = OFF")
        cur.execute("CREATE DATABASE bench")
        cur.execute("USE bench")
        cur.execute(f"CREATE EXTERNAL TABLE sensors STORED AS PARQUET LOCATION '{parquet}/'")
        cur.execute(ASSETS_DDL)
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{assets_csv}' INTO TABLE assets "
            "FIELDS TERMINATED BY ',' IGNORE 1 LINES"
        )
        cur.execute("SELECT COUNT(*) FROM assets")
        assets = cur.fetchone()[0]
        log(f"Lakewave: sensors on the lake, {assets} assets in MySQL (through LOAD DATA LOCAL INFILE)")

        duck = duckdb.connect()
        duck.execute(
            f"CREATE VIEW sensors AS SELECT * FROM read_parquet('{parquet}/*/*.parquet', hive_partitioning = true, "
            "hive_types = {'day': VARCHAR})"
        )
        duck.execute(f"CREATE TABLE assets AS SELECT * FROM read_csv('{assets_csv}', header = true)")

        systems = {
            "lakewave": lambda q: run_mysql(lw, q),
            "duckdb": lambda q: duck.execute(q).fetchall(),
        }
        if not args.skip_rapid:
            lr = connect(lake_port, "bench")
            rc = lr.cursor()
            rc.execute("SET use_secondary_engine = FORCED")
            # Bulk loads on MariaDB (the InnoDB copy below) must stream past
            # change capture before reads of the loaded MySQL table proceed.
            rc.execute("SET rapid_sync_wait_ms = 120000")
            for table in ("sensors", "assets"):
                t = time.perf_counter()
                rc.execute(f"ALTER TABLE {table} SECONDARY_ENGINE = RAPID")
                rc.execute(f"ALTER TABLE {table} SECONDARY_LOAD")
                log(f"Lakewave RAPID: {table} loaded in {time.perf_counter() - t:.1f} s")
            rc.execute("SELECT NROWS, SIZE_BYTES FROM performance_schema.rpd_tables")
            log(f"Lakewave RAPID: rows and bytes per table {rc.fetchall()}")
            systems["lakewave_rapid"] = lambda q: run_mysql(lr, q)
            duck_mem = duckdb.connect()
            duck_mem.execute(
                f"CREATE TABLE sensors AS SELECT * FROM read_parquet('{parquet}/*/*.parquet', hive_partitioning = true, "
                "hive_types = {'day': VARCHAR})"
            )
            duck_mem.execute(f"CREATE TABLE assets AS SELECT * FROM read_csv('{assets_csv}', header = true)")
            systems["duckdb_memory"] = lambda q: duck_mem.execute(q).fetchall()
        if not args.skip_mariadb:
            export = work / "sensors.tsv"
            log("exporting sensor rows for MariaDB (DuckDB writes the CSV)")
            duck.execute(
                f"COPY (SELECT {EXPORT_SELECT} FROM sensors) TO '{export}' (HEADER false, DELIMITER '\t', NULLSTR '\\N')"
            )
            my = connect(mysql_port, "bench")
            mc = my.cursor()
            mc.execute("DROP TABLE IF EXISTS sensors")
            mc.execute(SENSORS_DDL)
            t = time.perf_counter()
            mc.execute(f"LOAD DATA LOCAL INFILE '{export}' INTO TABLE sensors ({SENSOR_COLUMNS})")
            mc.execute("SELECT COUNT(*) FROM sensors")
            loaded = mc.fetchone()[0]
            log(f"MariaDB: {loaded} sensor rows loaded into InnoDB in {time.perf_counter() - t:.0f} s")
            mc.execute("ANALYZE TABLE sensors, assets")
            mc.fetchall()
            systems["mariadb"] = lambda q: run_mysql(my, q)

        report = {"rows": args.rows, "runs": args.runs, "queries": {}}
        for name, sql in QUERIES.items():
            answers = {}
            for sys_name, run in systems.items():
                answers[sys_name] = normalise(run(sql))  # warm-up, and the answer to check
            reference = answers["lakewave"]
            for sys_name, ans in answers.items():
                if ans != reference:
                    raise SystemExit(f"{name}: {sys_name} answers differently from Lakewave:\n{ans[:5]}\nvs\n{reference[:5]}")
            med, times = interleaved(systems, sql, args.runs)
            report["queries"][name] = {"sql": sql, "rows": len(reference), "median_s": med, "all_s": times}
            log(f"{name}: " + ", ".join(f"{s} {m * 1000:.0f} ms" for s, m in med.items()))
        write_report(report, Path(args.out))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run_mysql(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


def write_report(report, out):
    out.mkdir(parents=True, exist_ok=True)
    systems = list(next(iter(report["queries"].values()))["median_s"].keys())
    lines = [
        f"Samples join at {report['rows']:,} sensor rows; median of {report['runs']} runs after a warm-up; "
        "ratio = system time / Lakewave time.",
        "",
        "| query | " + " | ".join(f"{s} (ms)" for s in systems) + " | " + " | ".join(f"{s} / lakewave" for s in systems if s != "lakewave") + " |",
        "|---" * (1 + 2 * len(systems) - 1) + "|",
    ]
    for name, q in report["queries"].items():
        med = q["median_s"]
        base = med["lakewave"]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{med[s] * 1000:.0f}" for s in systems)
            + " | "
            + " | ".join(f"{med[s] / base:.2f}" for s in systems if s != "lakewave")
            + " |"
        )
    text = "\n".join(lines) + "\n"
    (out / "samples_join.md").write_text(text)
    (out / "samples_join.json").write_text(json.dumps(report, indent=2))
    print(text)


if __name__ == "__main__":
    main()
