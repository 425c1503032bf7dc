//! The server's sessions as `SHOW PROCESSLIST` lists them: who is connected,
//! what each runs and for how long, and how far a running query's scans
//! have got (`Progress`, in percent, as MariaDB shows it).
//!
//! A scan's progress is the rows its sources have produced against the rows
//! their statistics say they hold (Parquet footers, the loaded copies'
//! chunks), summed over the plan's sources; sources without a row count
//! are left out. It stays below 100 when pruning skips row groups.
//!
//! `KILL QUERY id` stops a session's running statement (its result stream
//! ends with error 1317 at the next poll, and dropping the stream stops the
//! plan; a statement relayed to the MySQL backend is killed there);
//! `KILL [CONNECTION] id` also closes the session.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::{ExecutionPlan, RecordBatchStream, SendableRecordBatchStream, StatisticsArgs, StatisticsContext};
use futures::{Stream, StreamExt};

use lakehouse::info_schema::{ProcessRow, ProcessSource};

use crate::wire::codes::MyError;

/// One session's entry.
struct Process {
    user: String,
    host: String,
    db: Option<String>,
    /// `Sleep` between statements, `Query` while one runs.
    command: &'static str,
    /// When the current command (or the idle time) began.
    since: Instant,
    /// The running statement, secrets masked.
    info: Option<String>,
    /// The running query's physical plan, once planned.
    plan: Option<Arc<dyn ExecutionPlan>>,
    switch: Arc<KillSwitch>,
}

/// A session's off switches: for its running statement, and for itself.
#[derive(Default)]
pub struct KillSwitch {
    query: AtomicBool,
    connection: AtomicBool,
    /// The result stream waiting for its next batch, woken by a kill.
    waiting: Mutex<Option<Waker>>,
    /// Wakes the session's wait for its next command.
    pub closed: tokio::sync::Notify,
    /// The MySQL backend's id of the session's connection there (0 for
    /// none), to stop a statement relayed to it.
    pub backend_thread: AtomicU32,
}

impl KillSwitch {
    /// Whether `KILL [CONNECTION]` named this session.
    pub fn connection_killed(&self) -> bool {
        self.connection.load(Ordering::Acquire)
    }

    fn kill(&self, connection: bool) {
        self.query.store(true, Ordering::Release);
        if connection {
            self.connection.store(true, Ordering::Release);
            self.closed.notify_one();
        }
        if let Some(w) = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

/// A statement's result stream that ends with error 1317 once the statement
/// is killed.
struct Killable {
    inner: SendableRecordBatchStream,
    switch: Arc<KillSwitch>,
    done: bool,
}

/// `stream`, stopped by `KILL QUERY` on the session of `switch`.
pub fn killable(stream: SendableRecordBatchStream, switch: Arc<KillSwitch>) -> SendableRecordBatchStream {
    Box::pin(Killable { inner: stream, switch, done: false })
}

impl Stream for Killable {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        *self.switch.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        if self.switch.query.load(Ordering::Acquire) {
            self.done = true;
            let interrupted = MyError::new(1317, b"70100", "Query execution was interrupted");
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(interrupted)))));
        }
        self.inner.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for Killable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// Every session of one server.
#[derive(Default)]
pub struct ProcessList(Mutex<BTreeMap<u32, Process>>);

/// A session's place in the list, removed when the session ends.
pub struct Registration {
    list: Arc<ProcessList>,
    id: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.list.lock().remove(&self.id);
    }
}

/// `SHOW PROCESSLIST`'s columns.
pub const COLUMNS: [&str; 9] = ["Id", "User", "Host", "db", "Command", "Time", "State", "Info", "Progress"];

/// How much of `SHOW PROCESSLIST`'s Info a plain (not FULL) listing shows.
const INFO_CHARS: usize = 100;

impl ProcessList {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Process>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(self: &Arc<Self>, id: u32, user: &str, host: &str) -> Registration {
        let entry = Process {
            user: user.to_string(),
            host: host.to_string(),
            db: None,
            command: "Sleep",
            since: Instant::now(),
            info: None,
            plan: None,
            switch: Arc::default(),
        };
        self.lock().insert(id, entry);
        Registration { list: Arc::clone(self), id }
    }

    /// The off switches of session `id`.
    pub fn switch(&self, id: u32) -> Option<Arc<KillSwitch>> {
        self.lock().get(&id).map(|p| Arc::clone(&p.switch))
    }

    /// `KILL [QUERY|CONNECTION] id`: the session's connection id on the
    /// MySQL backend (0 for none), to stop a statement relayed there; None
    /// when no session has that id.
    pub fn kill(&self, id: u32, connection: bool) -> Option<u32> {
        let list = self.lock();
        let p = list.get(&id)?;
        // A session between statements has no query to stop.
        if connection || p.command != "Sleep" {
            p.switch.kill(connection);
        }
        Some(p.switch.backend_thread.load(Ordering::Acquire))
    }

    /// A statement starts (its text already masked).
    pub fn begin(&self, id: u32, db: Option<String>, info: String) {
        if let Some(p) = self.lock().get_mut(&id) {
            (p.db, p.command, p.since, p.info, p.plan) = (db, "Query", Instant::now(), Some(info), None);
            p.switch.query.store(false, Ordering::Release);
        }
    }

    /// The running statement's plan, for its progress.
    pub fn planned(&self, id: u32, plan: Arc<dyn ExecutionPlan>) {
        // (Preparing a statement plans it outside any command of the list.)
        if let Some(p) = self.lock().get_mut(&id).filter(|p| p.command != "Sleep") {
            p.plan = Some(plan);
        }
    }

    /// The statement is answered; the session waits for the next.
    pub fn end(&self, id: u32, db: Option<String>) {
        if let Some(p) = self.lock().get_mut(&id) {
            (p.db, p.command, p.since, p.info, p.plan) = (db, "Sleep", Instant::now(), None, None);
        }
    }

    /// The listing's rows, by session id.
    pub fn rows(&self, full: bool) -> Vec<Vec<Option<String>>> {
        self.snapshot()
            .into_iter()
            .map(|mut p| {
                if !full {
                    p.info = p.info.map(|i| i.chars().take(INFO_CHARS).collect());
                }
                let progress = format!("{:.3}", p.progress);
                let mut row = p.shared_columns();
                row.push(Some(progress));
                row
            })
            .collect()
    }

    /// Every session as it stands, by id.
    fn snapshot(&self) -> Vec<ProcessRow> {
        // Progress reads the plans' statistics: outside the lock.
        let plans: Vec<(u32, Option<Arc<dyn ExecutionPlan>>)> = self.lock().iter().map(|(id, p)| (*id, p.plan.clone())).collect();
        let progress: BTreeMap<u32, f64> = plans.iter().filter_map(|(id, plan)| Some((*id, plan.as_ref().and_then(progress)?))).collect();
        self.lock()
            .iter()
            .map(|(id, p)| {
                let state = match (p.command, &p.plan) {
                    ("Sleep", _) => "",
                    (_, Some(_)) => "executing",
                    _ => "starting",
                };
                ProcessRow {
                    id: u64::from(*id),
                    user: p.user.clone(),
                    host: p.host.clone(),
                    db: p.db.clone(),
                    command: p.command.to_string(),
                    time_ms: p.since.elapsed().as_millis() as u64,
                    state: state.to_string(),
                    info: p.info.clone(),
                    progress: progress.get(id).copied().unwrap_or(0.0),
                }
            })
            .collect()
    }
}

impl ProcessSource for ProcessList {
    fn processes(&self) -> Vec<ProcessRow> {
        self.snapshot()
    }
}

impl std::fmt::Debug for ProcessList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessList({} sessions)", self.lock().len())
    }
}

/// Percent of the rows the plan's sources hold that they have produced.
fn progress(plan: &Arc<dyn ExecutionPlan>) -> Option<f64> {
    let (mut done, mut total) = (0usize, 0usize);
    let statistics = StatisticsContext::new();
    let mut stack = vec![Arc::clone(plan)];
    while let Some(node) = stack.pop() {
        let children = node.children();
        if children.is_empty() {
            let rows = statistics.compute(node.as_ref(), &StatisticsArgs::new()).ok().map(|s| s.num_rows);
            if let Some(Precision::Exact(n) | Precision::Inexact(n)) = rows {
                total += n;
                done += node.metrics().and_then(|m| m.output_rows()).unwrap_or(0).min(n);
            }
        }
        stack.extend(children.into_iter().cloned());
    }
    (total > 0).then(|| 100.0 * done as f64 / total as f64)
}
