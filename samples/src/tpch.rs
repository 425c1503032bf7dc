//! TPC-H data as Parquet, from the `tpchgen` crates (the dbgen-compatible
//! generator), for benchmarks and the TPC-H smoke test. Each table is split
//! into `parts` files written in parallel: `DIR/<table>/part-<i>.parquet`.
//! Money columns are DECIMAL(15,2), dates DATE32, text plain UTF-8. A
//! directory that holds a `_SUCCESS` marker for the same scale factor is
//! left as it is.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator,
    RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow, SupplierArrow,
};

use crate::SampleError;

/// The eight tables, in the order the queries usually name them.
pub const TABLES: [&str; 8] = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SampleError + '_ {
    move |source| SampleError::Io { path: path.to_path_buf(), source }
}

/// String views become plain strings, so every reader sees `Utf8`.
fn plain(batch: RecordBatch) -> Result<RecordBatch, SampleError> {
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c.clone()) } else { cast(c, f.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn batches(table: &str, sf: f64, part: i32, parts: i32) -> Box<dyn Iterator<Item = RecordBatch> + Send> {
    match table {
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, part, parts))),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, part, parts))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, part, parts))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, part, parts))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts))),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, part, parts))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, part, parts))),
        _ => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, part, parts))),
    }
}

fn write_part(dir: &Path, table: &str, sf: f64, part: i32, parts: i32) -> Result<u64, SampleError> {
    let path = dir.join(table).join(format!("part-{part}.parquet"));
    let mut rows = 0u64;
    let mut writer: Option<ArrowWriter<File>> = None;
    for batch in batches(table, sf, part, parts) {
        let batch = plain(batch)?;
        rows += batch.num_rows() as u64;
        if writer.is_none() {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_statistics_enabled(EnabledStatistics::Page)
                .set_max_row_group_row_count(Some(1 << 20))
                .build();
            let file = File::create(&path).map_err(io(&path))?;
            writer = Some(ArrowWriter::try_new(file, batch.schema(), Some(props))?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)?;
        }
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(rows)
}

/// Writes the eight tables at scale factor `sf`; small tables get one file,
/// `orders`, `lineitem`, `partsupp`, `customer` and `part` get `parts`.
/// Returns the rows written per table (nothing when already there).
pub fn generate_tpch(dir: &Path, sf: f64, parts: usize) -> Result<Vec<(String, u64)>, SampleError> {
    let marker = dir.join("_SUCCESS");
    let stamp = format!("tpch sf={sf}\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(Vec::new());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    let mut out = Vec::new();
    for table in TABLES {
        let tdir = dir.join(table);
        std::fs::create_dir_all(&tdir).map_err(io(&tdir))?;
        let n = if matches!(table, "nation" | "region" | "supplier") { 1 } else { parts.max(1) as i32 };
        let results: Vec<Result<u64, SampleError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..=n).map(|p| s.spawn(move || write_part(dir, table, sf, p, n))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(SampleError::InvalidOptions("a generator thread panicked".into()))))
                .collect()
        });
        let mut rows = 0;
        for r in results {
            rows += r?;
        }
        out.push((table.to_string(), rows));
    }
    std::fs::write(&marker, stamp).map_err(io(&marker))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_table_at_a_tiny_scale() -> Result<(), SampleError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let rows = generate_tpch(dir.path(), 0.001, 2)?;
        let get = |t: &str| rows.iter().find(|(n, _)| n == t).map(|(_, r)| *r);
        assert_eq!(get("nation"), Some(25));
        assert_eq!(get("region"), Some(5));
        assert_eq!(get("orders"), Some(1500));
        assert!(dir.path().join("lineitem/part-2.parquet").exists());
        // A second call sees the marker and writes nothing.
        assert!(generate_tpch(dir.path(), 0.001, 2)?.is_empty());
        Ok(())
    }
}
