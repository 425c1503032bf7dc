"""Concurrent bank transfers through Lakewave with PyMySQL.

Usage: python3 bank_pymysql.py HOST PORT

Expects database ``bank`` with ``accounts`` (ids 1..10, 1000.00 each) and an
empty ``transfers`` table. Several threads, each on its own connection, move
money between accounts in explicit transactions (BEGIN ... COMMIT), locking the
two rows with SELECT ... FOR UPDATE sometimes in id order and sometimes in
reverse order so that InnoDB deadlocks happen and are retried. Transfers that
would overdraw the source are rolled back after their writes. A duplicate
transfer id must fail with 1062 / 23000. At the end the invariants are checked
and a summary line is printed; any mismatch exits with status 1.
"""

import random
import sys
import threading
import time
from decimal import Decimal

import pymysql

ACCOUNTS = 10
INITIAL = Decimal("1000.00")
TOTAL = INITIAL * ACCOUNTS
THREADS = 4
TRANSFERS_PER_THREAD = 50
MAX_ATTEMPTS = 100
RETRYABLE = {1213: "deadlock", 1205: "lock wait timeout"}
RETRY_SQLSTATE = {1213: "40001", 1205: "HY000"}

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 3306


class Failure(Exception):
    pass


def check(ok, message):
    if not ok:
        raise Failure(message)


def connect():
    conn = pymysql.connect(
        host=HOST,
        port=PORT,
        user="root",
        password="",
        database="bank",
        autocommit=True,
        connect_timeout=20,
        read_timeout=120,
        write_timeout=120,
    )
    with conn.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 10")
    return conn


def scalar(cur, sql, args=None):
    cur.execute(sql, args)
    row = cur.fetchone()
    check(row is not None, f"no row from {sql}")
    return row[0]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.committed = 0
        self.committed_ids = []
        self.insufficient = 0
        self.retries = {code: 0 for code in RETRYABLE}

    def add(self, other):
        with self.lock:
            self.committed += other.committed
            self.committed_ids.extend(other.committed_ids)
            self.insufficient += other.insufficient
            for code, n in other.retries.items():
                self.retries[code] += n


def attempt(conn, transfer_id, src, dst, amount, reverse):
    """One try of a transfer: 'committed' or 'insufficient'; raises on errors."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        first, second = sorted((src, dst), reverse=reverse)
        balances = {}
        for account in (first, second):
            balances[account] = scalar(cur, "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (account,))
            # Widen the window between the two locks so opposite orders collide.
            time.sleep(random.uniform(0, 0.003))
        check(isinstance(balances[src], Decimal), f"balance is {type(balances[src])}, not Decimal")
        cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, src))
        check(cur.rowcount == 1, f"debit of {src} changed {cur.rowcount} rows")
        cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, dst))
        check(cur.rowcount == 1, f"credit of {dst} changed {cur.rowcount} rows")
        cur.execute(
            "INSERT INTO transfers (id, src, dst, amount) VALUES (%s, %s, %s, %s)",
            (transfer_id, src, dst, amount),
        )
        after = scalar(cur, "SELECT balance FROM accounts WHERE id = %s", (src,))
        check(after == balances[src] - amount, f"account {src}: {after} after debiting {amount} from {balances[src]}")
        if after < 0:
            # Undo the debit, the credit and the transfers row.
            cur.execute("ROLLBACK")
            return "insufficient"
        cur.execute("COMMIT")
        return "committed"


def worker(index, stats, errors):
    rng = random.Random(1000 + index)
    mine = Stats()
    conn = None
    try:
        conn = connect()
        for k in range(TRANSFERS_PER_THREAD):
            transfer_id = (index + 1) * 100000 + k
            src, dst = rng.sample(range(1, ACCOUNTS + 1), 2)
            if k % 10 == 9:
                amount = Decimal("20000.00")  # always more than any balance
            else:
                amount = Decimal(rng.randint(1, 40000)) / 100
            reverse = rng.random() < 0.5
            for n in range(1, MAX_ATTEMPTS + 1):
                try:
                    outcome = attempt(conn, transfer_id, src, dst, amount, reverse)
                    break
                except pymysql.err.MySQLError as e:
                    code = e.args[0] if e.args else None
                    if code not in RETRYABLE:
                        raise
                    check(
                        getattr(e, "sqlstate", None) == RETRY_SQLSTATE[code],
                        f"{RETRYABLE[code]} ({code}) with SQLSTATE {getattr(e, 'sqlstate', None)!r}, "
                        f"expected {RETRY_SQLSTATE[code]!r}",
                    )
                    mine.retries[code] += 1
                    with conn.cursor() as cur:
                        cur.execute("ROLLBACK")
                    time.sleep(rng.uniform(0, 0.01 * n))
            else:
                raise Failure(f"transfer {transfer_id} failed {MAX_ATTEMPTS} times")
            if outcome == "committed":
                mine.committed += 1
                mine.committed_ids.append(transfer_id)
            else:
                mine.insufficient += 1
        stats.add(mine)
    except BaseException as e:  # noqa: BLE001 - reported by the main thread
        errors.append(f"thread {index}: {type(e).__name__}: {e}")
    finally:
        if conn is not None:
            conn.close()


def duplicate_id(committed_ids):
    """A transfers row with a taken id fails with 1062 / 23000 and is rolled back."""
    check(committed_ids, "no committed transfer to duplicate")
    taken = min(committed_ids)
    conn = connect()
    try:
        with conn.cursor() as cur:
            before = scalar(cur, "SELECT balance FROM accounts WHERE id = 1")
            rows_before = scalar(cur, "SELECT COUNT(*) FROM transfers")
            cur.execute("BEGIN")
            cur.execute("UPDATE accounts SET balance = balance - 1.00 WHERE id = 1")
            cur.execute("UPDATE accounts SET balance = balance + 1.00 WHERE id = 2")
            try:
                cur.execute("INSERT INTO transfers (id, src, dst, amount) VALUES (%s, 1, 2, 1.00)", (taken,))
            except pymysql.err.IntegrityError as e:
                check(e.args[0] == 1062, f"duplicate id: error {e.args}, expected 1062")
                check(e.sqlstate == "23000", f"duplicate id: SQLSTATE {e.sqlstate!r}, expected '23000'")
                check("Duplicate" in str(e.args[1]), f"duplicate id message: {e.args[1]!r}")
            else:
                raise Failure(f"inserting transfer id {taken} twice succeeded")
            # Still in the transaction: the debit is visible here.
            inside = scalar(cur, "SELECT balance FROM accounts WHERE id = 1")
            check(inside == before - 1, f"inside the failed transaction account 1 has {inside}, expected {before - 1}")
            cur.execute("ROLLBACK")
            after = scalar(cur, "SELECT balance FROM accounts WHERE id = 1")
            check(after == before, f"account 1 has {after} after ROLLBACK, expected {before}")
            rows_after = scalar(cur, "SELECT COUNT(*) FROM transfers")
            check(rows_after == rows_before, f"transfers: {rows_after} rows after ROLLBACK, expected {rows_before}")
    finally:
        conn.close()


def final_checks(stats):
    conn = connect()
    try:
        with conn.cursor() as cur:
            total = scalar(cur, "SELECT SUM(balance) FROM accounts")
            check(total == TOTAL and str(total) == "10000.00", f"sum of balances is {total}, expected 10000.00")
            n_accounts = scalar(cur, "SELECT COUNT(*) FROM accounts")
            check(n_accounts == ACCOUNTS, f"{n_accounts} accounts")
            negative = scalar(cur, "SELECT COUNT(*) FROM accounts WHERE balance < 0")
            check(negative == 0, f"{negative} negative balances")
            rows = scalar(cur, "SELECT COUNT(*) FROM transfers")
            check(rows == stats.committed, f"{rows} transfers rows, {stats.committed} committed transfers")
            cur.execute("SELECT id FROM transfers ORDER BY id")
            ids = [r[0] for r in cur.fetchall()]
            check(ids == sorted(stats.committed_ids), "transfers ids differ from the committed ones")
            cur.execute("SELECT id, balance FROM accounts ORDER BY id")
            balances = dict(cur.fetchall())
            cur.execute("SELECT src, dst, amount FROM transfers")
            expected = {a: INITIAL for a in range(1, ACCOUNTS + 1)}
            for src, dst, amount in cur.fetchall():
                expected[src] -= amount
                expected[dst] += amount
            check(balances == expected, f"balances {balances} differ from the transfers log {expected}")
            return total
    finally:
        conn.close()


def main():
    stats = Stats()
    errors = []
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i, stats, errors)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        raise Failure(f"{len(errors)} worker thread(s) failed")
    attempted = THREADS * TRANSFERS_PER_THREAD
    check(stats.committed + stats.insufficient == attempted, "lost transfers")
    check(stats.insufficient >= attempted // 10, f"only {stats.insufficient} overdrafts rolled back")
    duplicate_id(stats.committed_ids)
    total = final_checks(stats)
    print(
        f"bank_pymysql: committed={stats.committed} rolled_back_overdraft={stats.insufficient} "
        f"deadlocks_retried={stats.retries[1213]} lock_timeouts_retried={stats.retries[1205]} "
        f"duplicate_id=1062/23000 total={total} seconds={time.monotonic() - started:.1f}"
    )


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
