//! A running lesson's live controls (hand, speak, spotlight), its live state and its event
//! stream. Must never touch the media directly but through the media service.

#[allow(unused_imports)]
use super::*;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = Hand)]
pub(super) struct HandBody {
    raised: bool,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/hand", params(("id" = i64, Path, description = "the lesson's id")), request_body = HandBody,
    responses((status = 200, description = "the live state after the change", body = crate::school::live::Snapshot))
)]
pub(super) async fn lessons_hand(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<HandBody>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    policy::check_mode(&l, policy::Control::Hand)?;
    policy::check_window(&st, &l, st.now())?;
    let c = p.classroom_id().unwrap_or_default();
    st.live.hand(l.id, c, b.raised, st.now());
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = Speak)]
pub(super) struct SpeakBody {
    classroom_id: i64,
    granted: bool,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/speak", params(("id" = i64, Path, description = "the lesson's id")), request_body = SpeakBody,
    responses((status = 200, description = "the live state after the change", body = crate::school::live::Snapshot))
)]
pub(super) async fn lessons_speak(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SpeakBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    policy::check_mode(&l, policy::Control::Speak)?;
    policy::check_site(&l, b.classroom_id)?;
    policy::check_window(&st, &l, st.now())?;
    st.live.speak(l.id, b.classroom_id, b.granted, st.now());
    if !b.granted {
        // The grant is checked at WHIP time; a revoke also ends what is being sent.
        let part = policy::classroom_part(b.classroom_id);
        st.media
            .kick(&l.room(), |s| {
                s.role == crate::sfu::PeerKind::Publisher
                    && s.part.as_deref() == Some(part.as_str())
            })
            .await;
    }
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = Spotlight)]
pub(super) struct SpotlightBody {
    classroom_id: Option<i64>,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/spotlight", params(("id" = i64, Path, description = "the lesson's id")), request_body = SpotlightBody,
    responses((status = 200, description = "the live state after the change", body = crate::school::live::Snapshot))
)]
pub(super) async fn lessons_spotlight(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SpotlightBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    policy::check_mode(&l, policy::Control::Spotlight)?;
    if let Some(c) = b.classroom_id {
        policy::check_site(&l, c)?;
    }
    policy::check_window(&st, &l, st.now())?;
    if st.live.spotlight(l.id, b.classroom_id, st.now()) {
        st.media
            .set_spotlight(&l.room(), b.classroom_id.map(policy::classroom_part));
    }
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

// ---- The teacher console's controls and attendance (issue 22 items 3 and 8) ----

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = Mute)]
pub(super) struct MuteBody {
    /// The site to mute or unmute; absent or null: every site of the lesson (mute all).
    #[serde(default)]
    classroom_id: Option<i64>,
    /// Muted (true) or not.
    muted: bool,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/mute", params(("id" = i64, Path, description = "the lesson's id")), request_body = MuteBody,
    responses((status = 200, description = "the live state after the change (`muted` lists the muted classrooms)", body = crate::school::live::Snapshot))
)]
pub(super) async fn lessons_mute(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<MuteBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    if let Some(c) = b.classroom_id {
        policy::check_site(&l, c)?;
    }
    policy::check_window(&st, &l, st.now())?;
    // Every mode: a site's page follows the `mute` events and silences its microphone.
    let rooms: Vec<i64> = match b.classroom_id {
        Some(c) => vec![c],
        None => l.sites.iter().map(|s| s.classroom_id).collect(),
    };
    st.live.mute(l.id, &rooms, b.muted, st.now());
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = LowerHand)]
pub(super) struct LowerHandBody {
    /// The site whose hand the teacher lowers (acknowledges).
    classroom_id: i64,
}

#[utoipa::path(
    post, path = "/api/lessons/{id}/lower-hand", params(("id" = i64, Path, description = "the lesson's id")), request_body = LowerHandBody,
    responses((status = 200, description = "the live state after the change", body = crate::school::live::Snapshot))
)]
pub(super) async fn lessons_lower_hand(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<LowerHandBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    policy::check_mode(&l, policy::Control::Hand)?;
    policy::check_site(&l, b.classroom_id)?;
    policy::check_window(&st, &l, st.now())?;
    st.live.lower_hand(l.id, b.classroom_id, st.now());
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

#[utoipa::path(
    get, path = "/api/lessons/{id}/attendance", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "each site's stays and presence (classrooms only, never people)", body = crate::school::attendance::LessonAttendance))
)]
pub(super) async fn lessons_attendance(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let a = crate::school::attendance::of_lesson(&st.store, &l, st.now(), st.offset).await?;
    Ok(Json(a).into_response())
}

#[utoipa::path(
    get, path = "/api/lessons/{id}/live", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "the live state", body = crate::school::live::Snapshot))
)]
pub(super) async fn lessons_live(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    // `peek`: reading an ended (or not yet open) lesson does not bring live state back.
    Ok(Json(st.live.peek(l.id)).into_response())
}

pub(super) fn sse_of(ev: &crate::school::live::Event) -> SseEvent {
    SseEvent::default()
        .id(ev.seq.to_string())
        .event(ev.kind)
        .data(serde_json::to_string(ev).unwrap_or_default())
}

#[utoipa::path(
    get, path = "/api/lessons/{id}/events",
    params(("id" = i64, Path, description = "the lesson's id"),
        ("last_event_id" = Option<u64>, Query, description = "resume after this event (or send `Last-Event-ID`)"),
        ("last-event-id" = Option<u64>, Header, description = "resume after this event")),
    responses((status = 200, description = "server-sent events, each data line one LessonEvent", body = crate::school::live::Event, content_type = "text/event-stream"))
)]
pub(super) async fn lessons_events(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let state = l.state_at(st.now(), st.open_before, st.grace);
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
        .or_else(|| q.get("last_event_id").cloned())
        .and_then(|s| s.trim().parse::<u64>().ok());
    // Subscribe to revocations before the lesson's events, so none falls between the two.
    let revoked = st.revoked.subscribe();
    let ended = state == LessonState::Ended;
    // An ended lesson: what the follower missed (its state is kept a little while after the
    // end) or one picture, and then the stream ends; it never brings live state back.
    let sub = if ended {
        st.live.subscribe_existing(l.id, last)
    } else {
        Some(st.live.subscribe(l.id, last))
    };
    let sub = match sub {
        Some(sub) => sub,
        None => crate::school::live::Subscription {
            resync: Some(st.live.peek(l.id)),
            missed: Vec::new(),
            rx: tokio::sync::broadcast::channel(1).1,
        },
    };
    let mut first: Vec<SseEvent> = Vec::new();
    let mut seen = last.unwrap_or(0);
    if let Some(snap) = &sub.resync {
        seen = snap.seq;
        first.push(
            SseEvent::default()
                .id(snap.seq.to_string())
                .event("resync")
                .data(
                    serde_json::to_string(&serde_json::json!({
                        "seq": snap.seq,
                        "kind": "resync",
                        "data": {
                            "live": snap,
                            "state": state,
                        }
                    }))
                    .unwrap_or_default(),
                ),
        );
    }
    for ev in &sub.missed {
        seen = ev.seq;
        first.push(sse_of(ev));
    }
    let live = Arc::clone(&st);
    let lesson = l.id;
    let who = p.ident();
    let head = futures_util::stream::iter(first.into_iter().map(Ok::<_, std::convert::Infallible>));
    let tail = futures_util::stream::unfold(
        (sub.rx, revoked, seen, live, who),
        move |(mut rx, mut revoked, mut seen, st, who)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                tokio::select! {
                    // The lesson's own events first: an `ended` event sent before the lesson's
                    // end is announced still reaches the client.
                    biased;
                    r = rx.recv() => match r {
                        Ok(ev) if ev.seq <= seen => continue,
                        Ok(ev) => {
                            seen = ev.seq;
                            return Some((Ok(sse_of(&ev)), (rx, revoked, seen, st, who)));
                        }
                        Err(RecvError::Lagged(_)) => {
                            // Too slow to follow: send the whole picture and carry on from it.
                            let snap = st.live.snapshot(lesson);
                            seen = snap.seq;
                            let e = SseEvent::default()
                            .id(snap.seq.to_string())
                            .event("resync")
                            .data(serde_json::to_string(&serde_json::json!({"seq": snap.seq, "kind": "resync", "data": {"live": snap}})).unwrap_or_default());
                            return Some((Ok(e), (rx, revoked, seen, st, who)));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    r = revoked.recv() => match r {
                        Ok(crate::school::Revoked::Principal(x)) if x == who => return None,
                        Ok(crate::school::Revoked::Lesson(x)) if x == lesson => return None,
                        Ok(_) => continue,
                        // Missed announcements might have been ours: end, and let the client
                        // come back through the access check.
                        Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    use futures_util::StreamExt;
    if ended {
        return Ok(Sse::new(head).into_response());
    }
    Ok(Sse::new(head.chain(tail))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}
