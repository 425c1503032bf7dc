-- End-to-end check through the mariadb command-line client. tests/tests/clients.rs
-- runs this file with `mariadb --batch` and compares the whole output with the
-- values it expects (fixtures::all_types_batch() and the sample data set).

-- Every column type of the fixture table, in the text protocol.
SELECT id, i8, u64, dec, s, d, ts FROM fixtures.all_types ORDER BY id;
SELECT id, i16, i32, i64, u8, u16, u32, f32, f64, flag, t FROM fixtures.all_types ORDER BY id;
SELECT id, b FROM fixtures.all_types ORDER BY id;

-- The sample data set: the same readings in every format.
USE samples;
SELECT DATABASE() AS db;
SELECT format, row_count FROM (
    SELECT 'parquet' AS format, COUNT(*) AS row_count FROM sensors
    UNION ALL SELECT 'csv', COUNT(*) FROM sensors_csv
    UNION ALL SELECT 'csv.gz', COUNT(*) FROM sensors_csv_gz
    UNION ALL SELECT 'json', COUNT(*) FROM sensors_json
    UNION ALL SELECT 'avro', COUNT(*) FROM sensors_avro
) counts ORDER BY format;
SELECT asset_type, COUNT(*) AS readings, SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures
FROM sensors GROUP BY asset_type ORDER BY asset_type;
SELECT asset_type, COUNT(*) AS readings, SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures
FROM sensors_avro GROUP BY asset_type ORDER BY asset_type;
