#[test]
#[ignore]
fn tmp_write_fixtures() {
    lakewave_tests::fixtures::write_all(std::path::Path::new("/tmp/lwx/fx"));
}
