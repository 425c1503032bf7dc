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
    // A dropped table's counts go with it.
    conn.query_drop("DROP TABLE few_skip").await.expect("drop");
    let left: Vec<String> = conn
        .query("SELECT table_name FROM performance_schema.lakewave_read_errors WHERE table_name IN ('corpus.few_skip', 'corpus.too_few_fields_null')")
        .await
        .expect("read statistics after DROP");
    assert_eq!(left, vec!["corpus.too_few_fields_null".to_string()]);

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

/// Rows with the values exports get wrong: the delimiter, quotes,
/// backslashes and line breaks inside strings, the empty string beside
/// NULL, dates and times at the edges of their ranges.
type Awkward = (i64, Option<String>, Option<String>, Option<String>, Option<String>);

fn awkward_rows() -> Vec<Awkward> {
    let names = [
        Some("plain"),
        Some("pipe|inside"),
        Some("back\\slash"),
        Some("say \"hi\""),
        Some("two\nlines"),
        Some("crlf\r\nend"),
        Some(""),
        None,
        Some("  padded  "),
        Some("Zürich, café"),
    ];
    let days = ["0001-01-01", "9999-12-31", "1970-01-01", "2000-02-29", "1969-12-31"];
    let times = ["1970-01-01 00:00:00", "9999-12-31 23:59:59.999999", "2024-02-29 12:00:00.5", "1900-01-01 00:00:01"];
    (1..=40i64)
        .map(|i| {
            (
                i,
                names[i as usize % names.len()].map(str::to_string),
                (i % 7 != 0).then(|| days[i as usize % days.len()].to_string()),
                (i % 6 != 0).then(|| times[i as usize % times.len()].to_string()),
                (i % 5 != 0).then(|| format!("{}{}.{:02}", if i % 2 == 0 { "-" } else { "" }, i * 1000, i % 100)),
            )
        })
        .collect()
}

/// Redshift `UNLOAD ... DELIMITER '|' ESCAPE NULL AS '\N'` output: a
/// backslash before every delimiter, backslash, quote and line break.
fn redshift_escaped(rows: &[Awkward]) -> String {
    let field = |v: &Option<String>| match v {
        None => "\\N".to_string(),
        Some(s) => s.chars().fold(String::new(), |mut out, c| {
            if matches!(c, '|' | '\\' | '"' | '\n' | '\r') {
                out.push('\\');
            }
            out.push(c);
            out
        }),
    };
    rows.iter()
        .map(|r| format!("{}|{}|{}|{}|{}\n", r.0, field(&r.1), field(&r.2), field(&r.3), field(&r.4)))
        .collect()
}

fn awkward_parquet(rows: &[Awkward]) -> Vec<u8> {
    use datafusion::arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let epoch = chrono_days;
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
        ("name", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone()))) as ArrayRef),
        ("day", Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.2.as_deref().map(epoch))))),
        ("ts", Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.3.as_deref().map(micros))))),
        (
            "amount",
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|r| r.4.as_deref().map(|a| (a.parse::<f64>().expect("amount") * 100.0).round() as i128)))
                    .with_precision_and_scale(10, 2)
                    .expect("decimal"),
            ),
        ),
    ])
    .expect("batch");
    let mut out = Vec::new();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

/// Days since 1970-01-01 of an ISO date (proleptic Gregorian).
fn chrono_days(d: &str) -> i32 {
    let p: Vec<i64> = d.split('-').map(|x| x.parse().expect("date part")).collect();
    let (y, m, day) = (p[0] - i64::from(p[1] <= 2), p[1], p[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146097 + doe - 719468) as i32
}

fn micros(t: &str) -> i64 {
    let (date, time) = t.split_once(' ').expect("timestamp");
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().expect("time part")).collect();
    let frac: i64 = format!("{frac:0<6}").parse().expect("fraction");
    (chrono_days(date) as i64 * 86_400 + p[0] * 3600 + p[1] * 60 + p[2]) * 1_000_000 + frac
}

/// What a DATETIME(6) value reads back as over the wire.
fn shown_timestamp(t: &str) -> String {
    match t.split_once('.') {
        Some((whole, frac)) => format!("{whole}.{frac:0<6}"),
        None => format!("{t}.000000"),
    }
}

/// Redshift UNLOAD text with ESCAPE (gzip, bzip2 and zstd parts under one
/// prefix) and UNLOAD Parquet parts: every row compared with the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_escape_and_parquet_unloads() {
    let data = tempfile::tempdir().expect("temp dir");
    let rows = awkward_rows();
    let escaped = data.path().join("escaped");
    std::fs::create_dir_all(&escaped).expect("dir");
    let thirds = [&rows[..13], &rows[13..26], &rows[26..]];
    std::fs::write(escaped.join("venue_0000_part_00.gz"), gzip(redshift_escaped(thirds[0]).as_bytes())).expect("part");
    std::fs::write(escaped.join("venue_0001_part_00.gz"), gzip(redshift_escaped(thirds[1]).as_bytes())).expect("part");
    std::fs::write(escaped.join("venue_0002_part_00.gz"), gzip(redshift_escaped(thirds[2]).as_bytes())).expect("part");
    let zst = data.path().join("zst");
    std::fs::create_dir_all(&zst).expect("dir");
    std::fs::write(zst.join("venue_0000_part_00.zst"), zstd::encode_all(redshift_escaped(&rows).as_bytes(), 3).expect("zstd")).expect("part");
    let parquet = data.path().join("parquet");
    std::fs::create_dir_all(&parquet).expect("dir");
    std::fs::write(parquet.join("venue_0000_part_00.parquet"), awkward_parquet(&rows[..20])).expect("part");
    std::fs::write(parquet.join("venue_0001_part_00.parquet"), awkward_parquet(&rows[20..])).expect("part");

    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE rs").await.expect("database");
    conn.query_drop("USE rs").await.expect("use");
    let expected: Vec<Awkward> = rows
        .iter()
        .map(|r| (r.0, r.1.clone(), r.2.clone(), r.3.as_deref().map(shown_timestamp), r.4.clone()))
        .collect();
    let columns = "(id BIGINT, name VARCHAR(100), day DATE, ts DATETIME(6), amount DECIMAL(10,2))";
    let select = |t: &str| format!("SELECT id, name, day, ts, amount FROM {t} ORDER BY id");
    for (table, dir) in [("escaped_gz", &escaped), ("escaped_zst", &zst)] {
        conn.query_drop(format!(
            "CREATE EXTERNAL TABLE {table} {columns} STORED AS CSV LOCATION '{}/' \
             OPTIONS ('format.delimiter' '|', 'format.escape' '\\\\', 'format.null_value' '\\\\N', 'format.quote' '', 'format.has_header' 'false')",
            dir.display()
        ))
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        let got: Vec<Awkward> = conn.query(select(table)).await.unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_eq!(got, expected, "{table}");
    }
    // The same files with the schema inferred.
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE escaped_inferred STORED AS CSV LOCATION '{}/' \
         OPTIONS ('format.delimiter' '|', 'format.escape' '\\\\', 'format.null_value' '\\\\N', 'format.quote' '', 'format.has_header' 'false')",
        escaped.display()
    ))
    .await
    .expect("inferred");
    let types: Vec<(String, String)> = conn
        .query("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'rs' AND TABLE_NAME = 'escaped_inferred' ORDER BY ORDINAL_POSITION")
        .await
        .expect("columns");
    let types: Vec<(&str, &str)> = types.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        types,
        vec![("col_1", "bigint"), ("col_2", "text"), ("col_3", "date"), ("col_4", "datetime(6)"), ("col_5", "decimal(7,2)")]
    );
    let got: Vec<Awkward> = conn
        .query("SELECT col_1, col_2, col_3, col_4, col_5 FROM escaped_inferred ORDER BY col_1")
        .await
        .expect("inferred rows");
    assert_eq!(got, expected, "inferred");

    conn.query_drop(format!("CREATE EXTERNAL TABLE unload_parquet STORED AS PARQUET LOCATION '{}/'", parquet.display()))
        .await
        .expect("parquet parts");
    let got: Vec<Awkward> = conn.query(select("unload_parquet")).await.expect("parquet rows");
    assert_eq!(got, expected, "parquet");
}

/// Inference across files: types widen (integer → decimal → double, date →
/// datetime, anything → text), a column only some files have is kept and
/// reads as NULL elsewhere (with a warning), and the stored schema is used
/// afterwards without reading the files again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_widens_across_files() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("mixed");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("a.csv"), "id,qty,price,seen,code\n1,5,10,2024-01-01,7\n2,6,11,2024-01-02,8\n").expect("a");
    std::fs::write(dir.join("b.csv"), "id,qty,price,seen,code,extra\n3,5000000000,10.25,2024-01-03 10:00:00,x9,new\n").expect("b");
    std::fs::write(dir.join("c.csv"), "id,price,qty,seen,code\n4,1e3,7,2024-01-04,10\n").expect("c");
    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE inf").await.expect("database");
    conn.query_drop("USE inf").await.expect("use");
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE mixed STORED AS CSV LOCATION '{}/' OPTIONS ('format.schema_inference' 'full')",
        dir.display()
    ))
    .await
    .expect("create");
    let types: Vec<(String, String)> = conn
        .query("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'inf' AND TABLE_NAME = 'mixed' ORDER BY ORDINAL_POSITION")
        .await
        .expect("columns");
    let types: Vec<(&str, &str)> = types.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        types,
        vec![("id", "bigint"), ("qty", "bigint"), ("price", "double"), ("seen", "datetime(6)"), ("code", "text"), ("extra", "text")]
    );
    let rows: Vec<(i64, i64, f64, String, String, Option<String>)> =
        conn.query("SELECT id, qty, price, seen, code, extra FROM mixed ORDER BY id").await.expect("rows");
    assert_eq!(
        rows,
        vec![
            (1, 5, 10.0, "2024-01-01 00:00:00.000000".into(), "7".into(), None),
            (2, 6, 11.0, "2024-01-02 00:00:00.000000".into(), "8".into(), None),
            (3, 5_000_000_000, 10.25, "2024-01-03 10:00:00.000000".into(), "x9".into(), Some("new".into())),
            (4, 7, 1000.0, "2024-01-04 00:00:00.000000".into(), "10".into(), None),
        ]
    );
    let warnings: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await.expect("warnings");
    assert_eq!(warnings.len(), 2, "a.csv and c.csv lack 'extra': {warnings:?}");
    assert!(warnings.iter().all(|w| w.1 == 1263 && w.2.contains("has no column 'extra'")), "{warnings:?}");
    // The schema is stored: a new file with other values does not change it.
    std::fs::write(dir.join("d.csv"), "id,qty,price,seen,code,extra\n5,8,1.5,2024-01-05,11,z\n").expect("d");
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM mixed WHERE qty > 0").await.expect("count");
    assert_eq!(n, Some(5));
}

/// `heatwave_load` with `external_tables`: a dry run shows the DDL with
/// the schema inferred from the files (and creates nothing); a normal run
/// creates the table with that schema and loads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heatwave_load_infers_external_tables() {
    let data = tempfile::tempdir().expect("temp dir");
    let file = data.path().join("orders.csv");
    std::fs::write(&file, "1|2024-01-05|19.99|open\n2|2024-02-29|5.00|\\N\n3|1999-12-31|120.50|closed\n").expect("file");
    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = Conn::from_url(server.url()).await.expect("connect");
    let options = format!(
        "JSON_OBJECT('mode', '{{mode}}', 'external_tables', JSON_ARRAY(JSON_OBJECT('db_name', 'shop', 'tables', \
         JSON_ARRAY(JSON_OBJECT('table_name', 'orders', 'engine_attribute', \
         JSON_OBJECT('dialect', JSON_OBJECT('format', 'csv'), 'file', JSON_ARRAY(JSON_OBJECT('uri', '{}'))))))))",
        file.display()
    );
    let call = |mode: &str| format!("CALL sys.heatwave_load(JSON_ARRAY(), {})", options.replace("{mode}", mode));
    let rows: Vec<mysql_async::Row> = conn.query(call("dryrun")).await.expect("dry run");
    let outcome: Option<String> = rows[0].get(6).flatten();
    let outcome = outcome.expect("an outcome");
    assert!(
        outcome.starts_with("would create and load: CREATE TABLE `shop`.`orders` (`col_1` bigint, `col_2` date, `col_3` decimal(5,2), `col_4` text) ENGINE=lakehouse"),
        "{outcome}"
    );
    let nrows: Option<String> = rows[0].get(3).flatten();
    assert_eq!(nrows.as_deref(), Some("3"));
    let dbs: Vec<String> = conn.query("SHOW DATABASES").await.expect("databases");
    assert!(!dbs.iter().any(|d| d == "shop"), "a dry run creates nothing: {dbs:?}");

    let rows: Vec<mysql_async::Row> = conn.query(call("normal")).await.expect("load");
    let outcome: Option<String> = rows[0].get(6).flatten();
    assert!(outcome.as_deref().is_some_and(|o| o.starts_with("loaded")), "{outcome:?}");
    conn.query_drop("SET use_secondary_engine = FORCED").await.expect("forced");
    let got: Vec<(i64, String, String, Option<String>)> =
        conn.query("SELECT col_1, col_2, col_3, col_4 FROM shop.orders ORDER BY col_1").await.expect("rows");
    assert_eq!(
        got,
        vec![
            (1, "2024-01-05".into(), "19.99".into(), Some("open".into())),
            (2, "2024-02-29".into(), "5.00".into(), None),
            (3, "1999-12-31".into(), "120.50".into(), Some("closed".into())),
        ]
    );
}

/// Dates and times in MySQL `STR_TO_DATE` notation, per table (HeatWave's
/// dialect keys) and per column (`format.date_format.<column>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_and_time_formats() {
    let data = tempfile::tempdir().expect("temp dir");
    let file = data.path().join("events.csv");
    std::fs::write(&file, "1|31/12/1999|February 29, 2024|11:05 PM|20240102 030405.5\n2|01/01/2000|March 1, 2024|12:00 AM|19700101 000000\n")
        .expect("file");
    let server = lakewave_tests::ServerProcess::start(&data.path().join("lw"), &["--no-mysql"]);
    let mut conn = Conn::from_url(server.url()).await.expect("connect");
    conn.query_drop("CREATE DATABASE ev").await.expect("database");
    conn.query_drop("USE ev").await.expect("use");
    conn.query_drop(format!(
        "CREATE EXTERNAL TABLE events (id INT, d1 DATE, d2 DATE, t TIME, ts DATETIME(6)) STORED AS CSV LOCATION '{}' \
         OPTIONS ('format.delimiter' '|', 'format.has_header' 'false', 'format.date_format' '%d/%m/%Y', \
         'format.date_format.d2' '%M %e, %Y', 'format.time_format' '%h:%i %p', 'format.timestamp_format' '%Y%m%d %H%i%s.%f')",
        file.display()
    ))
    .await
    .expect("create");
    let got: Vec<(i64, String, String, String)> = conn.query("SELECT id, d1, d2, CAST(t AS CHAR) FROM events ORDER BY id").await.expect("rows");
    assert_eq!(
        got,
        vec![
            (1, "1999-12-31".into(), "2024-02-29".into(), "23:05:00".into()),
            (2, "2000-01-01".into(), "2024-03-01".into(), "00:00:00".into()),
        ]
    );
    // The second row's timestamp has no fraction: the format's '.%f' does
    // not match, and strict mode says so.
    let e = match conn.query_drop("SELECT ts FROM events").await {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(e.code, 1366, "{e:?}");
    assert!(e.message.contains("line 2, column 'ts': Incorrect datetime value: '19700101 000000'"), "{e:?}");

    // HeatWave's dialect keys.
    conn.query_drop(format!(
        "CREATE TABLE hw (id INT, d1 DATE) ENGINE=lakehouse SECONDARY_ENGINE=RAPID ENGINE_ATTRIBUTE='{{\"dialect\": \
         {{\"format\": \"csv\", \"date_format\": \"%d/%m/%Y\", \"is_strict_mode\": false}}, \"file\": [{{\"uri\": \"{}\"}}]}}'",
        file.display()
    ))
    .await
    .expect("heatwave table");
    let got: Vec<(i64, String)> = conn.query("SELECT id, d1 FROM hw ORDER BY id").await.expect("heatwave rows");
    assert_eq!(got, vec![(1, "1999-12-31".into()), (2, "2000-01-01".into())]);
    let warnings: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await.expect("warnings");
    assert_eq!(warnings.len(), 2, "each row has three fields more than the table: {warnings:?}");
}
