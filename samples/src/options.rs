//! Options that select the size and shape of the data set, and the summary of a run.

use std::path::PathBuf;

use chrono::NaiveDate;

/// What to generate. The same options always produce byte-identical files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOptions {
    /// Total number of sensor readings over all days.
    pub rows: u64,
    /// Seed of the random number generator.
    pub seed: u64,
    /// Number of days (one Hive partition `day=YYYY-MM-DD` per day).
    pub days: u32,
    /// Number of machines; asset ids are `1..=assets`.
    pub assets: u32,
    /// The first day.
    pub start: NaiveDate,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            rows: 100_000,
            seed: 42,
            days: 7,
            assets: 50,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).expect("2026-01-01 is a valid date"),
        }
    }
}

/// What a call to [`generate`](crate::generate) produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    /// Number of sensor readings (rows of each format).
    pub rows: u64,
    /// Number of files written: five sensor files per day, `assets.csv` and
    /// `README.md` (the `_SUCCESS` marker is not counted).
    pub files: usize,
    /// Number of readings with `machine_failure = true`.
    pub failures: u64,
    /// The output directory.
    pub out: PathBuf,
}
