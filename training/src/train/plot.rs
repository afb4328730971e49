//! The loss curve as a self-contained SVG: training loss per step, eval loss per epoch.

use std::fmt::Write;

use super::metrics::Record;

/// The plot's file name inside a run folder.
pub const PLOT_FILE: &str = "loss.svg";

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

/// The SVG of `records`: a line of training loss against step, eval loss as dots joined by a
/// dashed line, axes with five ticks each, a legend and `title`.
pub fn loss_svg(records: &[Record], title: &str) -> String {
    let train: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Train { step, loss, .. } => Some((*step as f64, *loss)),
            Record::Eval { .. } => None,
        })
        .collect();
    let eval: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Eval {
                step, eval_loss, ..
            } => Some((*step as f64, *eval_loss)),
            Record::Train { .. } => None,
        })
        .collect();
    let all = || train.iter().chain(&eval);
    let max_x = all().map(|p| p.0).fold(1.0, f64::max);
    let max_y = all()
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(0.0, f64::max);
    let max_y = if max_y > 0.0 { max_y * 1.05 } else { 1.0 };
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x_of = |x: f64| LEFT + x / max_x * plot_w;
    let y_of = |y: f64| TOP + plot_h - y.clamp(0.0, max_y) / max_y * plot_h;
    let points = |pts: &[(f64, f64)]| {
        pts.iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
            .collect::<Vec<_>>()
            .join(" ")
    };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>
"##,
        WIDTH / 2.0,
        escape(title)
    );
    for i in 0..=4 {
        let fy = max_y * f64::from(i) / 4.0;
        let fx = max_x * f64::from(i) / 4.0;
        let (y, x) = (y_of(fy), x_of(fx));
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{fy:.2}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
        let _ = writeln!(
            svg,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{fx:.0}</text>"##,
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#000"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000"/>"##,
        TOP + plot_h,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">optimiser step</text><text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">loss per target token</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    if !train.is_empty() {
        let _ = writeln!(
            svg,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
            points(&train)
        );
    }
    if !eval.is_empty() {
        let _ = writeln!(
            svg,
            r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5 4" points="{}"/>"##,
            points(&eval)
        );
        for &(x, y) in &eval {
            let _ = writeln!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#d62728"/>"##,
                x_of(x),
                y_of(y)
            );
        }
    }
    let lx = WIDTH - RIGHT - 150.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{TOP}" x2="{}" y2="{TOP}" stroke="#1f77b4" stroke-width="2"/><text x="{}" y="{}">train loss</text>
<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#d62728" stroke-width="2" stroke-dasharray="5 4"/><text x="{}" y="{}">eval loss (epoch end)</text>"##,
        lx + 24.0,
        lx + 30.0,
        TOP + 4.0,
        TOP + 16.0,
        lx + 24.0,
        TOP + 16.0,
        lx + 30.0,
        TOP + 20.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_curves_within_the_frame() {
        let train = |step, loss| Record::Train {
            step,
            epoch: 1,
            loss,
            lr: 1e-3,
            grad_norm: 1.0,
            tokens: 10,
            tokens_per_s: 5.0,
            elapsed_s: 1.0,
        };
        let records = vec![
            train(1, 4.0),
            train(2, 2.0),
            Record::Eval {
                step: 2,
                epoch: 1,
                eval_loss: 3.0,
            },
        ];
        let svg = loss_svg(&records, "tiny <run>");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("tiny &lt;run&gt;"));
        // Step 1 of 2 sits halfway along the x axis; loss 4.0 is near the top of 4.2.
        let x1 = LEFT + 0.5 * (WIDTH - LEFT - RIGHT);
        assert!(svg.contains(&format!("{x1:.1},")), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches("<polyline").count(), 2);
    }
}
