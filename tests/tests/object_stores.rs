//! External tables on an S3-compatible server (moto, started on a free
//! loopback port): the location-independent `.slt` suite runs again with
//! `${LAKE}` on S3; per-table credentials and endpoints, `oci://` locations
//! through an endpoint override, errors, restarts and secret redaction.

use mysql_async::prelude::Queryable;

use lakewave_tests::s3::S3Server;
use lakewave_tests::slt::{run_file, slt_files};
use lakewave_tests::{ServerProcess, fixtures};

const BUCKET: &str = "lakewave-fixtures";
const ENV_SECRET: &str = "env-secret-9f31c2";
const TABLE_SECRET: &str = "table-secret-77ab04";

fn server_error(r: Result<(), mysql_async::Error>) -> mysql_async::ServerError {
    match r {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_suite_on_s3() {
    let data = tempfile::tempdir().expect("temp dir");
    let fixtures_dir = data.path().join("fixtures");
    fixtures::write_all(&fixtures_dir);
    samples::generate(&fixtures_dir.join("samples"), &samples::SampleOptions { rows: 2000, ..Default::default() })
        .expect("generate samples");
    let s3 = S3Server::start(BUCKET, Some(&fixtures_dir));
    let endpoint = s3.endpoint();
    // Process-wide settings, as the AWS SDKs read them.
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "lakewave-test"),
        ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
        ("AWS_REGION", "us-east-1"),
    ];
    let server = ServerProcess::start_with_env(&data.path().join("lw"), &["--no-mysql"], &env);
    let files = slt_files("lake");
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        if let Err(e) = run_file(&server.url(), file, &[("LAKE", format!("s3://{BUCKET}"))]).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "on S3:\n\n{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_table_credentials_oci_errors_and_secrets() {
    let data = tempfile::tempdir().expect("temp dir");
    let fixtures_dir = data.path().join("fixtures");
    fixtures::write_all(&fixtures_dir);
    let s3 = S3Server::start(BUCKET, Some(&fixtures_dir));
    let endpoint = s3.endpoint();
    let lw_dir = data.path().join("lw");
    // No AWS settings in the environment: everything comes from the table.
    let mut server = ServerProcess::start(&lw_dir, &["--no-mysql"]);
    let mut conn = mysql_async::Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE s3").await.expect("database");
    conn.query_drop("USE s3").await.expect("use");
    let creds = format!(
        "'aws.endpoint' '{endpoint}', 'aws.allow_http' 'true', 'aws.region' 'us-east-1', \
         'aws.access_key_id' 'AKIDLAKEWAVE', 'aws.secret_access_key' '{TABLE_SECRET}'"
    );
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE people STORED AS CSV LOCATION 's3://{BUCKET}/csv' OPTIONS ('format.has_header' 'true', {creds})"
    ))
    .await
    .expect("a prefix written without its trailing slash");
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM people").await.expect("count");
    assert_eq!(n, Some(3));

    // oci://bucket@namespace/... maps to the namespace's S3-compatible
    // endpoint; here an explicit endpoint points it at the test server.
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE oci_types STORED AS PARQUET LOCATION 'oci://{BUCKET}@acme/all_types.parquet' \
         OPTIONS ('oci.region' 'us-ashburn-1', {creds})"
    ))
    .await
    .expect("oci:// location");
    let ids: Vec<i64> = conn.query("SELECT id FROM oci_types ORDER BY id").await.expect("read through oci://");
    assert_eq!(ids.len(), 3);

    // Secrets are never shown.
    let (_, ddl): (String, String) = conn.query_first("SHOW CREATE TABLE people").await.expect("show create").expect("row");
    assert!(!ddl.contains(TABLE_SECRET) && ddl.contains("'aws.secret_access_key' '<redacted>'"), "{ddl}");
    assert!(ddl.contains(&format!("s3://{BUCKET}/csv/")), "{ddl}");

    // Errors: a missing object, a missing bucket, an unreachable endpoint.
    let e = server_error(
        conn.query_drop(format!("CREATE EXTERNAL TABLE gone STORED AS PARQUET LOCATION 's3://{BUCKET}/nope.parquet' OPTIONS ({creds})"))
            .await,
    );
    assert_eq!(e.code, 1017, "{e:?}");
    assert!(e.message.contains("s3://lakewave-fixtures/nope.parquet"), "{e:?}");
    let e = server_error(
        conn.query_drop(format!("CREATE EXTERNAL TABLE nobucket STORED AS PARQUET LOCATION 's3://no-such-bucket/x/' OPTIONS ({creds})"))
            .await,
    );
    assert!(!e.message.contains(TABLE_SECRET), "{e:?}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let e = server_error(
        conn.query_drop(format!(
            "CREATE EXTERNAL TABLE down STORED AS PARQUET LOCATION 's3://{BUCKET}/all_types.parquet' OPTIONS \
             ('aws.endpoint' 'http://127.0.0.1:{closed}', 'aws.allow_http' 'true', 'aws.region' 'us-east-1', \
              'aws.access_key_id' 'AKIDLAKEWAVE', 'aws.secret_access_key' '{TABLE_SECRET}', 'storage.max_retries' '0', 'storage.timeout' '5')"
        ))
        .await,
    );
    assert!(e.message.contains("all_types.parquet") && !e.message.contains(TABLE_SECRET), "{e:?}");

    // The definitions survive a restart and read again.
    drop(conn);
    server.terminate();
    let server = ServerProcess::start(&lw_dir, &["--no-mysql"]);
    let mut conn = mysql_async::Conn::from_url(server.url()).await.expect("reconnect");
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM s3.people").await.expect("count after restart");
    assert_eq!(n, Some(3));
}
