//! Hand-worked S-T and FIAS examples (the arithmetic written out beside each assertion) and
//! property tests of the analyses and the code parser. Tests only; must never reach the
//! database or the network.

use super::codes::{parse_fias, parse_st, CodesError, MAX_CODES_PER_REQUEST};
use super::fias::{self, Category, FiasCounter};
use super::st::{self, LessonType, StCode, StCounter};
use proptest::prelude::*;
use serde_json::json;

fn st_of(s: &str) -> Vec<StCode> {
    parse_st(&json!(s)).expect("valid S-T string")
}

fn fias_of(v: &[u8]) -> Vec<Category> {
    v.iter()
        .map(|n| Category::new(*n).expect("1..=10"))
        .collect()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

#[test]
fn st_all_teacher() {
    // TTTTTTTTTT: N = 10, N_T = 10, one run (g = 1).
    // Rt = 10/10 = 1.0; Ch = (1 − 1)/10 = 0.0; Rt ≥ 0.7 → lecture.
    let r = st::analyse(&st_of("TTTTTTTTTT"));
    assert_eq!((r.n, r.n_t, r.runs), (10, 10, 1));
    assert_eq!((r.rt, r.ch), (Some(1.0), Some(0.0)));
    assert_eq!(r.lesson_type, Some(LessonType::Lecture));
}

#[test]
fn st_all_student() {
    // SSSSSSSS: N = 8, N_T = 0, g = 1. Rt = 0/8 = 0; Ch = 0/8 = 0; Rt ≤ 0.3 → practice.
    let r = st::analyse(&st_of("SSSSSSSS"));
    assert_eq!((r.n, r.n_t, r.runs), (8, 0, 1));
    assert_eq!((r.rt, r.ch), (Some(0.0), Some(0.0)));
    assert_eq!(r.lesson_type, Some(LessonType::Practice));
}

#[test]
fn st_alternating() {
    // TSTSTSTSTS: N = 10, N_T = 5, every sample starts a run: g = 10.
    // Rt = 5/10 = 0.5 (neither ≤ 0.3 nor ≥ 0.7); Ch = (10 − 1)/10 = 0.9 ≥ 0.4 → dialogue.
    let r = st::analyse(&st_of("TSTSTSTSTS"));
    assert_eq!((r.n, r.n_t, r.runs), (10, 5, 10));
    assert!(close(r.rt, 0.5) && close(r.ch, 0.9));
    assert_eq!(r.lesson_type, Some(LessonType::Dialogue));
}

#[test]
fn st_single_sample() {
    // T: N = 1, N_T = 1, g = 1 → Rt = 1, Ch = 0 → lecture.
    let r = st::analyse(&st_of("T"));
    assert_eq!(
        (r.n, r.n_t, r.runs, r.rt, r.ch),
        (1, 1, 1, Some(1.0), Some(0.0))
    );
    assert_eq!(r.lesson_type, Some(LessonType::Lecture));
    // S: N = 1, N_T = 0 → Rt = 0 → practice.
    let r = st::analyse(&st_of("S"));
    assert_eq!(r.lesson_type, Some(LessonType::Practice));
}

#[test]
fn st_no_samples_is_undefined_not_a_division_by_zero() {
    let r = st::analyse(&[]);
    assert_eq!((r.n, r.n_t, r.runs), (0, 0, 0));
    assert_eq!((r.rt, r.ch, r.lesson_type), (None, None, None));
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["rt"], serde_json::Value::Null);
    assert_eq!(j["type"], serde_json::Value::Null);
}

#[test]
fn st_realistic_mixed() {
    // TTTT SS TT S TTT SSSS TTTT: N = 4+2+2+1+3+4+4 = 20; N_T = 4+2+3+4 = 13;
    // runs: TTTT|SS|TT|S|TTT|SSSS|TTTT → g = 7.
    // Rt = 13/20 = 0.65 (0.3 < Rt < 0.7); Ch = (7 − 1)/20 = 0.3 < 0.4 → mixed.
    let r = st::analyse(&st_of("TTTTSSTTSTTTSSSSTTTT"));
    assert_eq!((r.n, r.n_t, r.runs), (20, 13, 7));
    assert!(close(r.rt, 0.65) && close(r.ch, 0.3));
    assert_eq!(r.lesson_type, Some(LessonType::Mixed));
    assert_eq!(serde_json::to_value(&r).unwrap()["type"], "mixed");
}

#[test]
fn st_boundaries_are_inclusive_as_written() {
    // N = 10, N_T = 3: Rt = 0.3 exactly → practice (Rt ≤ 0.3), whatever the runs.
    assert_eq!(st::classify(10, 3, 7), LessonType::Practice);
    // N = 10, N_T = 4: Rt = 0.4 is inside; Ch = (5 − 1)/10 = 0.4 exactly → dialogue.
    assert_eq!(st::classify(10, 4, 5), LessonType::Dialogue);
    // One run fewer: Ch = 3/10 = 0.3 → mixed.
    assert_eq!(st::classify(10, 4, 4), LessonType::Mixed);
    // N = 10, N_T = 7: Rt = 0.7 exactly → lecture, even with Ch = 0.9.
    assert_eq!(st::classify(10, 7, 10), LessonType::Lecture);
    // TT SSS T SS TT: N = 10, N_T = 5, g = 5 → Rt = 0.5, Ch = 4/10 = 0.4 → dialogue.
    let r = st::analyse(&st_of("TTSSSTSSTT"));
    assert_eq!((r.n, r.n_t, r.runs), (10, 5, 5));
    assert_eq!(r.lesson_type, Some(LessonType::Dialogue));
}

#[test]
fn fias_worked_example() {
    // 5 5 4 8 8 2 5 (N = 7), padded: 10 5 5 4 8 8 2 5 10 → 8 pairs = N + 1:
    // (10,5) (5,5) (5,4) (4,8) (8,8) (8,2) (2,5) (5,10).
    let r = fias::analyse(&parse_fias(&json!("5548825")).unwrap());
    assert_eq!(r.n, 7);
    let mut want = [[0u64; 10]; 10];
    for (a, b) in [
        (10, 5),
        (5, 5),
        (5, 4),
        (4, 8),
        (8, 8),
        (8, 2),
        (2, 5),
        (5, 10),
    ] {
        want[a - 1][b - 1] += 1;
    }
    assert_eq!(r.matrix, want);
    // Teacher talk: codes 1–7 are 5,5,4,2,5 → 5/7; student: 8,8 → 2/7; silence: none → 0/7.
    assert!(close(r.teacher_talk, 5.0 / 7.0));
    assert!(close(r.student_talk, 2.0 / 7.0));
    assert!(close(r.silence, 0.0));
    // i/d = (1+2+3+4)/(5+6+7) = (0+1+0+1)/(3+0+0) = 2/3.
    assert!(close(r.indirect_direct, 2.0 / 3.0));
    // revised i/d = (1+2+3)/(6+7) = 1/0 → undefined.
    assert_eq!(r.revised_indirect_direct, None);
    // Diagonal: (5,5) + (8,8) = 2.
    assert_eq!(r.steady_state, 2);
}

#[test]
fn fias_no_teacher_direct_codes_gives_null_ratios() {
    // 4 8 3 8 2 10 (N = 6), padded: 10 4 8 3 8 2 10 10 → 7 pairs:
    // (10,4) (4,8) (8,3) (3,8) (8,2) (2,10) (10,10).
    let r = fias::analyse(&fias_of(&[4, 8, 3, 8, 2, 10]));
    assert_eq!(r.n, 6);
    assert_eq!(r.matrix.iter().flatten().sum::<u64>(), 7);
    // Teacher 4,3,2 → 3/6; student 8,8 → 2/6; silence: the one real 10 → 1/6 (column 10
    // holds 2: the closing padding pair (2,10)... and (10,10); the padding is not silence).
    assert!(close(r.teacher_talk, 0.5));
    assert!(close(r.student_talk, 2.0 / 6.0));
    assert!(close(r.silence, 1.0 / 6.0));
    // i/d = (0+1+1+1)/(0+0+0): divisor 0 → null, not infinity and not a panic.
    assert_eq!(r.indirect_direct, None);
    assert_eq!(r.revised_indirect_direct, None);
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["indirect_direct"], serde_json::Value::Null);
    assert_eq!(j["revised_indirect_direct"], serde_json::Value::Null);
    // Diagonal: (10,10) once (the real 10, then the closing padding).
    assert_eq!(r.steady_state, 1);
}

#[test]
fn fias_realistic_with_named_regions() {
    // 6 6 7 6 5 4 8 9 10 10 3 1 2 (N = 13), padded → 14 pairs:
    // (10,6) (6,6) (6,7) (7,6) (6,5) (5,4) (4,8) (8,9) (9,10) (10,10) (10,3) (3,1) (1,2) (2,10).
    let r = fias::analyse(&parse_fias(&json!("6676548900312")).unwrap());
    assert_eq!(r.n, 13);
    assert_eq!(r.matrix.iter().flatten().sum::<u64>(), 14);
    assert_eq!(r.matrix[5][5], 1);
    assert_eq!(r.matrix[9][9], 1);
    // Teacher 1–7: one each of 1,2,3,4,5,7 and three 6s = 9 → 9/13; student 8,9 → 2/13;
    // silence: two real 10s → 2/13.
    assert!(close(r.teacher_talk, 9.0 / 13.0));
    assert!(close(r.student_talk, 2.0 / 13.0));
    assert!(close(r.silence, 2.0 / 13.0));
    // i/d = (1+1+1+1)/(1+3+1) = 4/5 = 0.8; revised = (1+1+1)/(3+1) = 3/4 = 0.75.
    assert!(close(r.indirect_direct, 0.8));
    assert!(close(r.revised_indirect_direct, 0.75));
    // Steady state: (6,6) + (10,10) = 2; positive integration (1–3 × 1–3): (3,1) + (1,2) = 2;
    // defect (6–7 × 6–7): (6,6) + (6,7) + (7,6) = 3.
    assert_eq!(
        (r.steady_state, r.positive_integration, r.defect),
        (2, 2, 3)
    );
}

#[test]
fn fias_empty_and_single() {
    // No codes: padded 10 10 → one pair (10,10); every ratio undefined.
    let r = fias::analyse(&[]);
    assert_eq!((r.n, r.matrix[9][9], r.steady_state), (0, 1, 1));
    assert_eq!(
        (r.teacher_talk, r.silence, r.indirect_direct),
        (None, None, None)
    );
    // One 6: (10,6) (6,10); teacher 1/1; i/d = 0/1 = 0; revised = 0/1 = 0.
    let r = fias::analyse(&fias_of(&[6]));
    assert_eq!((r.matrix[9][5], r.matrix[5][9]), (1, 1));
    assert_eq!(r.teacher_talk, Some(1.0));
    assert_eq!(
        (r.indirect_direct, r.revised_indirect_direct),
        (Some(0.0), Some(0.0))
    );
}

#[test]
fn parsing_accepts_both_forms_and_refuses_with_a_reason() {
    assert_eq!(
        parse_st(&json!(["T", "s", "S"])).unwrap(),
        vec![StCode::T, StCode::S, StCode::S]
    );
    assert_eq!(parse_st(&json!("T S\nT")).unwrap().len(), 3);
    assert_eq!(
        parse_fias(&json!("0")).unwrap(),
        vec![Category::SILENCE],
        "0 is category 10 in the string form"
    );
    assert_eq!(parse_fias(&json!([10, 1])).unwrap(), fias_of(&[10, 1]));
    let e = parse_st(&json!("TTXS")).unwrap_err();
    assert_eq!(
        e,
        CodesError::Bad {
            index: 2,
            got: "X".into(),
            want: "T or S"
        }
    );
    assert!(e.to_string().contains("code 2 (`X`)"), "{e}");
    assert!(matches!(
        parse_st(&json!(["TS"])),
        Err(CodesError::Bad { index: 0, .. })
    ));
    assert!(matches!(
        parse_fias(&json!([0])),
        Err(CodesError::Bad { .. })
    ));
    assert!(matches!(
        parse_fias(&json!([11])),
        Err(CodesError::Bad { .. })
    ));
    assert!(matches!(
        parse_fias(&json!([5.5])),
        Err(CodesError::Bad { .. })
    ));
    assert!(matches!(
        parse_fias(&json!("12a")),
        Err(CodesError::Bad { index: 2, .. })
    ));
    assert!(
        matches!(parse_fias(&json!("٣")), Err(CodesError::Bad { .. })),
        "ASCII digits only"
    );
    assert_eq!(
        parse_st(&json!({"a": 1})),
        Err(CodesError::Shape("an object"))
    );
    assert_eq!(parse_fias(&json!(5)), Err(CodesError::Shape("a number")));
    let many = "T".repeat(MAX_CODES_PER_REQUEST + 1);
    assert_eq!(
        parse_st(&json!(many)),
        Err(CodesError::TooMany(MAX_CODES_PER_REQUEST + 1))
    );
    assert_eq!(
        parse_st(&json!("T".repeat(MAX_CODES_PER_REQUEST)))
            .unwrap()
            .len(),
        MAX_CODES_PER_REQUEST
    );
}

#[test]
fn charts_are_svg_documents() {
    let codes = st_of("TTSSTS");
    for svg in [
        st::curve_svg(&codes, 30),
        st::rt_ch_svg(&st::analyse(&codes)),
        st::rt_ch_svg(&st::analyse(&[])),
        fias::heatmap_svg(&fias::analyse(&fias_of(&[1, 2, 3, 6, 7]))),
    ] {
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
    let heat = fias::heatmap_svg(&fias::analyse(&[]));
    for region in ["steady-state", "positive-integration", "defect"] {
        assert!(
            heat.contains(&format!("data-region=\"{region}\"")),
            "{region}"
        );
    }
    assert!(st::rt_ch_svg(&st::analyse(&codes)).contains("data-point=\"lesson\""));
}

fn st_codes() -> impl Strategy<Value = Vec<StCode>> {
    prop::collection::vec(prop_oneof![Just(StCode::T), Just(StCode::S)], 0..400)
}

fn fias_codes() -> impl Strategy<Value = Vec<Category>> {
    prop::collection::vec((1u8..=10).prop_map(|n| Category::new(n).unwrap()), 0..400)
}

/// Splits `v` at the given cut points (sorted, clamped) into consecutive batches.
fn batches<T: Clone>(v: &[T], mut cuts: Vec<usize>) -> Vec<Vec<T>> {
    cuts.iter_mut().for_each(|c| *c = (*c).min(v.len()));
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for c in cuts.into_iter().chain(std::iter::once(v.len())) {
        out.push(v[from..c].to_vec());
        from = c;
    }
    out
}

proptest! {
    #[test]
    fn st_ratios_stay_in_unit_interval(codes in st_codes()) {
        let r = st::analyse(&codes);
        prop_assert_eq!(r.n as usize, codes.len());
        prop_assert!(r.runs <= r.n && r.n_t <= r.n);
        if codes.is_empty() {
            prop_assert!(r.rt.is_none() && r.ch.is_none());
        } else {
            let (rt, ch) = (r.rt.unwrap(), r.ch.unwrap());
            prop_assert!((0.0..=1.0).contains(&rt), "Rt {}", rt);
            prop_assert!((0.0..=1.0).contains(&ch), "Ch {}", ch);
            // The integer classification agrees with the float rules away from boundaries.
            let t = r.lesson_type.unwrap();
            if rt < 0.3 - 1e-9 { prop_assert_eq!(t, LessonType::Practice); }
            if rt > 0.7 + 1e-9 { prop_assert_eq!(t, LessonType::Lecture); }
            if rt > 0.3 + 1e-9 && rt < 0.7 - 1e-9 {
                if ch > 0.4 + 1e-9 { prop_assert_eq!(t, LessonType::Dialogue); }
                if ch < 0.4 - 1e-9 { prop_assert_eq!(t, LessonType::Mixed); }
            }
        }
    }

    #[test]
    fn fias_matrix_sums_to_n_plus_one(codes in fias_codes()) {
        let r = fias::analyse(&codes);
        prop_assert_eq!(r.n as usize, codes.len());
        prop_assert_eq!(r.matrix.iter().flatten().sum::<u64>(), codes.len() as u64 + 1);
        // Row sums count each code as the first of a pair; column sums as the second: both
        // equal the code counts, plus one 10 for the padding at that end.
        for k in 0..10 {
            let count = codes.iter().filter(|c| usize::from(c.get()) == k + 1).count() as u64;
            let pad = u64::from(k == 9);
            prop_assert_eq!(r.matrix[k].iter().sum::<u64>(), count + pad);
            prop_assert_eq!((0..10).map(|i| r.matrix[i][k]).sum::<u64>(), count + pad);
        }
        for v in [r.teacher_talk, r.student_talk, r.silence].into_iter().flatten() {
            prop_assert!((0.0..=1.0).contains(&v));
        }
        if let (Some(t), Some(s), Some(q)) = (r.teacher_talk, r.student_talk, r.silence) {
            prop_assert!((t + s + q - 1.0).abs() < 1e-9);
        }
        for v in [r.indirect_direct, r.revised_indirect_direct].into_iter().flatten() {
            prop_assert!(v.is_finite() && v >= 0.0);
        }
    }

    #[test]
    fn results_do_not_depend_on_batching(
        st_all in st_codes(),
        fias_all in fias_codes(),
        cuts in prop::collection::vec(0usize..400, 0..8),
    ) {
        let mut sc = StCounter::default();
        for b in batches(&st_all, cuts.clone()) {
            sc.extend(b);
        }
        prop_assert_eq!(sc.result(), st::analyse(&st_all));
        let mut fc = FiasCounter::default();
        for b in batches(&fias_all, cuts) {
            fc.extend(b);
        }
        prop_assert_eq!(fc.result(), fias::analyse(&fias_all));
    }

    #[test]
    fn parsers_take_any_input_without_panicking(s in "\\PC{0,200}", n in any::<i64>()) {
        let _ = parse_st(&json!(s));
        let _ = parse_fias(&json!(s));
        let _ = parse_fias(&json!([n, s.clone()]));
        let _ = parse_st(&json!([n, s]));
    }

    #[test]
    fn parsed_strings_round_trip(st_all in st_codes(), fias_all in fias_codes()) {
        let s: String = st_all.iter().map(|c| c.letter()).collect();
        prop_assert_eq!(parse_st(&json!(s)).unwrap(), st_all);
        let f: String = fias_all.iter().map(|c| c.digit()).collect();
        prop_assert_eq!(parse_fias(&json!(f)).unwrap(), fias_all.clone());
        let a: Vec<u8> = fias_all.iter().map(|c| c.get()).collect();
        prop_assert_eq!(parse_fias(&json!(a)).unwrap(), fias_all);
    }
}
