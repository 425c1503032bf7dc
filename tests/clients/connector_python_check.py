#!/usr/bin/env python3
"""End-to-end check of Lakewave through MySQL Connector/Python (pure Python).

Usage: connector_python_check.py HOST PORT [FIXTURES_DIR]

Expects database `samples` (the 2000-row sample data set) and table
`fixtures.all_types` (tests/src/fixtures.rs) to be registered. Exits non-zero
with a message on the first mismatch.
"""

import sys
import traceback
from datetime import date, datetime, timedelta
from decimal import Decimal

import mysql.connector
from mysql.connector import errorcode

from expected import ASSET_TYPES, COLUMNS, EXPECTED_ALL_TYPES, SAMPLE_ROWS, SAMPLE_TABLES, check_row  # noqa: E402


def query(conn, sql, args=None, prepared=False):
    cur = conn.cursor(prepared=prepared)
    try:
        cur.execute(sql, args)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def check_samples(conn):
    query(conn, "USE samples")
    assert conn.database == "samples", f"current database after USE: {conn.database!r}"
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

    total_failures = query(conn, "SELECT COUNT(*) FROM sensors WHERE machine_failure")[0][0]
    assert 0 < total_failures < SAMPLE_ROWS, f"failures: {total_failures}"

    per_type_sql = (
        "SELECT asset_type, COUNT(*) AS readings, "
        "SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures, "
        "ROUND(100.0 * SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) / COUNT(*), 2) AS failure_pct "
        "FROM {} GROUP BY asset_type ORDER BY asset_type"
    )
    per_type = query(conn, per_type_sql.format("sensors"))
    assert [r[0] for r in per_type] == ASSET_TYPES, f"asset types: {per_type}"
    assert sum(r[1] for r in per_type) == SAMPLE_ROWS, f"readings per type: {per_type}"
    assert sum(r[2] for r in per_type) == total_failures, f"failures per type {per_type} vs total {total_failures}"
    for asset_type, readings, failures, pct in per_type:
        # 100.0 is an exact DECIMAL literal in MySQL, so the percentage is one.
        assert isinstance(pct, Decimal), f"failure_pct of {asset_type} is {type(pct).__name__}, not DECIMAL"
        assert abs(float(pct) - round(100.0 * failures / readings, 2)) < 1e-9, f"failure_pct of {asset_type}: {pct}"
    for table in ["sensors_csv", "sensors_csv_gz", "sensors_json", "sensors_avro"]:
        other = query(conn, per_type_sql.format(table))
        assert other == per_type, f"failures per type differ: {table} {other} vs sensors {per_type}"

    # The same per-type numbers through a server-side prepared statement.
    for asset_type, readings, failures, _ in per_type:
        got = query(
            conn,
            "SELECT COUNT(*), SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) FROM sensors WHERE asset_type = ?",
            (asset_type,),
            prepared=True,
        )
        assert got == [(readings, failures)], f"prepared count for {asset_type}: {got} vs {(readings, failures)}"

    # Hourly averages on one day: only that partition, 24 hours.
    hourly = query(
        conn,
        "SELECT date_trunc('hour', ts) AS hour, COUNT(*) AS readings "
        "FROM sensors WHERE day = '2026-01-03' GROUP BY date_trunc('hour', ts) ORDER BY hour",
    )
    day_count = query(conn, "SELECT COUNT(*) FROM sensors WHERE day = %s", ("2026-01-03",))[0][0]
    assert len(hourly) == 24, f"hours on 2026-01-03: {hourly}"
    assert sum(r[1] for r in hourly) == day_count, f"hourly readings {hourly} vs day count {day_count}"

    mismatches = query(
        conn,
        "SELECT SUM(CASE WHEN torque_nm IS NOT NULL AND pwf <> "
        "(torque_nm * rotation_speed_rpm * 2 * pi() / 60 NOT BETWEEN 3500 AND 9000) "
        "THEN 1 ELSE 0 END) FROM sensors",
    )
    assert mismatches == [(0,)], f"power rule mismatches: {mismatches}"


def check_all_types(conn, prepared):
    how = "prepared" if prepared else "text"
    sql = "SELECT " + ", ".join(COLUMNS) + " FROM fixtures.all_types"
    if prepared:
        rows = query(conn, sql + " WHERE id >= ? ORDER BY id", (0,), prepared=True)
    else:
        rows = query(conn, sql + " ORDER BY id")
    assert len(rows) == 3, f"all_types rows ({how}): {rows!r}"
    for got, expected in zip(rows, EXPECTED_ALL_TYPES):
        check_row(f"all_types id {expected[0]} ({how} protocol)", got, expected)


def check_parameters(conn):
    # Client-side interpolation.
    got = query(conn, "SELECT s FROM fixtures.all_types WHERE id = %s", (1,))
    assert got == [("héllo, wörld",)], f"parameterized by id: {got!r}"
    # Server-side prepared statements, with both placeholder styles.
    for sql in ["SELECT s FROM fixtures.all_types WHERE id = ?", "SELECT s FROM fixtures.all_types WHERE id = %s"]:
        got = query(conn, sql, (1,), prepared=True)
        assert got == [("héllo, wörld",)], f"prepared {sql!r}: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE s = ?", ("héllo, wörld",), prepared=True)
    assert got == [(1,)], f"prepared by unicode string: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE u64 = ?", (18446744073709551615,), prepared=True)
    assert got == [(1,)], f"prepared by max unsigned: {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE d = ? AND dec = ?",
                (date(2026, 1, 31), Decimal("12345.678")), prepared=True)
    assert got == [(1,)], f"prepared by date and decimal: {got!r}"
    got = query(conn, "SELECT COUNT(*) FROM fixtures.all_types WHERE i8 = ?", (None,), prepared=True)
    assert got == [(0,)], f"prepared with a NULL parameter: {got!r}"

    # One statement executed several times.
    cur = conn.cursor(prepared=True)
    try:
        for i, expected in [(3, ""), (1, "héllo, wörld"), (2, None)]:
            cur.execute("SELECT s FROM fixtures.all_types WHERE id = ?", (i,))
            got = cur.fetchall()
            assert got == [(expected,)], f"re-executed prepared statement with id {i}: {got!r}"
    finally:
        cur.close()


def expect_error(conn, sql, errno, sqlstate, prepared=False):
    try:
        query(conn, sql, prepared=prepared)
    except mysql.connector.Error as e:
        assert e.errno == errno, f"{sql!r}: {e!r}, expected errno {errno}"
        assert e.sqlstate == sqlstate, f"{sql!r}: {e!r}, expected SQLSTATE {sqlstate}"
        assert e.msg, f"{sql!r}: error without a message: {e!r}"
        print(f"  {sql!r}{' (prepared)' if prepared else ''} -> {type(e).__name__} {e.errno} ({e.sqlstate}): {e.msg}")
    else:
        raise AssertionError(f"{sql!r} succeeded, expected error {errno} ({sqlstate})")
    assert query(conn, "SELECT 1") == [(1,)], f"connection unusable after {sql!r}"


def check_errors(conn):
    expect_error(conn, "SELECT * FROM fixtures.nosuch", errorcode.ER_NO_SUCH_TABLE, "42S02")
    expect_error(conn, "SELEC 1", errorcode.ER_PARSE_ERROR, "42000")
    expect_error(conn, "SELECT nosuch_column FROM fixtures.all_types", errorcode.ER_BAD_FIELD_ERROR, "42S22")
    expect_error(conn, "SELECT * FROM fixtures.nosuch WHERE id = ?", errorcode.ER_NO_SUCH_TABLE, "42S02", prepared=True)
    assert errorcode.ER_NO_SUCH_TABLE == 1146 and errorcode.ER_PARSE_ERROR == 1064


def check_binary_parameter(conn):
    """A bytes parameter that is not valid UTF-8, through both interpolation and COM_STMT_EXECUTE."""
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE b = %s", (b"\x00\x01\xff",))
    assert got == [(1,)], f"interpolated bytes parameter b'\\x00\\x01\\xff': {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE b = ?", (b"\x00\x01\xff",), prepared=True)
    assert got == [(1,)], f"prepared bytes parameter b'\\x00\\x01\\xff': {got!r}"
    got = query(conn, "SELECT id FROM fixtures.all_types WHERE b = ?", (b"",), prepared=True)
    assert got == [(3,)], f"prepared empty bytes parameter: {got!r}"


def check_default_connection(host, port):
    """As a user would connect: no TLS or implementation options at all."""
    plain = mysql.connector.connect(host=host, port=port, user="root", password="")
    try:
        assert plain.is_connected(), "default connection not connected"
        assert query(plain, "SELECT 1") == [(1,)], "SELECT 1 on the default connection"
        got = query(plain, "SELECT id FROM fixtures.all_types WHERE id = 3")
        assert got == [(3,)], f"default connection: {got!r}"
        print(f"default connection: server {getattr(plain, 'server_info', None)!r}")
    finally:
        plain.close()


def check_connection_features(host, port):
    conn = connect(host, port)
    try:
        conn.ping(reconnect=False)
        conn.cmd_reset_connection()
        assert query(conn, "SELECT 1") == [(1,)], "SELECT 1 after COM_RESET_CONNECTION"
    finally:
        conn.close()
    # A connection that names the database up front.
    conn = connect(host, port, database="fixtures")
    try:
        assert conn.database == "fixtures", f"database: {conn.database!r}"
        got = query(conn, "SELECT COUNT(*) FROM all_types")
        assert got == [(3,)], f"count in the default database: {got}"
    finally:
        conn.close()


def connect(host, port, **extra):
    return mysql.connector.connect(
        host=host, port=port, user="root", password="", use_pure=True, ssl_disabled=True, charset="utf8mb4", **extra,
    )


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    failures = []

    def section(name, check, with_conn=True):
        """Runs one group of checks on a fresh connection; later groups still run after a failure."""
        try:
            if not with_conn:
                check(host, port)
            else:
                conn = connect(host, port)
                try:
                    check(conn)
                finally:
                    conn.close()
            print(f"{name} ok")
        except Exception:  # noqa: BLE001 - every failure is reported
            print(f"{name} FAILED:")
            traceback.print_exc(file=sys.stdout)
            failures.append(f"{name}: {traceback.format_exc(limit=0).strip()}")

    section("default connection", check_default_connection, with_conn=False)
    section("connection features", check_connection_features, with_conn=False)
    section("samples", check_samples)
    section("all_types (text protocol)", lambda c: check_all_types(c, prepared=False))
    section("all_types (binary protocol)", lambda c: check_all_types(c, prepared=True))
    section("parameters", check_parameters)
    section("errors", check_errors)
    section("binary parameter", check_binary_parameter)
    if failures:
        print("mysql-connector-python check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("mysql-connector-python: all checks passed")


if __name__ == "__main__":
    main()
