#!/usr/bin/env python3
"""End-to-end check of Lakewave through PyMySQL.

Usage: pymysql_check.py HOST PORT [FIXTURES_DIR]

Expects database `samples` (the 2000-row sample data set) and table
`fixtures.all_types` (tests/src/fixtures.rs) to be registered. Exits non-zero
with a message on the first mismatch.
"""

import sys
import traceback
from datetime import date, datetime, timedelta
from decimal import Decimal

import pymysql

from expected import ASSET_TYPES, COLUMNS, EXPECTED_ALL_TYPES, SAMPLE_ROWS, SAMPLE_TABLES, check_row  # noqa: E402


def connect(host, port, **extra):
    return pymysql.connect(host=host, port=port, user="root", password="", charset="utf8mb4", **extra)


def query(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def check_samples(conn):
    query(conn, "USE samples")
    tables = sorted(r[0] for r in query(conn, "SHOW TABLES"))
    assert tables == SAMPLE_TABLES, f"SHOW TABLES in samples: {tables}"

    counts = dict(query(
        conn,
        "SELECT 'parquet' AS format, COUNT(*) AS row_count FROM sensors "
        "UNION ALL SELECT 'csv', COUNT(*) FROM sensors_csv "
        "UNION ALL SELECT 'csv.gz', COUNT(*) FROM sensors_csv_gz "
        "UNION ALL SELECT 'json', COUNT(*) FROM sensors_json "
        "UNION ALL SELECT 'avro', COUNT(*) FROM sensors_avro",
    ))
    assert counts == {f: SAMPLE_ROWS for f in ["parquet", "csv", "csv.gz", "json", "avro"]}, f"row counts per format: {counts}"

    breakdown = query(
        conn,
        "SELECT COUNT(*) AS readings, "
        "SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS any_failure, "
        "SUM(CASE WHEN twf THEN 1 ELSE 0 END), SUM(CASE WHEN hdf THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN pwf THEN 1 ELSE 0 END), SUM(CASE WHEN osf THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN rnf THEN 1 ELSE 0 END) FROM sensors",
    )
    assert len(breakdown) == 1, f"failure breakdown: {breakdown}"
    readings, any_failure, *modes = breakdown[0]
    assert readings == SAMPLE_ROWS, f"failure breakdown readings: {readings}"
    assert 0 < any_failure < readings, f"failure breakdown any_failure: {any_failure}"
    assert any_failure <= sum(modes), f"every failure has a mode: {breakdown[0]}"

    # Failures per machine type: the same answer from every format.
    per_type_sql = (
        "SELECT asset_type, COUNT(*) AS readings, "
        "SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures "
        "FROM {} GROUP BY asset_type ORDER BY asset_type"
    )
    per_type = query(conn, per_type_sql.format("sensors"))
    assert [r[0] for r in per_type] == ASSET_TYPES, f"asset types: {per_type}"
    assert sum(r[1] for r in per_type) == SAMPLE_ROWS, f"readings per type: {per_type}"
    assert sum(r[2] for r in per_type) == any_failure, f"failures per type {per_type} vs total {any_failure}"
    for table in ["sensors_csv", "sensors_csv_gz", "sensors_json", "sensors_avro"]:
        other = query(conn, per_type_sql.format(table))
        assert other == per_type, f"failures per type differ: {table} {other} vs sensors {per_type}"

    # Per day and type adds up to the totals.
    per_day = query(
        conn,
        "SELECT day, asset_type, COUNT(*) AS readings, "
        "SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures "
        "FROM sensors GROUP BY day, asset_type ORDER BY day, asset_type",
    )
    assert sum(r[2] for r in per_day) == SAMPLE_ROWS, f"readings per day/type: {per_day}"
    assert sum(r[3] for r in per_day) == any_failure, f"failures per day/type: {per_day}"
    assert sorted({str(r[0]) for r in per_day}) == [f"2026-01-0{d}" for d in range(1, 8)], f"days: {per_day}"

    # Top machines by tool wear, joined with the CSV asset table.
    top = query(
        conn,
        "SELECT s.asset_id, s.asset_type, a.site, a.line, MAX(s.tool_wear_min) AS max_wear "
        "FROM sensors s JOIN assets_csv a ON a.asset_id = s.asset_id "
        "GROUP BY s.asset_id, s.asset_type, a.site, a.line "
        "ORDER BY max_wear DESC, s.asset_id LIMIT 10",
    )
    assert len(top) == 10, f"top machines: {top}"
    wear = [r[4] for r in top]
    assert wear == sorted(wear, reverse=True), f"top machines not ordered by wear: {top}"
    assert all(r[1] in ASSET_TYPES and r[2] for r in top), f"top machines: {top}"

    # The power rule recomputed from the raw columns matches the flag.
    mismatches = query(
        conn,
        "SELECT SUM(CASE WHEN torque_nm IS NOT NULL AND pwf <> "
        "(torque_nm * rotation_speed_rpm * 2 * pi() / 60 NOT BETWEEN 3500 AND 9000) "
        "THEN 1 ELSE 0 END) FROM sensors",
    )
    assert mismatches == [(0,)], f"power rule mismatches: {mismatches}"

    # Partition filter with a client-side parameter.
    day_count = query(conn, "SELECT COUNT(*) FROM sensors WHERE day = %s", ("2026-01-03",))[0][0]
    day_rows = {str(r[0]): 0 for r in per_day}
    for r in per_day:
        day_rows[str(r[0])] += r[2]
    assert day_count == day_rows["2026-01-03"], f"day 2026-01-03: {day_count} vs {day_rows}"


def check_all_types(conn):
    rows = query(conn, "SELECT " + ", ".join(COLUMNS) + " FROM fixtures.all_types ORDER BY id")
    assert len(rows) == 3, f"all_types rows: {rows!r}"
    for got, expected in zip(rows, EXPECTED_ALL_TYPES):
        check_row(f"all_types id {expected[0]}", got, expected)
    # SELECT * gives the same columns in the same order.
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM fixtures.all_types ORDER BY id")
        names = [d[0] for d in cur.description]
        assert names == COLUMNS, f"SELECT * column names: {names}"
        assert list(cur.fetchall()) == rows, "SELECT * differs from the explicit column list"


def check_parameters(conn):
    got = query(conn, "SELECT s FROM fixtures.all_types WHERE id = %s", (1,))
    assert got == [("héllo, wörld",)], f"parameterized by id: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE s = %s", ("héllo, wörld",))
    assert got == [(1,)], f"parameterized by unicode string: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE u64 = %s", (18446744073709551615,))
    assert got == [(1,)], f"parameterized by max unsigned: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE b = %s", (b"\x00\x01\xff",))
    assert got == [(1,)], f"parameterized by bytes: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE d = %s AND ts = %s",
                (date(2026, 1, 31), datetime(2026, 1, 31, 23, 59, 58, 123456)))
    assert got == [(1,)], f"parameterized by date and datetime: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE id IN %s ORDER BY id", ((2, 3),))
    assert got == [(2,), (3,)], f"parameterized IN list: {got!r}"


def check_arithmetic(conn):
    """MySQL's quotients arrive typed as DECIMALs (the column definitions
    agree with the values), in the text and the binary protocol."""
    sql = "SELECT 1/3, 2/3*100, AVG(id), SUM(id)/COUNT(*), 7 DIV 2, 7/0 FROM fixtures.all_types"
    got = query(conn, sql)
    expected = [(Decimal("0.3333"), Decimal("66.6667"), Decimal("2.0000"), Decimal("2.0000"), 3, None)]
    assert got == expected, f"quotients: {got!r}"


def expect_error(conn, sql, errno, sqlstate, exc_class):
    try:
        query(conn, sql)
    except pymysql.MySQLError as e:
        assert isinstance(e, exc_class), f"{sql!r}: {type(e).__name__}, expected {exc_class.__name__}"
        code = e.args[0] if e.args else None
        assert code == errno, f"{sql!r}: error {e!r}, expected errno {errno}"
        message = e.args[1] if len(e.args) > 1 else ""
        assert message, f"{sql!r}: error without a message: {e!r}"
        print(f"  {sql!r} -> {type(e).__name__} {code}: {message}")
    else:
        raise AssertionError(f"{sql!r} succeeded, expected error {errno} ({sqlstate})")
    assert query(conn, "SELECT 1") == [(1,)], f"connection unusable after {sql!r}"


def check_errors(conn):
    # PyMySQL does not expose the SQLSTATE; it maps the errno to a class.
    expect_error(conn, "SELECT * FROM fixtures.nosuch", 1146, "42S02", pymysql.err.ProgrammingError)
    expect_error(conn, "SELEC 1", 1064, "42000", pymysql.err.ProgrammingError)
    expect_error(conn, "SELECT nosuch_column FROM fixtures.all_types", 1054, "42S22", pymysql.err.OperationalError)


def check_connection(host, port):
    conn = connect(host, port)
    try:
        version = query(conn, "SELECT VERSION()")[0][0]
        print(f"connected to {host}:{port}, server {conn.get_server_info()!r}, VERSION() {version!r}")
        assert conn.get_server_info(), "empty server version"
        assert query(conn, "SELECT 1") == [(1,)], "SELECT 1"
        conn.ping(reconnect=False)
    finally:
        conn.close()
    # A connection that names the database up front.
    with connect(host, port, database="fixtures") as conn:
        got = query(conn, "SELECT COUNT(*) FROM all_types")
        assert got == [(3,)], f"count in the default database: {got}"


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    failures = []

    def section(name, check, with_conn=True):
        """Runs one group of checks on a fresh connection; later groups still run after a failure."""
        try:
            if not with_conn:
                check(host, port)
            else:
                with connect(host, port) as conn:
                    check(conn)
            print(f"{name} ok")
        except Exception:  # noqa: BLE001 - every failure is reported
            print(f"{name} FAILED:")
            traceback.print_exc(file=sys.stdout)
            failures.append(f"{name}: {traceback.format_exc(limit=0).strip()}")

    section("connection", check_connection, with_conn=False)
    section("samples", check_samples)
    section("all_types", check_all_types)
    section("parameters", check_parameters)
    section("arithmetic", check_arithmetic)
    section("errors", check_errors)
    if failures:
        print("pymysql check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("pymysql: all checks passed")


if __name__ == "__main__":
    main()
