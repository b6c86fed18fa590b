//! FIAS (Flanders interaction analysis): from a sequence of category codes 1–10 to the 10×10
//! matrix with the 10-padding, the talk ratios, the indirect/direct ratios and the heat map
//! as SVG. Pure: no IO; a zero divisor gives `None` (JSON `null`), never infinity or a panic.
//!
//! DOMAIN.md "Lesson observation": 1 accepts feeling, 2 praises, 3 uses student ideas, 4 asks
//! questions (teacher indirect); 5 lectures, 6 gives directions, 7 criticises (teacher
//! direct); 8 student response, 9 student initiation; 10 silence/confusion. The sequence is
//! padded with 10 at both ends and consecutive pairs are counted; `matrix[i][j]` counts code
//! i+1 followed by j+1, so N codes give N+1 pairs. The ratios are over the N real codes: the
//! padding 10s are not silence.

use serde::Serialize;
use std::fmt::Write as _;

/// A FIAS category, 1..=10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(u8);

impl Category {
    /// The category `n`, when 1..=10.
    pub fn new(n: u8) -> Option<Category> {
        (1..=10).contains(&n).then_some(Category(n))
    }

    /// Its number, 1..=10.
    pub fn get(self) -> u8 {
        self.0
    }

    /// The digit of the string form (10 is written `0`).
    pub fn digit(self) -> char {
        char::from(b'0' + self.0 % 10)
    }

    /// Silence/confusion, the padding.
    pub const SILENCE: Category = Category(10);
}

/// The FIAS figures of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FiasResult {
    /// N: real codes (not the padding).
    pub n: u64,
    /// `matrix[i][j]`: how often category i+1 is followed by j+1 (padded: sums to N+1).
    pub matrix: [[u64; 10]; 10],
    /// Codes 1–7 over N.
    pub teacher_talk: Option<f64>,
    /// Codes 8–9 over N.
    pub student_talk: Option<f64>,
    /// Real codes 10 over N (the padding is not counted).
    pub silence: Option<f64>,
    /// (1+2+3+4) / (5+6+7); `None` when no 5, 6 or 7 was coded.
    pub indirect_direct: Option<f64>,
    /// (1+2+3) / (6+7); `None` when no 6 or 7 was coded.
    pub revised_indirect_direct: Option<f64>,
    /// The diagonal's sum (the same behaviour held for more than one sample).
    pub steady_state: u64,
    /// Cells 1–3 × 1–3 (积极整合格).
    pub positive_integration: u64,
    /// Cells 6–7 × 6–7 (缺陷格).
    pub defect: u64,
}

/// Counts incrementally: the matrix without its closing pair (last code → 10) is kept, so
/// appending in any batches gives the same result as the whole sequence at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiasCounter {
    pairs: [[u64; 10]; 10],
    counts: [u64; 10],
    last: Category,
}

impl Default for FiasCounter {
    fn default() -> Self {
        FiasCounter {
            pairs: [[0; 10]; 10],
            counts: [0; 10],
            // The opening padding.
            last: Category::SILENCE,
        }
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b != 0).then(|| a as f64 / b as f64)
}

impl FiasCounter {
    /// Adds one code.
    pub fn push(&mut self, c: Category) {
        self.pairs[usize::from(self.last.0 - 1)][usize::from(c.0 - 1)] += 1;
        self.counts[usize::from(c.0 - 1)] += 1;
        self.last = c;
    }

    /// Adds codes in order.
    pub fn extend(&mut self, cs: impl IntoIterator<Item = Category>) {
        for c in cs {
            self.push(c);
        }
    }

    /// The figures so far (the closing padding pair added).
    pub fn result(&self) -> FiasResult {
        let mut matrix = self.pairs;
        matrix[usize::from(self.last.0 - 1)][9] += 1;
        let c = |k: usize| self.counts[k - 1];
        let n: u64 = self.counts.iter().sum();
        let teacher = (1..=7).map(c).sum();
        let student = c(8) + c(9);
        let steady_state = (0..10).map(|i| matrix[i][i]).sum();
        let block = |from: usize, to: usize| -> u64 {
            (from - 1..to)
                .flat_map(|i| (from - 1..to).map(move |j| (i, j)))
                .map(|(i, j)| matrix[i][j])
                .sum()
        };
        FiasResult {
            n,
            teacher_talk: ratio(teacher, n),
            student_talk: ratio(student, n),
            silence: ratio(c(10), n),
            indirect_direct: ratio(c(1) + c(2) + c(3) + c(4), c(5) + c(6) + c(7)),
            revised_indirect_direct: ratio(c(1) + c(2) + c(3), c(6) + c(7)),
            steady_state,
            positive_integration: block(1, 3),
            defect: block(6, 7),
            matrix,
        }
    }
}

/// The figures of a whole sequence.
pub fn analyse(codes: &[Category]) -> FiasResult {
    let mut c = FiasCounter::default();
    c.extend(codes.iter().copied());
    c.result()
}

/// The matrix as a heat map: rows are the first code of a pair, columns the second; each
/// cell shaded by its count against the largest cell and labelled with the count; the named
/// regions outlined: steady-state cells (the diagonal), positive integration (1–3 × 1–3) and
/// defect cells (6–7 × 6–7). A self-contained SVG document.
pub fn heatmap_svg(r: &FiasResult) -> String {
    let cell = 36.0_f64;
    let m = 60.0_f64;
    let size = m + cell * 10.0 + 170.0;
    let max = r.matrix.iter().flatten().copied().max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {h}\" width=\"{size}\" \
         height=\"{h}\" role=\"img\" aria-label=\"FIAS matrix\" font-family=\"sans-serif\" \
         font-size=\"12\"><title>FIAS 矩阵 FIAS matrix</title>\
         <rect width=\"{size}\" height=\"{h}\" fill=\"#fff\"/>",
        h = m + cell * 10.0 + 20.0
    );
    for i in 0..10 {
        let label = i + 1;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            m + cell * (i as f64 + 0.5),
            m - 8.0,
            m - 8.0,
            m + cell * (i as f64 + 0.5) + 4.0,
        );
        for j in 0..10 {
            let v = r.matrix[i][j];
            // White (0) to deep blue (the largest cell).
            let t = v as f64 / max as f64;
            let shade = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
            let (cr, cg, cb) = (shade(255.0, 21.0), shade(255.0, 101.0), shade(255.0, 192.0));
            let text = if t > 0.55 { "#fff" } else { "#222" };
            let _ = write!(
                s,
                "<rect data-cell=\"{i},{j}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{cell}\" height=\"{cell}\" \
                 fill=\"#{cr:02x}{cg:02x}{cb:02x}\" stroke=\"#ddd\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{text}\">{v}</text>",
                m + cell * j as f64,
                m + cell * i as f64,
                m + cell * (j as f64 + 0.5),
                m + cell * (i as f64 + 0.5) + 4.0,
            );
        }
    }
    // Named regions.
    for i in 0..10 {
        let _ = write!(
            s,
            "<rect data-region=\"steady-state\" x=\"{:.1}\" y=\"{:.1}\" width=\"{cell}\" \
             height=\"{cell}\" fill=\"none\" stroke=\"#27ae60\" stroke-width=\"2\"/>",
            m + cell * i as f64,
            m + cell * i as f64,
        );
    }
    let outline = |s: &mut String, id: &str, from: usize, to: usize, colour: &str| {
        let _ = write!(
            s,
            "<rect data-region=\"{id}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"none\" stroke=\"{colour}\" stroke-width=\"3\" stroke-dasharray=\"6 3\"/>",
            m + cell * (from - 1) as f64,
            m + cell * (from - 1) as f64,
            cell * (to - from + 1) as f64,
            cell * (to - from + 1) as f64,
        );
    };
    outline(&mut s, "positive-integration", 1, 3, "#8e44ad");
    outline(&mut s, "defect", 6, 7, "#c0392b");
    let lx = m + cell * 10.0 + 12.0;
    let legend = [
        ("#27ae60", "稳定状态格 steady state", r.steady_state),
        (
            "#8e44ad",
            "积极整合格 positive integration",
            r.positive_integration,
        ),
        ("#c0392b", "缺陷格 defect", r.defect),
    ];
    for (k, (colour, name, v)) in legend.iter().enumerate() {
        let y = m + 20.0 + 40.0 * k as f64;
        let _ = write!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"14\" height=\"14\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"10\">{name}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\">{v}</text>",
            y - 11.0,
            lx + 20.0,
            lx + 20.0,
            y + 14.0,
        );
    }
    s.push_str("</svg>");
    s
}
