//! The `--plot FILE.svg` picture (plotters, SVG backend, no system fonts needed: the SVG
//! names a font family and the viewer draws the text).
//!
//! Top: how many pages compress to each size, one line per compressor. Middle: frames
//! used for the frontswap workload (every page stored once), per compressor: the ideal,
//! each zcache allocator and Linux's zbud and zsmalloc layouts for the same sizes.
//! Bottom: store and load speed per configuration against bare (de)compression and the
//! baseline.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::CliError;
use crate::input::PAGE_SIZE;
use crate::measure::{Bare, Baseline};
use crate::report::Row;

/// Histogram bin width, bytes.
const BIN: u32 = 128;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn perr(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::runtime(format!("cannot draw {}: {e}", path.display()))
}

/// Draws the picture into `path`.
pub fn draw(
    path: &Path,
    title: &str,
    bare: &[Bare],
    rows: &[Row],
    baseline: &Baseline,
) -> Result<(), CliError> {
    let root = SVGBackend::new(path, (1200, 1350)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| perr(path, e))?;
    let parts = root.split_evenly((3, 1));
    histogram(&parts[0], bare).map_err(|e| perr(path, e))?;
    frames(&parts[1], bare, rows).map_err(|e| perr(path, e))?;
    speed(&parts[2], rows, baseline).map_err(|e| perr(path, e))?;
    root.present().map_err(|e| perr(path, e))?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn histogram(area: &Area<'_>, bare: &[Bare]) -> DrawResult {
    let nbins = (PAGE_SIZE as u32 + 512) / BIN;
    let mut counts: Vec<Vec<u32>> = Vec::new();
    for b in bare {
        let mut c = vec![0u32; nbins as usize];
        for (&l, &same) in b.lens.iter().zip(&b.same) {
            if !same {
                c[((l / BIN).min(nbins - 1)) as usize] += 1;
            }
        }
        counts.push(c);
    }
    let ymax = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Compressed size of each page (same-filled pages left out), 128-byte bins",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u32..nbins * BIN, 0u32..ymax + ymax / 10 + 1)?;
    chart
        .configure_mesh()
        .x_desc("compressed bytes")
        .y_desc("pages")
        .x_labels(10)
        .draw()?;
    for (k, (b, c)) in bare.iter().zip(&counts).enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        // A step line: flat over each bin.
        let pts: Vec<(u32, u32)> = c
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| [(i as u32 * BIN, n), ((i as u32 + 1) * BIN, n)])
            .collect();
        let mean = b
            .lens
            .iter()
            .zip(&b.same)
            .filter(|(_, s)| !**s)
            .map(|(&l, _)| f64::from(l))
            .sum::<f64>()
            / b.same.iter().filter(|s| !**s).count().max(1) as f64;
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(format!("{} (mean {mean:.0} B)", b.alg))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A grouped bar chart: one group per label, one bar per series; values above the bars.
fn grouped_bars(
    area: &Area<'_>,
    caption: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, RGBColor, Vec<Option<f64>>)],
    value_label: &dyn Fn(usize, usize, f64) -> String,
) -> DrawResult {
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1.0);
    let ng = groups.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..ng as f64, 0f64..ymax * 1.45)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(y_desc)
        .draw()?;
    let ns = series.len().max(1) as f64;
    let width = 0.8 / ns;
    for (si, (name, color, values)) in series.iter().enumerate() {
        let color = *color;
        let bars: Vec<_> = values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|v| (g, v)))
            .map(|(g, v)| {
                let x0 = g as f64 + 0.1 + si as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let labels: Vec<_> = values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|v| (g, v)))
            .map(|(g, v)| {
                let x = g as f64 + 0.1 + (si as f64 + 0.5) * width;
                Text::new(
                    value_label(si, g, v),
                    (x, v + ymax * 0.01),
                    ("sans-serif", 10)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            })
            .collect();
        chart.draw_series(labels)?;
    }
    let names: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(g, name)| {
            Text::new(
                name.clone(),
                (g as f64 + 0.5, 0.0),
                ("sans-serif", 15)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            )
        })
        .collect();
    chart.draw_series(names)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn frames(area: &Area<'_>, bare: &[Bare], rows: &[Row]) -> DrawResult {
    let fs: Vec<&Row> = rows.iter().filter(|r| r.workload == "frontswap").collect();
    let groups: Vec<String> = bare.iter().map(|b| b.alg.name().to_string()).collect();
    let find = |alg: &str, alloc: &str| {
        fs.iter()
            .find(|r| r.compressor == alg && r.allocator == alloc)
            .copied()
    };
    let any = |alg: &str| fs.iter().find(|r| r.compressor == alg).copied();
    let ideal: Vec<Option<f64>> = groups
        .iter()
        .map(|g| any(g).map(|r| r.ideal_frames as f64))
        .collect();
    let mut series = vec![(
        format!("ideal (compressed bytes / {PAGE_SIZE})"),
        RGBColor(150, 150, 150),
        ideal.clone(),
    )];
    for (alloc, color) in [("zbud", PALETTE[0]), ("zsmalloc", PALETTE[2])] {
        if fs.iter().any(|r| r.allocator == alloc) {
            series.push((
                format!("zcache {alloc}"),
                color,
                groups
                    .iter()
                    .map(|g| find(g, alloc).map(|r| r.pool_frames as f64))
                    .collect(),
            ));
        }
    }
    series.push((
        "Linux zbud layout".to_string(),
        RGBColor(158, 202, 225),
        groups
            .iter()
            .map(|g| any(g).and_then(|r| r.linux_zbud_frames).map(|f| f as f64))
            .collect(),
    ));
    series.push((
        "Linux zsmalloc layout (chain 8)".to_string(),
        RGBColor(161, 217, 155),
        groups
            .iter()
            .map(|g| {
                any(g)
                    .and_then(|r| r.linux_zsmalloc_frames)
                    .map(|f| f as f64)
            })
            .collect(),
    ));
    // The ideal bar shows its frame count, the others their multiple of it.
    let label = |s: usize, g: usize, v: f64| match ideal.get(g).copied().flatten() {
        Some(i) if i > 0.0 && s > 0 => format!("{:.2}x", v / i),
        _ => format!("{v:.0}"),
    };
    let unit = format!("{} KiB frames", PAGE_SIZE / 1024);
    grouped_bars(
        area,
        "Frames used, every page stored once (frontswap), against the ideal",
        &unit,
        &groups,
        &series,
        &label,
    )
}

fn speed(area: &Area<'_>, rows: &[Row], baseline: &Baseline) -> DrawResult {
    let mut groups = Vec::new();
    let mut store = Vec::new();
    let mut load = Vec::new();
    let mut bare_c = Vec::new();
    let mut bare_d = Vec::new();
    for r in rows.iter().filter(|r| r.workload == "frontswap") {
        groups.push(format!("{} {}", r.allocator, r.compressor));
        store.push(Some(r.store_pages_per_sec / 1e3));
        load.push(Some(r.load_pages_per_sec / 1e3));
        // The bare passes interleaved with this configuration's stores and loads.
        bare_c.push(Some(r.bare_compress_pages_per_sec / 1e3));
        bare_d.push(Some(r.bare_decompress_pages_per_sec / 1e3));
    }
    if groups.is_empty() {
        return Ok(());
    }
    groups.push("baseline (lz4)".to_string());
    store.push(Some(baseline.store.per_sec() / 1e3));
    load.push(Some(baseline.load.per_sec() / 1e3));
    bare_c.push(None);
    bare_d.push(None);
    let series = vec![
        ("zcache store".to_string(), PALETTE[0], store),
        ("bare compress".to_string(), RGBColor(158, 202, 225), bare_c),
        ("zcache load".to_string(), PALETTE[1], load),
        (
            "bare decompress".to_string(),
            RGBColor(253, 208, 162),
            bare_d,
        ),
    ];
    grouped_bars(
        area,
        "frontswap speed, one thread (thousand pages/s)",
        "thousand pages/s",
        &groups,
        &series,
        &|_, _, v| {
            if v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        },
    )
}
