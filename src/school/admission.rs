//! The school side's answers to signalling ([`Admission`]) and what it learns back from the
//! media service ([`SessionEvent`]s: who is present in a lesson). It must never call into
//! signal or http; they call it through the trait.

use std::sync::{Arc, Weak};

use super::{model, policy, SchoolState};
use crate::auth::Claims;
use crate::media::SessionEvent;
use crate::problem::ApiError;
use crate::sfu::PeerKind;
use crate::signal::{Admission, BoxFuture};

impl Admission for SchoolState {
    fn admit<'a>(
        &'a self,
        claims: &'a Claims,
        publish: bool,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(policy::admit(self, claims, publish))
    }

    fn layer_cap<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<Option<u8>, ApiError>> {
        Box::pin(async move {
            // A classroom's viewers: its own cap, else its school's (migration 0016).
            let Some(room) = claims.part.as_deref().and_then(policy::part_classroom) else {
                return Ok(None);
            };
            // The admission checked the classroom already; a row gone since (or a store
            // that fails now) costs the cap, not the lesson.
            use crate::store::entity::get;
            let Ok(c) = get::<model::Classroom>(&self.store, room).await else {
                return Ok(None);
            };
            let cap = match c.max_video_layer {
                Some(cap) => Some(cap),
                None => get::<model::School>(&self.store, c.school_id)
                    .await
                    .ok()
                    .and_then(|s| s.max_video_layer),
            };
            Ok(cap.map(|c| c.clamp(0, 2) as u8))
        })
    }

    fn hub_parts(&self, lesson: i64) -> BoxFuture<'_, Result<Vec<String>, ApiError>> {
        Box::pin(async move {
            let l = model::get_lesson(&self.store, lesson).await?;
            Ok(vec![
                format!("t:{}", l.hub_teacher_id),
                format!("c:{}", l.hub_classroom_id),
            ])
        })
    }

    fn extra_sessions<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<usize, ApiError>> {
        Box::pin(async move {
            if let (Some(lesson), Some(part)) = (claims.lesson, claims.part.as_deref()) {
                if part.starts_with("t:") {
                    let l = model::get_lesson(&self.store, lesson).await?;
                    if part == format!("t:{}", l.hub_teacher_id) {
                        return Ok(l.sites.len());
                    }
                }
            }
            Ok(0)
        })
    }

    fn token_current<'a>(
        &'a self,
        who: &'a str,
        ver: Option<i64>,
    ) -> BoxFuture<'a, Result<bool, ApiError>> {
        Box::pin(async move {
            let now = crate::auth::people::token_version(&self.store, who).await?;
            Ok(now.is_some() && now == ver)
        })
    }

    fn spotlight(&self, lesson: i64) -> Option<String> {
        self.live.spotlit(lesson).map(policy::classroom_part)
    }
}

impl SchoolState {
    /// Keeps the lessons' presence from the media service's session events (for as long as
    /// this state lives), and each classroom's stays for attendance (issue 22 item 8).
    pub fn listen_to_sessions(self: &Arc<Self>) {
        let school: Weak<SchoolState> = Arc::downgrade(self);
        // The reports' session log (issue 22 item 7): queued here, written by its own task.
        let log = super::reports::SessionLog::start(school.clone());
        let stays = super::attendance::Writer::start(self.store.clone());
        let clock = self.clock.clone();
        self.link_reports
            .start(self.store.clone(), move || clock.now());
        self.media.listen(Box::new(move |ev| {
            let Some(school) = school.upgrade() else {
                return;
            };
            school.on_session(ev, stays.as_ref());
            log.record(ev, school.now());
        }));
    }

    fn on_session(&self, ev: &SessionEvent, stays: Option<&super::attendance::Writer>) {
        // A link report's totals only queue for their writer.
        if let SessionEvent::LinkReport {
            lesson,
            part,
            session,
            report,
            last,
        } = ev
        {
            self.link_reports
                .media(*lesson, part, session, *report, *last);
            return;
        }
        // A patrol watcher (巡课) is in nobody's presence list.
        let (SessionEvent::Started { part, .. }
        | SessionEvent::Ended { part, .. }
        | SessionEvent::WeakNetwork { part, .. }
        | SessionEvent::LinkReport { part, .. }) = ev;
        if super::reports::is_patrol(part) {
            return;
        }
        let now = self.now();
        match ev {
            SessionEvent::Started { lesson, part, role } => {
                let joined =
                    self.live
                        .session_started(*lesson, part, *role == PeerKind::Publisher, now);
                // Classrooms only: people (teachers, observers) are not attendance.
                if let (true, Some(w), Some(c)) = (joined, stays, policy::part_classroom(part)) {
                    w.joined(*lesson, c, now);
                }
            }
            SessionEvent::Ended { lesson, part, role } => {
                let left =
                    self.live
                        .session_ended(*lesson, part, *role == PeerKind::Publisher, now);
                if let (true, Some(w), Some(c)) = (left, stays, policy::part_classroom(part)) {
                    w.left(*lesson, c, now);
                }
            }
            SessionEvent::WeakNetwork {
                lesson,
                part,
                audio_only,
            } => self
                .live
                .weak_network(*lesson, part, *audio_only, self.now()),
            SessionEvent::LinkReport { .. } => {}
        }
    }
}
