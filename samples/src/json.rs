//! JSON lines output of the sensor table: one object per line, keys in column
//! order, timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` strings, NULL as `null`.

use std::io::Write;
use std::path::Path;

use crate::SampleError;
use crate::fsutil::AtomicFile;
use crate::model::{Chunk, HDF, OSF, PWF, RNF, TWF};
use crate::text::{push_bool, push_int, push_json_string, push_tenths, push_timestamp_us};

/// Writes one day's sensor readings to `part-00000.json`.
pub(crate) struct JsonWriter {
    file: AtomicFile,
    buf: Vec<u8>,
}

impl JsonWriter {
    pub(crate) fn create(path: &Path) -> Result<Self, SampleError> {
        Ok(JsonWriter {
            file: AtomicFile::create(path)?,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    /// Appends the rows of `chunk`.
    pub(crate) fn write(&mut self, chunk: &Chunk) -> Result<(), SampleError> {
        for i in 0..chunk.len() {
            encode_row(&mut self.buf, chunk, i);
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| SampleError::io(self.file.path(), e))?;
        self.buf.clear();
        Ok(())
    }

    /// Completes the file and moves it to its final name.
    pub(crate) fn finish(self) -> Result<(), SampleError> {
        self.file.commit()
    }
}

fn push_opt_tenths(buf: &mut Vec<u8>, value: Option<f64>) {
    match value {
        Some(v) => push_tenths(buf, v),
        None => buf.extend_from_slice(b"null"),
    }
}

fn encode_row(buf: &mut Vec<u8>, chunk: &Chunk, i: usize) {
    buf.extend_from_slice(b"{\"reading_id\":");
    push_int(buf, chunk.reading_id[i]);
    buf.extend_from_slice(b",\"ts\":\"");
    push_timestamp_us(buf, chunk.ts[i]);
    buf.extend_from_slice(b"\",\"asset_id\":");
    push_int(buf, i64::from(chunk.asset_id[i]));
    buf.extend_from_slice(b",\"asset_type\":");
    push_json_string(buf, chunk.asset_type[i].as_str());
    buf.extend_from_slice(b",\"air_temp_k\":");
    push_opt_tenths(buf, chunk.air_temp(i));
    buf.extend_from_slice(b",\"process_temp_k\":");
    push_tenths(buf, chunk.process_temp_k[i]);
    buf.extend_from_slice(b",\"rotation_speed_rpm\":");
    push_int(buf, i64::from(chunk.rotation_speed_rpm[i]));
    buf.extend_from_slice(b",\"torque_nm\":");
    push_opt_tenths(buf, chunk.torque(i));
    buf.extend_from_slice(b",\"tool_wear_min\":");
    push_int(buf, i64::from(chunk.tool_wear_min[i]));
    buf.extend_from_slice(b",\"machine_failure\":");
    push_bool(buf, chunk.machine_failure(i));
    const FLAGS: [(&[u8], u8); 5] = [
        (b",\"twf\":", TWF),
        (b",\"hdf\":", HDF),
        (b",\"pwf\":", PWF),
        (b",\"osf\":", OSF),
        (b",\"rnf\":", RNF),
    ];
    for (key, flag) in FLAGS {
        buf.extend_from_slice(key);
        push_bool(buf, chunk.flag(i, flag));
    }
    buf.extend_from_slice(b"}\n");
}
