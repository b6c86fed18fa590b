//! The three lesson modes as rules on one room type.
//!
//! | mode | hub (teacher or hub classroom) | interactive site | receive-only site | others |
//! | --- | --- | --- | --- | --- |
//! | 专递 delivery | publish + watch | publish + watch | watch | watch |
//! | 名师 master | publish + watch | watch; publish only while granted | watch | watch |
//! | 同步 sync | publish + watch | publish + watch | watch | watch |
//!
//! "Others" are observers, inspectors, admins and teachers who are not the lesson's hub
//! teacher. Everyone may join only while the lesson is open or live. The lesson API puts the
//! outcome in the media token; WHIP/WHEP check the window and the 名师课堂 speak grant again
//! when the session is created, because both change after the token was issued.

use std::time::Duration;

use axum::http::StatusCode;

use crate::auth::people::Principal;
use crate::auth::{Claims, Grant};
use crate::problem::ApiError;
use crate::school::model::{self, Classroom, ClassroomKind, Lesson, LessonMode, LessonState};
use crate::school::SchoolState;
use crate::time::{rfc3339, Millis};

/// Participant id of a classroom.
pub(crate) fn classroom_part(id: i64) -> String {
    format!("c:{id}")
}

/// The classroom a participant id names, if it is one.
pub(crate) fn part_classroom(part: &str) -> Option<i64> {
    part.strip_prefix("c:")?.parse().ok()
}

/// Where a participant sits in a lesson, as far as the mode rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seat {
    /// The lesson's hub teacher (signed in as a person).
    HubTeacher,
    /// The hub classroom's device; `interactive` is false for a receive-only room.
    HubClassroom {
        /// Whether the room can send at all.
        interactive: bool,
    },
    /// A paired site's classroom device.
    Site {
        /// Whether the room can send at all.
        interactive: bool,
    },
    /// Anyone else who may watch: observers, inspectors, admins, other teachers.
    Other,
}

/// What a seat may send in a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sends {
    /// Publishes whenever present.
    Always,
    /// Publishes only while the hub teacher's speak grant stands (名师课堂 sites).
    WhileGranted,
    /// Only watches.
    Never,
}

/// The mode table of the module doc: what `seat` may send in a lesson of `mode`. A
/// receive-only room never sends, not even as the hub (lesson creation refuses such a hub;
/// this holds for rows made before that rule).
pub(crate) fn sends(mode: LessonMode, seat: Seat) -> Sends {
    match seat {
        Seat::HubTeacher | Seat::HubClassroom { interactive: true } => Sends::Always,
        Seat::Site { interactive: true } if mode == LessonMode::Master => Sends::WhileGranted,
        Seat::Site { interactive: true } => Sends::Always,
        Seat::HubClassroom { interactive: false } | Seat::Site { interactive: false } => {
            Sends::Never
        }
        Seat::Other => Sends::Never,
    }
}

/// At WHIP time, the classroom whose live speak grant a publisher with participant id
/// `part` needs in a lesson of `mode` whose hub classroom is `hub_classroom`: a site's
/// classroom in 名师课堂, nobody otherwise (the hub, people, the other modes).
pub(crate) fn speak_grant_needed(mode: LessonMode, hub_classroom: i64, part: &str) -> Option<i64> {
    if mode != LessonMode::Master {
        return None;
    }
    part_classroom(part).filter(|c| *c != hub_classroom)
}

/// A control of a running lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// A classroom raises or lowers its hand.
    Hand,
    /// The hub teacher grants or revokes a site's speaking.
    Speak,
    /// The hub teacher puts a site (or nobody) on everyone's big screen.
    Spotlight,
}

/// Whether a lesson of `mode` has `control`, with the reason when not: hands go up in
/// every mode; speak grants belong to 名师课堂 (in the other modes sites publish without
/// one); the spotlight belongs to 同步课堂.
pub(crate) fn mode_has(mode: LessonMode, control: Control) -> Result<(), &'static str> {
    match (control, mode) {
        (Control::Hand, _) => Ok(()),
        (Control::Speak, LessonMode::Master) => Ok(()),
        (Control::Speak, _) => {
            Err("speak grants apply to 名师课堂 (master) lessons; other modes let sites publish")
        }
        (Control::Spotlight, LessonMode::Sync) => Ok(()),
        (Control::Spotlight, _) => Err("the spotlight belongs to 同步课堂 (sync) lessons"),
    }
}

/// [`mode_has`] as the API's answer: 409 `wrong-mode` with the reason.
pub(crate) fn check_mode(lesson: &Lesson, control: Control) -> Result<(), ApiError> {
    mode_has(lesson.mode, control)
        .map_err(|why| ApiError::new(StatusCode::CONFLICT, "wrong-mode", why))
}

/// Refuses (400) a live control aimed at classroom `c` when it is not one of `lesson`'s
/// sites (the hub is not a site).
pub(crate) fn check_site(lesson: &Lesson, c: i64) -> Result<(), ApiError> {
    if lesson.sites.iter().any(|s| s.classroom_id == c) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "classroom_id: {c} is not a site of lesson {}",
            lesson.id
        )))
    }
}

/// Refuses with the reason when `lesson` is not open or live at `now`.
pub(crate) fn check_window(
    school: &SchoolState,
    lesson: &Lesson,
    now: Millis,
) -> Result<(), ApiError> {
    match lesson.state_at(now, school.open_before, school.grace) {
        LessonState::Open | LessonState::Live => Ok(()),
        LessonState::Scheduled => {
            let opens_at = rfc3339(
                lesson.starts_at.saturating_sub(school.open_before),
                school.offset,
            );
            let starts_at = rfc3339(lesson.starts_at, school.offset);
            // `opens_at` and `starts_at` as members too: a page words the refusal in its own
            // language from them (web/lib/problems.js) instead of showing this English text.
            Err(ApiError::forbidden(
                "lesson-not-open",
                format!(
                    "lesson {} opens at {opens_at} ({} minutes before the bell at {starts_at})",
                    lesson.id,
                    school.open_before / 60_000,
                ),
            )
            .with("opens_at", serde_json::Value::String(opens_at))
            .with("starts_at", serde_json::Value::String(starts_at)))
        }
        LessonState::Ended => Err(ApiError::forbidden(
            "lesson-ended",
            format!(
                "lesson {} has ended ({})",
                lesson.id,
                rfc3339(
                    lesson
                        .ended_at
                        .unwrap_or(lesson.ends_at.saturating_add(school.grace))
                        .min(now),
                    school.offset
                )
            ),
        )),
    }
}

/// What joining gives a participant.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct JoinGrant {
    /// Participant id.
    pub part: String,
    /// Whether they may publish (in 名师课堂 a site also needs the teacher's grant).
    pub publish: bool,
    /// Whether publishing needs a live grant from the teacher first.
    pub needs_speak_grant: bool,
}

/// Decides what `who` may do in `lesson` (not the time window).
pub(crate) async fn decide(
    school: &SchoolState,
    who: &Principal,
    lesson: &Lesson,
) -> Result<JoinGrant, ApiError> {
    let (part, seat) = if let Some(cid) = who.classroom_id() {
        if !lesson.has_classroom(cid) {
            return Err(ApiError::forbidden(
                "not-in-lesson",
                format!("classroom {cid} is not part of lesson {}", lesson.id),
            ));
        }
        let room: Classroom = model::get(&school.store, cid).await?;
        let interactive = room.kind != ClassroomKind::ReceiveOnly;
        let seat = if cid == lesson.hub_classroom_id {
            Seat::HubClassroom { interactive }
        } else {
            Seat::Site { interactive }
        };
        (classroom_part(cid), seat)
    } else if who.teacher_id().is_some() && who.teacher_id() == Some(lesson.hub_teacher_id) {
        (format!("t:{}", lesson.hub_teacher_id), Seat::HubTeacher)
    } else {
        (who.ident(), Seat::Other)
    };
    let sends = sends(lesson.mode, seat);
    Ok(JoinGrant {
        part,
        publish: sends != Sends::Never,
        needs_speak_grant: sends == Sends::WhileGranted,
    })
}

/// The longest a media token lives: the longest lesson, its opening lead and its grace.
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(14 * 3600);

/// Claims for a participant's media token, issued to principal `who` at token version
/// `ver`: valid until the lesson's end plus grace (never longer than [`MAX_TOKEN_TTL`]).
pub(crate) fn claims_for(
    school: &SchoolState,
    lesson: &Lesson,
    g: &JoinGrant,
    now: Millis,
    who: String,
    ver: i64,
) -> Claims {
    let mut grants = vec![Grant::Subscribe];
    if g.publish {
        grants.push(Grant::Publish);
    }
    let end = lesson.ends_at.saturating_add(school.grace);
    // At least a second, so a token minted in the last moments still parses as unexpired
    // while the window check (which refuses an ended lesson) answers.
    let left = end
        .saturating_sub(now)
        .clamp(1_000, MAX_TOKEN_TTL.as_millis() as i64);
    let ttl = Duration::from_millis(left as u64);
    // Token expiry is checked against the system clock; the lesson window itself is checked
    // again at WHIP/WHEP time by the school clock, so the two never need to agree.
    let iat = crate::auth::now_secs();
    Claims {
        sub: g.part.clone(),
        room: lesson.room(),
        grants,
        exp: iat + ttl.as_secs().max(1),
        iat,
        lesson: Some(lesson.id),
        part: Some(g.part.clone()),
        who: Some(who),
        ver: Some(ver),
    }
}

/// The check at WHIP/WHEP time for a lesson token: the lesson is open or live, and in
/// 名师课堂 a site publishes only while the teacher's grant stands.
pub(crate) async fn admit(
    school: &SchoolState,
    claims: &Claims,
    publish: bool,
) -> Result<(), ApiError> {
    let Some(id) = claims.lesson else {
        return Ok(());
    };
    if let Some(who) = &claims.who {
        let now_ver = crate::auth::people::token_version(&school.store, who).await?;
        if now_ver.is_none() || now_ver != claims.ver {
            return Err(ApiError::unauthorized(
                "token-revoked",
                format!(
                    "this media token was issued to {who}, whose access has since been revoked \
                     (device revoked, account disabled or its password or scope changed)"
                ),
            ));
        }
    }
    let lesson = model::get_lesson(&school.store, id).await?;
    check_window(school, &lesson, school.now())?;
    if !publish {
        return Ok(());
    }
    let part = claims.part.as_deref().unwrap_or("");
    match speak_grant_needed(lesson.mode, lesson.hub_classroom_id, part) {
        Some(c) if !school.live.may_speak(id, c) => Err(ApiError::forbidden(
            "speak-not-granted",
            format!(
                "in a 名师课堂 classroom {c} may publish only after the teacher grants it \
                     (raise a hand first)"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: &[LessonMode] = LessonMode::ALL;

    /// The module doc's table, row by row, for every mode.
    #[test]
    fn who_sends_in_each_mode() {
        use Sends::*;
        for &mode in MODES {
            let master = mode == LessonMode::Master;
            let site = |interactive| sends(mode, Seat::Site { interactive });
            let hub = |interactive| sends(mode, Seat::HubClassroom { interactive });
            assert_eq!(sends(mode, Seat::HubTeacher), Always, "{mode:?}");
            assert_eq!(hub(true), Always, "{mode:?}");
            assert_eq!(hub(false), Never, "{mode:?}: a receive-only hub");
            assert_eq!(
                site(true),
                if master { WhileGranted } else { Always },
                "{mode:?}"
            );
            assert_eq!(site(false), Never, "{mode:?}: a receive-only site");
            assert_eq!(sends(mode, Seat::Other), Never, "{mode:?}");
        }
    }

    #[test]
    fn only_master_sites_need_a_grant_to_publish() {
        for &mode in MODES {
            let need = |part| speak_grant_needed(mode, 1, part);
            let master = mode == LessonMode::Master;
            assert_eq!(need("c:2"), master.then_some(2), "{mode:?}: a site");
            assert_eq!(need("c:1"), None, "{mode:?}: the hub classroom");
            assert_eq!(need("t:1"), None, "{mode:?}: the hub teacher");
            assert_eq!(need("u:7"), None, "{mode:?}: a person");
            assert_eq!(need(""), None, "{mode:?}: no participant id");
        }
    }

    #[test]
    fn which_controls_each_mode_has() {
        for &mode in MODES {
            assert_eq!(mode_has(mode, Control::Hand), Ok(()), "{mode:?}");
            assert_eq!(
                mode_has(mode, Control::Speak).is_ok(),
                mode == LessonMode::Master,
                "{mode:?}"
            );
            assert_eq!(
                mode_has(mode, Control::Spotlight).is_ok(),
                mode == LessonMode::Sync,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn the_hub_is_not_a_site() {
        let l: Lesson = serde_json::from_value(serde_json::json!({
            "mode": "sync", "title": "t", "subject": "s", "grade": "g",
            "hub_teacher_id": 1, "hub_classroom_id": 1,
            "starts_at": 0, "ends_at": 1,
            "sites": [{"classroom_id": 2}],
        }))
        .expect("a lesson");
        assert!(check_site(&l, 2).is_ok());
        assert!(check_site(&l, 1).is_err(), "the hub");
        assert!(check_site(&l, 3).is_err(), "not in the lesson");
    }
}
