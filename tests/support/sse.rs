//! Server-sent events read from a real response (a lesson's events, a recording's
//! processing): one event at a time, keep-alive comments skipped, and the end of a stream
//! the server closes. Test-only; never parses anything but `event:` and `data:` lines.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::school::App;

/// Reads server-sent events from a response.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// Follows lesson `lesson`'s events as `token` (resuming after `last`, if any).
    pub async fn open(app: &App, token: &str, lesson: i64, last: Option<u64>) -> Sse {
        let mut rb = app
            .http
            .get(format!("{}/api/lessons/{lesson}/events", app.base))
            .bearer_auth(token);
        if let Some(l) = last {
            rb = rb.header("last-event-id", l.to_string());
        }
        Sse::of(rb.send().await.unwrap())
    }

    /// Follows the event stream at `path` as `token`.
    pub async fn get(app: &App, token: &str, path: &str) -> Sse {
        Sse::of(
            app.http
                .get(format!("{}{path}", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
    }

    /// An answer that must be an event stream.
    pub fn of(r: reqwest::Response) -> Sse {
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            resp: r,
            buf: String::new(),
        }
    }

    /// The next event (kind, payload), skipping keep-alive comments.
    pub async fn next(&mut self) -> (String, Value) {
        self.next_or_end()
            .await
            .expect("an event (the stream ended)")
    }

    /// The next event, or `None` once the server has closed the stream.
    pub async fn next_or_end(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if event.is_empty() {
                    continue;
                }
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.resp.chunk())
                .await
                .expect("an event within 20 s")
                .unwrap()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skips events until one of `kind` arrives.
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let (k, v) = self.next().await;
            if k == kind {
                return v;
            }
        }
    }
}
