//! The `lakewave` binary: `serve` runs the MySQL-compatible server,
//! `samples` writes the sample data set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
use tokio::net::TcpListener;

use lakehouse::{Lakehouse, LakehouseOptions};
use lakewave_mysql_front::{ServerOptions, run};
use connectors::mysql::{BackendUrl, ManagedServer, find_server_binary};
use lakewave_mysql_front::backend::{Backend, BackendConfig};
use mysql_common::constants::CapabilityFlags;
use samples::SampleOptions;

#[derive(Parser)]
#[command(name = "lakewave", version, about = "Lakewave: an open-source MySQL-compatible lakehouse")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the MySQL-compatible server.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:3307")]
        listen: SocketAddr,
        /// Directory holding the catalog (and the sample data with --samples).
        #[arg(long, default_value = "./lakewave-data")]
        data_dir: PathBuf,
        /// Generate the sample data set if absent and register it as database `samples`.
        #[arg(long)]
        samples: bool,
        /// Rows of sample data to generate (with --samples).
        #[arg(long, default_value_t = 100_000)]
        sample_rows: u64,
        /// Maximum concurrent client connections.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Query parallelism (default: number of cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Attach an existing MySQL/MariaDB server (mysql://user:pass@host:port/).
        /// Without it, a private server is managed in DATA_DIR/mysql when
        /// mariadbd or mysqld is installed.
        #[arg(long, value_name = "URL")]
        mysql: Option<String>,
        /// Run lake-only even when a MySQL server could be managed.
        #[arg(long, conflicts_with = "mysql")]
        no_mysql: bool,
        /// Memory for tables loaded into the secondary engine (SECONDARY_LOAD),
        /// e.g. 512M or 8G (default: half of the machine's memory).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        rapid_memory: Option<u64>,
        /// Memory of one node, for heatwave_load dry runs' node-count estimate
        /// (default: --rapid-memory).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        rapid_node_memory: Option<u64>,
        /// Seconds between checkpoints of loaded tables to DATA_DIR/rapid
        /// (a restart restores them from there instead of reading their
        /// sources again); 0 turns checkpoints off.
        #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
        rapid_checkpoint_interval: f64,
    },
    /// Write TPC-H tables as Parquet (for benchmarks): DIR/<table>/part-N.parquet.
    TpchData {
        #[arg(long)]
        out: PathBuf,
        /// Scale factor (1 = 6M lineitem rows).
        #[arg(long, default_value_t = 1.0)]
        sf: f64,
        /// Files per large table, written in parallel.
        #[arg(long, default_value_t = 4)]
        parts: usize,
    },
    /// Lakewave's engine in-process, for benchmarks that measure what the
    /// wire costs: reads one SQL statement per line on standard input, runs
    /// it in a session like a client's (lake-only), and answers on standard
    /// output `OK <rows> <seconds>` (result rows read, not encoded) or
    /// `ERR <message>`.
    BenchEngine {
        /// Directory for the catalog (a fresh one per run is best).
        #[arg(long)]
        data_dir: PathBuf,
        /// Query parallelism (default: number of cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Benchmark client over the wire (mysql_async), the counterpart of
    /// `bench-engine`: reads one SQL statement per line on standard input,
    /// runs it on one connection, reads and decodes every row, and answers
    /// `OK <rows> <seconds>` or `ERR <message>`.
    BenchClient {
        /// mysql://user:pass@host:port/db
        #[arg(long)]
        url: String,
    },
    /// Benchmark client: streams a query's rows (mysql_async) and prints
    /// rows, bytes and seconds per run as JSON.
    BenchFetch {
        /// mysql://user:pass@host:port/db
        #[arg(long)]
        url: String,
        #[arg(long)]
        sql: String,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Benchmark clients: N connections running short queries in turn for a
    /// while; prints throughput and p50/p99 latency as JSON.
    BenchClients {
        #[arg(long)]
        url: String,
        /// A query to run (repeat for several; clients take turns).
        #[arg(long = "sql", required = true)]
        queries: Vec<String>,
        /// A statement each connection runs first (repeatable).
        #[arg(long)]
        setup: Vec<String>,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
    /// Write the sample data set (Parquet, CSV, gzip CSV, JSON lines, Avro).
    Samples {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// Standard error with secrets that can appear in URLs (PAR tokens, URL
/// signatures) masked, whichever component logs them. Each log event is
/// written whole, so a secret is never split between two writes.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(connectors::stores::redact_text(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Sets glibc's allocator for a server that frees and allocates large
/// blocks query after query. By default glibc serves blocks from 128 KiB
/// up (a threshold it then raises as blocks are freed) with their own
/// mappings, and returns free memory past 128 KiB at the top of its heap:
/// a query's hash tables and batches were mapped and unmapped, and their
/// pages faulted in again, on every statement, and how depended on the
/// statements before. Here blocks up to 32 MiB come from the heap, free
/// memory is returned past 1 GiB, and the heap grows 64 MiB at a time.
/// Measured on TPC-H SF 1 over the loaded copies (A/B on one build, median
/// of 9, three runs): 0.95-0.98x in geometric mean. The price is memory:
/// up to about 1 GiB freed by a query can stay with the process for the
/// next (resident memory after the 22 queries: +11%).
/// Settings the environment gives glibc (`GLIBC_TUNABLES` with
/// `glibc.malloc.*`) are left alone; `LAKEWAVE_MALLOC_TUNING=off` keeps
/// glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    let off = lakehouse::switched_off("LAKEWAVE_MALLOC_TUNING");
    let given = std::env::var("GLIBC_TUNABLES").is_ok_and(|v| v.contains("glibc.malloc."));
    if off || given {
        return;
    }
    // SAFETY: mallopt only changes the allocator's parameters, takes
    // plain integers, and is made before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    if let Some(missing) = missing_cpu_features() {
        eprintln!(
            "lakewave: this build needs a processor with {missing} (x86-64-v3); \
             build for this one with RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release"
        );
        return ExitCode::FAILURE;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKEWAVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(|| RedactingStderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lakewave: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Serve {
                listen,
                data_dir,
                samples,
                sample_rows,
                max_connections,
                threads,
                mysql,
                no_mysql,
                rapid_memory,
                rapid_node_memory,
                rapid_checkpoint_interval,
            } => {
                let backend = BackendChoice { url: mysql, disabled: no_mysql };
                let checkpoints = std::time::Duration::try_from_secs_f64(rapid_checkpoint_interval).ok().filter(|d| !d.is_zero());
                let memory = RapidMemory { limit: rapid_memory, node: rapid_node_memory, checkpoints };
                serve(listen, data_dir, samples, sample_rows, max_connections, threads, backend, memory).await
            }
            Cmd::TpchData { out, sf, parts } => {
                let started = std::time::Instant::now();
                let rows = samples::generate_tpch(&out, sf, parts).map_err(|e| e.to_string())?;
                if rows.is_empty() {
                    println!("TPC-H SF {sf} already present in {}", out.display());
                }
                for (table, n) in rows {
                    println!("{table}: {n} rows");
                }
                println!("done in {:.1} s", started.elapsed().as_secs_f64());
                Ok(())
            }
            Cmd::BenchEngine { data_dir, threads } => bench_engine(data_dir, threads).await,
            Cmd::BenchClient { url } => bench::client(&url).await,
            Cmd::BenchFetch { url, sql, runs } => bench::fetch(&url, &sql, runs).await,
            Cmd::BenchClients { url, queries, setup, clients, seconds } => bench::clients(&url, queries, clients, seconds, setup).await,
            Cmd::Samples { out, rows, seed } => {
                let opts = SampleOptions { rows, seed, ..SampleOptions::default() };
                let summary = samples::generate(&out, &opts).map_err(|e| e.to_string())?;
                println!(
                    "wrote {} rows ({} failures) in {} files under {}",
                    summary.rows,
                    summary.failures,
                    summary.files,
                    summary.out.display()
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lakewave: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `512M`, `8G`, `1.5T` or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let mult: u64 = match t[i..].to_ascii_uppercase().trim_end_matches(['B', 'I']) {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                other => return Err(format!("unknown size unit '{other}' (use K, M, G or T)")),
            };
            (&t[..i], mult)
        }
        None => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("'{text}' is not a size such as 512M or 8G"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("'{text}' is not a positive size"));
    }
    Ok((n * mult as f64) as u64)
}

struct RapidMemory {
    limit: Option<u64>,
    node: Option<u64>,
    /// None: checkpoints off.
    checkpoints: Option<std::time::Duration>,
}

struct BackendChoice {
    url: Option<String>,
    disabled: bool,
}

/// Attaches the configured backend, or starts a managed one when a server
/// is installed; None runs lake-only.
async fn backend(choice: BackendChoice, data_dir: &std::path::Path) -> Result<Option<BackendConfig>, String> {
    if choice.disabled {
        return Ok(None);
    }
    if let Some(url) = choice.url {
        let url = BackendUrl::parse(&url).map_err(|e| e.to_string())?;
        tracing::info!("MySQL backend: {url}");
        return Ok(Some(BackendConfig { url, managed: None }));
    }
    if find_server_binary().is_none() {
        tracing::warn!(
            "no MariaDB/MySQL server is installed: running lake-only (install mariadb-server, or pass --mysql URL, \
             to run MySQL statements through Lakewave)"
        );
        return Ok(None);
    }
    let dir = data_dir.join("mysql");
    tracing::info!("starting the managed MySQL server in {}", dir.display());
    let server = tokio::task::spawn_blocking(move || ManagedServer::start(&dir, 0))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let url = BackendUrl::parse(&server.url()).map_err(|e| e.to_string())?;
    tracing::info!("managed MySQL server ready on 127.0.0.1:{}", server.port);
    Ok(Some(BackendConfig { url, managed: Some(std::sync::Arc::new(server)) }))
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    with_samples: bool,
    sample_rows: u64,
    max_connections: usize,
    threads: Option<usize>,
    backend_choice: BackendChoice,
    memory: RapidMemory,
) -> Result<(), String> {
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let mut options = LakehouseOptions::new(&data_dir);
    options.target_partitions = threads;
    options.rapid_memory = memory.limit;
    options.rapid_node_memory = memory.node;
    options.rapid_checkpoint_interval = memory.checkpoints;
    let lake = Lakehouse::open(options).map_err(|e| e.to_string())?;
    if with_samples {
        register_samples(&lake, &data_dir, sample_rows).await?;
    }
    let backend = backend(backend_choice, &data_dir).await?;
    if let Some(b) = &backend {
        align_databases(&lake, b).await?;
    } else {
        tracing::info!("running lake-only: no MySQL backend is attached");
    }
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts wait for this exact line on stdout.
    println!("Lakewave listening on {addr}");
    println!("Connect with: mysql -h {} -P {} -u root", addr.ip(), addr.port());
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    run(listener, lake, ServerOptions { max_connections, backend: backend.clone(), ..Default::default() }, shutdown).await;
    if let Some(managed) = backend.and_then(|b| b.managed) {
        tracing::info!("stopping the managed MySQL server");
        tokio::task::spawn_blocking(move || managed.stop()).await.ok();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Every lake database also exists on the backend, so one namespace holds
/// both kinds of tables.
async fn align_databases(lake: &Lakehouse, backend: &BackendConfig) -> Result<(), String> {
    let mut conn = Backend::connect(backend, CapabilityFlags::empty(), None).await.map_err(|e| e.to_string())?;
    for db in lake.catalog().database_names() {
        conn.query(&format!("CREATE DATABASE IF NOT EXISTS {}", connectors::sql::quote_ident(&db)))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn bench_engine(data_dir: PathBuf, threads: Option<usize>) -> Result<(), String> {
    use futures::StreamExt;
    use lakewave_mysql_front::session::Response;
    let mut options = LakehouseOptions::new(&data_dir);
    options.target_partitions = threads;
    let lake = Lakehouse::open(options).map_err(|e| e.to_string())?;
    let vars = lakewave_mysql_front::server::ServerContext::new(lake.clone()).new_vars();
    let mut session = lakewave_mysql_front::session::Session::new(0, "root".into(), "localhost".into(), lake, vars, String::new());
    bench::answer_lines(async |sql: &str| match session.execute(sql).await.map_err(|e| e.to_string())? {
        Response::Rows { mut stream, .. } => {
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                rows += batch.map_err(|e| e.to_string())?.num_rows() as u64;
            }
            Ok(rows)
        }
        Response::Ok { affected, .. } => Ok(affected),
        Response::Backend(_) => Err("this statement needs a MySQL backend".to_string()),
    })
    .await
}

async fn register_samples(lake: &Lakehouse, data_dir: &std::path::Path, rows: u64) -> Result<(), String> {
    let out = data_dir.join("samples");
    let opts = SampleOptions { rows, ..SampleOptions::default() };
    let started = std::time::Instant::now();
    if let Some(summary) = samples::ensure_generated(&out, &opts).map_err(|e| e.to_string())? {
        tracing::info!(
            "generated {} sample rows in {} files under {} ({:.1}s)",
            summary.rows,
            summary.files,
            out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let vars = lakewave_mysql_front::server::ServerContext::new(lake.clone()).new_vars();
    let mut session = lakewave_mysql_front::session::Session::new(0, "root".into(), "localhost".into(), lake.clone(), vars, String::new());
    for sql in samples::registration_sql(&out) {
        if let Err(e) = session.execute(&sql).await {
            return Err(format!("registering samples failed on `{sql}`: {e}"));
        }
    }
    tracing::info!("sample tables registered in database `samples`");
    Ok(())
}

/// The instruction sets this binary was compiled to use that the processor
/// lacks (see `.cargo/config.toml`), named for the message.
fn missing_cpu_features() -> Option<&'static str> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return Some("AVX2");
        }
        if !std::arch::is_x86_feature_detected!("bmi2") {
            return Some("BMI2");
        }
        if !std::arch::is_x86_feature_detected!("fma") {
            return Some("FMA");
        }
    }
    None
}
