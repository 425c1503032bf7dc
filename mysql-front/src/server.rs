//! The listener: accepts connections (loopback only for now), bounds them
//! with a semaphore, and shuts down gracefully when asked. The caller binds
//! the socket and supplies the shutdown signal, so tests bind port 0.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use lakehouse::Lakehouse;

use crate::backend::BackendConfig;
use crate::sysvars::{SessionVars, VarValue, defaults};
use crate::wire::codes::{ER_HOST_NOT_PRIVILEGED, MyError};
use crate::wire::packet::PacketIo;

pub const SERVER_VERSION: &str = concat!("8.4.0-lakewave-", env!("CARGO_PKG_VERSION"));

static CONNECTED: AtomicUsize = AtomicUsize::new(0);
static QUESTIONS: AtomicU64 = AtomicU64::new(0);
static STARTED: OnceLock<Instant> = OnceLock::new();

pub fn connected() -> usize {
    CONNECTED.load(Ordering::Relaxed)
}
pub fn questions() -> u64 {
    QUESTIONS.load(Ordering::Relaxed)
}
pub fn count_question() {
    QUESTIONS.fetch_add(1, Ordering::Relaxed);
}
pub fn uptime_secs() -> u64 {
    STARTED.get().map(|s| s.elapsed().as_secs()).unwrap_or(0)
}

/// What every connection shares.
#[derive(Clone)]
pub struct ServerContext {
    pub lake: Lakehouse,
    pub version: String,
    globals: Arc<BTreeMap<String, VarValue>>,
    /// Flips to true when the server shuts down; idle sessions then close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The MySQL backend, when one is attached.
    pub backend: Option<BackendConfig>,
    /// The server's sessions, for `SHOW PROCESSLIST`.
    pub processes: Arc<crate::processlist::ProcessList>,
}

impl ServerContext {
    pub fn new(lake: Lakehouse) -> Self {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        Self::with_shutdown(lake, rx)
    }

    fn with_shutdown(lake: Lakehouse, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        let version = SERVER_VERSION.to_string();
        Self { lake, globals: Arc::new(defaults(&version)), version, shutdown, backend: None, processes: Arc::default() }
    }

    pub fn new_vars(&self) -> SessionVars {
        SessionVars::new(self.globals.clone())
    }
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub max_connections: usize,
    pub backend: Option<BackendConfig>,
    /// How long running sessions get to finish after shutdown is requested.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { max_connections: 1024, backend: None, shutdown_grace: Duration::from_secs(10) }
    }
}

/// Serves connections until `shutdown` completes, then waits (bounded) for
/// open sessions to end.
pub async fn run(listener: TcpListener, lake: Lakehouse, options: ServerOptions, shutdown: impl Future<Output = ()>) {
    STARTED.get_or_init(Instant::now);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(b) = &options.backend {
        lake.attach_mysql(connectors::mysql::MySqlSource::new(&b.url));
    }
    // Tables loaded before the last stop are loaded again in the background.
    lake.recover_loaded_tables();
    let mut ctx = ServerContext::with_shutdown(lake, stop_rx);
    ctx.backend = options.backend.clone();
    ctx.lake.set_process_source(ctx.processes.clone());
    let limit = Arc::new(Semaphore::new(options.max_connections));
    let next_id = AtomicU32::new(1);
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let ctx = ctx.clone();
                let limit = limit.clone();
                sessions.spawn(async move {
                    let Ok(_permit) = limit.acquire_owned().await else { return };
                    CONNECTED.fetch_add(1, Ordering::Relaxed);
                    handle(stream, peer, ctx, id).await;
                    CONNECTED.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    tracing::info!("shutting down: no new connections; waiting for {} session(s)", sessions.len());
    // Idle sessions close now; busy ones finish their command first.
    let _ = stop_tx.send(true);
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(options.shutdown_grace, drain).await.is_err() {
        tracing::warn!("sessions still open after the grace period; closing them");
        sessions.abort_all();
    }
    // Change capture stops and loaded tables get a last checkpoint.
    ctx.lake.close().await;
}

async fn handle(stream: tokio::net::TcpStream, peer: SocketAddr, ctx: ServerContext, id: u32) {
    let _ = stream.set_nodelay(true);
    let host = peer.ip().to_string();
    let (reader, writer) = stream.into_split();
    if !peer.ip().is_loopback() {
        // Until users and grants exist, only local clients may connect.
        let mut io = PacketIo::new(reader, writer);
        let e = MyError::new(ER_HOST_NOT_PRIVILEGED, b"HY000", format!("Host '{host}' is not allowed to connect to this MySQL server"));
        io.write_err(e.code, &e.state, &e.message);
        let _ = io.flush().await;
        return;
    }
    // Loopback clients are `localhost` to MySQL.
    let host = "localhost".to_string();
    // A panic in one session must not take the server down.
    let task = tokio::spawn(crate::connection::serve(
        tokio::io::BufReader::with_capacity(64 * 1024, reader),
        writer,
        ctx,
        id,
        host,
    ));
    if let Err(e) = task.await
        && e.is_panic() {
            tracing::error!(id, "session panicked: {e}");
        }
}
