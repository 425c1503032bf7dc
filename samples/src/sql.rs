//! DDL that registers a generated data set in Lakewave (database `samples`).

use std::path::{Path, PathBuf};

/// SQL statements (one string per statement, no trailing semicolons) that
/// register the data set under `out` in database `samples`: one external table
/// per sensor format plus the asset master table.
///
/// Paths are absolute (canonicalized when `out` exists); single quotes in them
/// are doubled.
pub fn registration_sql(out: &Path) -> Vec<String> {
    let base = absolute(out);
    let base = base.to_string_lossy();
    let base = base.trim_end_matches('/').replace('\'', "''");
    let csv_header = "OPTIONS ('format.has_header' 'true')";
    vec![
        "CREATE DATABASE IF NOT EXISTS samples".to_string(),
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors STORED AS PARQUET \
             PARTITIONED BY (day) LOCATION '{base}/sensors/parquet/'"
        ),
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors_csv STORED AS CSV \
             PARTITIONED BY (day) LOCATION '{base}/sensors/csv/' {csv_header}"
        ),
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors_csv_gz STORED AS CSV \
             PARTITIONED BY (day) LOCATION '{base}/sensors/csv_gz/' \
             OPTIONS ('format.has_header' 'true', 'format.compression' 'gzip')"
        ),
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors_json STORED AS JSON \
             PARTITIONED BY (day) LOCATION '{base}/sensors/json/'"
        ),
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors_avro STORED AS AVRO \
             PARTITIONED BY (day) LOCATION '{base}/sensors/avro/'"
        ),
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.assets_csv STORED AS CSV \
             LOCATION '{base}/assets.csv' {csv_header}"
        ),
    ]
}

/// `path` made absolute: canonicalized if it exists, otherwise joined to the
/// current directory.
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_use_absolute_escaped_paths() {
        let sql = registration_sql(Path::new("/nonexistent/it's/data/"));
        assert_eq!(sql.len(), 7);
        assert_eq!(sql[0], "CREATE DATABASE IF NOT EXISTS samples");
        assert_eq!(
            sql[1],
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors STORED AS PARQUET \
             PARTITIONED BY (day) LOCATION '/nonexistent/it''s/data/sensors/parquet/'"
        );
        assert_eq!(
            sql[3],
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.sensors_csv_gz STORED AS CSV \
             PARTITIONED BY (day) LOCATION '/nonexistent/it''s/data/sensors/csv_gz/' \
             OPTIONS ('format.has_header' 'true', 'format.compression' 'gzip')"
        );
        assert_eq!(
            sql[6],
            "CREATE EXTERNAL TABLE IF NOT EXISTS samples.assets_csv STORED AS CSV \
             LOCATION '/nonexistent/it''s/data/assets.csv' OPTIONS ('format.has_header' 'true')"
        );
        assert!(sql.iter().all(|s| !s.ends_with(';')));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let sql = registration_sql(Path::new("some/relative/dir"));
        let cwd = std::env::current_dir().expect("cwd");
        assert!(sql[1].contains(&format!(
            "'{}/some/relative/dir/sensors/parquet/'",
            cwd.display()
        )));
    }
}
