//! Text files as exports leave them: a corpus of malformed and tricky files,
//! each read in strict mode (the query fails naming file, line and column,
//! with the MySQL error code of the problem) and in permissive mode (bad
//! values read as NULL or rows skipped, each reported by SHOW WARNINGS and
//! in `performance_schema.lakewave_read_errors`); Redshift UNLOAD text with
//! ESCAPE and Parquet parts; schema inference across files.

use std::io::Write;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

const COLUMNS: &str = "(id INT, name VARCHAR(100), amount DECIMAL(8,2), day DATE)";
const HEADER: &str = "id,name,amount,day\n";
const GOOD: &str = "1,alpha,1.50,2024-01-01\n2,beta,-2.25,1999-12-31\n3,gamma,0.07,2000-02-29\n";

/// What reading a file must give.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// This many rows and at least this many warnings (0: exactly none).
    Rows(usize, usize),
    /// This error code, with the message containing the text.
    Fails(u16, &'static str),
}
use Outcome::{Fails, Rows};

struct Case {
    name: &'static str,
    file: &'static str,
    bytes: Vec<u8>,
    options: &'static str,
    strict: Outcome,
    permissive: Outcome,
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b).expect("gzip");
    gz.finish().expect("gzip")
}

fn text(rows: &str) -> Vec<u8> {
    format!("{HEADER}{rows}").into_bytes()
}

fn parquet_bytes() -> Vec<u8> {
    let batch = lakewave_tests::fixtures::all_types_batch();
    let mut out = Vec::new();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

fn corpus() -> Vec<Case> {
    let huge = "x".repeat(4 << 20);
    let big = gzip(GOOD.repeat(200).as_bytes());
    let mut truncated_gz = gzip(&text(&GOOD.repeat(2000)));
    truncated_gz.truncate(truncated_gz.len() / 2);
    let mut wrong_footer = parquet_bytes();
    let n = wrong_footer.len();
    wrong_footer[n - 8..n - 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    let mut truncated_parquet = parquet_bytes();
    truncated_parquet.truncate(truncated_parquet.len() / 2);
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    vec![
        Case { name: "good", file: "good.csv", bytes: text(GOOD), options: "", strict: Rows(3, 0), permissive: Rows(3, 0) },
        Case {
            name: "too_few_fields",
            file: "few.csv",
            bytes: text("1,alpha,1.50,2024-01-01\n2,beta\n3,gamma,0.07,2000-02-29\n"),
            options: "",
            strict: Fails(1261, "line 3: the row has 2 fields"),
            permissive: Rows(3, 1),
        },
        Case {
            name: "too_many_fields",
            file: "many.csv",
            bytes: text("1,alpha,1.50,2024-01-01,x\n2,beta,-2.25,1999-12-31\n"),
            options: "",
            strict: Fails(1262, "line 2: the row has 5 fields"),
            permissive: Rows(2, 1),
        },
        Case {
            name: "bad_integer",
            file: "bad_int.csv",
            bytes: text("1,alpha,1.50,2024-01-01\nx2,beta,-2.25,1999-12-31\n"),
            options: "",
            strict: Fails(1366, "line 3, column 'id': Incorrect integer value: 'x2'"),
            permissive: Rows(2, 1),
        },
        Case {
            name: "integer_out_of_range",
            file: "int_range.csv",
            bytes: text("99999999999,alpha,1.50,2024-01-01\n"),
            options: "",
            strict: Fails(1264, "column 'id': Out of range integer value"),
            permissive: Rows(1, 1),
        },
        Case {
            name: "bad_decimal",
            file: "bad_dec.csv",
            bytes: text("1,alpha,1.2.3,2024-01-01\n"),
            options: "",
            strict: Fails(1366, "column 'amount': Incorrect decimal value: '1.2.3'"),
            permissive: Rows(1, 1),
        },
        Case {
            name: "decimal_too_wide",
            file: "wide_dec.csv",
            bytes: text("1,alpha,1234567.89,2024-01-01\n"),
            options: "",
            strict: Fails(1264, "Out of range decimal value"),
            permissive: Rows(1, 1),
        },
        Case {
            name: "impossible_date",
            file: "bad_date.csv",
            bytes: text("1,alpha,1.50,2024-02-30\n"),
            options: "",
            strict: Fails(1366, "column 'day': Incorrect date value: '2024-02-30'"),
            permissive: Rows(1, 1),
        },
        Case {
            name: "bad_utf8",
            file: "bad_utf8.csv",
            bytes: [HEADER.as_bytes(), b"1,caf\xff\xfe,1.50,2024-01-01\n"].concat(),
            options: "",
            strict: Fails(1300, "Invalid utf8mb4 character string: '\\xFF\\xFE'"),
            permissive: Rows(1, 1),
        },
        Case {
            name: "unterminated_quote",
            file: "open_quote.csv",
            bytes: text("1,alpha,1.50,2024-01-01\n2,\"beta,-2.25,1999-12-31\n"),
            options: "",
            strict: Fails(1366, "line 3: a quoted field is not closed"),
            permissive: Rows(1, 1),
        },
        Case { name: "empty_file", file: "empty.csv", bytes: Vec::new(), options: "", strict: Rows(0, 0), permissive: Rows(0, 0) },
        Case { name: "header_only", file: "header.csv", bytes: text(""), options: "", strict: Rows(0, 0), permissive: Rows(0, 0) },
        Case {
            name: "blank_lines",
            file: "blank.csv",
            bytes: text("1,alpha,1.50,2024-01-01\n\n\n2,beta,-2.25,1999-12-31\n\n"),
            options: "",
            strict: Rows(2, 0),
            permissive: Rows(2, 0),
        },
        Case {
            name: "crlf",
            file: "crlf.csv",
            bytes: text(GOOD).iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect(),
            options: "",
            strict: Rows(3, 0),
            permissive: Rows(3, 0),
        },
        Case {
            name: "byte_order_mark",
            file: "bom.csv",
            bytes: [b"\xEF\xBB\xBF".as_slice(), &text(GOOD)].concat(),
            options: "",
            strict: Rows(3, 0),
            permissive: Rows(3, 0),
        },
        Case {
            name: "quoted_newlines_and_delimiters",
            file: "quoted.csv",
            bytes: text("1,\"multi\nline, with comma\",1.50,2024-01-01\n2,\"say \"\"hi\"\"\",-2.25,1999-12-31\n"),
            options: "",
            strict: Rows(2, 0),
            permissive: Rows(2, 0),
        },
        Case {
            name: "huge_field",
            file: "huge.csv",
            bytes: text(&format!("1,{huge},1.50,2024-01-01\n2,beta,-2.25,1999-12-31\n")),
            options: "",
            strict: Rows(2, 0),
            permissive: Rows(2, 0),
        },
        Case {
            name: "no_final_newline",
            file: "no_newline.csv",
            bytes: text(GOOD.trim_end()),
            options: "",
            strict: Rows(3, 0),
            permissive: Rows(3, 0),
        },
        Case { name: "only_newlines", file: "newlines.csv", bytes: b"\n\n\n".to_vec(), options: "", strict: Rows(0, 0), permissive: Rows(0, 0) },
        Case {
            name: "column_missing_from_header",
            file: "no_amount.csv",
            bytes: b"id,name,day\n1,alpha,2024-01-01\n".to_vec(),
            options: "",
            strict: Rows(1, 1),
            permissive: Rows(1, 1),
        },
        Case {
            name: "columns_in_another_order",
            file: "reordered.csv",
            bytes: b"day,amount,name,id\n2024-01-01,1.50,alpha,1\n".to_vec(),
            options: "",
            strict: Rows(1, 0),
            permissive: Rows(1, 0),
        },
        Case {
            name: "spaces_around_numbers",
            file: "spaces.csv",
            bytes: text(" 1 , alpha , 1.50 ,2024-01-01\n"),
            options: "",
            strict: Rows(1, 0),
            permissive: Rows(1, 0),
        },
        Case {
            name: "latin1",
            file: "latin1.csv",
            bytes: [HEADER.as_bytes(), b"1,caf\xe9 \x80,1.50,2024-01-01\n"].concat(),
            options: ", 'format.encoding' 'latin1'",
            strict: Rows(1, 0),
            permissive: Rows(1, 0),
        },
        Case {
            name: "null_markers",
            file: "nulls.csv",
            bytes: text("1,\\N,\\N,\\N\n2,,,\n3,\"\",NULL,2024-01-01\n"),
            options: ", 'format.escape' '\\\\'",
            strict: Fails(1366, "line 4, column 'amount': Incorrect decimal value: 'NULL'"),
            permissive: Rows(3, 1),
        },
        Case { name: "gzip", file: "good.csv.gz", bytes: gzip(&text(GOOD)), options: "", strict: Rows(3, 0), permissive: Rows(3, 0) },
        Case {
            name: "zstd",
            file: "good.csv.zst",
            bytes: zstd::encode_all(text(GOOD).as_slice(), 3).expect("zstd"),
            options: "",
            strict: Rows(3, 0),
            permissive: Rows(3, 0),
        },
        Case {
            name: "bzip2",
            file: "good.csv.bz2",
            bytes: {
                let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                bz.write_all(&text(GOOD)).expect("bzip2");
                bz.finish().expect("bzip2")
            },
            options: "",
            strict: Rows(3, 0),
            permissive: Rows(3, 0),
        },
        Case {
            name: "truncated_gzip",
            file: "truncated.csv.gz",
            bytes: truncated_gz,
            options: "",
            strict: Fails(1030, "gzip data is corrupt or truncated"),
            permissive: Rows(usize::MAX, 1),
        },
        Case {
            name: "not_really_gzip",
            file: "fake.csv.gz",
            bytes: text(GOOD),
            options: "",
            strict: Fails(1030, "gzip data is corrupt or truncated"),
            permissive: Rows(0, 1),
        },
        Case {
            name: "gzip_without_header_line",
            file: "headless.csv.gz",
            bytes: big,
            options: ", 'format.has_header' 'false'",
            strict: Rows(600, 0),
            permissive: Rows(600, 0),
        },
        Case {
            name: "binary_garbage",
            file: "garbage.csv",
            bytes: garbage,
            options: "",
            strict: Fails(0, "garbage.csv"),
            permissive: Rows(usize::MAX, 1),
        },
        Case {
            name: "skip_rows_before_header",
            file: "preamble.csv",
            bytes: [b"exported by tool\nversion 2\n".as_slice(), &text(GOOD)].concat(),
            options: ", 'format.skip_rows' '2'",
            strict: Rows(3, 0),
            permissive: Rows(3, 0),
        },
        Case {
            name: "parquet_wrong_footer",
            file: "wrong_footer.parquet",
            bytes: wrong_footer,
            options: "",
            strict: Fails(1030, "wrong_footer.parquet"),
            permissive: Fails(1030, "wrong_footer.parquet"),
        },
        Case {
            name: "parquet_truncated",
            file: "truncated.parquet",
            bytes: truncated_parquet,
            options: "",
            strict: Fails(1030, "truncated.parquet"),
            permissive: Fails(1030, "truncated.parquet"),
        },
        Case {
            name: "json_broken_line",
            file: "broken.json",
            bytes: b"{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \n".to_vec(),
            options: "",
            strict: Fails(1030, "broken.json"),
            permissive: Fails(1030, "broken.json"),
        },
    ]
}

async fn rows_or_error(conn: &mut Conn, sql: &str) -> Result<usize, (u16, String)> {
    match conn.query::<mysql_async::Row, _>(sql).await {
        Ok(rows) => Ok(rows.len()),
        Err(mysql_async::Error::Server(e)) => Err((e.code, e.message)),
        Err(e) => panic!("`{sql}`: {e}"),
    }
}

fn check(case: &Case, mode: &str, expected: Outcome, got: Result<usize, (u16, String)>, warnings: &[(String, u16, String)]) {
    let what = format!("{} ({mode})", case.name);
    match (expected, got) {
        (Rows(n, w), Ok(rows)) => {
            if n != usize::MAX {
                assert_eq!(rows, n, "{what}: rows; warnings {warnings:?}");
            }
            if w == 0 {
                assert!(warnings.is_empty(), "{what}: no warnings expected, got {warnings:?}");
            } else {
                assert!(warnings.len() >= w, "{what}: at least {w} warnings expected, got {warnings:?}");
                assert!(warnings.iter().all(|(_, _, m)| m.contains(case.file)), "{what}: warnings name the file: {warnings:?}");
            }
        }
        (Fails(code, text), Err((got_code, message))) => {
            if code != 0 {
                assert_eq!(got_code, code, "{what}: {message}");
            }
            assert!(message.contains(text), "{what}: '{message}' should contain '{text}'");
            assert!(message.contains(case.file), "{what}: '{message}' should name the file");
        }
        (expected, got) => panic!("{what}: expected {expected:?}, got {got:?} (warnings {warnings:?})"),
    }
}

fn format_of(file: &str) -> &'static str {
    if file.ends_with(".parquet") {
        "PARQUET"
    } else if file.ends_with(".json") {
        "JSON"
    } else {
        "CSV"
    }
}

/// Every file of the corpus, read strictly and permissively: the outcome
/// each one is documented to give, no crash, no hang, and the server keeps
/// answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_tricky_files() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE corpus").await.expect("database");
    conn.query_drop("USE corpus").await.expect("use");
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} files", cases.len());
    for case in &cases {
        let path = data.path().join(case.file);
        std::fs::write(&path, &case.bytes).expect("write case");
        for (mode, expected) in [("error", case.strict), ("null", case.permissive)] {
            let table = format!("{}_{mode}", case.name);
            let format = format_of(case.file);
            let ddl = if format == "CSV" {
                format!(
                    "CREATE EXTERNAL TABLE {table} {COLUMNS} STORED AS CSV LOCATION '{}' OPTIONS ('format.bad_rows' '{mode}'{})",
                    path.display(),
                    case.options
                )
            } else {
                // Binary formats have no permissive mode: a damaged file
                // fails in both, naming the file.
                let columns = if format == "JSON" { "(id INT, name VARCHAR(10))" } else { "(id INT)" };
                format!("CREATE EXTERNAL TABLE {table} {columns} STORED AS {format} LOCATION '{}'", path.display())
            };
            conn.query_drop(&ddl).await.unwrap_or_else(|e| panic!("{}: {ddl}: {e}", case.name));
            let got = rows_or_error(&mut conn, &format!("SELECT * FROM {table}")).await;
            let warnings: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await.expect("warnings");
            check(case, mode, expected, got, &warnings);
        }
    }

    // Values, not only counts.
    let row: Option<(i64, Option<String>, Option<String>, Option<String>)> =
        conn.query_first("SELECT id, name, CAST(amount AS CHAR), CAST(day AS CHAR) FROM columns_in_another_order_error").await.expect("reordered");
    assert_eq!(row, Some((1, Some("alpha".into()), Some("1.50".into()), Some("2024-01-01".into()))));
    let names: Vec<Option<String>> = conn.query("SELECT name FROM quoted_newlines_and_delimiters_error ORDER BY id").await.expect("quoted");
    assert_eq!(names, vec![Some("multi\nline, with comma".into()), Some("say \"hi\"".into())]);
    let nulls: Vec<(i64, Option<String>, Option<String>)> =
        conn.query("SELECT id, name, CAST(amount AS CHAR) FROM null_markers_null ORDER BY id").await.expect("nulls");
    assert_eq!(nulls, vec![(1, None, None), (2, None, None), (3, Some(String::new()), None)], "\\N and an empty field are NULL, \"\" is ''");
    let latin: Option<String> = conn.query_first("SELECT name FROM latin1_error").await.expect("latin1");
    assert_eq!(latin.as_deref(), Some("café €"));
    let utf8: Option<String> = conn.query_first("SELECT name FROM bad_utf8_null").await.expect("lossy");
    assert_eq!(utf8.as_deref(), Some("caf\u{FFFD}\u{FFFD}"));
    let len: Option<i64> = conn.query_first("SELECT MAX(LENGTH(name)) FROM huge_field_error").await.expect("huge");
    assert_eq!(len, Some(4 << 20));
    let sum: Option<String> = conn.query_first("SELECT CAST(SUM(amount) AS CHAR) FROM bad_integer_null").await.expect("sum");
    assert_eq!(sum.as_deref(), Some("-0.75"), "a bad id does not lose the row's other values");

    // Skip mode drops the whole row; the table's read statistics count it.
    let path = data.path().join("few.csv");
    conn.query_drop(format!("CREATE EXTERNAL TABLE few_skip {COLUMNS} STORED AS CSV LOCATION '{}' OPTIONS ('format.bad_rows' 'skip')", path.display()))
        .await
        .expect("skip table");
    let ids: Vec<i64> = conn.query("SELECT id FROM few_skip ORDER BY id").await.expect("skip");
    assert_eq!(ids, vec![1, 3]);
    let stats: Vec<(String, u64, u64)> = conn
        .query("SELECT table_name, bad_values, skipped_rows FROM performance_schema.lakewave_read_errors WHERE table_name IN ('corpus.few_skip', 'corpus.too_few_fields_null') ORDER BY table_name")
        .await
        .expect("read statistics");
    assert_eq!(stats, vec![("corpus.few_skip".into(), 0, 1), ("corpus.too_few_fields_null".into(), 1, 0)]);

    // HeatWave's dialect: is_strict_mode false is the permissive mode.
    let path = data.path().join("bad_date.csv");
    conn.query_drop(format!(
        "CREATE TABLE hw (id INT, name VARCHAR(10), amount DECIMAL(8,2), day DATE) ENGINE=lakehouse SECONDARY_ENGINE=RAPID \
         ENGINE_ATTRIBUTE='{{\"dialect\": {{\"format\": \"csv\", \"field_delimiter\": \",\", \"skip_rows\": 1, \"is_strict_mode\": false}}, \"file\": [{{\"uri\": \"{}\"}}]}}'",
        path.display()
    ))
    .await
    .expect("heatwave table");
    let day: Vec<Option<String>> = conn.query("SELECT CAST(day AS CHAR) FROM hw").await.expect("permissive heatwave");
    assert_eq!(day, vec![None]);
    let one: Option<i64> = conn.query_first("SELECT 1").await.expect("still serving");
    assert_eq!(one, Some(1));
}
