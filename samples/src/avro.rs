//! Avro object container output of the sensor table (deflate blocks).
//!
//! `ts` uses the `timestamp-micros` logical type; nullable columns are unions
//! `["null", T]`. The file header is written here rather than by
//! `apache_avro::Writer`, because the crate keeps the header metadata in a
//! `HashMap` whose order changes between processes; writing it ourselves (and
//! deriving the sync marker from the seed) makes the files byte-reproducible.

use std::io::Write;
use std::path::Path;

use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::SampleError;
use crate::fsutil::AtomicFile;
use crate::model::{Chunk, HDF, OSF, PWF, RNF, TWF};
use crate::schema::AVRO_SCHEMA_JSON;

/// The parsed Avro schema of the sensor table.
pub(crate) fn sensor_schema() -> Result<Schema, SampleError> {
    Ok(Schema::parse_str(AVRO_SCHEMA_JSON)?)
}

/// One record, serialized field by field straight into the block buffer.
#[derive(Serialize)]
struct Record<'a> {
    reading_id: i64,
    ts: i64,
    asset_id: i32,
    asset_type: &'a str,
    air_temp_k: Option<f64>,
    process_temp_k: Option<f64>,
    rotation_speed_rpm: Option<i32>,
    torque_nm: Option<f64>,
    tool_wear_min: Option<i32>,
    machine_failure: Option<bool>,
    twf: Option<bool>,
    hdf: Option<bool>,
    pwf: Option<bool>,
    osf: Option<bool>,
    rnf: Option<bool>,
}

/// Writes one day's sensor readings to `part-00000.avro`.
pub(crate) struct AvroWriter<'s> {
    writer: Writer<'s, AtomicFile>,
}

impl<'s> AvroWriter<'s> {
    /// `marker_seed` selects the file's 16-byte sync marker.
    pub(crate) fn create(
        path: &Path,
        schema: &'s Schema,
        marker_seed: u64,
    ) -> Result<Self, SampleError> {
        let mut marker = [0u8; 16];
        StdRng::seed_from_u64(marker_seed).fill(&mut marker);
        let codec = Codec::Deflate(DeflateSettings::default());

        let mut file = AtomicFile::create(path)?;
        let header = container_header(AVRO_SCHEMA_JSON, "deflate", &marker);
        file.write_all(&header)
            .map_err(|e| SampleError::io(path, e))?;
        // `append_to_with_codec` writes data blocks only: the header is ours.
        let writer = Writer::append_to_with_codec(schema, file, codec, marker);
        Ok(AvroWriter { writer })
    }

    /// Appends the rows of `chunk`.
    pub(crate) fn write(&mut self, chunk: &Chunk) -> Result<(), SampleError> {
        for i in 0..chunk.len() {
            let record = Record {
                reading_id: chunk.reading_id[i],
                ts: chunk.ts[i],
                asset_id: chunk.asset_id[i],
                asset_type: chunk.asset_type[i].as_str(),
                air_temp_k: chunk.air_temp(i),
                process_temp_k: Some(chunk.process_temp_k[i]),
                rotation_speed_rpm: Some(chunk.rotation_speed_rpm[i]),
                torque_nm: chunk.torque(i),
                tool_wear_min: Some(chunk.tool_wear_min[i]),
                machine_failure: Some(chunk.machine_failure(i)),
                twf: Some(chunk.flag(i, TWF)),
                hdf: Some(chunk.flag(i, HDF)),
                pwf: Some(chunk.flag(i, PWF)),
                osf: Some(chunk.flag(i, OSF)),
                rnf: Some(chunk.flag(i, RNF)),
            };
            self.writer.append_ser(record)?;
        }
        Ok(())
    }

    /// Flushes the last block and moves the file to its final name.
    pub(crate) fn finish(self) -> Result<(), SampleError> {
        let file = self.writer.into_inner()?;
        file.commit()
    }
}

/// Avro object container header: magic, metadata map (`avro.schema`,
/// `avro.codec`, in that order) and the sync marker.
fn container_header(schema_json: &str, codec: &str, marker: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(schema_json.len() + 64);
    out.extend_from_slice(b"Obj\x01");
    let entries: [(&str, &[u8]); 2] = [
        ("avro.schema", schema_json.as_bytes()),
        ("avro.codec", codec.as_bytes()),
    ];
    push_long(&mut out, entries.len() as i64);
    for (key, value) in entries {
        push_long(&mut out, key.len() as i64);
        out.extend_from_slice(key.as_bytes());
        push_long(&mut out, value.len() as i64);
        out.extend_from_slice(value);
    }
    push_long(&mut out, 0); // end of map
    out.extend_from_slice(marker);
    out
}

/// Avro `long`: zig-zag encoded variable-length integer.
fn push_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_longs() {
        let enc = |v: i64| {
            let mut out = Vec::new();
            push_long(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(-64), [127]);
        assert_eq!(enc(64), [0x80, 0x01]);
    }
}
