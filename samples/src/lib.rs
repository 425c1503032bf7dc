//! Deterministic generator of Lakewave's sample data set: a manufacturing
//! sensor stream modelled on predictive-maintenance data, where machines fail
//! according to documented rules.
//!
//! Everything derives from one seeded `StdRng`, so the same
//! [`SampleOptions`] always give byte-identical files.
//!
//! # The machines
//!
//! Machines have ids `1..=assets`. The type depends on the id only: in every
//! block of ten ids there are four `CNC_MILL`, three `LATHE`, two `PRESS` and
//! one `GRINDER` (`(asset_id * 7) % 10` in 0–3, 4–6, 7–8, 9).
//!
//! # The readings
//!
//! `rows` readings are split evenly over `days` days starting at `start`, and
//! spread evenly over each day's 24 hours, in time order. Each reading belongs
//! to a machine drawn at random and carries:
//!
//! * `air_temp_k`: 300 K plus a triangular daily cycle of ±1 K (coldest at
//!   03:00, warmest at 15:00) plus a mean-reverting per-machine drift, kept
//!   within 298–302 K, rounded to 0.1.
//! * `rotation_speed_rpm`: the type's mean (mill 1550, lathe 1500, press 1420,
//!   grinder 1700) plus noise (σ ≈ 130 rpm).
//! * `torque_nm`: the type's mean (mill 40, lathe 42, press 44, grinder 35 Nm)
//!   minus 0.045 Nm per rpm above the type's mean speed, plus noise (σ ≈ 6
//!   Nm), rounded to 0.1.
//! * `process_temp_k`: air + 10 K + 0.003 K per rpm above 1500 + noise (σ ≈
//!   0.5 K), rounded to 0.1.
//! * `tool_wear_min`: grows by 0–5 minutes with each reading of that machine;
//!   the tool is replaced (wear restarts at 0) after a tool wear failure or
//!   when the wear would exceed 250.
//!
//! About 0.5% of `air_temp_k` and of `torque_nm` values are NULL (sensor
//! dropouts); the failure rules are evaluated on the true values.
//!
//! # Failure rules
//!
//! * `twf` (tool wear failure): wear between 200 and 240 minutes, with
//!   probability 5% per reading; the tool is then replaced.
//! * `hdf` (heat dissipation failure): `process_temp_k - air_temp_k < 8.6` and
//!   `rotation_speed_rpm < 1380`.
//! * `pwf` (power failure): power `torque_nm * rotation_speed_rpm * 2π / 60`
//!   (W) below 3500 or above 9000.
//! * `osf` (overstrain failure): `tool_wear_min * torque_nm` above 11000
//!   (`LATHE`), 12000 (`CNC_MILL`, `GRINDER`) or 13000 (`PRESS`).
//! * `rnf` (random failure): probability 0.1% per reading.
//! * `machine_failure`: any of the above. With the default options about 3–4%
//!   of the readings are failures.
//!
//! # Layout
//!
//! ```text
//! out/
//!   sensors/parquet/day=2026-01-01/part-00000.parquet
//!   sensors/csv/day=2026-01-01/part-00000.csv
//!   sensors/csv_gz/day=2026-01-01/part-00000.csv.gz
//!   sensors/json/day=2026-01-01/part-00000.json
//!   sensors/avro/day=2026-01-01/part-00000.avro
//!   ...one directory per day...
//!   assets.csv
//!   README.md
//!   _SUCCESS
//! ```
//!
//! [`registration_sql`] returns the DDL that exposes these files as tables of
//! database `samples`.

mod assets;
mod avro;
mod csv;
mod error;
mod fsutil;
mod generate;
mod json;
mod model;
mod options;
mod parquet;
mod readme;
mod schema;
mod sql;
mod text;
mod tpch;

pub use error::SampleError;
pub use generate::{ensure_generated, generate};
pub use options::{SampleOptions, SampleSummary};
pub use sql::registration_sql;
pub use tpch::{TABLES as TPCH_TABLES, generate_tpch};

#[cfg(test)]
mod tests;
