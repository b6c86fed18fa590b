//! The teacher record as CSV rows: one figure a row, with the ids and URLs of the rows it
//! came from, so a spreadsheet copy stays as explainable as the page. Pure (from a computed
//! [`TeacherRecord`]); must never compute a figure of its own.

use super::record::{
    lesson_url, observation_url, InspectionStatus, LessonFigures, Mean, ReviewState, TeacherRecord,
};
use crate::observe::inspect::Outcome;

/// The header row (Chinese: what district offices open it in).
pub const HEADER: [&str; 5] = ["类别", "项目", "数值", "来源编号", "来源链接"];

fn ids(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(";")
}

fn urls(v: &[i64], f: fn(i64) -> String) -> String {
    v.iter().map(|i| f(*i)).collect::<Vec<_>>().join(" ")
}

fn row(
    section: &str,
    item: String,
    value: String,
    src: &[i64],
    f: fn(i64) -> String,
) -> Vec<String> {
    vec![section.to_string(), item, value, ids(src), urls(src, f)]
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{:.3}", x)).unwrap_or_default()
}

fn mode_zh(m: &str) -> &str {
    match m {
        "delivery" => "专递课堂",
        "master" => "名师课堂",
        "sync" => "同步课堂",
        other => other,
    }
}

fn teaching(out: &mut Vec<Vec<String>>, role: &str, f: &LessonFigures) {
    out.push(row(
        "授课",
        format!("{role}课数"),
        f.count.to_string(),
        &f.lesson_ids,
        lesson_url,
    ));
    out.push(row(
        "授课",
        format!("{role}分钟"),
        f.minutes.to_string(),
        &f.lesson_ids,
        lesson_url,
    ));
    for m in &f.modes {
        out.push(row(
            "授课",
            format!("{role}·{}", mode_zh(&m.key)),
            format!("{} 节 / {} 分钟", m.lessons, m.minutes),
            &m.lesson_ids,
            lesson_url,
        ));
    }
    for s in &f.paired_schools {
        out.push(row(
            "授课",
            format!("{role}·结对学校 {}", s.name.as_deref().unwrap_or(&s.key)),
            format!("{} 节 / {} 分钟", s.lessons, s.minutes),
            &s.lesson_ids,
            lesson_url,
        ));
    }
}

fn mean_row(out: &mut Vec<Vec<String>>, item: &str, m: &Mean) {
    out.push(row(
        "评课",
        item.into(),
        opt(m.mean),
        &m.observation_ids,
        observation_url,
    ));
}

/// Where an inspection stands, in words: 评审中 (graded/reviews), 合格 or 不合格, and
/// whether it was appealed.
fn inspection_value(i: &InspectionStatus) -> String {
    let state = match (i.state, i.outcome) {
        (ReviewState::Decided, Some(Outcome::Passed)) => "合格".to_string(),
        (ReviewState::Decided, Some(Outcome::Failed)) => "不合格".to_string(),
        _ => format!("评审中 {}/{}", i.graded, i.reviews),
    };
    let mut v = state;
    if i.disputed {
        v.push_str(" 争议复检");
    }
    if i.appealed {
        v.push_str(" 已申诉");
    }
    v
}

fn level_zh(l: &str) -> &str {
    match l {
        "county" => "县级",
        "city" => "市级",
        "province" => "省级",
        other => other,
    }
}

/// The rows.
pub fn rows(r: &TeacherRecord) -> Vec<Vec<String>> {
    let mut out = vec![
        vec![
            "教师".into(),
            "姓名".into(),
            format!("{}（{}）", r.teacher.name, r.teacher.code),
            r.teacher.id.to_string(),
            String::new(),
        ],
        vec![
            "教师".into(),
            "学校".into(),
            r.teacher.school_name.clone(),
            r.teacher.school_id.to_string(),
            String::new(),
        ],
        vec![
            "教师".into(),
            "学期".into(),
            r.term.name.clone(),
            r.term.id.to_string(),
            String::new(),
        ],
    ];
    teaching(&mut out, "主讲", &r.teaching.hub);
    teaching(&mut out, "辅导", &r.teaching.assisting);
    let rec: Vec<i64> = r.recordings.iter().map(|x| x.id).collect();
    out.push(vec![
        "录像".into(),
        "录像数".into(),
        rec.len().to_string(),
        ids(&rec),
        String::new(),
    ]);
    let done: Vec<i64> = r
        .recordings
        .iter()
        .flat_map(|x| x.exports.iter())
        .filter(|j| j.state == "done")
        .map(|j| j.id)
        .collect();
    out.push(vec![
        "录像".into(),
        "晒课导出".into(),
        done.len().to_string(),
        ids(&done),
        String::new(),
    ]);
    for o in &r.observations.results {
        let one = [o.id];
        if let Some(f) = &o.rubric {
            out.push(row(
                "评课",
                format!("观察 #{} 量表总分", o.id),
                format!("{} {}", f.total, f.band_name.as_deref().unwrap_or(""))
                    .trim()
                    .to_string(),
                &one,
                observation_url,
            ));
        }
        if let Some(s) = &o.st {
            out.push(row(
                "评课",
                format!("观察 #{} S-T", o.id),
                format!(
                    "{} Rt={} Ch={}",
                    s.lesson_type.map_or("", |t| t.as_str()),
                    opt(s.rt),
                    opt(s.ch)
                ),
                &one,
                observation_url,
            ));
        }
        for i in &o.inspections {
            out.push(row(
                "抽检",
                format!(
                    "观察 #{} {}抽检「{}」",
                    o.id,
                    level_zh(&i.level),
                    i.round_name
                ),
                inspection_value(i),
                &one,
                observation_url,
            ));
        }
        if let Some(f) = &o.fias {
            out.push(row(
                "评课",
                format!("观察 #{} FIAS", o.id),
                format!(
                    "教师言语={} 学生言语={} 沉寂={}",
                    opt(f.teacher_talk),
                    opt(f.student_talk),
                    opt(f.silence)
                ),
                &one,
                observation_url,
            ));
        }
    }
    mean_row(&mut out, "量表平均分", &r.observations.rubric_mean);
    for t in &r.observations.st_types {
        out.push(row(
            "评课",
            format!("S-T 类型 {}", t.key),
            t.count.to_string(),
            &t.observation_ids,
            observation_url,
        ));
    }
    mean_row(
        &mut out,
        "FIAS 教师言语比率均值",
        &r.observations.fias_teacher_talk,
    );
    mean_row(
        &mut out,
        "FIAS 学生言语比率均值",
        &r.observations.fias_student_talk,
    );
    mean_row(&mut out, "FIAS 沉寂比率均值", &r.observations.fias_silence);
    for p in &r.abilities.points {
        let ev: Vec<i64> = p.evidence.iter().map(|e| e.evidence.id).collect();
        out.push(vec![
            "微能力点".into(),
            format!("{} {}", p.code, p.name),
            p.grade_name.clone().unwrap_or_else(|| "待评".into()),
            ids(&ev),
            String::new(),
        ]);
        for i in &p.inspections {
            out.push(vec![
                "抽检".into(),
                format!(
                    "微能力点 {} {}抽检「{}」",
                    p.code,
                    level_zh(&i.level),
                    i.round_name
                ),
                inspection_value(i),
                ids(&ev),
                String::new(),
            ]);
        }
    }
    out
}
