//! S-T analysis (学生-教师行为分析): from a sequence of T/S samples to N, N_T, runs, Rt, Ch,
//! the lesson type, and the S-T curve and Rt–Ch chart as SVG. Pure: no IO, no clock, and
//! it must never decide anything by floating-point comparison at a class boundary.
//!
//! DOMAIN.md "Lesson observation": with N samples, N_T of them T and g runs of identical
//! codes, `Rt = N_T / N`, `Ch = (g − 1) / N`; practice (练习型) when Rt ≤ 0.3, lecture
//! (讲授型) when Rt ≥ 0.7, otherwise dialogue (对话型) when Ch ≥ 0.4, otherwise mixed (混合型).

use serde::Serialize;
use std::fmt::Write as _;

/// One S-T sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StCode {
    /// Teacher behaviour: explaining, demonstrating, writing, questioning, evaluating.
    T,
    /// Everything else (students' behaviour, silence).
    S,
}

impl StCode {
    /// The letter the API and the page use.
    pub fn letter(self) -> char {
        match self {
            StCode::T => 'T',
            StCode::S => 'S',
        }
    }

    /// Reads `T` or `S` (either case).
    pub fn from_letter(c: char) -> Option<StCode> {
        match c {
            'T' | 't' => Some(StCode::T),
            'S' | 's' => Some(StCode::S),
            _ => None,
        }
    }
}

/// The lesson type read off Rt and Ch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = StLessonType)]
pub enum LessonType {
    /// 练习型: Rt ≤ 0.3.
    Practice,
    /// 讲授型: Rt ≥ 0.7.
    Lecture,
    /// 对话型: 0.3 < Rt < 0.7 and Ch ≥ 0.4.
    Dialogue,
    /// 混合型: 0.3 < Rt < 0.7 and Ch < 0.4.
    Mixed,
}

impl LessonType {
    /// The API name (`practice|lecture|dialogue|mixed`).
    pub fn as_str(self) -> &'static str {
        match self {
            LessonType::Practice => "practice",
            LessonType::Lecture => "lecture",
            LessonType::Dialogue => "dialogue",
            LessonType::Mixed => "mixed",
        }
    }

    /// The Chinese name.
    pub fn zh(self) -> &'static str {
        match self {
            LessonType::Practice => "练习型",
            LessonType::Lecture => "讲授型",
            LessonType::Dialogue => "对话型",
            LessonType::Mixed => "混合型",
        }
    }
}

/// The S-T figures of a sequence. With no samples Rt, Ch and the type are undefined (`None`,
/// JSON `null`), never a division by zero.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StResult {
    /// N: samples.
    pub n: u64,
    /// N_T: teacher samples.
    pub n_t: u64,
    /// g: runs of identical consecutive codes.
    pub runs: u64,
    /// Rt = N_T / N.
    pub rt: Option<f64>,
    /// Ch = (g − 1) / N.
    pub ch: Option<f64>,
    /// The lesson type.
    #[serde(rename = "type")]
    pub lesson_type: Option<LessonType>,
}

/// Counts incrementally, so the result cannot depend on how the samples arrive in batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StCounter {
    n: u64,
    n_t: u64,
    runs: u64,
    last: Option<StCode>,
}

impl StCounter {
    /// Adds one sample.
    pub fn push(&mut self, c: StCode) {
        self.n += 1;
        if c == StCode::T {
            self.n_t += 1;
        }
        if self.last != Some(c) {
            self.runs += 1;
        }
        self.last = Some(c);
    }

    /// Adds samples in order.
    pub fn extend(&mut self, cs: impl IntoIterator<Item = StCode>) {
        for c in cs {
            self.push(c);
        }
    }

    /// The figures so far.
    pub fn result(&self) -> StResult {
        let (n, n_t, g) = (self.n, self.n_t, self.runs);
        if n == 0 {
            return StResult {
                n,
                n_t,
                runs: g,
                rt: None,
                ch: None,
                lesson_type: None,
            };
        }
        StResult {
            n,
            n_t,
            runs: g,
            rt: Some(n_t as f64 / n as f64),
            ch: Some((g - 1) as f64 / n as f64),
            lesson_type: Some(classify(n, n_t, g)),
        }
    }
}

/// The figures of a whole sequence.
pub fn analyse(codes: &[StCode]) -> StResult {
    let mut c = StCounter::default();
    c.extend(codes.iter().copied());
    c.result()
}

/// The type by DOMAIN.md's rules, Rt rules first. Compared in integers (Rt ≤ 0.3 ⇔
/// 10·N_T ≤ 3·N, and so on) so a ratio exactly on a boundary is classed as written, not by
/// how a float rounds. `n` must be > 0.
pub fn classify(n: u64, n_t: u64, runs: u64) -> LessonType {
    if 10 * n_t <= 3 * n {
        LessonType::Practice
    } else if 10 * n_t >= 7 * n {
        LessonType::Lecture
    } else if 10 * runs.saturating_sub(1) >= 4 * n {
        LessonType::Dialogue
    } else {
        LessonType::Mixed
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The S-T curve: from the origin, each T sample one step along the T axis (right), each S
/// one step along the S axis (up); both axes span the N samples with the same scale, with the
/// time of a step being `interval_s`. A self-contained SVG document.
pub fn curve_svg(codes: &[StCode], interval_s: u32) -> String {
    let n = codes.len().max(1);
    let (w, h, m) = (420.0_f64, 420.0_f64, 40.0_f64);
    let unit = (w - 2.0 * m) / n as f64;
    let x0 = m;
    let y0 = h - m;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         role=\"img\" aria-label=\"S-T curve\" font-family=\"sans-serif\" font-size=\"12\">\
         <title>S-T 曲线 S-T curve</title>\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>"
    );
    // Axes and a grid every tenth of the lesson.
    for i in 0..=10 {
        let f = m + (w - 2.0 * m) * f64::from(i) / 10.0;
        let _ = write!(
            s,
            "<line x1=\"{f:.1}\" y1=\"{m}\" x2=\"{f:.1}\" y2=\"{y0}\" stroke=\"#eee\"/>\
             <line x1=\"{x0}\" y1=\"{f:.1}\" x2=\"{:.1}\" y2=\"{f:.1}\" stroke=\"#eee\"/>",
            w - m
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{:.1}\" y2=\"{y0}\" stroke=\"#333\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{m}\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">T (教师)</text>\
         <text x=\"{:.1}\" y=\"{:.1}\">S (学生)</text>\
         <text x=\"{x0}\" y=\"{:.1}\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} s</text>",
        w - m,
        w - m,
        y0 + 28.0,
        x0 - 30.0,
        m - 10.0,
        y0 + 14.0,
        w - m,
        y0 + 14.0,
        n as u64 * u64::from(interval_s),
    );
    let mut pts = format!("{x0:.1},{y0:.1}");
    let (mut t, mut st) = (0u64, 0u64);
    for c in codes {
        match c {
            StCode::T => t += 1,
            StCode::S => st += 1,
        }
        let _ = write!(
            pts,
            " {:.1},{:.1}",
            x0 + t as f64 * unit,
            y0 - st as f64 * unit
        );
    }
    let _ = write!(
        s,
        "<polyline points=\"{pts}\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\">{}</text></svg>",
        m,
        m - 22.0,
        esc(&format!("N = {}, N_T = {t}", codes.len()))
    );
    s
}

/// The Rt–Ch chart: Rt across, Ch up, the four type regions shaded and named, and the
/// lesson's point (none when there are no samples).
pub fn rt_ch_svg(r: &StResult) -> String {
    let (w, h, m) = (420.0_f64, 420.0_f64, 40.0_f64);
    let span = w - 2.0 * m;
    let x = |rt: f64| m + rt * span;
    let y = |ch: f64| h - m - ch * span;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         role=\"img\" aria-label=\"Rt-Ch chart\" font-family=\"sans-serif\" font-size=\"12\">\
         <title>Rt-Ch 图 Rt-Ch chart</title><rect width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>"
    );
    // Regions: practice (Rt ≤ 0.3), lecture (Rt ≥ 0.7), dialogue (middle, Ch ≥ 0.4), mixed.
    let regions: [(&str, &str, f64, f64, f64, f64, &str); 4] = [
        ("practice", "练习型", 0.0, 0.3, 0.0, 1.0, "#e8f4fd"),
        ("lecture", "讲授型", 0.7, 1.0, 0.0, 1.0, "#fdecea"),
        ("dialogue", "对话型", 0.3, 0.7, 0.4, 1.0, "#eafaf1"),
        ("mixed", "混合型", 0.3, 0.7, 0.0, 0.4, "#fef9e7"),
    ];
    for (id, zh, r0, r1, c0, c1, fill) in regions {
        let _ = write!(
            s,
            "<rect data-region=\"{id}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"{fill}\" stroke=\"#999\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{zh} {id}</text>",
            x(r0),
            y(c1),
            (r1 - r0) * span,
            (c1 - c0) * span,
            x((r0 + r1) / 2.0),
            y((c0 + c1) / 2.0),
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">Rt</text>\
         <text x=\"{:.1}\" y=\"{:.1}\">Ch</text>\
         <text x=\"{m}\" y=\"{:.1}\" text-anchor=\"middle\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">1</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1</text>",
        w / 2.0,
        h - 8.0,
        m - 30.0,
        m - 10.0,
        h - m + 16.0,
        w - m,
        h - m + 16.0,
        m - 4.0,
        m + 4.0,
    );
    if let (Some(rt), Some(ch)) = (r.rt, r.ch) {
        let _ = write!(
            s,
            "<circle data-point=\"lesson\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"#c0392b\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x(rt),
            y(ch),
            x(rt) + 8.0,
            y(ch) - 8.0,
            esc(&format!("Rt={rt:.2} Ch={ch:.2}"))
        );
    }
    s.push_str("</svg>");
    s
}
