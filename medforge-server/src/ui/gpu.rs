//! A GPU as the pages show it: name, reading, holder, and a sparkline of
//! the last 15 minutes drawn on the server as inline SVG (no chart library,
//! nothing for the browser to run), with the same figures in words for
//! screen readers.

use medforge_core::model::GpuDevice;

use super::page::{ago, iso};
use crate::service::gpu_monitor::Point;
use crate::service::usage::{GpuLive, SPARKLINE_WINDOW};

/// The sparkline's drawing box: `viewBox="0 0 W H"`.
const W: f64 = 120.0;
const H: f64 = 32.0;

#[derive(Debug, Clone)]
pub struct Sparkline {
    /// `x,y` pairs for the utilisation polyline.
    pub utilization: String,
    /// `x,y` pairs for the memory polyline (share of the GPU's memory).
    pub memory: String,
    /// The figures in words (the SVG's accessible name).
    pub label: String,
}

/// Draws `points` (oldest first) over the window ending at the last one.
pub fn sparkline(points: &[Point], memory_total: u64) -> Option<Sparkline> {
    let last = points.last()?;
    let window = SPARKLINE_WINDOW.as_secs_f64();
    let x = |p: &Point| {
        let back = (last.at - p.at).as_seconds_f64().clamp(0.0, window);
        W - back / window * W
    };
    let y = |ratio: f64| H - ratio.clamp(0.0, 1.0) * (H - 2.0) - 1.0;
    let line = |value: &dyn Fn(&Point) -> f64| {
        points.iter().map(|p| format!("{:.1},{:.1}", x(p), y(value(p)))).collect::<Vec<_>>().join(" ")
    };
    let util = |p: &Point| f64::from(p.utilization_percent.min(100)) / 100.0;
    let memory = |p: &Point| if memory_total == 0 { 0.0 } else { p.memory_used_bytes as f64 / memory_total as f64 };
    let (lo, hi) =
        points.iter().fold((100, 0), |(lo, hi), p| (lo.min(p.utilization_percent), hi.max(p.utilization_percent)));
    let minutes = ((last.at - points[0].at).whole_seconds() as f64 / 60.0).ceil().max(1.0);
    Some(Sparkline {
        utilization: line(&util),
        memory: line(&memory),
        label: format!(
            "Utilisation over the last {minutes:.0} min: now {}%, lowest {lo}%, highest {hi}%",
            last.utilization_percent.min(100)
        ),
    })
}

/// Bytes in GiB, one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[derive(Debug, Clone)]
pub struct GpuCard {
    pub id: u32,
    pub enabled: bool,
    /// free, held or disabled.
    pub state: &'static str,
    pub name: String,
    pub holder: Option<String>,
    pub session_id: String,
    pub slug: String,
    pub since: String,
    pub since_iso: String,
    /// The latest reading, in words; `None` without telemetry.
    pub reading: Option<ReadingText>,
    pub sparkline: Option<Sparkline>,
}

#[derive(Debug, Clone)]
pub struct ReadingText {
    pub utilization_percent: u32,
    pub memory: String,
    /// Memory used as a percentage of the total, for the meter.
    pub memory_percent: u32,
    pub temperature: String,
    pub power: String,
    pub processes: usize,
    pub sampled: String,
    pub sampled_iso: String,
}

impl GpuCard {
    pub fn new(live: &GpuLive, holder: Option<String>, slug: Option<String>) -> Self {
        let g: &GpuDevice = &live.gpu;
        let total = live.reading.as_ref().map(|r| r.sample.memory_total_bytes).or(g.memory_total_bytes).unwrap_or(0);
        Self {
            id: g.id.0,
            enabled: g.enabled,
            state: match (g.session_id.is_some(), g.enabled) {
                (true, _) => "held",
                (false, true) => "free",
                (false, false) => "disabled",
            },
            name: g.name.clone().unwrap_or_default(),
            holder,
            session_id: g.session_id.map(|s| s.to_string()).unwrap_or_default(),
            slug: slug.unwrap_or_default(),
            since: g.held_since.map(ago).unwrap_or_default(),
            since_iso: g.held_since.map(iso).unwrap_or_default(),
            reading: live.reading.as_ref().map(|r| {
                let s = &r.sample;
                ReadingText {
                    utilization_percent: s.utilization_percent.min(100),
                    memory: format!("{} of {}", gib(s.memory_used_bytes), gib(s.memory_total_bytes)),
                    memory_percent: s
                        .memory_used_bytes
                        .saturating_mul(100)
                        .checked_div(s.memory_total_bytes)
                        .map_or(0, |p| p.min(100) as u32),
                    temperature: s.temperature_c.map(|t| format!("{t} °C")).unwrap_or_else(|| "n/a".into()),
                    power: s.power_watts.map(|w| format!("{w:.0} W")).unwrap_or_else(|| "n/a".into()),
                    processes: s.pids.len(),
                    sampled: ago(r.at),
                    sampled_iso: iso(r.at),
                }
            }),
            sparkline: sparkline(&live.history, total),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_sparkline_spans_the_window_and_says_its_figures() {
        let t0 = datetime!(2026-11-02 10:00 UTC);
        let points: Vec<Point> = (0..=4)
            .map(|i| Point {
                at: t0 + time::Duration::minutes(i * 3),
                utilization_percent: [0, 50, 100, 100, 20][i as usize],
                memory_used_bytes: 1 << 30,
            })
            .collect();
        let s = sparkline(&points, 4 << 30).expect("a line");
        let xs: Vec<&str> = s.utilization.split(' ').collect();
        assert_eq!(xs.len(), 5);
        assert_eq!(xs[0], "24.0,31.0", "12 of 15 minutes back, at 0%");
        assert_eq!(xs[2], "72.0,1.0", "100% at the top, 6 minutes back");
        assert_eq!(xs[4], "120.0,25.0", "the latest at the right edge");
        assert!(s.memory.ends_with("120.0,23.5"), "{}", s.memory);
        assert_eq!(s.label, "Utilisation over the last 12 min: now 20%, lowest 0%, highest 100%");
        assert!(sparkline(&[], 1).is_none());
    }
}
