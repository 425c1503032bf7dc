import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * End-to-end check of Lakewave through MariaDB Connector/J.
 *
 * <p>Usage: {@code java -cp <dir>:mariadb-java-client.jar ConnectorJCheck HOST PORT}. Expects database
 * {@code samples} (the 2000-row sample data set) and table {@code fixtures.all_types}
 * (tests/src/fixtures.rs) to be registered. Exits with status 1 on the first mismatch.
 */
public class ConnectorJCheck {
    static final int SAMPLE_ROWS = 2000;
    static final List<String> ASSET_TYPES = Arrays.asList("CNC_MILL", "GRINDER", "LATHE", "PRESS");
    static final List<String> COLUMNS = Arrays.asList(
            "id", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64",
            "dec", "s", "b", "flag", "d", "ts", "t");

    static void check(boolean ok, String message) {
        if (!ok) {
            throw new AssertionError(message);
        }
    }

    static void checkEq(Object got, Object expected, String what) {
        if (!Objects.equals(got, expected)) {
            String g = got instanceof byte[] ? Arrays.toString((byte[]) got) : String.valueOf(got);
            String e = expected instanceof byte[] ? Arrays.toString((byte[]) expected) : String.valueOf(expected);
            String gt = got == null ? "null" : got.getClass().getSimpleName();
            throw new AssertionError(what + ": got " + g + " (" + gt + "), expected " + e);
        }
    }

    static void checkBytes(byte[] got, byte[] expected, String what) {
        if (!Arrays.equals(got, expected)) {
            throw new AssertionError(what + ": got " + (got == null ? "null" : Arrays.toString(got))
                    + ", expected " + Arrays.toString(expected));
        }
    }

    static long singleLong(Connection conn, String sql) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            check(rs.next(), "no row from " + sql);
            long v = rs.getLong(1);
            check(!rs.next(), "more than one row from " + sql);
            return v;
        }
    }

    static void checkSamples(Connection conn) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.execute("USE samples");
            check(conn.getCatalog() == null || conn.getCatalog().equals("samples"),
                    "getCatalog() after USE: " + conn.getCatalog());

            List<String> tables = new ArrayList<>();
            try (ResultSet rs = st.executeQuery("SHOW TABLES")) {
                while (rs.next()) {
                    tables.add(rs.getString(1));
                }
            }
            tables.sort(null);
            checkEq(tables, Arrays.asList("assets_csv", "sensors", "sensors_avro", "sensors_csv",
                    "sensors_csv_gz", "sensors_json"), "SHOW TABLES in samples");

            Map<String, Long> counts = new HashMap<>();
            try (ResultSet rs = st.executeQuery(
                    "SELECT 'parquet' AS format, COUNT(*) AS row_count FROM sensors "
                            + "UNION ALL SELECT 'csv', COUNT(*) FROM sensors_csv "
                            + "UNION ALL SELECT 'csv.gz', COUNT(*) FROM sensors_csv_gz "
                            + "UNION ALL SELECT 'json', COUNT(*) FROM sensors_json "
                            + "UNION ALL SELECT 'avro', COUNT(*) FROM sensors_avro")) {
                while (rs.next()) {
                    counts.put(rs.getString("format"), rs.getLong("row_count"));
                }
            }
            Map<String, Long> expected = new HashMap<>();
            for (String f : Arrays.asList("parquet", "csv", "csv.gz", "json", "avro")) {
                expected.put(f, (long) SAMPLE_ROWS);
            }
            checkEq(counts, expected, "row counts per format");

            long failures = singleLong(conn, "SELECT COUNT(*) FROM sensors WHERE machine_failure");
            check(failures > 0 && failures < SAMPLE_ROWS, "failures: " + failures);

            String perType = "SELECT asset_type, COUNT(*) AS readings, "
                    + "SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures "
                    + "FROM %s GROUP BY asset_type ORDER BY asset_type";
            List<String> parquet = null;
            for (String table : Arrays.asList("sensors", "sensors_csv", "sensors_csv_gz", "sensors_json", "sensors_avro")) {
                List<String> rows = new ArrayList<>();
                List<String> types = new ArrayList<>();
                long readings = 0;
                long fails = 0;
                try (ResultSet rs = st.executeQuery(String.format(perType, table))) {
                    while (rs.next()) {
                        types.add(rs.getString(1));
                        readings += rs.getLong(2);
                        fails += rs.getLong(3);
                        rows.add(rs.getString(1) + "=" + rs.getLong(2) + "/" + rs.getLong(3));
                    }
                }
                checkEq(types, ASSET_TYPES, "asset types of " + table);
                checkEq(readings, (long) SAMPLE_ROWS, "readings per type of " + table);
                checkEq(fails, failures, "failures per type of " + table);
                if (parquet == null) {
                    parquet = rows;
                } else {
                    checkEq(rows, parquet, "failures per type of " + table + " vs sensors");
                }
            }

            try (ResultSet rs = st.executeQuery(
                    "SELECT s.asset_id, s.asset_type, a.site, MAX(s.tool_wear_min) AS max_wear "
                            + "FROM sensors s JOIN assets_csv a ON a.asset_id = s.asset_id "
                            + "GROUP BY s.asset_id, s.asset_type, a.site ORDER BY max_wear DESC, s.asset_id LIMIT 10")) {
                int n = 0;
                double last = Double.MAX_VALUE;
                while (rs.next()) {
                    n++;
                    double wear = rs.getDouble("max_wear");
                    check(wear <= last, "top machines not ordered by wear");
                    last = wear;
                    check(ASSET_TYPES.contains(rs.getString("asset_type")), "asset type " + rs.getString("asset_type"));
                    check(rs.getString("site") != null && !rs.getString("site").isEmpty(), "empty site");
                }
                checkEq(n, 10, "top machines");
            }
        }

        // A client-side prepared statement (the driver's default) on the partition column.
        try (PreparedStatement ps = conn.prepareStatement("SELECT COUNT(*) FROM sensors WHERE day = ?")) {
            ps.setString(1, "2026-01-03");
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "no row for the day count");
                long day = rs.getLong(1);
                check(day > 0 && day < SAMPLE_ROWS, "readings on 2026-01-03: " + day);
            }
        }
    }

    /** Asserts the three rows of all_types, read column by column with typed getters. */
    static void checkAllTypes(ResultSet rs, String how) throws SQLException {
        String w = "all_types (" + how + ") ";
        check(rs.next(), w + "row 1 missing");
        checkEq(rs.getInt("id"), 1, w + "id");
        checkEq(rs.getByte("i8"), Byte.MIN_VALUE, w + "i8");
        checkEq(rs.getShort("i16"), Short.MIN_VALUE, w + "i16");
        checkEq(rs.getInt("i32"), Integer.MIN_VALUE, w + "i32");
        checkEq(rs.getLong("i64"), Long.MIN_VALUE, w + "i64");
        checkEq(rs.getInt("u8"), 255, w + "u8");
        checkEq(rs.getInt("u16"), 65535, w + "u16");
        checkEq(rs.getLong("u32"), 4294967295L, w + "u32");
        checkEq(rs.getBigDecimal("u64"), new BigDecimal("18446744073709551615"), w + "u64 as BigDecimal");
        checkEq(rs.getString("u64"), "18446744073709551615", w + "u64 as String");
        checkEq(rs.getObject("u64"), new BigInteger("18446744073709551615"), w + "u64 as Object");
        checkEq(rs.getFloat("f32"), 1.5f, w + "f32");
        checkEq(rs.getDouble("f64"), -2.25, w + "f64");
        checkEq(rs.getBigDecimal("dec"), new BigDecimal("12345.678"), w + "dec");
        checkEq(rs.getString("s"), "héllo, wörld", w + "s");
        checkBytes(rs.getBytes("b"), new byte[] {0, 1, (byte) 0xff}, w + "b");
        checkEq(rs.getBoolean("flag"), true, w + "flag");
        checkEq(rs.getInt("flag"), 1, w + "flag as int");
        checkEq(rs.getObject("d", LocalDate.class), LocalDate.of(2026, 1, 31), w + "d");
        checkEq(rs.getObject("ts", LocalDateTime.class), LocalDateTime.of(2026, 1, 31, 23, 59, 58, 123_456_000), w + "ts");
        checkEq(rs.getObject("t", LocalTime.class), LocalTime.of(12, 34, 56, 500_000_000), w + "t");
        checkEq(rs.getDate("d").toString(), "2026-01-31", w + "d as java.sql.Date");
        checkEq(rs.getTimestamp("ts").toLocalDateTime(), LocalDateTime.of(2026, 1, 31, 23, 59, 58, 123_456_000),
                w + "ts as Timestamp");

        check(rs.next(), w + "row 2 missing");
        checkEq(rs.getInt("id"), 2, w + "id of row 2");
        for (String c : COLUMNS.subList(1, COLUMNS.size())) {
            checkEq(rs.getObject(c), null, w + c + " of row 2 (NULL)");
            check(rs.wasNull(), w + "wasNull() after " + c + " of row 2");
        }
        checkEq(rs.getInt("i32"), 0, w + "getInt of NULL");
        check(rs.wasNull(), w + "wasNull() after getInt of NULL");

        check(rs.next(), w + "row 3 missing");
        checkEq(rs.getInt("id"), 3, w + "id of row 3");
        checkEq(rs.getByte("i8"), Byte.MAX_VALUE, w + "i8 of row 3");
        checkEq(rs.getShort("i16"), Short.MAX_VALUE, w + "i16 of row 3");
        checkEq(rs.getInt("i32"), Integer.MAX_VALUE, w + "i32 of row 3");
        checkEq(rs.getLong("i64"), Long.MAX_VALUE, w + "i64 of row 3");
        for (String c : Arrays.asList("u8", "u16", "u32", "u64")) {
            checkEq(rs.getLong(c), 0L, w + c + " of row 3");
        }
        checkEq(rs.getFloat("f32"), -0.5f, w + "f32 of row 3");
        checkEq(rs.getDouble("f64"), 1e300, w + "f64 of row 3");
        checkEq(rs.getBigDecimal("dec"), new BigDecimal("-0.001"), w + "dec of row 3");
        checkEq(rs.getString("s"), "", w + "s of row 3");
        checkBytes(rs.getBytes("b"), new byte[0], w + "b of row 3");
        checkEq(rs.getBoolean("flag"), false, w + "flag of row 3");
        checkEq(rs.getObject("d", LocalDate.class), LocalDate.of(1970, 1, 1), w + "d of row 3");
        checkEq(rs.getObject("ts", LocalDateTime.class), LocalDateTime.of(1970, 1, 1, 0, 0), w + "ts of row 3");
        checkEq(rs.getObject("t", LocalTime.class), LocalTime.MIDNIGHT, w + "t of row 3");
        check(!rs.next(), w + "more than three rows");
    }

    static void checkMetadata(ResultSetMetaData md) throws SQLException {
        checkEq(md.getColumnCount(), COLUMNS.size(), "column count");
        for (int i = 0; i < COLUMNS.size(); i++) {
            checkEq(md.getColumnLabel(i + 1), COLUMNS.get(i), "label of column " + (i + 1));
        }
        Map<String, String> names = new HashMap<>();
        for (int i = 1; i <= md.getColumnCount(); i++) {
            names.put(md.getColumnLabel(i), md.getColumnTypeName(i));
        }
        checkEq(names.get("i8"), "TINYINT", "type name of i8");
        checkEq(names.get("i32"), "INTEGER", "type name of i32");
        checkEq(names.get("i64"), "BIGINT", "type name of i64");
        checkEq(names.get("u64"), "BIGINT UNSIGNED", "type name of u64");
        checkEq(names.get("f64"), "DOUBLE", "type name of f64");
        checkEq(names.get("dec"), "DECIMAL", "type name of dec");
        checkEq(names.get("s"), "TEXT", "type name of s");
        checkEq(names.get("b"), "BLOB", "type name of b");
        checkEq(names.get("d"), "DATE", "type name of d");
        checkEq(names.get("ts"), "DATETIME", "type name of ts");
        checkEq(names.get("t"), "TIME", "type name of t");
        int dec = COLUMNS.indexOf("dec") + 1;
        checkEq(md.getColumnType(dec), Types.DECIMAL, "java.sql.Types of dec");
        checkEq(md.getScale(dec), 3, "scale of dec");
        checkEq(md.getColumnType(COLUMNS.indexOf("i64") + 1), Types.BIGINT, "java.sql.Types of i64");
        // The driver maps TEXT/BLOB to (LONG)VARCHAR/(LONG)VARBINARY depending on its version.
        int sType = md.getColumnType(COLUMNS.indexOf("s") + 1);
        check(sType == Types.VARCHAR || sType == Types.LONGVARCHAR, "java.sql.Types of s: " + sType);
        int bType = md.getColumnType(COLUMNS.indexOf("b") + 1);
        check(bType == Types.VARBINARY || bType == Types.LONGVARBINARY, "java.sql.Types of b: " + bType);
        checkEq(md.getColumnType(COLUMNS.indexOf("ts") + 1), Types.TIMESTAMP, "java.sql.Types of ts");
        check(md.isSigned(COLUMNS.indexOf("i64") + 1), "i64 is signed");
        check(!md.isSigned(COLUMNS.indexOf("u64") + 1), "u64 is unsigned");
        checkEq(md.isNullable(COLUMNS.indexOf("s") + 1), ResultSetMetaData.columnNullable, "s is nullable");
        checkEq(md.getTableName(COLUMNS.indexOf("s") + 1), "all_types", "table name of s");
    }

    static String allTypesSql() {
        return "SELECT " + String.join(", ", COLUMNS) + " FROM fixtures.all_types";
    }

    static void checkAllTypesText(Connection conn) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(allTypesSql() + " ORDER BY id")) {
            checkMetadata(rs.getMetaData());
            checkAllTypes(rs, "Statement");
        }
    }

    static void checkPrepared(Connection conn, String how) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement("SELECT s FROM fixtures.all_types WHERE id = ?")) {
            for (int round = 0; round < 2; round++) {
                ps.setInt(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), how + ": no row for id 1");
                    checkEq(rs.getString(1), "héllo, wörld", how + ": s of id 1");
                    check(!rs.next(), how + ": more than one row for id 1");
                }
                ps.setLong(1, 3);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), how + ": no row for id 3");
                    checkEq(rs.getString(1), "", how + ": s of id 3");
                }
            }
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT id FROM fixtures.all_types WHERE s = ? AND u64 = ?")) {
            ps.setString(1, "héllo, wörld");
            ps.setBigDecimal(2, new BigDecimal("18446744073709551615"));
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), how + ": no row for the unicode string and max unsigned");
                checkEq(rs.getInt(1), 1, how + ": id by unicode string and max unsigned");
            }
        }
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT id FROM fixtures.all_types WHERE d = ? AND ts = ? AND dec = ?")) {
            ps.setObject(1, LocalDate.of(2026, 1, 31));
            ps.setObject(2, LocalDateTime.of(2026, 1, 31, 23, 59, 58, 123_456_000));
            ps.setBigDecimal(3, new BigDecimal("12345.678"));
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), how + ": no row for date, datetime and decimal parameters");
                checkEq(rs.getInt(1), 1, how + ": id by date, datetime and decimal");
            }
        }
        try (PreparedStatement ps = conn.prepareStatement(allTypesSql() + " WHERE id >= ? ORDER BY id")) {
            ps.setInt(1, 0);
            try (ResultSet rs = ps.executeQuery()) {
                checkMetadata(rs.getMetaData());
                checkAllTypes(rs, how);
            }
        }
    }

    /** A byte[] parameter that is not valid UTF-8. */
    static void checkBinaryParameter(Connection conn, String how) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement("SELECT id FROM fixtures.all_types WHERE b = ?")) {
            ps.setBytes(1, new byte[] {0, 1, (byte) 0xff});
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), how + ": no row for a binary parameter");
                checkEq(rs.getInt(1), 1, how + ": id by binary parameter");
            }
        }
        checkEq(singleLong(conn, "SELECT 1"), 1L, "SELECT 1 after the binary parameter");
    }

    static void checkDatabaseMetaData(Connection conn) throws SQLException {
        DatabaseMetaData dm = conn.getMetaData();
        check(dm.getDatabaseProductVersion() != null && !dm.getDatabaseProductVersion().isEmpty(),
                "empty database product version");
        List<String> tables = new ArrayList<>();
        try (ResultSet rs = dm.getTables("fixtures", null, "all_types", null)) {
            while (rs.next()) {
                tables.add(rs.getString("TABLE_CAT") + "." + rs.getString("TABLE_NAME"));
            }
        }
        checkEq(tables, Arrays.asList("fixtures.all_types"), "getTables(fixtures, all_types)");

        List<String> columns = new ArrayList<>();
        Map<String, String> typeNames = new HashMap<>();
        try (ResultSet rs = dm.getColumns("fixtures", null, "all_types", "%")) {
            while (rs.next()) {
                checkEq(rs.getString("TABLE_NAME"), "all_types", "getColumns TABLE_NAME");
                String name = rs.getString("COLUMN_NAME");
                checkEq(rs.getInt("ORDINAL_POSITION"), columns.size() + 1, "ORDINAL_POSITION of " + name);
                columns.add(name);
                typeNames.put(name, rs.getString("TYPE_NAME"));
                if (!name.equals("id")) {
                    checkEq(rs.getInt("NULLABLE"), DatabaseMetaData.columnNullable, "NULLABLE of " + name);
                }
                if (name.equals("dec")) {
                    checkEq(rs.getInt("DATA_TYPE"), Types.DECIMAL, "DATA_TYPE of dec");
                    checkEq(rs.getInt("COLUMN_SIZE"), 12, "COLUMN_SIZE of dec");
                    checkEq(rs.getInt("DECIMAL_DIGITS"), 3, "DECIMAL_DIGITS of dec");
                }
            }
        }
        checkEq(columns, COLUMNS, "getColumns(fixtures, all_types)");
        checkEq(typeNames.get("i64"), "BIGINT", "getColumns TYPE_NAME of i64");
        checkEq(typeNames.get("u64"), "BIGINT UNSIGNED", "getColumns TYPE_NAME of u64");
        checkEq(typeNames.get("d"), "DATE", "getColumns TYPE_NAME of d");
        checkEq(typeNames.get("s"), "TEXT", "getColumns TYPE_NAME of s");
    }

    static void expectError(Connection conn, String sql, int code, String state) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.executeQuery(sql).close();
            throw new AssertionError(sql + " succeeded, expected error " + code + " (" + state + ")");
        } catch (SQLException e) {
            System.out.println("  " + sql + " -> " + e.getClass().getSimpleName() + " " + e.getErrorCode()
                    + " (" + e.getSQLState() + "): " + e.getMessage());
            checkEq(e.getErrorCode(), code, sql + ": getErrorCode()");
            checkEq(e.getSQLState(), state, sql + ": getSQLState()");
        }
        check(conn.isValid(5), "connection not valid after " + sql);
        checkEq(singleLong(conn, "SELECT 1"), 1L, "SELECT 1 after " + sql);
    }

    static void checkErrors(Connection conn) throws SQLException {
        expectError(conn, "SELECT * FROM fixtures.nosuch", 1146, "42S02");
        expectError(conn, "SELEC 1", 1064, "42000");
        expectError(conn, "SELECT nosuch_column FROM fixtures.all_types", 1054, "42S22");
        try (PreparedStatement ps = conn.prepareStatement("SELECT * FROM fixtures.nosuch WHERE id = ?")) {
            ps.setInt(1, 1);
            ps.executeQuery().close();
            throw new AssertionError("a prepared statement on a missing table succeeded");
        } catch (SQLException e) {
            checkEq(e.getErrorCode(), 1146, "prepared statement on a missing table: getErrorCode()");
            checkEq(e.getSQLState(), "42S02", "prepared statement on a missing table: getSQLState()");
        }
        checkEq(singleLong(conn, "SELECT 1"), 1L, "SELECT 1 after the prepared statement error");
    }

    interface Section {
        void run() throws Exception;
    }

    static final List<String> failures = new ArrayList<>();

    /** Runs one group of checks; a failure is recorded and the next group still runs. */
    static void section(String name, Section body) {
        try {
            body.run();
            System.out.println(name + " ok");
        } catch (Throwable e) {
            System.out.println(name + " FAILED: " + e);
            e.printStackTrace(System.out);
            failures.add(name + ": " + e);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: ConnectorJCheck HOST PORT");
            System.exit(2);
        }
        String base = "jdbc:mariadb://" + args[0] + ":" + args[1] + "/";
        try (Connection conn = DriverManager.getConnection(base + "?user=root&password=")) {
            DatabaseMetaData dm = conn.getMetaData();
            System.out.println("connected: " + dm.getDriverName() + " " + dm.getDriverVersion()
                    + " to " + dm.getDatabaseProductName() + " " + dm.getDatabaseProductVersion());
            section("samples", () -> checkSamples(conn));
            section("all_types (Statement)", () -> checkAllTypesText(conn));
            section("PreparedStatement", () -> checkPrepared(conn, "PreparedStatement"));
            section("PreparedStatement.setBytes", () -> checkBinaryParameter(conn, "PreparedStatement"));
            section("DatabaseMetaData", () -> checkDatabaseMetaData(conn));
            section("errors", () -> checkErrors(conn));
        }
        section("useServerPrepStmts=true", () -> {
            try (Connection conn = DriverManager.getConnection(base + "?user=root&password=&useServerPrepStmts=true")) {
                checkPrepared(conn, "server-side PreparedStatement");
                checkErrors(conn);
            }
        });
        section("useServerPrepStmts=true, setBytes", () -> {
            try (Connection conn = DriverManager.getConnection(base + "?user=root&password=&useServerPrepStmts=true")) {
                checkBinaryParameter(conn, "server-side PreparedStatement");
            }
        });
        section("database in the URL", () -> {
            try (Connection conn = DriverManager.getConnection(base + "fixtures?user=root&password=")) {
                checkEq(conn.getCatalog(), "fixtures", "getCatalog() with a database in the URL");
                checkEq(singleLong(conn, "SELECT COUNT(*) FROM all_types"), 3L, "count in the default database");
            }
        });
        if (!failures.isEmpty()) {
            System.err.println("Connector/J check FAILED:");
            for (String f : failures) {
                System.err.println("  " + f);
            }
            System.exit(1);
        }
        System.out.println("Connector/J: all checks passed");
    }
}
