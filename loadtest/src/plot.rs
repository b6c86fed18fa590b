//! The sweep plot: server CPU and SFU latency against the number of subscribers, one line
//! per target, as SVG (plotters' SVG backend; no fonts or image libraries needed).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::scenario::Figures;

const COLORS: [RGBColor; 3] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    GREEN,
];

/// Draws `runs` (any mix of targets and subscriber counts) to `out`.
///
/// Top: server CPU-seconds per second (1.0 = the one core the server is pinned to), per
/// target. Bottom: capture→arrival latency p50 and p99 in milliseconds, for the targets
/// that report it (Janus does not carry the stamp).
pub fn svg(runs: &[Figures], title: &str, out: &Path) -> Result<()> {
    if runs.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let mut targets: Vec<&str> = runs.iter().map(|r| r.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    let series = |t: &str| -> Vec<&Figures> {
        let mut v: Vec<&Figures> = runs.iter().filter(|r| r.target == t).collect();
        v.sort_by_key(|r| r.subscribers);
        v
    };
    let max_subs = runs.iter().map(|r| r.subscribers).max().unwrap_or(1) as f64 * 1.05;
    let max_cpu = runs
        .iter()
        .map(|r| r.server_cpu)
        .fold(1.0_f64, f64::max)
        .max(0.1)
        * 1.1;
    let max_lat = runs
        .iter()
        .filter_map(|r| r.latency_us.as_ref().map(|l| l.p99 / 1000.0))
        .fold(1.0_f64, f64::max)
        * 1.1;

    let root = SVGBackend::new(out, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(390);

    let mut cpu = chart(
        &top,
        "server CPU-seconds per second (server pinned to one core)",
        max_subs,
        max_cpu,
        "CPU s/s",
    )?;
    for (i, t) in targets.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = series(t)
            .iter()
            .map(|r| (r.subscribers as f64, r.server_cpu))
            .collect();
        cpu.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(*t)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        cpu.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    cpu.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    let mut lat = chart(
        &bottom,
        "capture → arrival latency, ms (includes the generator; p50 solid, p99 dashed)",
        max_subs,
        max_lat,
        "ms",
    )?;
    for (i, t) in targets.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let with: Vec<(f64, f64, f64)> = series(t)
            .iter()
            .filter_map(|r| {
                r.latency_us
                    .as_ref()
                    .map(|l| (r.subscribers as f64, l.p50 / 1000.0, l.p99 / 1000.0))
            })
            .collect();
        if with.is_empty() {
            continue;
        }
        let p50: Vec<(f64, f64)> = with.iter().map(|&(x, a, _)| (x, a)).collect();
        let p99: Vec<(f64, f64)> = with.iter().map(|&(x, _, b)| (x, b)).collect();
        lat.draw_series(LineSeries::new(p50.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(format!("{t} p50"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        lat.draw_series(p50.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
        lat.draw_series(DashedLineSeries::new(
            p99.clone(),
            6,
            4,
            color.stroke_width(2),
        ))
        .map_err(|e| anyhow!("{e}"))?
        .label(format!("{t} p99"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.6)));
        lat.draw_series(p99.iter().map(|&p| Cross::new(p, 4, color)))
            .map_err(|e| anyhow!("{e}"))?;
    }
    lat.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One of the two charts: subscribers on x (from 0 to `max_x`), `y_desc` from 0 to `max_y`,
/// the mesh drawn.
fn chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    max_x: f64,
    max_y: f64,
    y_desc: &str,
) -> Result<Chart<'a, 'b>> {
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(|e| anyhow!("{e}"))?;
    c.configure_mesh()
        .x_desc("subscribers")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Percentiles;

    fn run(target: &str, subs: usize, cpu: f64, lat: Option<f64>) -> Figures {
        let p = |v: f64| Percentiles {
            p50: v,
            p95: v * 1.5,
            p99: v * 2.0,
        };
        Figures {
            target: target.into(),
            scenario: "broadcast".into(),
            video_codec: "VP8".into(),
            subscribers: subs,
            receiving: subs,
            window_s: 10.0,
            forwarded_pps: 0.0,
            forwarded_video_pps: 0.0,
            server_cpu: cpu,
            pkts_per_cpu_s: 0.0,
            video_pkts_per_cpu_s: 0.0,
            loss_pct: 0.0,
            latency_us: lat.map(p),
            sfu_residence_us: None,
            datagrams_per_send_call: None,
            ttfk_ms: p(1.0),
            ttfk_after_answer_ms: p(1.0),
            connect_ms: p(1.0),
            rss_base_kib: 0,
            rss_end_kib: 0,
            rss_per_sub_kib: 0.0,
            keyframe_requests_at_publisher: None,
            join_s: 1.0,
            notes: Vec::new(),
        }
    }

    #[test]
    fn draws_both_targets_and_only_the_latency_there_is() {
        let dir = std::env::temp_dir().join(format!("plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("sweep.svg");
        let runs = vec![
            run("classrelay", 200, 0.41, Some(5600.0)),
            run("classrelay", 100, 0.21, Some(2850.0)),
            run("janus", 100, 0.89, None),
            run("janus", 200, 1.0, None),
        ];
        svg(&runs, "broadcast", &out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("<svg"), "an SVG document");
        for label in ["classrelay p50", "classrelay p99", "janus", "subscribers"] {
            assert!(text.contains(label), "{label} is drawn");
        }
        assert!(!text.contains("janus p50"), "no latency line for Janus");
        assert!(svg(&[], "empty", &out).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
