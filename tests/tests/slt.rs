//! Runs every `tests/slt/*.slt` file, and the location-independent ones in
//! `tests/slt/lake/` on local files, over the MySQL wire against a fresh
//! in-process server. Fixtures are in `${FIXTURES}` (`${LAKE}` in the lake
//! files), the sample data set under `${LAKE}/samples`. The object-store
//! suite runs `tests/slt/lake/` again on S3.
//!
//! Set `SLT=name` to run only files whose path contains `name`.

use lakewave_tests::slt::{run_file, slt_files};
use lakewave_tests::{TestServer, fixtures};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let mut files = slt_files("");
    files.extend(slt_files("lake"));
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in &files {
        let server = TestServer::start().await;
        let data = tempfile::tempdir().expect("fixture dir");
        let fixtures_dir = data.path().join("fixtures");
        fixtures::write_all(&fixtures_dir);
        let samples_dir = fixtures_dir.join("samples");
        samples::generate(&samples_dir, &samples::SampleOptions { rows: 2000, ..Default::default() })
            .expect("generate samples");
        let fixtures = fixtures_dir.display().to_string();
        let vars = [("FIXTURES", fixtures.clone()), ("LAKE", fixtures)];
        if let Err(e) = run_file(&server.url(), file, &vars).await {
            failures.push(e);
        }
        server.stop().await;
    }
    assert!(failures.is_empty(), "{} of {} slt files failed:\n\n{}", failures.len(), files.len(), failures.join("\n\n"));
    println!("{} slt files passed", files.len());
}
