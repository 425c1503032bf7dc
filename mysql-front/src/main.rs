//! The `lakewave` binary: `serve` runs the MySQL-compatible server,
//! `samples` writes the sample data set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use lakehouse::{Lakehouse, LakehouseOptions};
use lakewave_mysql_front::{ServerOptions, run};
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKEWAVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
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
            Cmd::Serve { listen, data_dir, samples, sample_rows, max_connections, threads } => {
                serve(listen, data_dir, samples, sample_rows, max_connections, threads).await
            }
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

async fn serve(
    listen: SocketAddr,
    data_dir: PathBuf,
    with_samples: bool,
    sample_rows: u64,
    max_connections: usize,
    threads: Option<usize>,
) -> Result<(), String> {
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let mut options = LakehouseOptions::new(&data_dir);
    options.target_partitions = threads;
    let lake = Lakehouse::open(options).map_err(|e| e.to_string())?;
    if with_samples {
        register_samples(&lake, &data_dir, sample_rows).await?;
    }
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("running lake-only: no MySQL backend is attached");
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
    run(listener, lake, ServerOptions { max_connections, ..Default::default() }, shutdown).await;
    tracing::info!("stopped");
    Ok(())
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
