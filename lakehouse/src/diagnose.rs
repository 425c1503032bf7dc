//! Naming the file behind a read error. Scans report decoder errors without
//! saying which file they came from; when a query fails that way, each file
//! of the tables it read is scanned alone until the failing one is found, so
//! the error can name the file (and, for CSV, the line). This runs only on
//! the error path.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, RecordBatchStream, SendableRecordBatchStream};
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt};

/// A result stream that turns a panic raised while producing a batch (a
/// decoder's arithmetic overflow on a damaged file, say) into a read error,
/// so the client gets an error packet instead of a dropped connection.
pub struct CatchPanics {
    inner: SendableRecordBatchStream,
    done: bool,
}

impl CatchPanics {
    pub fn wrap(inner: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(CatchPanics { inner, done: false })
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Stream for CatchPanics {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| this.inner.poll_next_unpin(cx))) {
            Ok(p) => p,
            Err(panic) => {
                this.done = true;
                Poll::Ready(Some(Err(DataFusionError::IoError(std::io::Error::other(format!(
                    "the file decoder failed on malformed data ({})",
                    panic_text(panic.as_ref())
                ))))))
            }
        }
    }
}

/// Plans and starts a query, turning panics while planning (statistics
/// read from a damaged footer) or streaming into read errors.
pub async fn execute_catching(df: datafusion::dataframe::DataFrame) -> Result<SendableRecordBatchStream> {
    let task = df.task_ctx();
    execute_plan_catching(plan_catching(df).await?, Arc::new(task))
}

fn decoder_panic(panic: &(dyn std::any::Any + Send)) -> DataFusionError {
    DataFusionError::IoError(std::io::Error::other(format!("the file decoder failed on malformed data ({})", panic_text(panic))))
}

/// Plans a query (the physical plan), a panic while planning a read error.
pub async fn plan_catching(df: datafusion::dataframe::DataFrame) -> Result<Arc<dyn ExecutionPlan>> {
    catching(df.create_physical_plan()).await
}

/// Runs planning work, a panic in it a read error.
pub async fn catching<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(planned) => planned,
        Err(panic) => Err(decoder_panic(panic.as_ref())),
    }
}

/// Starts a planned query, a panic while starting or streaming a read error.
pub fn execute_plan_catching(plan: Arc<dyn ExecutionPlan>, task: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| datafusion::physical_plan::execute_stream(plan, task))) {
        Ok(stream) => Ok(CatchPanics::wrap(stream?)),
        Err(panic) => Err(decoder_panic(panic.as_ref())),
    }
}

impl RecordBatchStream for CatchPanics {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

use crate::model::TableDef;
use crate::provider;

/// The CSV decoder reports field-count errors by physical line, but value
/// errors by data record (counted after the header); users count lines.
fn physical_lines(message: &str, def: &TableDef) -> String {
    let header = def.options.get("format.has_header").is_some_and(|v| v == "true");
    if def.format != "csv" || !header || !message.contains("Error while parsing value") {
        return message.to_string();
    }
    let Some(i) = message.find("line ") else { return message.to_string() };
    let digits: String = message[i + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
    match digits.parse::<u64>() {
        Ok(n) => format!("{}line {}{}", &message[..i], n + 1, &message[i + 5 + digits.len()..]),
        Err(_) => message.to_string(),
    }
}

/// Scans each file of `def` alone; returns "file '<path>': <error>" for the
/// first that fails.
pub async fn locate(state: &SessionState, def: &TableDef) -> Option<String> {
    let files = provider::files_of(state, def).await.unwrap_or_default();
    for file in files {
        let Ok(table) = provider::build(state, &provider::single_file(def, &file), None) else { continue };
        let ctx = SessionContext::new_with_state(state.clone());
        let failure = match ctx.read_table(table) {
            Err(e) => Some(e),
            Ok(df) => match execute_catching(df).await {
                Err(e) => Some(e),
                Ok(mut stream) => {
                    let mut failure = None;
                    while let Some(batch) = stream.next().await {
                        if let Err(e) = batch {
                            failure = Some(e);
                            break;
                        }
                    }
                    failure
                }
            },
        };
        if let Some(e) = failure {
            let msg = physical_lines(&e.strip_backtrace(), def);
            return Some(format!("file '{file}': {msg}"));
        }
    }
    None
}
