//! CSV output of the sensor table, plain and gzip-compressed (same bytes).
//!
//! Header line, comma separated, RFC 4180 quoting, an empty field for NULL,
//! timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`, booleans as `true`/`false`,
//! floats with one decimal.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use crate::SampleError;
use crate::fsutil::AtomicFile;
use crate::model::{Chunk, HDF, OSF, PWF, RNF, TWF};
use crate::schema::COLUMNS;
use crate::text::{push_bool, push_csv_field, push_int, push_tenths, push_timestamp_us};

/// Writes one day's sensor readings to `part-00000.csv` and `part-00000.csv.gz`.
pub(crate) struct CsvWriter {
    plain: AtomicFile,
    gzip: GzEncoder<AtomicFile>,
    buf: Vec<u8>,
}

impl CsvWriter {
    pub(crate) fn create(plain: &Path, gzip: &Path) -> Result<Self, SampleError> {
        let plain_file = AtomicFile::create(plain)?;
        let gzip_file = AtomicFile::create(gzip)?;
        // Fixed header fields (no mtime, "unknown" OS) keep the bytes reproducible.
        let gzip = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(gzip_file, Compression::fast());
        let mut writer = CsvWriter {
            plain: plain_file,
            gzip,
            buf: Vec::with_capacity(1 << 20),
        };
        writer.buf.extend_from_slice(header().as_bytes());
        Ok(writer)
    }

    /// Appends the rows of `chunk`.
    pub(crate) fn write(&mut self, chunk: &Chunk) -> Result<(), SampleError> {
        for i in 0..chunk.len() {
            encode_row(&mut self.buf, chunk, i);
        }
        self.flush_buffer()
    }

    fn flush_buffer(&mut self) -> Result<(), SampleError> {
        self.plain
            .write_all(&self.buf)
            .map_err(|e| SampleError::io(self.plain.path(), e))?;
        self.gzip
            .write_all(&self.buf)
            .map_err(|e| SampleError::io(self.gzip.get_ref().path(), e))?;
        self.buf.clear();
        Ok(())
    }

    /// Completes both files and moves them to their final names.
    pub(crate) fn finish(mut self) -> Result<(), SampleError> {
        self.flush_buffer()?;
        let gzip_path = self.gzip.get_ref().path().to_path_buf();
        let gzip_file = self
            .gzip
            .finish()
            .map_err(|e| SampleError::io(gzip_path, e))?;
        self.plain.commit()?;
        gzip_file.commit()
    }
}

/// The header line (with its newline).
pub(crate) fn header() -> String {
    let mut line = COLUMNS.join(",");
    line.push('\n');
    line
}

fn encode_row(buf: &mut Vec<u8>, chunk: &Chunk, i: usize) {
    push_int(buf, chunk.reading_id[i]);
    buf.push(b',');
    push_timestamp_us(buf, chunk.ts[i]);
    buf.push(b',');
    push_int(buf, i64::from(chunk.asset_id[i]));
    buf.push(b',');
    push_csv_field(buf, chunk.asset_type[i].as_str());
    buf.push(b',');
    if let Some(air) = chunk.air_temp(i) {
        push_tenths(buf, air);
    }
    buf.push(b',');
    push_tenths(buf, chunk.process_temp_k[i]);
    buf.push(b',');
    push_int(buf, i64::from(chunk.rotation_speed_rpm[i]));
    buf.push(b',');
    if let Some(torque) = chunk.torque(i) {
        push_tenths(buf, torque);
    }
    buf.push(b',');
    push_int(buf, i64::from(chunk.tool_wear_min[i]));
    buf.push(b',');
    push_bool(buf, chunk.machine_failure(i));
    for flag in [TWF, HDF, PWF, OSF, RNF] {
        buf.push(b',');
        push_bool(buf, chunk.flag(i, flag));
    }
    buf.push(b'\n');
}
