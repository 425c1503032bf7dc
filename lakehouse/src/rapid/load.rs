//! Loading rows into the store: a sample chooses the encodings and gives
//! the bytes per row for estimates; then every partition of the source is
//! read and encoded in parallel, each chunk charged against the memory limit
//! before it is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::encode::{EncodingPlan, chunk_bytes};
use super::{Chunk, RapidError, RapidStore, RapidTable, TableData};

/// Rows read to choose encodings and estimate memory.
pub const SAMPLE_ROWS: usize = 16_384;

/// What a table would take in memory.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub rows: u64,
    pub bytes: u64,
    pub plan: EncodingPlan,
}

/// Estimates from a sample of the source's first rows and its row count.
pub fn estimate_from_sample(schema: &SchemaRef, sample: &[RecordBatch], rows: u64) -> Result<Estimate> {
    let plan = EncodingPlan::choose(schema, sample);
    let mut sample_rows = 0u64;
    let mut sample_bytes = 0u64;
    for b in sample {
        let c = plan.encode(b)?;
        sample_rows += b.num_rows() as u64;
        sample_bytes += chunk_bytes(&c);
    }
    let bytes = if sample_rows == 0 {
        0
    } else if rows <= sample_rows {
        sample_bytes
    } else {
        (sample_bytes as f64 / sample_rows as f64 * rows as f64) as u64
    };
    Ok(Estimate { rows, bytes, plan })
}

/// Estimates a table read through a DataFusion provider (lake tables).
pub async fn estimate_provider(state: &SessionState, provider: Arc<dyn TableProvider>) -> Result<Estimate> {
    let ctx = SessionContext::new_with_state(state.clone());
    let sample = ctx.read_table(provider.clone())?.limit(0, Some(SAMPLE_ROWS))?.collect().await?;
    let rows = ctx.read_table(provider.clone())?.count().await? as u64;
    estimate_from_sample(&provider.schema(), &sample, rows)
}

/// Reads every partition of a provider for loading.
pub async fn provider_streams(state: &SessionState, provider: Arc<dyn TableProvider>) -> Result<Vec<SendableRecordBatchStream>> {
    let ctx = SessionContext::new_with_state(state.clone());
    ctx.read_table(provider)?.execute_stream_partitioned().await
}

/// Reads the streams in parallel into chunks, charging memory as it goes
/// and reporting progress against `expected_rows`. Nothing is published:
/// the caller swaps the result in.
pub async fn load_streams(
    store: &Arc<RapidStore>,
    table: &Arc<RapidTable>,
    plan: &EncodingPlan,
    streams: Vec<SendableRecordBatchStream>,
    expected_rows: u64,
) -> std::result::Result<Arc<TableData>, LoadError> {
    let tagged = streams.into_iter().map(|s| (0, s)).collect();
    let (chunks, size_bytes) = load_tagged(store, table, plan, tagged, expected_rows, None).await?;
    let mut chunks: Vec<Chunk> = chunks.into_iter().map(|(_, c)| c).collect();
    for (i, c) in chunks.iter_mut().enumerate() {
        c.id = i as u64;
    }
    Ok(Arc::new(TableData { schema: plan.schema.clone(), chunks, size_bytes, files: None, scans: Default::default() }))
}

/// Cuts a batch into pieces, each tagged with the file it came from.
pub type Splitter = Arc<dyn Fn(RecordBatch) -> Result<Vec<(usize, RecordBatch)>> + Send + Sync>;

/// Streams read at once by [`load_tagged`].
const PARALLEL_STREAMS: usize = 16;

/// Reads tagged streams (a tag names the file a stream reads) into chunks,
/// each with its stream's tag, at most [`PARALLEL_STREAMS`] at a time.
/// Returns the chunks and the bytes they hold, charged to the store; on
/// failure nothing stays charged. A `splitter` tags rows instead: it cuts
/// each batch into tagged pieces (by a file-name column, say).
pub async fn load_tagged(
    store: &Arc<RapidStore>,
    table: &Arc<RapidTable>,
    plan: &EncodingPlan,
    streams: Vec<(usize, SendableRecordBatchStream)>,
    expected_rows: u64,
    splitter: Option<Splitter>,
) -> std::result::Result<(Vec<(usize, Chunk)>, u64), LoadError> {
    let label = format!("{}.{}", table.db, table.name);
    let reservation = Arc::new(Mutex::new(store.reservation()));
    let done = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL_STREAMS));
    let mut tasks = Vec::with_capacity(streams.len());
    for (tag, mut stream) in streams {
        let (plan, reservation, done, table, label, permits, splitter) =
            (plan.clone(), reservation.clone(), done.clone(), table.clone(), label.clone(), permits.clone(), splitter.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| LoadError::Read(DataFusionError::External(Box::new(e))))?;
            let mut chunks: Vec<(usize, Chunk)> = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(LoadError::Read)?;
                if batch.num_rows() == 0 {
                    continue;
                }
                let rows = batch.num_rows() as u64;
                let pieces = match &splitter {
                    Some(split) => split(batch).map_err(LoadError::Read)?,
                    None => vec![(tag, batch)],
                };
                for (tag, piece) in pieces {
                    let chunk = plan.encode(&piece).map_err(LoadError::Read)?;
                    let bytes = chunk_bytes(&chunk);
                    reservation.lock().unwrap_or_else(|p| p.into_inner()).grow(bytes, &label).map_err(LoadError::Rapid)?;
                    chunks.push((tag, chunk));
                }
                let n = done.fetch_add(rows, Ordering::Relaxed) + rows;
                let pct = if expected_rows == 0 { 99.0 } else { (n as f64 * 100.0 / expected_rows as f64).min(99.0) };
                table.update_status(|s| s.progress = pct);
            }
            Ok::<_, LoadError>(chunks)
        }));
    }
    let mut chunks = Vec::new();
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok(mut c)) => chunks.append(&mut c),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(join) => {
                failure.get_or_insert(LoadError::Read(DataFusionError::External(Box::new(join))));
            }
        }
    }
    if let Some(e) = failure {
        // Dropping the chunks and the reservation returns the memory.
        return Err(e);
    }
    let reservation = Arc::try_unwrap(reservation)
        .map_err(|_| LoadError::Read(DataFusionError::Internal("load reservation still shared".into())))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let size_bytes = reservation.keep();
    Ok((chunks, size_bytes))
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Rapid(RapidError),
    #[error("{0}")]
    Read(DataFusionError),
}
