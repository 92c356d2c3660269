//! The report's charts, drawn with `plotters` into SVG strings that the HTML embeds inline
//! (no network, no scripts).
//!
//! - `layer_latency_svg`: horizontal grouped bars, median latency per layer before and after.
//! - `trajectory_svg`: every candidate of the run in top-1 vs latency and top-1 vs size, the
//!   path of accepted rounds, the accuracy floor of the budget and the chosen model ringed.
//!
//! Bars are filled with `BEFORE_COLOR` / `AFTER_COLOR` and nothing else uses those fills except
//! the legend swatch, so a test can count bars in the rendered DOM.
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::ReportError;
use crate::model::{LayerRow, RunReport};

/// Bar fills of the per-layer chart (hex as the SVG backend writes them).
pub const BEFORE_HEX: &str = "#A3ACB9";
pub const AFTER_HEX: &str = "#2563EB";
const BEFORE_COLOR: RGBColor = RGBColor(0xA3, 0xAC, 0xB9);
const AFTER_COLOR: RGBColor = RGBColor(0x25, 0x63, 0xEB);
const ACCEPTED_COLOR: RGBColor = RGBColor(0x25, 0x63, 0xEB);
const REJECTED_COLOR: RGBColor = RGBColor(0xDC, 0x26, 0x26);
const CHOSEN_COLOR: RGBColor = RGBColor(0x16, 0xA3, 0x4A);
const FLOOR_COLOR: RGBColor = RGBColor(0xF5, 0x9E, 0x0B);
const INK: RGBColor = RGBColor(0x1F, 0x29, 0x37);
const GRID: RGBColor = RGBColor(0xE5, 0xE7, 0xEB);

const FONT: &str = "Helvetica, Arial, sans-serif";
const CHART_WIDTH: u32 = 880;
/// Pixels per layer row of the latency chart (two bars and a gap).
const ROW_HEIGHT: u32 = 24;
/// Room above and below the rows (caption, axis, legend).
const LAYER_CHART_MARGIN: u32 = 90;
/// Width of the layer-name column, pixels.
const LAYER_LABEL_WIDTH: u32 = 200;
const TRAJECTORY_HEIGHT: u32 = 400;
/// Fraction of the data range added around scatter plots so markers are not cut.
const AXIS_PADDING: f64 = 0.12;
/// Padding right of the rightmost scatter point, room for its label ("baseline").
const LABEL_PADDING: f64 = 0.25;

/// plotters' SVG backend writes `font-size` as the requested size / 1.24; ask for `px` pixels.
fn font(px: f64) -> FontDesc<'static> {
    (FONT, px * 1.24).into_font()
}

/// Height of the legend strip above a chart, pixels.
const LEGEND_HEIGHT: u32 = 34;

/// A legend entry's symbol.
#[derive(Clone, Copy)]
enum Mark {
    Swatch(RGBColor),
    Dot(RGBColor),
    Cross(RGBColor),
    Ring(RGBColor),
    Dash(RGBColor),
}

/// A one-line legend across the top of a chart (outside the plot, so it never hides data).
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(Mark, &str)],
    left: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    let y = LEGEND_HEIGHT as i32 / 2;
    let mut x = left;
    let style = font(13.0)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (mark, label) in entries {
        match *mark {
            Mark::Swatch(color) => area.draw(&Rectangle::new(
                [(x, y - 6), (x + 14, y + 6)],
                color.filled(),
            ))?,
            Mark::Dot(color) => area.draw(&Circle::new((x + 7, y), 5, color.filled()))?,
            Mark::Cross(color) => area.draw(&Cross::new(
                (x + 7, y),
                5,
                ShapeStyle::from(&color).stroke_width(3),
            ))?,
            Mark::Ring(color) => area.draw(&Circle::new(
                (x + 7, y),
                6,
                ShapeStyle::from(&color).stroke_width(3),
            ))?,
            Mark::Dash(color) => area.draw(&PathElement::new(
                vec![(x, y), (x + 6, y), (x + 9, y), (x + 16, y)],
                ShapeStyle::from(&color).stroke_width(2),
            ))?,
        }
        area.draw(&Text::new(label.to_string(), (x + 22, y), style.clone()))?;
        // No font metrics in the SVG backend: ~7.2 px per character at 13 px.
        x += 22 + (label.chars().count() as f64 * 7.2) as i32 + 26;
    }
    Ok(())
}

fn chart_error(chart: &'static str) -> impl Fn(String) -> ReportError {
    move |reason| ReportError::Chart { chart, reason }
}

/// Per-layer median latency, before (grey) and after (blue), one row per layer.
pub fn layer_latency_svg(rows: &[LayerRow]) -> Result<String, ReportError> {
    let mut svg = String::new();
    let height = LEGEND_HEIGHT + LAYER_CHART_MARGIN + ROW_HEIGHT * rows.len().max(1) as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH, height)).into_drawing_area();
        draw_layer_latency(&root, rows)
            .map_err(|e| chart_error("per-layer latency")(e.to_string()))?;
        root.present()
            .map_err(|e| chart_error("per-layer latency")(e.to_string()))?;
    }
    Ok(svg)
}

fn draw_layer_latency(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    rows: &[LayerRow],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let (legend, plot) = root.split_vertically(LEGEND_HEIGHT);
    draw_legend(
        &legend,
        &[
            (Mark::Swatch(BEFORE_COLOR), "Before (input model)"),
            (Mark::Swatch(AFTER_COLOR), "After (final model)"),
        ],
        LAYER_LABEL_WIDTH as i32,
    )?;
    let longest = rows
        .iter()
        .flat_map(|r| [r.before_ms, r.after_ms])
        .flatten()
        .fold(0.0_f64, f64::max);
    let x_max = if longest > 0.0 { longest * 1.08 } else { 1.0 };
    let count = rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .margin_left(LAYER_LABEL_WIDTH)
        .x_label_area_size(44)
        .build_cartesian_2d(0.0..x_max, 0.0..count)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(INK)
        .x_desc("Median latency per layer (ms)")
        .x_label_formatter(&|v| format!("{v:.3}"))
        .label_style(font(13.0).color(&INK))
        .axis_desc_style(font(14.0).color(&INK))
        .draw()?;
    // Row i from the top occupies y in [count - i - 1, count - i]: before in the upper half.
    let top = |i: usize| count - i as f64;
    let gap = 0.12;
    chart.draw_series(rows.iter().enumerate().filter_map(|(i, row)| {
        row.before_ms.map(|v| {
            Rectangle::new(
                [(0.0, top(i) - gap), (v, top(i) - 0.5)],
                BEFORE_COLOR.filled(),
            )
        })
    }))?;
    chart.draw_series(rows.iter().enumerate().filter_map(|(i, row)| {
        row.after_ms.map(|v| {
            Rectangle::new(
                [(0.0, top(i) - 0.5), (v, top(i) - 1.0 + gap)],
                AFTER_COLOR.filled(),
            )
        })
    }))?;
    // Layer names left of the plot, right-aligned against the y axis (`backend_coord` is in
    // pixels of the whole drawing, so they go on `root`, not on the offset plot area).
    let name_style = (FONT, 13)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, top(i) - 0.5));
        root.draw(&Text::new(
            row.layer.clone(),
            (x - 8, y),
            name_style.clone(),
        ))?;
    }
    Ok(())
}

/// One candidate model of the run, as plotted.
#[derive(Debug, Clone)]
struct Point {
    label: String,
    top1: f64,
    latency_ms: f64,
    size_mb: f64,
    kind: PointKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointKind {
    Baseline,
    Accepted,
    Rejected,
}

fn points(report: &RunReport) -> Vec<Point> {
    let mut points = vec![Point {
        label: "baseline".into(),
        top1: crate::model::top1(&report.baseline),
        latency_ms: report.baseline.latency_ms,
        size_mb: report.baseline.model_bytes as f64 / 1e6,
        kind: PointKind::Baseline,
    }];
    for round in &report.rounds {
        if let Some(e) = &round.evaluation {
            points.push(Point {
                label: format!("R{}", round.round),
                top1: crate::model::top1(e),
                latency_ms: e.latency_ms,
                size_mb: e.model_bytes as f64 / 1e6,
                kind: if round.accepted {
                    PointKind::Accepted
                } else {
                    PointKind::Rejected
                },
            });
        }
    }
    points
}

/// How many candidates (baseline included) the trajectory chart plots.
pub fn trajectory_point_count(report: &RunReport) -> usize {
    points(report).len()
}

/// Top-1 vs latency and top-1 vs size of every candidate, side by side.
pub fn trajectory_svg(report: &RunReport) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (CHART_WIDTH, TRAJECTORY_HEIGHT)).into_drawing_area();
        let error = chart_error("accuracy-latency-size trajectory");
        root.fill(&WHITE).map_err(|e| error(e.to_string()))?;
        let (legend, plots) = root.split_vertically(LEGEND_HEIGHT);
        draw_legend(
            &legend,
            &[
                (Mark::Dot(INK), "Baseline"),
                (Mark::Dot(ACCEPTED_COLOR), "Accepted round"),
                (Mark::Cross(REJECTED_COLOR), "Rolled back"),
                (Mark::Ring(CHOSEN_COLOR), "Chosen model"),
                (Mark::Dash(FLOOR_COLOR), "Accuracy floor (budget)"),
            ],
            72,
        )
        .map_err(|e| error(e.to_string()))?;
        let panels = plots.split_evenly((1, 2));
        let all = points(report);
        let chosen = report.chosen_round().map(|r| format!("R{r}"));
        let floor = crate::model::top1(&report.baseline) - report.budget.max_acc_drop;
        let latency: Vec<(f64, &Point)> = all.iter().map(|p| (p.latency_ms, p)).collect();
        let size: Vec<(f64, &Point)> = all.iter().map(|p| (p.size_mb, p)).collect();
        draw_trajectory(
            &panels[0],
            &latency,
            "Latency, batch 1 (ms)",
            chosen.as_deref(),
            floor,
        )
        .map_err(|e| error(e.to_string()))?;
        draw_trajectory(
            &panels[1],
            &size,
            "Model file size (MB)",
            chosen.as_deref(),
            floor,
        )
        .map_err(|e| error(e.to_string()))?;
        root.present().map_err(|e| error(e.to_string()))?;
    }
    Ok(svg)
}

/// Data range plus padding: `AXIS_PADDING` below, `high_padding` above (more room on the right
/// of scatter plots for the point labels).
fn padded(values: impl Iterator<Item = f64> + Clone, high_padding: f64) -> (f64, f64) {
    let low = values.clone().fold(f64::INFINITY, f64::min);
    let high = values.fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() || !high.is_finite() {
        return (0.0, 1.0);
    }
    let span = (high - low).max(high.abs() * 0.05).max(1e-3);
    (low - span * AXIS_PADDING, high + span * high_padding)
}

fn draw_trajectory(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    points: &[(f64, &Point)],
    x_desc: &str,
    chosen: Option<&str>,
    floor: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let (x_low, x_high) = padded(points.iter().map(|(x, _)| *x), LABEL_PADDING);
    let (y_low, y_high) = padded(
        points.iter().map(|(_, p)| p.top1).chain([floor]),
        AXIS_PADDING,
    );
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(58)
        .build_cartesian_2d(x_low.max(0.0)..x_high, y_low..y_high)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(INK)
        .x_desc(x_desc)
        .y_desc("Top-1 accuracy (%)")
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(font(12.5).color(&INK))
        .axis_desc_style(font(13.0).color(&INK))
        .draw()?;

    let floor_style = ShapeStyle::from(&FLOOR_COLOR).stroke_width(2);
    chart.draw_series(DashedLineSeries::new(
        [(x_low.max(0.0), floor), (x_high, floor)],
        6,
        4,
        floor_style,
    ))?;

    // The kept model's path: baseline, then each accepted round.
    let path: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, p)| p.kind != PointKind::Rejected)
        .map(|(x, p)| (*x, p.top1))
        .collect();
    chart.draw_series(LineSeries::new(
        path,
        ShapeStyle::from(&ACCEPTED_COLOR.mix(0.45)).stroke_width(2),
    ))?;

    let baseline = points.iter().filter(|(_, p)| p.kind == PointKind::Baseline);
    chart.draw_series(baseline.map(|(x, p)| Circle::new((*x, p.top1), 6, INK.filled())))?;
    let accepted = points.iter().filter(|(_, p)| p.kind == PointKind::Accepted);
    chart.draw_series(
        accepted.map(|(x, p)| Circle::new((*x, p.top1), 6, ACCEPTED_COLOR.filled())),
    )?;
    let rejected = points.iter().filter(|(_, p)| p.kind == PointKind::Rejected);
    let cross = ShapeStyle::from(&REJECTED_COLOR).stroke_width(3);
    chart.draw_series(rejected.map(|(x, p)| Cross::new((*x, p.top1), 6, cross)))?;
    let ring = ShapeStyle::from(&CHOSEN_COLOR).stroke_width(3);
    let chosen_points = points
        .iter()
        .filter(|(_, p)| Some(p.label.as_str()) == chosen);
    chart.draw_series(chosen_points.map(|(x, p)| Circle::new((*x, p.top1), 11, ring)))?;

    let label_style = font(12.5)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    // Labels sit up and right of their marker (pixel offset from the data point).
    chart.draw_series(points.iter().map(|(x, p)| {
        EmptyElement::at((*x, p.top1)) + Text::new(p.label.clone(), (12, -9), label_style.clone())
    }))?;
    Ok(())
}
