//! Checkpoints of loaded tables on local disk, so that a restart restores
//! the copies from disk instead of reading their sources again.
//!
//! Layout, in `<data dir>/rapid/`:
//!
//! * `manifest.json` names, per table, its data file and what the data
//!   reflects: for a MySQL table the binlog position its rows are current
//!   to (change capture resumes there), for a lake table the files it was
//!   loaded from. It is replaced atomically (temporary file, fsync, rename,
//!   fsync of the directory), and that rename is the commit point.
//! * `<n>.arrows` holds one table's chunks as an Arrow IPC stream, rows
//!   hidden by change capture left out. A data file is written in full and
//!   fsynced under a fresh name before a manifest names it; files no
//!   manifest names (left by a crash mid-write) are deleted on start.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, MutableArrayData, RecordBatch, make_array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};

use super::{Chunk, LoadedFile};

const MANIFEST: &str = "manifest.json";
const FORMAT_VERSION: u32 = 1;
const DATA_SUFFIX: &str = ".arrows";

/// What the manifest says about one table's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub db: String,
    pub table: String,
    /// "mysql" or "lake".
    pub kind: String,
    /// The data file, relative to the checkpoint directory.
    pub file: String,
    /// MySQL tables: the binlog position (`file:pos`) the rows are current to.
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The id of each chunk, in the order of the data file's batches.
    pub chunk_ids: Vec<u64>,
    /// Lake tables: the files the chunks came from.
    #[serde(default)]
    pub files: Option<Vec<LoadedFile>>,
    pub rows: u64,
    /// Bytes of the data file.
    pub bytes: u64,
    /// When the data file was written (seconds since the epoch).
    pub written_at: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub tables: Vec<Entry>,
}

impl Manifest {
    pub fn get(&self, db: &str, table: &str) -> Option<&Entry> {
        self.tables.iter().find(|e| e.db == db && e.table == table)
    }
}

/// The checkpoint directory.
#[derive(Debug)]
pub struct CheckpointDir {
    dir: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl CheckpointDir {
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let dir = data_dir.join("rapid");
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The manifest, empty when none was written yet.
    pub fn read_manifest(&self) -> Result<Manifest, String> {
        let path = self.dir.join(MANIFEST);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(io_err(&path, e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| io_err(&path, e))?;
        if m.format_version > FORMAT_VERSION {
            return Err(io_err(&path, format!("format version {} is newer than this build reads ({FORMAT_VERSION})", m.format_version)));
        }
        Ok(m)
    }

    /// Replaces the manifest atomically and durably.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), String> {
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let mut m = manifest.clone();
        m.format_version = FORMAT_VERSION;
        let bytes = serde_json::to_vec_pretty(&m).map_err(|e| io_err(&path, e))?;
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| io_err(&tmp, e))?;
        file.write_all(&bytes).map_err(|e| io_err(&tmp, e))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        // Makes the rename, and the data files written before it, durable.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io_err(&self.dir, e))
    }

    /// A data file name not used before in this directory.
    pub fn fresh_name(&self, table_id: u64) -> String {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{table_id}-{stamp}{DATA_SUFFIX}")
    }

    /// Writes the live rows of `chunks`, one batch per chunk, and fsyncs
    /// the file. Returns the bytes written.
    pub fn write_data(&self, name: &str, schema: &SchemaRef, chunks: &[Chunk]) -> Result<u64, String> {
        let path = self.dir.join(name);
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| io_err(&path, e))?;
        let written = (|| -> Result<(), String> {
            let mut writer = StreamWriter::try_new(BufWriter::with_capacity(1 << 20, &file), schema).map_err(|e| e.to_string())?;
            for c in chunks {
                // In the table's types: narrow storage is chosen again on
                // reading.
                let wide = c.wide_batch(schema).map_err(|e| e.to_string())?;
                let batch = match &c.visible {
                    Some(v) => filter_record_batch(&wide, v).map_err(|e| e.to_string())?,
                    None => wide,
                };
                writer.write(&batch).map_err(|e| e.to_string())?;
            }
            writer.finish().map_err(|e| e.to_string())?;
            writer.into_inner().map_err(|e| e.to_string())?.flush().map_err(|e| e.to_string())?;
            file.sync_all().map_err(|e| e.to_string())
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(io_err(&path, e));
        }
        file.metadata().map(|m| m.len()).map_err(|e| io_err(&path, e))
    }

    /// Reads a data file back: its schema and one batch per chunk, each
    /// holding buffers of its own (so the memory it is charged is right).
    pub fn read_data(&self, name: &str) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
        let path = self.dir.join(name);
        let file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None).map_err(|e| io_err(&path, e))?;
        let schema = reader.schema();
        let mut batches = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| io_err(&path, e))?;
            batches.push(owned_batch(&batch).map_err(|e| io_err(&path, e))?);
        }
        Ok((schema, batches))
    }

    /// Deletes data files the manifest does not name, and a leftover
    /// temporary manifest.
    pub fn remove_unreferenced(&self, manifest: &Manifest) {
        let keep: HashSet<&str> = manifest.tables.iter().map(|e| e.file.as_str()).collect();
        let Ok(list) = fs::read_dir(&self.dir) else { return };
        for f in list.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if (name.ends_with(DATA_SUFFIX) && !keep.contains(name.as_str())) || name == format!("{MANIFEST}.tmp") {
                let _ = fs::remove_file(f.path());
            }
        }
    }

    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.dir.join(name));
    }
}

/// A copy of `a` in buffers of its own. Arrays read from an IPC stream are
/// slices of one buffer per batch, and each would report that whole buffer
/// as its memory.
fn owned(a: &ArrayRef) -> Result<ArrayRef, String> {
    if let DataType::Dictionary(key, _) = a.data_type() {
        if **key == DataType::Int32 {
            let d = a.as_dictionary::<Int32Type>();
            let keys = owned(&(Arc::new(d.keys().clone()) as ArrayRef))?;
            let values = owned(d.values())?;
            let keys = keys.as_primitive::<Int32Type>().clone();
            return Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).map_err(|e| e.to_string())?));
        }
    }
    let data = a.to_data();
    let mut copy = MutableArrayData::new(vec![&data], false, a.len());
    copy.try_extend(0, 0, a.len()).map_err(|e| e.to_string())?;
    Ok(make_array(copy.freeze()))
}

fn owned_batch(b: &RecordBatch) -> Result<RecordBatch, String> {
    let columns = b.columns().iter().map(owned).collect::<Result<Vec<_>, _>>()?;
    let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
    RecordBatch::try_new_with_options(b.schema(), columns, &options).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rapid::encode::{EncodingPlan, chunk_bytes, stored_chunk};
    use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn chunks_round_trip_without_hidden_rows() -> Result<(), String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = CheckpointDir::open(tmp.path())?;
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("site", DataType::Utf8, true)]));
        let batch = |lo: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(lo..lo + 200)),
                    Arc::new(StringArray::from_iter((lo..lo + 200).map(|i| if i % 10 == 0 { None } else { Some(format!("s{}", i % 3)) }))),
                ],
            )
            .map_err(|e| e.to_string())
        };
        let (a, b) = (batch(0)?, batch(1000)?);
        let plan = EncodingPlan::choose(&schema, &[a.clone()]);
        let mut first = plan.encode(&a).map_err(|e| e.to_string())?;
        first.visible = Some(BooleanArray::from((0..200).map(|i| i % 4 != 0).collect::<Vec<_>>()));
        let second = plan.encode(&b).map_err(|e| e.to_string())?;
        // Each chunk has a dictionary of its own: the stream resends them.
        assert!(matches!(first.batch.schema().field(1).data_type(), DataType::Dictionary(..)));
        let name = dir.fresh_name(7);
        let bytes = dir.write_data(&name, &plan.schema, &[first.clone(), second.clone()])?;
        assert!(bytes > 0);
        let (read_schema, batches) = dir.read_data(&name)?;
        assert_eq!(read_schema, plan.schema);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].num_rows(), 150, "hidden rows are not written");
        let wide = |c: &Chunk| c.wide_batch(&plan.schema).map_err(|e| e.to_string());
        let expected = filter_record_batch(&wide(&first)?, first.visible.as_ref().unwrap()).map_err(|e| e.to_string())?;
        assert_eq!(batches[0], expected);
        assert_eq!(batches[1], wide(&second)?);
        // Read-back columns own their buffers: about the size of the
        // original chunk, not the size of the whole message per column.
        let restored = stored_chunk(1, batches[1].clone()).map_err(|e| e.to_string())?;
        assert_eq!(restored.batch, second.batch, "stored as it was before");
        assert!(chunk_bytes(&restored) <= chunk_bytes(&second) * 2, "{} vs {}", chunk_bytes(&restored), chunk_bytes(&second));

        let manifest = Manifest {
            format_version: 0,
            tables: vec![Entry {
                db: "d".into(),
                table: "t".into(),
                kind: "mysql".into(),
                file: name.clone(),
                position: Some("bin.000001:42".into()),
                primary_key: vec!["id".into()],
                chunk_ids: vec![0, 1],
                files: None,
                rows: 350,
                bytes,
                written_at: 0,
            }],
        };
        dir.write_manifest(&manifest)?;
        // A data file no manifest names (a crash mid-checkpoint) goes.
        let orphan = dir.fresh_name(8);
        dir.write_data(&orphan, &plan.schema, &[second])?;
        let back = dir.read_manifest()?;
        dir.remove_unreferenced(&back);
        assert!(dir.path().join(&name).exists());
        assert!(!dir.path().join(&orphan).exists());
        assert_eq!(back.get("d", "t").and_then(|e| e.position.clone()).as_deref(), Some("bin.000001:42"));

        // A torn or damaged data file is an error to fall back on, not a
        // crash; a damaged manifest likewise.
        let path = dir.path().join(&name);
        let whole = fs::read(&path).map_err(|e| e.to_string())?;
        fs::write(&path, &whole[..whole.len() / 2]).map_err(|e| e.to_string())?;
        assert!(dir.read_data(&name).is_err());
        fs::write(dir.path().join(MANIFEST), b"{ not json").map_err(|e| e.to_string())?;
        let err = dir.read_manifest().expect_err("a damaged manifest");
        assert!(err.contains("manifest.json"), "{err}");
        Ok(())
    }
}
