//! The simulation model: machine types, sensor physics and the failure rules.
//!
//! [`Generator`] owns the seeded random number generator and the state of every
//! machine (air temperature drift and tool wear), and fills [`Chunk`]s of
//! readings in time order. All randomness goes through one `StdRng`, consumed in
//! a fixed order, so the output depends only on the seed and the options.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Microseconds in a day.
pub(crate) const DAY_US: i64 = 86_400_000_000;

/// Bit of [`Chunk::failures`]: tool wear failure.
pub(crate) const TWF: u8 = 1;
/// Bit of [`Chunk::failures`]: heat dissipation failure.
pub(crate) const HDF: u8 = 2;
/// Bit of [`Chunk::failures`]: power failure.
pub(crate) const PWF: u8 = 4;
/// Bit of [`Chunk::failures`]: overstrain failure.
pub(crate) const OSF: u8 = 8;
/// Bit of [`Chunk::failures`]: random failure.
pub(crate) const RNF: u8 = 16;

/// Tool wear (minutes) from which a tool wear failure can happen.
pub(crate) const TWF_WEAR_MIN: i32 = 200;
/// Tool wear (minutes) up to which a tool wear failure can happen.
pub(crate) const TWF_WEAR_MAX: i32 = 240;
/// Probability of a tool wear failure per reading inside the wear window.
pub(crate) const TWF_PROBABILITY: f64 = 0.05;
/// Above this wear the tool is replaced (wear restarts at 0).
pub(crate) const WEAR_LIMIT: i32 = 250;
/// Heat dissipation failure: process − air temperature below this (K) ...
pub(crate) const HDF_MAX_DELTA_K: f64 = 8.6;
/// ... while the spindle turns slower than this (rpm).
pub(crate) const HDF_MAX_SPEED_RPM: i32 = 1380;
/// Power failure below this power (W).
pub(crate) const PWF_MIN_W: f64 = 3500.0;
/// Power failure above this power (W).
pub(crate) const PWF_MAX_W: f64 = 9000.0;
/// Probability of a random failure per reading.
pub(crate) const RNF_PROBABILITY: f64 = 0.001;
/// Probability that a temperature or torque sensor value is missing (NULL).
pub(crate) const DROPOUT_PROBABILITY: f64 = 0.005;

/// The kinds of machine on the shop floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssetType {
    CncMill,
    Lathe,
    Press,
    Grinder,
}

impl AssetType {
    /// All types, in the order used by the documentation.
    #[cfg(test)]
    pub(crate) const ALL: [AssetType; 4] = [
        AssetType::CncMill,
        AssetType::Lathe,
        AssetType::Press,
        AssetType::Grinder,
    ];

    /// The type of a machine; depends only on its id (not on the seed). In every
    /// block of ten consecutive ids there are 4 mills, 3 lathes, 2 presses and
    /// 1 grinder.
    pub(crate) fn for_asset(asset_id: u32) -> Self {
        match (u64::from(asset_id) * 7) % 10 {
            0..=3 => AssetType::CncMill,
            4..=6 => AssetType::Lathe,
            7..=8 => AssetType::Press,
            _ => AssetType::Grinder,
        }
    }

    /// The value stored in the `asset_type` column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AssetType::CncMill => "CNC_MILL",
            AssetType::Lathe => "LATHE",
            AssetType::Press => "PRESS",
            AssetType::Grinder => "GRINDER",
        }
    }

    /// Mean rotational speed (rpm).
    pub(crate) fn speed_mean_rpm(self) -> f64 {
        match self {
            AssetType::CncMill => 1550.0,
            AssetType::Lathe => 1500.0,
            AssetType::Press => 1420.0,
            AssetType::Grinder => 1700.0,
        }
    }

    /// Mean torque (Nm) at the mean speed.
    pub(crate) fn torque_mean_nm(self) -> f64 {
        match self {
            AssetType::CncMill => 40.0,
            AssetType::Lathe => 42.0,
            AssetType::Press => 44.0,
            AssetType::Grinder => 35.0,
        }
    }

    /// Overstrain threshold for `tool_wear_min × torque_nm` (min·Nm).
    pub(crate) fn overstrain_threshold(self) -> f64 {
        match self {
            AssetType::CncMill => 12_000.0,
            AssetType::Lathe => 11_000.0,
            AssetType::Press => 13_000.0,
            AssetType::Grinder => 12_000.0,
        }
    }
}

/// A column-oriented block of consecutive readings.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub reading_id: Vec<i64>,
    /// Microseconds since the Unix epoch (no time zone).
    pub ts: Vec<i64>,
    pub asset_id: Vec<i32>,
    pub asset_type: Vec<AssetType>,
    pub air_temp_k: Vec<f64>,
    pub air_temp_valid: Vec<bool>,
    pub process_temp_k: Vec<f64>,
    pub rotation_speed_rpm: Vec<i32>,
    pub torque_nm: Vec<f64>,
    pub torque_valid: Vec<bool>,
    pub tool_wear_min: Vec<i32>,
    /// Bit set of [`TWF`], [`HDF`], [`PWF`], [`OSF`], [`RNF`].
    pub failures: Vec<u8>,
}

impl Chunk {
    pub(crate) fn len(&self) -> usize {
        self.reading_id.len()
    }

    fn clear(&mut self) {
        self.reading_id.clear();
        self.ts.clear();
        self.asset_id.clear();
        self.asset_type.clear();
        self.air_temp_k.clear();
        self.air_temp_valid.clear();
        self.process_temp_k.clear();
        self.rotation_speed_rpm.clear();
        self.torque_nm.clear();
        self.torque_valid.clear();
        self.tool_wear_min.clear();
        self.failures.clear();
    }

    /// `air_temp_k` of row `i`, `None` for a sensor dropout.
    pub(crate) fn air_temp(&self, i: usize) -> Option<f64> {
        self.air_temp_valid[i].then_some(self.air_temp_k[i])
    }

    /// `torque_nm` of row `i`, `None` for a sensor dropout.
    pub(crate) fn torque(&self, i: usize) -> Option<f64> {
        self.torque_valid[i].then_some(self.torque_nm[i])
    }

    /// Whether failure mode `flag` (one of the bit constants) is set in row `i`.
    pub(crate) fn flag(&self, i: usize, flag: u8) -> bool {
        self.failures[i] & flag != 0
    }

    /// Whether row `i` has any failure (`machine_failure`).
    pub(crate) fn machine_failure(&self, i: usize) -> bool {
        self.failures[i] != 0
    }

    /// Number of rows with `machine_failure = true`.
    pub(crate) fn failure_count(&self) -> u64 {
        self.failures.iter().filter(|f| **f != 0).count() as u64
    }
}

/// State of one machine between its readings.
#[derive(Debug, Clone)]
struct AssetState {
    kind: AssetType,
    /// Local deviation of the air temperature from the plant's daily cycle (K).
    air_drift_k: f64,
    /// Minutes the current tool has been in use.
    wear_min: i32,
}

/// Generates the readings of the whole data set, day by day, in time order.
pub(crate) struct Generator {
    rng: StdRng,
    assets: Vec<AssetState>,
    next_reading_id: i64,
}

impl Generator {
    pub(crate) fn new(seed: u64, assets: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let assets = (1..=assets)
            .map(|id| AssetState {
                kind: AssetType::for_asset(id),
                air_drift_k: standard_normal(&mut rng) * 0.4,
                // Stagger the tools so that not every machine starts with a new one.
                wear_min: rng.random_range(0..=WEAR_LIMIT),
            })
            .collect();
        Generator {
            rng,
            assets,
            next_reading_id: 1,
        }
    }

    /// Replaces the content of `chunk` with the readings `from..to` of a day
    /// that starts at `day_start_us` and has `day_rows` readings, spread
    /// evenly over its 24 hours.
    pub(crate) fn fill(
        &mut self,
        chunk: &mut Chunk,
        day_start_us: i64,
        day_rows: u64,
        from: u64,
        to: u64,
    ) {
        chunk.clear();
        for i in from..to {
            let tod_us = (i128::from(i) * i128::from(DAY_US) / i128::from(day_rows)) as i64;
            self.push_reading(chunk, day_start_us + tod_us, tod_us);
        }
    }

    fn push_reading(&mut self, chunk: &mut Chunk, ts_us: i64, tod_us: i64) {
        let rng = &mut self.rng;
        let index = rng.random_range(0..self.assets.len());
        let asset = &mut self.assets[index];
        let kind = asset.kind;

        // Air temperature: a triangular daily cycle (coldest 03:00, warmest
        // 15:00, ±1 K) plus a slowly drifting, mean-reverting local deviation.
        asset.air_drift_k =
            (asset.air_drift_k * 0.97 + standard_normal(rng) * 0.2).clamp(-1.0, 1.0);
        let phase = tod_us as f64 / DAY_US as f64;
        let distance = (phase - 0.625).abs();
        let distance = distance.min(1.0 - distance);
        let daily = 1.0 - 4.0 * distance;
        let air = round_tenth((300.0 + daily + asset.air_drift_k).clamp(298.0, 302.0));

        // Speed around the type's mean; torque falls when the speed rises.
        let speed_mean = kind.speed_mean_rpm();
        let speed_f = (speed_mean + standard_normal(rng) * 130.0).clamp(1150.0, 2900.0);
        let speed = speed_f.round() as i32;
        let torque = round_tenth(
            (kind.torque_mean_nm() - 0.045 * (f64::from(speed) - speed_mean)
                + standard_normal(rng) * 6.0)
                .clamp(3.0, 80.0),
        );

        // The process runs ~10 K above ambient; slower spindles dissipate less.
        let delta = 10.0 + 0.003 * (f64::from(speed) - 1500.0) + standard_normal(rng) * 0.5;
        let process = round_tenth(air + delta);

        asset.wear_min += rng.random_range(0..=5);
        if asset.wear_min > WEAR_LIMIT {
            asset.wear_min = 0;
        }
        let wear = asset.wear_min;

        let mut failures = 0u8;
        if (TWF_WEAR_MIN..=TWF_WEAR_MAX).contains(&wear) && rng.random_bool(TWF_PROBABILITY) {
            failures |= TWF;
            asset.wear_min = 0;
        }
        if process - air < HDF_MAX_DELTA_K && speed < HDF_MAX_SPEED_RPM {
            failures |= HDF;
        }
        let power = power_w(torque, speed);
        if !(PWF_MIN_W..=PWF_MAX_W).contains(&power) {
            failures |= PWF;
        }
        if f64::from(wear) * torque > kind.overstrain_threshold() {
            failures |= OSF;
        }
        if rng.random_bool(RNF_PROBABILITY) {
            failures |= RNF;
        }
        let air_valid = !rng.random_bool(DROPOUT_PROBABILITY);
        let torque_valid = !rng.random_bool(DROPOUT_PROBABILITY);

        chunk.reading_id.push(self.next_reading_id);
        self.next_reading_id += 1;
        chunk.ts.push(ts_us);
        chunk.asset_id.push(index as i32 + 1);
        chunk.asset_type.push(kind);
        chunk.air_temp_k.push(air);
        chunk.air_temp_valid.push(air_valid);
        chunk.process_temp_k.push(process);
        chunk.rotation_speed_rpm.push(speed);
        chunk.torque_nm.push(torque);
        chunk.torque_valid.push(torque_valid);
        chunk.tool_wear_min.push(wear);
        chunk.failures.push(failures);
    }
}

/// Mechanical power in watts: torque (Nm) × angular speed (rad/s). Written in
/// the same operation order as `torque_nm * rotation_speed_rpm * 2 * pi() / 60`
/// so that SQL reproduces the rule bit for bit.
pub(crate) fn power_w(torque_nm: f64, speed_rpm: i32) -> f64 {
    torque_nm * f64::from(speed_rpm) * 2.0 * std::f64::consts::PI / 60.0
}

/// Rounds to one decimal place.
pub(crate) fn round_tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// An approximately normal variate with mean 0 and standard deviation 1 (sum of
/// four uniforms, so bounded by ±3.46). Uses only additions and one
/// multiplication, which keeps the output identical on every platform.
fn standard_normal(rng: &mut StdRng) -> f64 {
    const SCALE: f64 = 1.732_050_807_568_877_2; // sqrt(3): variance of the sum is 4/12
    let sum = rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>();
    (sum - 2.0) * SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_types_are_balanced_per_ten_ids() {
        let mut counts = [0usize; 4];
        for id in 1..=10 {
            let kind = AssetType::for_asset(id);
            let pos = AssetType::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            counts[pos] += 1;
        }
        assert_eq!(counts, [4, 3, 2, 1]);
    }

    #[test]
    fn failure_flags_follow_the_rules() {
        let mut generator = Generator::new(7, 20);
        let mut chunk = Chunk::default();
        generator.fill(&mut chunk, 0, 20_000, 0, 20_000);
        assert_eq!(chunk.len(), 20_000);
        for i in 0..chunk.len() {
            let air = chunk.air_temp_k[i];
            let process = chunk.process_temp_k[i];
            let speed = chunk.rotation_speed_rpm[i];
            let torque = chunk.torque_nm[i];
            let wear = chunk.tool_wear_min[i];
            assert!((298.0..=302.0).contains(&air));
            assert!((0..=WEAR_LIMIT).contains(&wear));
            assert_eq!(
                chunk.flag(i, HDF),
                process - air < HDF_MAX_DELTA_K && speed < HDF_MAX_SPEED_RPM
            );
            let power = power_w(torque, speed);
            assert_eq!(chunk.flag(i, PWF), !(3500.0..=9000.0).contains(&power));
            let threshold = chunk.asset_type[i].overstrain_threshold();
            assert_eq!(chunk.flag(i, OSF), f64::from(wear) * torque > threshold);
            if chunk.flag(i, TWF) {
                assert!((TWF_WEAR_MIN..=TWF_WEAR_MAX).contains(&wear));
            }
        }
        // Timestamps are strictly increasing within a day.
        assert!(chunk.ts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn default_shape_has_a_few_percent_failures_of_every_mode() {
        let mut generator = Generator::new(42, 50);
        let mut chunk = Chunk::default();
        let mut modes = [0u64; 5];
        let mut any = 0u64;
        let rows = 100_000;
        let mut from = 0;
        while from < rows {
            let to = (from + 65_536).min(rows);
            generator.fill(&mut chunk, 0, rows, from, to);
            for i in 0..chunk.len() {
                for (count, flag) in modes.iter_mut().zip([TWF, HDF, PWF, OSF, RNF]) {
                    *count += u64::from(chunk.flag(i, flag));
                }
            }
            any += chunk.failure_count();
            from = to;
        }
        let pct = any as f64 * 100.0 / rows as f64;
        assert!((2.0..6.0).contains(&pct), "failure rate {pct:.2}%");
        assert!(modes.iter().all(|m| *m > 0), "modes {modes:?}");
    }
}
