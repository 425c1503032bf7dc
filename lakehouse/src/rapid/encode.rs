//! How rows are stored in memory: the encoding of each column (chosen once
//! per table from a sample), the per-chunk statistics, and the memory a chunk
//! holds.
//!
//! * Text with few distinct values is dictionary-encoded (keys plus one copy
//!   of each value per chunk); other text is stored as plain `Utf8`.
//! * View types (`Utf8View`, `BinaryView`) that readers produce are turned
//!   into plain arrays: their buffers may be shared between batches, which
//!   would make the memory charged for a chunk wrong.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;

use super::narrow::{self, Narrowed};
use super::{Chunk, ColumnStats};

/// A text column is dictionary-encoded when its sample has at most one
/// distinct value per this many rows.
const DICTIONARY_RATIO: usize = 2;
/// ...and at least this many rows to judge by.
const MIN_SAMPLE_ROWS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Dictionary,
}

/// The stored form of a table: the schema of its chunks and how each
/// column of the source maps to it.
#[derive(Debug, Clone)]
pub struct EncodingPlan {
    pub schema: SchemaRef,
    pub encodings: Vec<Encoding>,
}

/// The type a column has once its encoding is undone.
pub(crate) fn plain_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, v) => plain_type(v),
        other => other.clone(),
    }
}

fn is_text(dt: &DataType) -> bool {
    matches!(plain_type(dt), DataType::Utf8)
}

fn stored_type(dt: &DataType, enc: Encoding) -> DataType {
    match enc {
        Encoding::Dictionary => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        Encoding::Plain => plain_type(dt),
    }
}

impl EncodingPlan {
    /// The plan a loaded table was stored with (new rows must be encoded
    /// as its chunks are).
    pub fn of_stored(schema: &SchemaRef) -> Self {
        let encodings = schema
            .fields()
            .iter()
            .map(|f| if matches!(f.data_type(), DataType::Dictionary(..)) { Encoding::Dictionary } else { Encoding::Plain })
            .collect();
        EncodingPlan { schema: schema.clone(), encodings }
    }

    /// Chooses encodings from sample batches of the source.
    pub fn choose(source: &SchemaRef, sample: &[RecordBatch]) -> Self {
        let encodings: Vec<Encoding> = source
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if !is_text(f.data_type()) {
                    return Encoding::Plain;
                }
                let mut distinct: HashSet<String> = HashSet::new();
                let mut rows = 0usize;
                for b in sample {
                    let Ok(arr) = cast(b.column(i), &DataType::Utf8) else { return Encoding::Plain };
                    let arr = arr.as_string::<i32>();
                    for v in arr.iter().flatten() {
                        rows += 1;
                        if distinct.len() <= rows / DICTIONARY_RATIO + 1 {
                            distinct.insert(v.to_string());
                        }
                    }
                }
                if rows >= MIN_SAMPLE_ROWS && distinct.len() * DICTIONARY_RATIO <= rows {
                    Encoding::Dictionary
                } else {
                    Encoding::Plain
                }
            })
            .collect();
        let fields: Vec<Field> = source
            .fields()
            .iter()
            .zip(&encodings)
            .map(|(f, e)| Field::new(f.name(), stored_type(f.data_type(), *e), f.is_nullable()))
            .collect();
        Self { schema: Arc::new(Schema::new(fields)), encodings }
    }

    /// Converts one source batch into a chunk.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Chunk> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        let mut stats = Vec::with_capacity(batch.num_columns());
        for (i, field) in self.schema.fields().iter().enumerate() {
            let source = batch.column(i);
            let plain_dt = plain_type(source.data_type());
            let plain = if source.data_type() == &plain_dt { source.clone() } else { cast(source, &plain_dt)? };
            stats.push(column_stats(&plain));
            let stored = if plain.data_type() == field.data_type() { plain } else { cast(&plain, field.data_type())? };
            columns.push(compact(stored));
        }
        narrowed_chunk(0, &self.schema, columns, stats, batch.num_rows())
    }
}

/// A chunk of `columns` (in the table's types), with narrow storage for
/// the columns where it pays.
fn narrowed_chunk(id: u64, schema: &SchemaRef, mut columns: Vec<ArrayRef>, stats: Vec<ColumnStats>, rows: usize) -> Result<Chunk> {
    let mut how: Vec<Option<Narrowed>> = vec![None; columns.len()];
    if narrow::enabled() {
        for (i, c) in columns.iter_mut().enumerate() {
            if let Some((stored, n)) = narrow::narrow(c, &stats[i]) {
                *c = stored;
                how[i] = Some(n);
            }
        }
    }
    let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    let any = how.iter().any(Option::is_some);
    let schema = if any {
        let fields: Vec<Field> =
            schema.fields().iter().zip(&columns).map(|(f, c)| Field::new(f.name(), c.data_type().clone(), f.is_nullable())).collect();
        Arc::new(Schema::new(fields))
    } else {
        schema.clone()
    };
    let batch = RecordBatch::try_new_with_options(schema, columns, &options)?;
    let bytes = batch.columns().iter().map(|c| c.get_array_memory_size()).collect();
    Ok(Chunk { id, batch, stats: Arc::new(stats), visible: None, narrow: any.then(|| Arc::new(how)), bytes: Arc::new(bytes) })
}

/// A chunk rebuilt from stored arrays in the table's types (a
/// checkpoint). A dictionary column's bounds are those of its dictionary,
/// which may hold values no live row has: wider than the rows', so still
/// right for pruning.
pub fn stored_chunk(id: u64, batch: RecordBatch) -> Result<Chunk> {
    let stats: Vec<ColumnStats> = batch
        .columns()
        .iter()
        .map(|a| match a.as_any_dictionary_opt() {
            Some(d) => ColumnStats { nulls: a.null_count() as u64, ..column_stats(d.values()) },
            None => column_stats(a),
        })
        .collect();
    narrowed_chunk(id, &batch.schema(), batch.columns().to_vec(), stats, batch.num_rows())
}

#[cfg(test)]
pub(crate) fn column_stats_for_tests(a: &ArrayRef) -> ColumnStats {
    column_stats(a)
}

/// A sliced array keeps its parent's buffers; copying it frees them.
fn compact(a: ArrayRef) -> ArrayRef {
    if a.offset() == 0 {
        return a;
    }
    datafusion::arrow::array::make_array(a.to_data().clone())
}

fn column_stats(a: &ArrayRef) -> ColumnStats {
    let nulls = a.null_count() as u64;
    let min = MinAccumulator::try_new(a.data_type())
        .and_then(|mut acc| {
            acc.update_batch(std::slice::from_ref(a))?;
            acc.evaluate()
        })
        .ok();
    let max = MaxAccumulator::try_new(a.data_type())
        .and_then(|mut acc| {
            acc.update_batch(std::slice::from_ref(a))?;
            acc.evaluate()
        })
        .ok();
    ColumnStats { min, max, nulls }
}

/// Memory a chunk holds, as charged against the limit.
pub fn chunk_bytes(c: &Chunk) -> u64 {
    let visible = c.visible.as_ref().map(|v| v.get_array_memory_size()).unwrap_or(0);
    (c.batch.get_array_memory_size() + visible) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray, StringViewArray};

    #[test]
    fn low_cardinality_text_becomes_a_dictionary() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("site", DataType::Utf8View, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let n = 1000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from_iter_values(0..n)),
                Arc::new(StringViewArray::from_iter_values((0..n).map(|i| format!("site-{}", i % 7)))),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("note {i}")))),
            ],
        )?;
        let plan = EncodingPlan::choose(&schema, std::slice::from_ref(&batch));
        assert_eq!(plan.encodings, vec![Encoding::Plain, Encoding::Dictionary, Encoding::Plain]);
        let chunk = plan.encode(&batch)?;
        assert!(matches!(chunk.batch.schema().field(1).data_type(), DataType::Dictionary(_, _)));
        assert_eq!(chunk.stats[0].min, Some(datafusion::scalar::ScalarValue::Int32(Some(0))));
        assert_eq!(chunk.stats[0].max, Some(datafusion::scalar::ScalarValue::Int32(Some(n - 1))));
        assert_eq!(chunk.stats[1].max, Some(datafusion::scalar::ScalarValue::Utf8(Some("site-6".into()))));
        // The dictionary holds 7 values, far less than 1000 strings.
        let plain = cast(batch.column(1), &DataType::Utf8)?;
        assert!(chunk.batch.column(1).get_array_memory_size() < plain.get_array_memory_size());
        Ok(())
    }
}
