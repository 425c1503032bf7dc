//! Draws the per-query ratios of a TPC-H report written by
//! `benches/tpch.py` (its JSON) as grouped bars, one group per query and
//! one bar per system, each system's time divided by the base system's
//! (DuckDB on Parquet by default), on a logarithmic axis.
//!
//!     lakewave-bench-chart <report.json> <out.png> [base]

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Fonts tried for labels (ab_glyph needs one loaded at run time).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: lakewave-bench-chart <report.json> <out.png> [base system]".into());
    }
    let base = args.get(3).map_or("duckdb", String::as_str);
    let font = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no DejaVuSans.ttf found (install fonts-dejavu-core)")?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| "the font could not be loaded")?;

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args[1])?)?;
    let queries = report["queries"].as_object().ok_or("the report has no \"queries\"")?;
    // system -> per-query ratio
    let mut ratios: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    let names: Vec<&String> = queries.keys().collect();
    for (i, (_, q)) in queries.iter().enumerate() {
        let med = q["median_s"].as_object().ok_or("a query without medians")?;
        let Some(b) = med.get(base).and_then(|v| v.as_f64()) else { continue };
        for (system, t) in med {
            if system != base
                && let Some(t) = t.as_f64()
            {
                ratios.entry(system.clone()).or_default().push((i, t / b));
            }
        }
    }
    let (lo, hi) = ratios
        .values()
        .flatten()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, r)| (lo.min(*r), hi.max(*r)));
    let (lo, hi) = ((lo * 0.8).min(0.5), (hi * 1.25).max(2.0));
    let systems: Vec<&String> = ratios.keys().collect();

    let root = BitMapBackend::new(&args[2], (1400, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let sf = report["sf"].as_f64().unwrap_or(0.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("TPC-H SF {sf}: time / {base} time per query (log scale, lower is better)"), ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..names.len() as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(names.len())
        .x_label_formatter(&|x| names.get(x.floor() as usize).map(|n| n.to_string()).unwrap_or_default())
        .y_desc("ratio")
        .label_style(("sans-serif", 14))
        .draw()?;
    // The parity line.
    chart.draw_series(LineSeries::new([(0.0, 1.0), (names.len() as f64, 1.0)], BLACK.stroke_width(1)))?;
    let width = 0.8 / systems.len().max(1) as f64;
    for (k, system) in systems.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        chart
            .draw_series(ratios[*system].iter().map(|&(i, r)| {
                let x0 = i as f64 + 0.1 + k as f64 * width;
                Rectangle::new([(x0, lo), (x0 + width, r)], color.filled())
            }))?
            .label(system.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    println!("wrote {}", args[2]);
    Ok(())
}
