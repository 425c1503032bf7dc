//! Client-side benchmark tools built into the `lakewave` binary, so the
//! Python drivers in `benches/` can measure with a Rust client
//! (`mysql_async`) as well as with PyMySQL:
//!
//! - `lakewave bench-client`: runs statements read one per line, answering
//!   rows and seconds per statement (the TPC-H driver times queries through
//!   the wire with it: PyMySQL decodes rows in Python, slowly enough to
//!   dominate a query with a few thousand result rows);
//! - `lakewave bench-fetch`: streams a query's result to the client and
//!   reports rows, bytes and seconds per run (wire throughput);
//! - `lakewave bench-clients`: N concurrent connections each running a list
//!   of short queries in turn for a while; reports throughput and latency
//!   percentiles.
//!
//! Both print one JSON object on standard output.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

fn opts(url: &str) -> Result<mysql_async::Opts, String> {
    mysql_async::Opts::from_url(url).map_err(|e| format!("bad URL '{url}': {e}"))
}

/// The line protocol of `bench-engine` and `bench-client`: one statement
/// per line of standard input; for each, `run` gives its row count, and
/// `OK <rows> <seconds>` or `ERR <message>` is printed (an empty line
/// answers `OK 0 0`, so a driver waiting for an answer never hangs).
/// Waiting for the next line blocks this thread only; queries run on the
/// runtime's workers.
pub async fn answer_lines(mut run: impl AsyncFnMut(&str) -> Result<u64, String>) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout();
    for sql in std::io::stdin().lock().lines() {
        let sql = sql.map_err(|e| e.to_string())?;
        let answer = if sql.trim().is_empty() {
            "OK 0 0".to_string()
        } else {
            let started = Instant::now();
            match run(&sql).await {
                Ok(rows) => format!("OK {rows} {:.6}", started.elapsed().as_secs_f64()),
                Err(e) => format!("ERR {}", e.replace('\n', " ")),
            }
        };
        writeln!(out, "{answer}").and_then(|()| out.flush()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Statements from standard input on one connection ([`answer_lines`]);
/// every row is read and its values decoded as an application would (text
/// protocol).
pub async fn client(url: &str) -> Result<(), String> {
    let mut conn = mysql_async::Conn::new(opts(url)?).await.map_err(|e| e.to_string())?;
    answer_lines(async |sql: &str| {
        let mut result = conn.query_iter(sql).await.map_err(|e| e.to_string())?;
        let mut rows = 0u64;
        while !result.is_empty() {
            if let Some(row) = result.next().await.map_err(|e| e.to_string())? {
                rows += 1;
                std::hint::black_box(row.unwrap());
            }
        }
        Ok(rows)
    })
    .await?;
    conn.disconnect().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Streams `sql`'s rows `runs` times; prints `{"runs": [{"rows", "bytes", "seconds"}]}`.
pub async fn fetch(url: &str, sql: &str, runs: usize) -> Result<(), String> {
    let mut conn = mysql_async::Conn::new(opts(url)?).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let mut result = conn.query_iter(sql).await.map_err(|e| e.to_string())?;
        let mut rows = 0u64;
        let mut bytes = 0u64;
        result
            .for_each(|row| {
                rows += 1;
                for v in row.unwrap() {
                    bytes += match v {
                        mysql_async::Value::Bytes(b) => b.len() as u64,
                        mysql_async::Value::NULL => 0,
                        _ => 8,
                    };
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        out.push(serde_json::json!({"rows": rows, "bytes": bytes, "seconds": started.elapsed().as_secs_f64()}));
    }
    conn.disconnect().await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::json!({ "runs": out }));
    Ok(())
}

/// `clients` connections, each running `queries` in turn (starting at a
/// different one) for `seconds`; prints throughput and latency percentiles.
pub async fn clients(url: &str, queries: Vec<String>, clients: usize, seconds: f64, setup: Vec<String>) -> Result<(), String> {
    if queries.is_empty() {
        return Err("no queries".into());
    }
    let opts = opts(url)?;
    // Connect everyone first, so connection set-up is not timed.
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut c = mysql_async::Conn::new(opts.clone()).await.map_err(|e| e.to_string())?;
        for s in &setup {
            c.query_drop(s).await.map_err(|e| format!("{s}: {e}"))?;
        }
        conns.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let queries = queries.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut k = i;
            while Instant::now() < deadline {
                let sql = &queries[k % queries.len()];
                k += 1;
                let t = Instant::now();
                match conn.query_iter(sql.as_str()).await {
                    Ok(mut r) => match r.for_each(|_| {}).await {
                        Ok(()) => latencies.push(t.elapsed().as_secs_f64()),
                        Err(_) => errors += 1,
                    },
                    Err(_) => errors += 1,
                }
            }
            let _ = conn.disconnect().await;
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0u64;
    for t in tasks {
        let (l, e) = t.await.map_err(|e| e.to_string())?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| all.get(((all.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN);
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "queries": all.len(),
            "errors": errors,
            "seconds": elapsed,
            "qps": all.len() as f64 / elapsed,
            "p50_ms": pct(0.50) * 1000.0,
            "p99_ms": pct(0.99) * 1000.0,
            "max_ms": all.last().copied().unwrap_or(f64::NAN) * 1000.0,
        })
    );
    Ok(())
}
