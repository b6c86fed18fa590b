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

/// Refuses with the reason when `lesson` is not open or live at `now`.
pub(crate) fn check_window(
    school: &SchoolState,
    lesson: &Lesson,
    now: Millis,
) -> Result<(), ApiError> {
    match lesson.state_at(now, school.open_before, school.grace) {
        LessonState::Open | LessonState::Live => Ok(()),
        LessonState::Scheduled => Err(ApiError::forbidden(
            "lesson-not-open",
            format!(
                "lesson {} opens at {} ({} minutes before the bell at {})",
                lesson.id,
                rfc3339(
                    lesson.starts_at.saturating_sub(school.open_before),
                    school.offset
                ),
                school.open_before / 60_000,
                rfc3339(lesson.starts_at, school.offset)
            ),
        )),
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
    if let Some(cid) = who.classroom_id() {
        if !lesson.has_classroom(cid) {
            return Err(ApiError::forbidden(
                "not-in-lesson",
                format!("classroom {cid} is not part of lesson {}", lesson.id),
            ));
        }
        let part = classroom_part(cid);
        let room: Classroom = model::get(&school.store, cid).await?;
        // A receive-only room never sends, not even as the hub (lesson creation refuses
        // such a hub; this holds for rows made before that rule).
        let interactive = room.kind != ClassroomKind::ReceiveOnly;
        if cid == lesson.hub_classroom_id {
            return Ok(JoinGrant {
                part,
                publish: interactive,
                needs_speak_grant: false,
            });
        }
        return Ok(JoinGrant {
            part,
            publish: interactive,
            needs_speak_grant: interactive && lesson.mode == LessonMode::Master,
        });
    }
    if who.teacher_id().is_some() && who.teacher_id() == Some(lesson.hub_teacher_id) {
        return Ok(JoinGrant {
            part: format!("t:{}", lesson.hub_teacher_id),
            publish: true,
            needs_speak_grant: false,
        });
    }
    Ok(JoinGrant {
        part: who.ident(),
        publish: false,
        needs_speak_grant: false,
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
    if !publish || lesson.mode != LessonMode::Master {
        return Ok(());
    }
    let part = claims.part.as_deref().unwrap_or("");
    match part_classroom(part) {
        Some(c) if c != lesson.hub_classroom_id && !school.live.may_speak(id, c) => {
            Err(ApiError::forbidden(
                "speak-not-granted",
                format!(
                    "in a 名师课堂 classroom {c} may publish only after the teacher grants it \
                     (raise a hand first)"
                ),
            ))
        }
        _ => Ok(()),
    }
}
