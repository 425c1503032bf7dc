-- Lakewave quickstart: the manufacturing sensor sample data set.
--
-- Start the server with the sample data registered:
--     lakewave serve --samples
-- then run this script with the MySQL command-line client, for example:
--     mysql -h 127.0.0.1 -P 3307 -u root --table < samples/quickstart.sql
--
-- Tables of database `samples` (all over the same generated readings):
--   sensors         Parquet, partitioned by day=YYYY-MM-DD
--   sensors_csv     CSV with header
--   sensors_csv_gz  gzip-compressed CSV
--   sensors_json    JSON lines
--   sensors_avro    Avro
--   assets_csv      asset master table (asset_id, asset_type, site, line, commissioned)
--
-- Failure rules behind the flags (see samples/README.md in the data directory):
--   twf  tool wear failure: wear 200..240 min, 5% chance per reading
--   hdf  heat dissipation: process_temp_k - air_temp_k < 8.6 and rotation_speed_rpm < 1380
--   pwf  power: torque_nm * rotation_speed_rpm * 2 * pi() / 60 outside 3500..9000 W
--   osf  overstrain: tool_wear_min * torque_nm above 11000/12000/13000 by machine type
--   rnf  random: 0.1% chance per reading
--   machine_failure = any of the five

USE samples;

SHOW TABLES;

DESCRIBE sensors;

-- 1. Failures per machine type and day.
SELECT
    day,
    asset_type,
    COUNT(*) AS readings,
    SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS failures,
    ROUND(100.0 * SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) / COUNT(*), 2) AS failure_pct
FROM sensors
GROUP BY day, asset_type
ORDER BY day, asset_type;

-- 2. Top 10 machines by maximum tool wear, with their plant and line
--    (joins the Parquet sensor table with the CSV asset master table).
SELECT
    s.asset_id,
    s.asset_type,
    a.site,
    a.line,
    MAX(s.tool_wear_min) AS max_tool_wear_min,
    ROUND(AVG(s.tool_wear_min), 2) AS avg_tool_wear_min,
    SUM(CASE WHEN s.twf THEN 1 ELSE 0 END) AS tool_wear_failures
FROM sensors s
JOIN assets_csv a ON a.asset_id = s.asset_id
GROUP BY s.asset_id, s.asset_type, a.site, a.line
ORDER BY max_tool_wear_min DESC, tool_wear_failures DESC, s.asset_id
LIMIT 10;

-- 3. Failure mode breakdown (a reading can have several modes at once).
SELECT
    COUNT(*) AS readings,
    SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) AS any_failure,
    SUM(CASE WHEN twf THEN 1 ELSE 0 END) AS tool_wear,
    SUM(CASE WHEN hdf THEN 1 ELSE 0 END) AS heat_dissipation,
    SUM(CASE WHEN pwf THEN 1 ELSE 0 END) AS power,
    SUM(CASE WHEN osf THEN 1 ELSE 0 END) AS overstrain,
    SUM(CASE WHEN rnf THEN 1 ELSE 0 END) AS random_failure,
    ROUND(100.0 * SUM(CASE WHEN machine_failure THEN 1 ELSE 0 END) / COUNT(*), 2) AS failure_pct
FROM sensors;

-- 4. Hourly average temperatures on one day. The filter on the partition
--    column `day` means only the files of day=2026-01-03 are read.
SELECT
    date_trunc('hour', ts) AS hour,
    COUNT(*) AS readings,
    ROUND(AVG(air_temp_k), 2) AS avg_air_temp_k,
    ROUND(AVG(process_temp_k), 2) AS avg_process_temp_k,
    ROUND(AVG(process_temp_k - air_temp_k), 2) AS avg_delta_k,
    SUM(CASE WHEN hdf THEN 1 ELSE 0 END) AS heat_dissipation_failures
FROM sensors
WHERE day = '2026-01-03'
GROUP BY date_trunc('hour', ts)
ORDER BY hour;

-- 5. The five formats hold the same readings: the row counts are equal.
SELECT 'parquet' AS format, COUNT(*) AS row_count FROM sensors
UNION ALL
SELECT 'csv', COUNT(*) FROM sensors_csv
UNION ALL
SELECT 'csv.gz', COUNT(*) FROM sensors_csv_gz
UNION ALL
SELECT 'json', COUNT(*) FROM sensors_json
UNION ALL
SELECT 'avro', COUNT(*) FROM sensors_avro;

-- 6. Power failures recomputed from the raw columns: the rule matches the flag
--    on every reading with a torque value (mismatches = 0). Sensor dropouts
--    (NULL torque) are counted separately.
SELECT
    SUM(CASE WHEN torque_nm IS NULL THEN 1 ELSE 0 END) AS torque_dropouts,
    SUM(CASE WHEN torque_nm * rotation_speed_rpm * 2 * pi() / 60 NOT BETWEEN 3500 AND 9000
             THEN 1 ELSE 0 END) AS power_out_of_range,
    SUM(CASE WHEN pwf THEN 1 ELSE 0 END) AS pwf_flags,
    SUM(CASE WHEN torque_nm IS NOT NULL
              AND pwf <> (torque_nm * rotation_speed_rpm * 2 * pi() / 60 NOT BETWEEN 3500 AND 9000)
             THEN 1 ELSE 0 END) AS mismatches
FROM sensors;
