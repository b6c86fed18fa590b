//! Proves the headless-Chromium harness and the web pages without the SFU:
//! the fake camera works, a loopback RTCPeerConnection pair decodes frames,
//! and publish.html / watch.html speak WHIP / WHEP correctly against a mock
//! endpoint whose "server" side is a second Chromium.
//!
//! Run: `cargo test --test browser_selftest`. Skips when Chromium is not
//! installed and `CI` is unset (see `support::browser`).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use support::browser::{num, Browser, Page, DEFAULT_DEADLINE};

/// An offer that reached the mock WHIP/WHEP endpoint, with the way to answer it.
struct Offer {
    kind: String,
    room: String,
    content_type: Option<String>,
    authorization: Option<String>,
    sdp: String,
    reply: oneshot::Sender<Reply>,
}

enum Reply {
    /// 201 Created with this SDP answer and `Location: /session/{id}`.
    Answer(String),
    /// An error status with an `application/problem+json` body.
    Problem(StatusCode, Value),
}

/// DELETEs the mock received: (session id, Authorization header).
type Deletes = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Clone)]
struct Mock {
    offers: mpsc::UnboundedSender<Offer>,
    deletes: Deletes,
}

fn web_file(name: &str) -> Response {
    let path = format!("{}/web/{name}", env!("CARGO_MANIFEST_DIR"));
    let content_type = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };
    match std::fs::read(&path) {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{path}: {e}")).into_response(),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn post_offer(
    State(mock): State<Mock>,
    Path((kind, room)): Path<(String, String)>,
    headers: HeaderMap,
    sdp: String,
) -> Response {
    let (reply, rx) = oneshot::channel();
    let offer = Offer {
        kind,
        room,
        content_type: header_str(&headers, header::CONTENT_TYPE),
        authorization: header_str(&headers, header::AUTHORIZATION),
        sdp,
        reply,
    };
    if mock.offers.send(offer).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(Reply::Answer(answer)) => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "application/sdp"),
                (header::LOCATION, "/session/s1"),
            ],
            answer,
        )
            .into_response(),
        Ok(Reply::Problem(status, body)) => (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn delete_session(
    State(mock): State<Mock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    mock.deletes
        .lock()
        .expect("lock not poisoned: no panics while held")
        .push((id, header_str(&headers, header::AUTHORIZATION)));
    StatusCode::OK
}

/// Serves web/ and a mock WHIP/WHEP endpoint on 127.0.0.1:0.
struct MockServer {
    base: String,
    offers: mpsc::UnboundedReceiver<Offer>,
    deletes: Deletes,
}

impl MockServer {
    async fn start() -> Result<MockServer> {
        let (tx, offers) = mpsc::unbounded_channel();
        let deletes = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/publish", get(|| async { web_file("publish.html") }))
            .route("/watch", get(|| async { web_file("watch.html") }))
            .route("/whip.js", get(|| async { web_file("whip.js") }))
            .route("/style.css", get(|| async { web_file("style.css") }))
            // The pure modules whip.js imports (its words and the problem messages).
            .route(
                "/lib/{file}",
                get(|Path(file): Path<String>| async move { web_file(&format!("lib/{file}")) }),
            )
            .route(
                "/blank",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        "<!doctype html><title>blank</title>",
                    )
                }),
            )
            .route("/{kind}/{room}", post(post_offer))
            .route("/session/{id}", delete(delete_session))
            .with_state(Mock {
                offers: tx,
                deletes: deletes.clone(),
            });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(MockServer {
            base: format!("http://{addr}"),
            offers,
            deletes,
        })
    }

    async fn next_offer(&mut self) -> Result<Offer> {
        tokio::time::timeout(DEFAULT_DEADLINE, self.offers.recv())
            .await
            .context("no offer reached the mock endpoint in time")?
            .context("mock server gone")
    }
}

/// Keeps only loopback ICE candidates, so the two browsers talk over 127.0.0.1.
fn loopback_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !l.starts_with("a=candidate:") || l.contains(" 127.0.0.1 "))
        .collect()
}

/// Codec names (from a=rtpmap) in the SDP's video sections.
fn video_codecs(sdp: &str) -> Vec<String> {
    let mut in_video = false;
    let mut out = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        } else if in_video {
            if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                if let Some(name) = rest.split(' ').nth(1).and_then(|c| c.split('/').next()) {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out
}

/// JS for the answering browser: grants itself camera access (so its ICE
/// candidates are plain IPs, not mDNS names), answers `arguments[0]`, and
/// returns the answer SDP once ICE gathering is complete. With
/// `arguments[1] == true` it sends camera+mic back on every transceiver
/// (playing the SFU for a WHEP watcher).
const ANSWERER_JS: &str = r#"
const [offer, sendBack] = arguments;
return (async () => {
  const media = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 640, height: 360 } });
  const pc = new RTCPeerConnection();
  window.answerer = pc;
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  if (sendBack) {
    const video = media.getVideoTracks()[0];
    for (const t of pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      t.direction = 'sendonly';
      await t.sender.replaceTrack(kind === 'audio' ? media.getAudioTracks()[0] : video.clone());
    }
  } else {
    media.getTracks().forEach((t) => t.stop());
  }
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
      setTimeout(resolve, 5000);
    });
  }
  return pc.localDescription.sdp;
})();
"#;

/// Summary of the answering browser's stats, via the pages' own summariser.
const ANSWERER_STATS: &str = "import('/whip.js').then((m) => m.summarizeStats(window.answerer))";

async fn answer_with_browser(
    answerer: &Page,
    mock: &MockServer,
    offer: Offer,
    send_back: bool,
) -> Result<()> {
    answerer.goto(&format!("{}/blank", mock.base)).await?;
    let sdp = answerer
        .eval_with(
            ANSWERER_JS,
            vec![json!(loopback_only(&offer.sdp)), json!(send_back)],
        )
        .await?;
    let sdp = sdp.as_str().context("answer SDP is a string")?;
    offer
        .reply
        .send(Reply::Answer(loopback_only(sdp)))
        .map_err(|_| anyhow::anyhow!("mock handler gone"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_camera_and_loopback_peer_connection_decode_frames() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let mock = MockServer::start().await?;
    let page = browser.new_page().await?;
    page.goto(&format!("{}/blank", mock.base)).await?;

    let settings = page
        .eval(
            r#"return (async () => {
                 const s = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
                 window.media = s;
                 const v = s.getVideoTracks()[0].getSettings();
                 return { width: v.width, height: v.height, label: s.getVideoTracks()[0].label,
                          audio: s.getAudioTracks().length };
               })();"#,
        )
        .await?;
    assert!(num(&settings, "/width") > 0.0, "fake camera: {settings}");
    assert!(num(&settings, "/height") > 0.0, "fake camera: {settings}");
    assert_eq!(num(&settings, "/audio"), 1.0, "fake microphone: {settings}");

    // Two PeerConnections in one page, exchanging only loopback candidates.
    page.eval(
        r#"return (async () => {
             const a = new RTCPeerConnection(), b = new RTCPeerConnection();
             window.pcA = a; window.pcB = b;
             const relay = (to) => (e) => {
               if (e.candidate && e.candidate.address === '127.0.0.1') to.addIceCandidate(e.candidate);
             };
             a.onicecandidate = relay(b);
             b.onicecandidate = relay(a);
             window.media.getTracks().forEach((t) => a.addTrack(t, window.media));
             await a.setLocalDescription(await a.createOffer());
             await b.setRemoteDescription(a.localDescription);
             await b.setLocalDescription(await b.createAnswer());
             await a.setRemoteDescription(b.localDescription);
             return true;
           })();"#,
    )
    .await?;
    let stats = page
        .wait_until(
            "import('/whip.js').then((m) => m.summarizeStats(window.pcB)).then((s) => \
             s.inboundVideo.length && s.inboundVideo[0].framesDecoded > 0 && \
             s.inboundAudio.length && s.inboundAudio[0].packetsReceived > 0 && s)",
            DEFAULT_DEADLINE,
            "import('/whip.js').then((m) => m.summarizeStats(window.pcB))",
        )
        .await?;
    assert!(num(&stats, "/inboundVideo/0/frameWidth") > 0.0, "{stats}");
    assert!(stats["inboundVideo"][0]["codec"]
        .as_str()
        .is_some_and(|c| c.starts_with("video/")));
    assert_eq!(stats["candidatePair"]["state"], "succeeded", "{stats}");
    page.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_page_speaks_whip() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let mut mock = MockServer::start().await?;
    let publisher = browser.new_page().await?;
    let answerer = browser.new_page().await?;

    publisher
        .goto(&format!(
            "{}/publish?room=r1&token=pub-secret&codec=h264&width=640&height=360",
            mock.base
        ))
        .await?;
    let offer = mock.next_offer().await?;
    assert_eq!((offer.kind.as_str(), offer.room.as_str()), ("whip", "r1"));
    assert_eq!(offer.content_type.as_deref(), Some("application/sdp"));
    assert_eq!(offer.authorization.as_deref(), Some("Bearer pub-secret"));
    assert_eq!(offer.sdp.matches("m=audio").count(), 1, "{}", offer.sdp);
    assert_eq!(offer.sdp.matches("m=video").count(), 2, "{}", offer.sdp);
    assert!(
        offer.sdp.contains("a=simulcast:send h;m;l"),
        "simulcast by default:\n{}",
        offer.sdp
    );
    assert!(
        offer.sdp.contains("a=candidate:"),
        "non-trickle: candidates in the offer"
    );
    let codecs = video_codecs(&offer.sdp);
    assert!(
        codecs.contains(&"H264".to_owned())
            && codecs
                .iter()
                .all(|c| ["H264", "rtx", "red", "ulpfec", "flexfec-03"].contains(&c.as_str())),
        "codec=h264 restricts video codecs: {codecs:?}"
    );

    answer_with_browser(&answerer, &mock, offer, false).await?;
    publisher
        .wait_for_state("connected", DEFAULT_DEADLINE)
        .await?;
    let resource = publisher.eval_expr("window.classrelay.resource").await?;
    assert_eq!(resource, json!(format!("{}/session/s1", mock.base)));

    // The answering browser decodes the publisher's camera as H.264.
    let stats = answerer
        .wait_until(
            &format!(
                "{ANSWERER_STATS}.then((s) => s.inboundVideo.some((v) => v.framesDecoded > 0) && s)"
            ),
            DEFAULT_DEADLINE,
            ANSWERER_STATS,
        )
        .await?;
    let decoded = stats["inboundVideo"]
        .as_array()
        .and_then(|v| v.iter().find(|v| num(v, "/framesDecoded") > 0.0))
        .cloned()
        .unwrap_or_default();
    assert_eq!(decoded["codec"], "video/H264", "{stats}");

    // The publisher's own summary shows what it sends.
    let sent = publisher
        .wait_for_stats(DEFAULT_DEADLINE, "outbound video bytes", |s| {
            s["outboundVideo"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| num(v, "/bytesSent") > 0.0))
        })
        .await?;
    assert_eq!(sent["mids"]["camera"], "1", "{sent}");

    publisher.eval("return window.classrelay.stop();").await?;
    assert_eq!(publisher.state().await?, "stopped");
    let deletes = mock
        .deletes
        .lock()
        .expect("lock not poisoned: no panics while held")
        .clone();
    assert_eq!(
        deletes,
        vec![("s1".to_owned(), Some("Bearer pub-secret".to_owned()))]
    );
    publisher.close().await?;
    answerer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_speaks_whep_and_plays_all_tracks() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let mut mock = MockServer::start().await?;
    let watcher = browser.new_page().await?;
    let sender = browser.new_page().await?;

    watcher
        .goto(&format!("{}/watch?room=r2&token=sub-secret", mock.base))
        .await?;
    let offer = mock.next_offer().await?;
    assert_eq!((offer.kind.as_str(), offer.room.as_str()), ("whep", "r2"));
    assert_eq!(offer.authorization.as_deref(), Some("Bearer sub-secret"));
    assert_eq!(offer.sdp.matches("a=recvonly").count(), 3, "{}", offer.sdp);

    answer_with_browser(&sender, &mock, offer, true).await?;
    watcher
        .wait_for_state("connected", DEFAULT_DEADLINE)
        .await?;
    let stats = watcher
        .wait_for_stats(DEFAULT_DEADLINE, "camera, screen and audio", |s| {
            let video = |role: &str| {
                s["inboundVideo"].as_array().is_some_and(|v| {
                    v.iter()
                        .any(|v| v["role"] == role && num(v, "/framesDecoded") > 0.0)
                })
            };
            video("camera") && video("screen") && num(s, "/inboundAudio/0/packetsReceived") > 0.0
        })
        .await?;
    assert_eq!(
        stats["mids"],
        json!({"audio": "0", "camera": "1", "screen": "2"})
    );
    assert!(num(&stats, "/inboundVideo/0/frameWidth") > 0.0, "{stats}");

    // The <video> elements really play.
    let playing = watcher
        .wait_until(
            "['camera', 'screen'].every((id) => { const v = document.getElementById(id); \
             return v.srcObject && !v.paused && v.videoWidth > 0; })",
            DEFAULT_DEADLINE,
            "['camera', 'screen'].map((id) => { const v = document.getElementById(id); \
             return { id, paused: v.paused, w: v.videoWidth }; })",
        )
        .await?;
    assert_eq!(playing, json!(true));
    watcher.close().await?;
    sender.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_page_shows_problem_details() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let mut mock = MockServer::start().await?;
    let publisher = browser.new_page().await?;
    publisher
        .goto(&format!(
            "{}/publish?room=r3&token=expired&simulcast=0&screen=1",
            mock.base
        ))
        .await?;
    let offer = mock.next_offer().await?;
    assert!(!offer.sdp.contains("a=simulcast"), "simulcast=0");
    offer
        .reply
        .send(Reply::Problem(
            StatusCode::UNAUTHORIZED,
            json!({
                "type": "https://classrelay.example/problems/token-expired",
                "title": "Token expired",
                "status": 401,
                "detail": "the publish token expired at 10:00",
            }),
        ))
        .map_err(|_| anyhow::anyhow!("mock handler gone"))?;
    publisher.wait_for_state("failed", DEFAULT_DEADLINE).await?;
    let error = publisher.eval_expr("window.classrelay.error").await?;
    assert_eq!(error["status"], 401);
    assert_eq!(error["title"], "Token expired");
    assert_eq!(error["detail"], "the publish token expired at 10:00");
    let shown = publisher
        .eval_expr("document.getElementById('error').textContent")
        .await?;
    // A problem type of another server: worded by its status in the page's language
    // (Chinese by default), not the server's English title.
    assert!(
        shown
            .as_str()
            .is_some_and(|s| s.contains("需要登录或有效的令牌")),
        "{shown}"
    );
    publisher.close().await?;
    Ok(())
}
