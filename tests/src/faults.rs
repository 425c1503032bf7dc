//! A fault-injecting HTTP proxy for object-store tests. It sits between
//! Lakewave and a store server and, by a fixed pattern over the requests it
//! sees, answers `503 SlowDown`, drops the connection without an answer,
//! delays the request, or forwards it untouched. Each connection carries one
//! request (the proxy asks the upstream to close after answering), so the
//! pattern applies per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to requests. Request `n` (from 0) gets, in this
/// order of precedence: a 503 if `n % slowdown_every == 0`, a dropped
/// connection if `n % drop_every == 1`, a delay if `n % delay_every == 2`.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub slowdown_every: u64,
    pub drop_every: u64,
    pub delay_every: u64,
    pub delay: Duration,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Faults by the pattern; everything else is forwarded.
    Pattern,
    /// Every request gets a 503.
    FailAll,
    /// Requests are read and never answered.
    BlackHole,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub requests: AtomicU64,
    pub slowdowns: AtomicU64,
    pub drops: AtomicU64,
    pub delays: AtomicU64,
    pub forwarded: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    pub stats: Arc<FaultStats>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, plan: FaultPlan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stats = Arc::new(FaultStats::default());
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (plan, stats) = (plan.clone(), shared.clone());
                tokio::spawn(async move {
                    let _ = handle(conn, upstream, plan, stats).await;
                });
            }
        });
        FaultProxy { port, stats, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self, which: fn(&FaultStats) -> &AtomicU64) -> u64 {
        which(&self.stats).load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SLOWDOWN_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
     <Message>Please reduce your request rate.</Message></Error>";

async fn handle(mut conn: TcpStream, upstream: SocketAddr, plan: FaultPlan, stats: Arc<FaultStats>) -> std::io::Result<()> {
    // The request head.
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let n = stats.requests.fetch_add(1, Ordering::Relaxed);
    match plan.mode {
        Mode::BlackHole => {
            // Hold the connection open, answering nothing.
            let mut sink = [0u8; 4096];
            while conn.read(&mut sink).await? > 0 {}
            return Ok(());
        }
        Mode::FailAll => return slowdown(conn, &stats).await,
        Mode::Pattern => {}
    }
    if plan.slowdown_every > 0 && n % plan.slowdown_every == 0 {
        return slowdown(conn, &stats).await;
    }
    if plan.drop_every > 0 && n % plan.drop_every == 1 {
        stats.drops.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    if plan.delay_every > 0 && n % plan.delay_every == 2 {
        stats.delays.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(plan.delay).await;
    }
    stats.forwarded.fetch_add(1, Ordering::Relaxed);
    // One request per connection: the upstream closes after answering.
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rewritten = String::with_capacity(head.len() + 20);
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(rewritten.as_bytes()).await?;
    up.write_all(&buf[head_end..]).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut up).await?;
    Ok(())
}

async fn slowdown(mut conn: TcpStream, stats: &FaultStats) -> std::io::Result<()> {
    stats.slowdowns.fetch_add(1, Ordering::Relaxed);
    let response = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SLOWDOWN_BODY}",
        SLOWDOWN_BODY.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}
