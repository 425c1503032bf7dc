//! Orchestration: simulates the readings day by day and writes every file of
//! the data set, finishing with the `_SUCCESS` marker.

use std::path::Path;

use chrono::{Days, NaiveDate, NaiveTime};
use datafusion::arrow::datatypes::SchemaRef;

use crate::avro::{AvroWriter, sensor_schema};
use crate::csv::CsvWriter;
use crate::fsutil::write_atomic;
use crate::json::JsonWriter;
use crate::model::{Chunk, Generator};
use crate::parquet::ParquetWriter;
use crate::{SampleError, SampleOptions, SampleSummary, assets, readme, schema};

/// Rows simulated and written per batch.
const CHUNK_ROWS: u64 = 64 * 1024;
/// Name of the marker file written once everything else is in place.
pub(crate) const SUCCESS_MARKER: &str = "_SUCCESS";
/// Sub-directories of `sensors/`, one per format.
pub(crate) const FORMAT_DIRS: [&str; 5] = ["parquet", "csv", "csv_gz", "json", "avro"];
/// Salt for the Avro sync markers' random stream.
const AVRO_MARKER_SALT: u64 = 0x6176_726f_6d61_726b; // "avromark"

/// Generates the data set into `out` (created if needed), overwriting a
/// previous one. Files are written under temporary names and renamed when
/// complete; `_SUCCESS` is removed first and written last.
pub fn generate(out: &Path, opts: &SampleOptions) -> Result<SampleSummary, SampleError> {
    validate(opts)?;
    std::fs::create_dir_all(out).map_err(|e| SampleError::io(out, e))?;
    let marker = out.join(SUCCESS_MARKER);
    match std::fs::remove_file(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SampleError::io(marker, e)),
    }

    let arrow_schema = schema::arrow_schema();
    let avro_schema = sensor_schema()?;
    let mut generator = Generator::new(opts.seed, opts.assets);
    let mut chunk = Chunk::default();
    let mut failures = 0u64;
    let mut files = 0usize;
    let mut partitions = Vec::with_capacity(opts.days as usize);

    for day in 0..opts.days {
        let date = day_date(opts.start, day)?;
        let partition = format!("day={}", date.format("%Y-%m-%d"));
        let day_rows = rows_of_day(opts.rows, opts.days, day);
        let day_start_us = date.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
        let marker_seed = (opts.seed ^ AVRO_MARKER_SALT).wrapping_add(u64::from(day));

        let mut writers =
            DayWriters::create(out, &partition, &arrow_schema, &avro_schema, marker_seed)?;
        let mut from = 0;
        while from < day_rows {
            let to = (from + CHUNK_ROWS).min(day_rows);
            generator.fill(&mut chunk, day_start_us, day_rows, from, to);
            failures += chunk.failure_count();
            writers.write(&chunk)?;
            from = to;
        }
        writers.finish()?;
        files += FORMAT_DIRS.len();
        partitions.push(partition);
    }

    write_atomic(
        &out.join("assets.csv"),
        &assets::assets_csv(opts.assets, opts.seed),
    )?;
    write_atomic(
        &out.join("README.md"),
        readme::readme(opts, failures).as_bytes(),
    )?;
    files += 2;
    remove_stale_partitions(out, &partitions)?;

    let summary = format!(
        "rows={}\nseed={}\ndays={}\nassets={}\nstart={}\nfailures={failures}\n",
        opts.rows,
        opts.seed,
        opts.days,
        opts.assets,
        opts.start.format("%Y-%m-%d"),
    );
    write_atomic(&marker, summary.as_bytes())?;

    Ok(SampleSummary {
        rows: opts.rows,
        files,
        failures,
        out: out.to_path_buf(),
    })
}

/// Generates the data set unless `out/_SUCCESS` exists. Returns `None` when the
/// data set was already there (whatever options it was generated with).
pub fn ensure_generated(
    out: &Path,
    opts: &SampleOptions,
) -> Result<Option<SampleSummary>, SampleError> {
    if out.join(SUCCESS_MARKER).is_file() {
        return Ok(None);
    }
    generate(out, opts).map(Some)
}

fn validate(opts: &SampleOptions) -> Result<(), SampleError> {
    if opts.days == 0 {
        return Err(SampleError::InvalidOptions(
            "days must be at least 1".into(),
        ));
    }
    if opts.assets == 0 || opts.assets > i32::MAX as u32 {
        return Err(SampleError::InvalidOptions(format!(
            "assets must be between 1 and {}",
            i32::MAX
        )));
    }
    day_date(opts.start, opts.days - 1).map(|_| ())
}

fn day_date(start: NaiveDate, day: u32) -> Result<NaiveDate, SampleError> {
    start
        .checked_add_days(Days::new(u64::from(day)))
        .ok_or_else(|| SampleError::InvalidOptions(format!("{start} + {day} days is out of range")))
}

/// Rows of day `day` when `rows` are split as evenly as possible over `days`.
fn rows_of_day(rows: u64, days: u32, day: u32) -> u64 {
    let upto = |d: u32| (u128::from(rows) * u128::from(d) / u128::from(days)) as u64;
    upto(day + 1) - upto(day)
}

/// Removes `day=` directories left over from an earlier run with other options.
fn remove_stale_partitions(out: &Path, keep: &[String]) -> Result<(), SampleError> {
    for format in FORMAT_DIRS {
        let dir = out.join("sensors").join(format);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SampleError::io(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| SampleError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("day=") && !keep.contains(&name) && entry.path().is_dir() {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| SampleError::io(entry.path(), e))?;
            }
        }
    }
    Ok(())
}

/// The five open files of one day, written in parallel.
struct DayWriters<'s> {
    parquet: ParquetWriter,
    csv: CsvWriter,
    json: JsonWriter,
    avro: AvroWriter<'s>,
}

impl<'s> DayWriters<'s> {
    fn create(
        out: &Path,
        partition: &str,
        arrow_schema: &SchemaRef,
        avro_schema: &'s apache_avro::Schema,
        marker_seed: u64,
    ) -> Result<Self, SampleError> {
        let path = |format: &str, ext: &str| {
            out.join("sensors")
                .join(format)
                .join(partition)
                .join(format!("part-00000.{ext}"))
        };
        Ok(DayWriters {
            parquet: ParquetWriter::create(&path("parquet", "parquet"), arrow_schema.clone())?,
            csv: CsvWriter::create(&path("csv", "csv"), &path("csv_gz", "csv.gz"))?,
            json: JsonWriter::create(&path("json", "json"))?,
            avro: AvroWriter::create(&path("avro", "avro"), avro_schema, marker_seed)?,
        })
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), SampleError> {
        let DayWriters {
            parquet,
            csv,
            json,
            avro,
        } = self;
        std::thread::scope(|scope| {
            let parquet = scope.spawn(|| parquet.write(chunk));
            let csv = scope.spawn(|| csv.write(chunk));
            let json = scope.spawn(|| json.write(chunk));
            let avro = avro.write(chunk);
            let join = |handle: std::thread::ScopedJoinHandle<'_, Result<(), SampleError>>| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            let parquet = join(parquet);
            let csv = join(csv);
            let json = join(json);
            parquet.and(csv).and(json).and(avro)
        })
    }

    fn finish(self) -> Result<(), SampleError> {
        self.parquet.finish()?;
        self.csv.finish()?;
        self.json.finish()?;
        self.avro.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_split_evenly() {
        let split: Vec<u64> = (0..7).map(|d| rows_of_day(100, 7, d)).collect();
        assert_eq!(split.iter().sum::<u64>(), 100);
        assert!(split.iter().all(|r| *r == 14 || *r == 15));
        assert_eq!((0..3).map(|d| rows_of_day(1, 3, d)).sum::<u64>(), 1);
    }

    #[test]
    fn rejects_empty_shapes() {
        let opts = SampleOptions {
            days: 0,
            ..SampleOptions::default()
        };
        assert!(matches!(
            validate(&opts),
            Err(SampleError::InvalidOptions(_))
        ));
        let opts = SampleOptions {
            assets: 0,
            ..SampleOptions::default()
        };
        assert!(validate(&opts).is_err());
    }
}
