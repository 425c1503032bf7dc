//! Parquet output of the sensor table: zstd compression, page-level
//! statistics, row groups of at most 64 Ki rows.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::SampleError;
use crate::fsutil::AtomicFile;
use crate::model::{Chunk, HDF, OSF, PWF, RNF, TWF};

/// Maximum number of rows per row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Writes one day's sensor readings to `part-00000.parquet`.
pub(crate) struct ParquetWriter {
    writer: ArrowWriter<AtomicFile>,
    schema: SchemaRef,
}

impl ParquetWriter {
    pub(crate) fn create(path: &Path, schema: SchemaRef) -> Result<Self, SampleError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by("lakewave-samples".to_string())
            .build();
        let file = AtomicFile::create(path)?;
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?;
        Ok(ParquetWriter { writer, schema })
    }

    /// Appends the rows of `chunk`.
    pub(crate) fn write(&mut self, chunk: &Chunk) -> Result<(), SampleError> {
        let batch = to_record_batch(&self.schema, chunk)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Writes the footer and moves the file to its final name.
    pub(crate) fn finish(self) -> Result<(), SampleError> {
        let file = self.writer.into_inner()?;
        file.commit()
    }
}

/// Converts a chunk to an Arrow record batch with the sensor schema.
pub(crate) fn to_record_batch(
    schema: &SchemaRef,
    chunk: &Chunk,
) -> Result<RecordBatch, SampleError> {
    let flag = |bit: u8| -> ArrayRef {
        Arc::new(BooleanArray::from_iter(
            chunk.failures.iter().map(|f| Some(f & bit != 0)),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(chunk.reading_id.clone())),
        Arc::new(TimestampMicrosecondArray::from(chunk.ts.clone())),
        Arc::new(Int32Array::from(chunk.asset_id.clone())),
        Arc::new(StringArray::from_iter_values(
            chunk.asset_type.iter().map(|t| t.as_str()),
        )),
        Arc::new(Float64Array::new(
            chunk.air_temp_k.clone().into(),
            Some(NullBuffer::from(chunk.air_temp_valid.as_slice())),
        )),
        Arc::new(Float64Array::from(chunk.process_temp_k.clone())),
        Arc::new(Int32Array::from(chunk.rotation_speed_rpm.clone())),
        Arc::new(Float64Array::new(
            chunk.torque_nm.clone().into(),
            Some(NullBuffer::from(chunk.torque_valid.as_slice())),
        )),
        Arc::new(Int32Array::from(chunk.tool_wear_min.clone())),
        Arc::new(BooleanArray::from_iter(
            chunk.failures.iter().map(|f| Some(*f != 0)),
        )),
        flag(TWF),
        flag(HDF),
        flag(PWF),
        flag(OSF),
        flag(RNF),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
