//! The asset master table `assets.csv`: one row per machine with its type,
//! plant, production line and commissioning date.

use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::AssetType;
use crate::text::{push_csv_field, push_int};

/// Plants the machines are installed in.
const SITES: [&str; 3] = ["Riverside", "Hillcrest", "Lakeside"];
/// Production lines per plant.
const LINES: u32 = 4;
/// Separates the asset table's random stream from the sensor stream.
const SEED_SALT: u64 = 0x6173_7365_7473; // "assets"

/// Renders `assets.csv` for machines `1..=assets`. The attributes of a machine
/// do not depend on how many machines there are.
pub(crate) fn assets_csv(assets: u32, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ SEED_SALT);
    let first_day = NaiveDate::from_ymd_opt(2012, 1, 1).unwrap_or_default();
    let span_days = 14 * 365; // commissioned between 2012 and late 2025
    let mut out = b"asset_id,asset_type,site,line,commissioned\n".to_vec();
    for id in 1..=assets {
        let site = SITES[rng.random_range(0..SITES.len())];
        let line = rng.random_range(1..=LINES);
        let offset = rng.random_range(0..span_days);
        let commissioned = first_day
            .checked_add_days(Days::new(offset))
            .unwrap_or(first_day);
        push_int(&mut out, i64::from(id));
        out.push(b',');
        push_csv_field(&mut out, AssetType::for_asset(id).as_str());
        out.push(b',');
        push_csv_field(&mut out, site);
        out.extend_from_slice(b",L");
        push_int(&mut out, i64::from(line));
        out.push(b',');
        out.extend_from_slice(commissioned.format("%Y-%m-%d").to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_asset_and_stable_prefix() {
        let small = String::from_utf8(assets_csv(3, 42)).unwrap_or_default();
        let large = String::from_utf8(assets_csv(10, 42)).unwrap_or_default();
        assert_eq!(small.lines().count(), 4);
        assert_eq!(large.lines().count(), 11);
        assert!(large.starts_with(&small));
        let row: Vec<&str> = small
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split(',')
            .collect();
        assert_eq!(row.len(), 5);
        assert_eq!(row[0], "1");
        assert_eq!(row[1], "PRESS"); // (1 * 7) % 10 = 7
        assert!(SITES.contains(&row[2]));
        assert!(row[3].starts_with('L'));
        assert!(NaiveDate::parse_from_str(row[4], "%Y-%m-%d").is_ok());
    }
}
