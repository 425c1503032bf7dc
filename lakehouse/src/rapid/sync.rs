//! Applying MySQL row changes to a loaded copy.
//!
//! Rows are found by key (the primary key, or every column for tables
//! without one) through an index from key bytes to (chunk id, row). A change
//! never edits a chunk: deleted rows are hidden by a new visibility mask,
//! inserted rows arrive as a new small chunk, and an update is both. The
//! result is published as a new version, so a query sees each MySQL
//! transaction entirely or not at all. Small chunks, and chunks that are
//! mostly hidden rows, are rewritten into compact ones as they accumulate.

use std::collections::HashMap;
use std::sync::Arc;

use connectors::mysql::binlog::{RowChange, TextRow};
use connectors::mysql::{BinlogPosition, MySqlSource, MySqlTable};
use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};

use super::encode::{EncodingPlan, chunk_bytes};
use super::{Chunk, RapidStore, RapidTable, TableData};

/// Chunks below this many rows count as small.
const SMALL_CHUNK_ROWS: usize = 1024;
/// Small chunks tolerated before they are merged.
const MAX_SMALL_CHUNKS: usize = 64;

type Index = HashMap<Box<[u8]>, Vec<(u64, u32)>>;

/// Per loaded MySQL table: how to encode incoming rows and find old ones.
#[derive(Debug)]
pub struct SyncState {
    pub plan: EncodingPlan,
    pub source: Arc<MySqlTable>,
    /// The snapshot the copy was loaded from: changes up to here are in it.
    pub snapshot: BinlogPosition,
    key_columns: Vec<usize>,
    index: Option<Index>,
    next_id: u64,
}

impl SyncState {
    /// `next_chunk_id`: the id new chunks start at (one past the highest
    /// id of the loaded chunks).
    pub fn new(plan: EncodingPlan, source: Arc<MySqlTable>, snapshot: BinlogPosition, primary_key: &[String], next_chunk_id: u64) -> Self {
        let schema = plan.schema.clone();
        let mut key_columns: Vec<usize> = primary_key.iter().filter_map(|k| schema.index_of(k).ok()).collect();
        if key_columns.len() != primary_key.len() || key_columns.is_empty() {
            key_columns = (0..schema.fields().len()).collect();
        }
        Self { plan, source, snapshot, key_columns, index: None, next_id: next_chunk_id }
    }
}

fn plain(a: &ArrayRef) -> Result<ArrayRef, String> {
    match a.data_type() {
        DataType::Dictionary(_, v) => cast(a, v).map_err(|e| e.to_string()),
        _ => Ok(a.clone()),
    }
}

/// Key bytes of every row of a chunk (from the table's types, however
/// the chunk stores them).
fn row_keys(chunk: &Chunk, key_columns: &[usize]) -> Result<Vec<Box<[u8]>>, String> {
    let cols: Vec<ArrayRef> =
        key_columns.iter().map(|i| chunk.column(*i).map_err(|e| e.to_string()).and_then(|c| plain(&c))).collect::<Result<_, _>>()?;
    let fields: Vec<SortField> = cols.iter().map(|c| SortField::new(c.data_type().clone())).collect();
    let converter = RowConverter::new(fields).map_err(|e| e.to_string())?;
    let rows = converter.convert_columns(&cols).map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| r.as_ref().to_vec().into_boxed_slice()).collect())
}

fn build_index(chunks: &[Chunk], key_columns: &[usize]) -> Result<Index, String> {
    let mut index = Index::new();
    for c in chunks {
        let keys = row_keys(c, key_columns)?;
        for (row, key) in keys.into_iter().enumerate() {
            if c.visible.as_ref().is_none_or(|v| v.value(row)) {
                index.entry(key).or_default().push((c.id, row as u32));
            }
        }
    }
    Ok(index)
}

struct Work<'a> {
    st: &'a mut SyncState,
    chunks: Vec<Chunk>,
    positions: HashMap<u64, usize>,
    hidden: HashMap<usize, Vec<u32>>,
}

impl Work<'_> {
    fn encode(&self, rows: &[TextRow]) -> Result<Chunk, String> {
        let batch = MySqlSource::rows_to_batch(&self.st.source, rows).map_err(|e| e.to_string())?;
        self.st.plan.encode(&batch).map_err(|e| e.to_string())
    }

    fn insert(&mut self, rows: &[TextRow]) -> Result<(), String> {
        let mut chunk = self.encode(rows)?;
        chunk.id = self.st.next_id;
        self.st.next_id += 1;
        let keys = row_keys(&chunk, &self.st.key_columns)?;
        let index = self.st.index.as_mut().ok_or("index missing")?;
        for (row, key) in keys.into_iter().enumerate() {
            index.entry(key).or_default().push((chunk.id, row as u32));
        }
        self.positions.insert(chunk.id, self.chunks.len());
        self.chunks.push(chunk);
        Ok(())
    }

    fn delete(&mut self, rows: &[TextRow]) -> Result<(), String> {
        let probe = self.encode(rows)?;
        let keys = row_keys(&probe, &self.st.key_columns)?;
        let index = self.st.index.as_mut().ok_or("index missing")?;
        for key in keys {
            let found = index.get_mut(&key).and_then(|v| v.pop());
            if index.get(&key).is_some_and(|v| v.is_empty()) {
                index.remove(&key);
            }
            let (id, row) = found.ok_or("a deleted or updated row is not in the loaded copy")?;
            let pos = *self.positions.get(&id).ok_or("index refers to a missing chunk")?;
            self.hidden.entry(pos).or_default().push(row);
        }
        Ok(())
    }
}

/// Applies one transaction's changes to a table and publishes the result.
/// Returns how many rows changed.
pub fn apply(store: &RapidStore, table: &RapidTable, changes: &[&RowChange], end: &BinlogPosition) -> Result<u64, String> {
    let mut guard = table.sync.lock().unwrap_or_else(|p| p.into_inner());
    let st = guard.as_mut().ok_or("the table has no change capture state")?;
    if end <= &st.snapshot {
        return Ok(0);
    }
    let data = table.raw_data().ok_or("the table is not loaded")?;
    if st.index.is_none() {
        st.index = Some(build_index(&data.chunks, &st.key_columns)?);
    }
    let positions = data.chunks.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let mut work = Work { st, chunks: data.chunks.clone(), positions, hidden: HashMap::new() };
    let mut n = 0u64;
    for change in changes {
        match change {
            RowChange::Insert(rows) => {
                work.insert(rows)?;
                n += rows.len() as u64;
            }
            RowChange::Delete(rows) => {
                work.delete(rows)?;
                n += rows.len() as u64;
            }
            RowChange::Update(pairs) => {
                let (before, after): (Vec<TextRow>, Vec<TextRow>) = pairs.iter().cloned().unzip();
                work.delete(&before)?;
                work.insert(&after)?;
                n += pairs.len() as u64;
            }
        }
    }
    let Work { st, mut chunks, hidden, .. } = work;
    for (pos, rows) in hidden {
        let c = &mut chunks[pos];
        let mut mask: Vec<bool> = match &c.visible {
            Some(v) => v.iter().map(|b| b.unwrap_or(false)).collect(),
            None => vec![true; c.batch.num_rows()],
        };
        for r in rows {
            mask[r as usize] = false;
        }
        c.visible = Some(BooleanArray::from(mask));
    }
    chunks.retain(|c| c.live_rows() > 0);
    compact(st, &mut chunks)?;
    let size_bytes: u64 = chunks.iter().map(chunk_bytes).sum();
    store.charge(size_bytes);
    store.replace(table, Arc::new(TableData { schema: data.schema.clone(), chunks, size_bytes, files: None, scans: Default::default() }));
    table.update_status(|s| {
        s.changes_applied += n;
        s.position = Some(end.to_string());
    });
    Ok(n)
}

/// Empties a table (TRUNCATE on MySQL).
pub fn truncate(store: &RapidStore, table: &RapidTable, end: &BinlogPosition) {
    let Some(data) = table.raw_data() else { return };
    if let Some(st) = table.sync.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        st.index = Some(Index::new());
    }
    store.replace(table, Arc::new(TableData { schema: data.schema.clone(), chunks: Vec::new(), size_bytes: 0, files: None, scans: Default::default() }));
    table.update_status(|s| s.position = Some(end.to_string()));
}

/// Rewrites small chunks into one, and mostly-hidden chunks into compact
/// ones, moving their index entries along.
fn compact(st: &mut SyncState, chunks: &mut Vec<Chunk>) -> Result<(), String> {
    let small: Vec<usize> = (0..chunks.len()).filter(|i| chunks[*i].batch.num_rows() < SMALL_CHUNK_ROWS).collect();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    if small.len() > MAX_SMALL_CHUNKS {
        groups.push(small.clone());
    }
    for (i, c) in chunks.iter().enumerate() {
        if c.batch.num_rows() >= SMALL_CHUNK_ROWS && c.live_rows() * 2 < c.batch.num_rows() {
            groups.push(vec![i]);
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let mut replaced: Vec<bool> = vec![false; chunks.len()];
    let mut added = Vec::new();
    for group in groups {
        let mut batches = Vec::new();
        let mut origin: Vec<(u64, u32)> = Vec::new();
        for &i in &group {
            let c = &chunks[i];
            replaced[i] = true;
            for row in 0..c.batch.num_rows() {
                if c.visible.as_ref().is_none_or(|v| v.value(row)) {
                    origin.push((c.id, row as u32));
                }
            }
            let wide = c.wide_batch(&st.plan.schema).map_err(|e| e.to_string())?;
            batches.push(match &c.visible {
                Some(v) => filter_record_batch(&wide, v).map_err(|e| e.to_string())?,
                None => wide,
            });
        }
        let merged = concat_batches(&st.plan.schema, &batches).map_err(|e| e.to_string())?;
        let mut chunk = st.plan.encode(&merged).map_err(|e| e.to_string())?;
        chunk.id = st.next_id;
        st.next_id += 1;
        let keys = row_keys(&chunk, &st.key_columns)?;
        if let Some(index) = st.index.as_mut() {
            for (new_row, (key, old)) in keys.into_iter().zip(origin).enumerate() {
                if let Some(slot) = index.get_mut(&key).and_then(|v| v.iter_mut().find(|p| **p == old)) {
                    *slot = (chunk.id, new_row as u32);
                }
            }
        }
        added.push(chunk);
    }
    let mut i = 0;
    chunks.retain(|_| {
        let keep = !replaced[i];
        i += 1;
        keep
    });
    chunks.extend(added);
    Ok(())
}
