//! Generates the sample data set from the command line:
//! `cargo run --release -p lakewave-samples --example generate -- OUT [ROWS] [SEED]`.

use std::path::PathBuf;
use std::time::Instant;

use lakewave_samples::{SampleOptions, generate};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: generate OUT [ROWS] [SEED]");
        std::process::exit(2);
    };
    let mut opts = SampleOptions::default();
    if let Some(rows) = args.next().and_then(|r| r.parse().ok()) {
        opts.rows = rows;
    }
    if let Some(seed) = args.next().and_then(|s| s.parse().ok()) {
        opts.seed = seed;
    }
    let started = Instant::now();
    match generate(&out, &opts) {
        Ok(summary) => println!(
            "{} rows, {} failures, {} files in {} ({:.2?})",
            summary.rows,
            summary.failures,
            summary.files,
            summary.out.display(),
            started.elapsed()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
