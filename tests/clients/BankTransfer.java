import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Concurrent bank transfers through Lakewave with MariaDB Connector/J.
 *
 * <p>Usage: {@code java -cp <dir>:mariadb-java-client.jar BankTransfer HOST PORT}. Expects database
 * {@code bank} with {@code accounts} (ids 1..10, 1000.00 each) and an empty {@code transfers} table.
 * Threads with their own connections (autocommit off) move money, locking both rows with
 * SELECT ... FOR UPDATE in id order or in reverse order, so deadlocks (1213 / 40001) happen and are
 * retried. Transfers that would overdraw are rolled back after their writes; a duplicate transfer id
 * must fail with 1062 / 23000. Exits with status 1 on any mismatch.
 */
public class BankTransfer {
    static final int ACCOUNTS = 10;
    static final BigDecimal INITIAL = new BigDecimal("1000.00");
    static final BigDecimal TOTAL = new BigDecimal("10000.00");
    static final int THREADS = 4;
    static final int TRANSFERS_PER_THREAD = 50;
    static final int MAX_ATTEMPTS = 100;

    static String url;

    static final AtomicInteger committed = new AtomicInteger();
    static final AtomicInteger overdrafts = new AtomicInteger();
    static final AtomicInteger deadlocks = new AtomicInteger();
    static final AtomicInteger lockTimeouts = new AtomicInteger();
    static final List<Integer> committedIds = Collections.synchronizedList(new ArrayList<>());
    static final List<String> errors = Collections.synchronizedList(new ArrayList<>());

    static void check(boolean ok, String message) {
        if (!ok) {
            throw new AssertionError(message);
        }
    }

    static Connection connect() throws SQLException {
        Connection c = DriverManager.getConnection(url);
        try (Statement s = c.createStatement()) {
            s.execute("SET SESSION innodb_lock_wait_timeout = 10");
        }
        c.setAutoCommit(false);
        return c;
    }

    static BigDecimal balance(Connection c, int id, boolean forUpdate) throws SQLException {
        String sql = "SELECT balance FROM accounts WHERE id = ?" + (forUpdate ? " FOR UPDATE" : "");
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setInt(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "no account " + id);
                return rs.getBigDecimal(1);
            }
        }
    }

    static long count(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            check(rs.next(), "no row from " + sql);
            return rs.getLong(1);
        }
    }

    static void update(Connection c, String sql, BigDecimal amount, int id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            ps.setBigDecimal(1, amount);
            ps.setInt(2, id);
            int n = ps.executeUpdate();
            check(n == 1, sql + " for account " + id + " changed " + n + " rows");
        }
    }

    static void insertTransfer(Connection c, int id, int src, int dst, BigDecimal amount) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO transfers (id, src, dst, amount) VALUES (?, ?, ?, ?)")) {
            ps.setInt(1, id);
            ps.setInt(2, src);
            ps.setInt(3, dst);
            ps.setBigDecimal(4, amount);
            check(ps.executeUpdate() == 1, "insert of transfer " + id);
        }
    }

    /** One try: true when committed, false when rolled back for an overdraft. */
    static boolean attempt(Connection c, Random rng, int id, int src, int dst, BigDecimal amount, boolean reverse)
            throws SQLException, InterruptedException {
        int first = reverse ? Math.max(src, dst) : Math.min(src, dst);
        int second = reverse ? Math.min(src, dst) : Math.max(src, dst);
        Map<Integer, BigDecimal> seen = new TreeMap<>();
        seen.put(first, balance(c, first, true));
        Thread.sleep(rng.nextInt(3));
        seen.put(second, balance(c, second, true));
        update(c, "UPDATE accounts SET balance = balance - ? WHERE id = ?", amount, src);
        update(c, "UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, dst);
        insertTransfer(c, id, src, dst, amount);
        BigDecimal after = balance(c, src, false);
        check(after.compareTo(seen.get(src).subtract(amount)) == 0,
                "account " + src + ": " + after + " after debiting " + amount + " from " + seen.get(src));
        if (after.signum() < 0) {
            c.rollback();
            return false;
        }
        c.commit();
        return true;
    }

    static void worker(int index) {
        Random rng = new Random(2000 + index);
        try (Connection c = connect()) {
            for (int k = 0; k < TRANSFERS_PER_THREAD; k++) {
                int id = (index + 1) * 100000 + k;
                int src = 1 + rng.nextInt(ACCOUNTS);
                int dst = 1 + rng.nextInt(ACCOUNTS - 1);
                if (dst >= src) {
                    dst++;
                }
                BigDecimal amount = k % 10 == 9
                        ? new BigDecimal("20000.00")
                        : BigDecimal.valueOf(1 + rng.nextInt(40000), 2);
                boolean reverse = rng.nextBoolean();
                Boolean outcome = null;
                for (int n = 1; n <= MAX_ATTEMPTS && outcome == null; n++) {
                    try {
                        outcome = attempt(c, rng, id, src, dst, amount, reverse);
                    } catch (SQLException e) {
                        if (e.getErrorCode() == 1213) {
                            check("40001".equals(e.getSQLState()), "deadlock with SQLSTATE " + e.getSQLState());
                            deadlocks.incrementAndGet();
                        } else if (e.getErrorCode() == 1205) {
                            check("HY000".equals(e.getSQLState()), "lock wait timeout with SQLSTATE " + e.getSQLState());
                            lockTimeouts.incrementAndGet();
                        } else {
                            throw e;
                        }
                        c.rollback();
                        Thread.sleep(rng.nextInt(10 * n + 1));
                    }
                }
                check(outcome != null, "transfer " + id + " failed " + MAX_ATTEMPTS + " times");
                if (outcome) {
                    committed.incrementAndGet();
                    committedIds.add(id);
                } else {
                    overdrafts.incrementAndGet();
                }
            }
        } catch (Throwable e) {
            StringBuilder sb = new StringBuilder("thread " + index + ": " + e);
            if (e instanceof SQLException) {
                SQLException s = (SQLException) e;
                sb.append(" (code ").append(s.getErrorCode()).append(", SQLSTATE ").append(s.getSQLState()).append(')');
            }
            errors.add(sb.toString());
        }
    }

    static void duplicateId() throws SQLException {
        check(!committedIds.isEmpty(), "no committed transfer to duplicate");
        int taken = Collections.min(committedIds);
        try (Connection c = connect()) {
            BigDecimal before = balance(c, 1, false);
            long rowsBefore = count(c, "SELECT COUNT(*) FROM transfers");
            c.commit();
            update(c, "UPDATE accounts SET balance = balance - ? WHERE id = ?", new BigDecimal("1.00"), 1);
            update(c, "UPDATE accounts SET balance = balance + ? WHERE id = ?", new BigDecimal("1.00"), 2);
            SQLException error = null;
            try {
                insertTransfer(c, taken, 1, 2, new BigDecimal("1.00"));
            } catch (SQLException e) {
                error = e;
            }
            check(error != null, "inserting transfer id " + taken + " twice succeeded");
            check(error.getErrorCode() == 1062, "duplicate id: error code " + error.getErrorCode() + ": " + error);
            check("23000".equals(error.getSQLState()), "duplicate id: SQLSTATE " + error.getSQLState());
            check(error instanceof java.sql.SQLIntegrityConstraintViolationException,
                    "duplicate id: " + error.getClass().getName());
            BigDecimal inside = balance(c, 1, false);
            check(inside.compareTo(before.subtract(BigDecimal.ONE)) == 0, "inside the transaction account 1 has " + inside);
            c.rollback();
            BigDecimal after = balance(c, 1, false);
            check(after.compareTo(before) == 0, "account 1 has " + after + " after rollback, expected " + before);
            long rowsAfter = count(c, "SELECT COUNT(*) FROM transfers");
            check(rowsAfter == rowsBefore, "transfers: " + rowsAfter + " rows after rollback, expected " + rowsBefore);
            c.commit();
        }
    }

    static BigDecimal finalChecks() throws SQLException {
        try (Connection c = connect(); Statement s = c.createStatement()) {
            BigDecimal total;
            try (ResultSet rs = s.executeQuery("SELECT SUM(balance) FROM accounts")) {
                check(rs.next(), "no sum");
                total = rs.getBigDecimal(1);
            }
            check(TOTAL.equals(total), "sum of balances is " + total + ", expected 10000.00");
            check(count(c, "SELECT COUNT(*) FROM accounts") == ACCOUNTS, "account count");
            long negative = count(c, "SELECT COUNT(*) FROM accounts WHERE balance < 0");
            check(negative == 0, negative + " negative balances");
            long rows = count(c, "SELECT COUNT(*) FROM transfers");
            check(rows == committed.get(), rows + " transfers rows, " + committed.get() + " committed transfers");
            List<Integer> ids = new ArrayList<>();
            try (ResultSet rs = s.executeQuery("SELECT id FROM transfers ORDER BY id")) {
                while (rs.next()) {
                    ids.add(rs.getInt(1));
                }
            }
            List<Integer> expectedIds = new ArrayList<>(committedIds);
            Collections.sort(expectedIds);
            check(ids.equals(expectedIds), "transfers ids differ from the committed ones");
            Map<Integer, BigDecimal> expected = new TreeMap<>();
            for (int a = 1; a <= ACCOUNTS; a++) {
                expected.put(a, INITIAL);
            }
            try (ResultSet rs = s.executeQuery("SELECT src, dst, amount FROM transfers")) {
                while (rs.next()) {
                    BigDecimal amount = rs.getBigDecimal(3);
                    expected.merge(rs.getInt(1), amount.negate(), BigDecimal::add);
                    expected.merge(rs.getInt(2), amount, BigDecimal::add);
                }
            }
            try (ResultSet rs = s.executeQuery("SELECT id, balance FROM accounts ORDER BY id")) {
                while (rs.next()) {
                    int id = rs.getInt(1);
                    BigDecimal b = rs.getBigDecimal(2);
                    check(b.compareTo(expected.get(id)) == 0,
                            "account " + id + " has " + b + ", the transfers log says " + expected.get(id));
                }
            }
            c.commit();
            return total;
        }
    }

    public static void main(String[] args) throws Exception {
        String host = args.length > 0 ? args[0] : "127.0.0.1";
        String port = args.length > 1 ? args[1] : "3306";
        url = "jdbc:mariadb://" + host + ":" + port + "/bank?user=root&password=";
        long started = System.nanoTime();
        try {
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < THREADS; i++) {
                final int index = i;
                Thread t = new Thread(() -> worker(index));
                threads.add(t);
                t.start();
            }
            for (Thread t : threads) {
                t.join();
            }
            if (!errors.isEmpty()) {
                for (String e : errors) {
                    System.err.println(e);
                }
                throw new AssertionError(errors.size() + " worker thread(s) failed");
            }
            int attempted = THREADS * TRANSFERS_PER_THREAD;
            check(committed.get() + overdrafts.get() == attempted, "lost transfers");
            check(overdrafts.get() >= attempted / 10, "only " + overdrafts.get() + " overdrafts rolled back");
            duplicateId();
            BigDecimal total = finalChecks();
            System.out.printf("bank_jdbc: committed=%d rolled_back_overdraft=%d deadlocks_retried=%d "
                            + "lock_timeouts_retried=%d duplicate_id=1062/23000 total=%s seconds=%.1f%n",
                    committed.get(), overdrafts.get(), deadlocks.get(), lockTimeouts.get(), total,
                    (System.nanoTime() - started) / 1e9);
        } catch (AssertionError | SQLException e) {
            System.err.println("FAIL: " + e);
            if (e instanceof SQLException) {
                SQLException s = (SQLException) e;
                System.err.println("  code " + s.getErrorCode() + ", SQLSTATE " + s.getSQLState());
            }
            System.exit(1);
        }
    }
}
