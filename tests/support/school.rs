//! A server with a database (SQLite file or PostgreSQL), a hand-driven clock, and an admin
//! logged in; plus a small school: a hub school with a hub classroom and teacher, two partner
//! schools with an interactive classroom each, a receive-only classroom, and a term.

use std::sync::Arc;

use classrelay::time::{local_to_millis, parse_date, parse_hhmm, parse_offset, ManualClock};
use classrelay::{Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

pub struct App {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    /// Set for a server started in-process (`Server::in_process`): `call` goes through
    /// `tower::ServiceExt::oneshot` on this router instead of over loopback.
    pub oneshot: Option<axum::Router>,
}

/// 2026-09-07 (a Monday) 07:00 in Beijing.
pub fn monday_7am() -> i64 {
    at("07:00")
}

/// 2026-09-07 (a Monday) at `hhmm` in Beijing, in Unix milliseconds.
pub fn at(hhmm: &str) -> i64 {
    local_to_millis(
        parse_date("2026-09-07").unwrap(),
        parse_hhmm(hhmm).unwrap(),
        parse_offset("+08:00").unwrap(),
    )
}

impl App {
    /// Starts a server on `backend`, or `None` when that backend is unavailable here.
    pub async fn start(backend: Backend) -> Option<App> {
        App::start_with(backend, |_| {}).await
    }

    /// [`App::start`] with the test configuration changed by `adjust` first.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<App> {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_tests(dir.path());
        adjust(&mut cfg);
        if backend == Backend::Postgres {
            cfg.database.url = super::pg::fresh_database().await?;
        }
        let clock = ManualClock::new(monday_7am());
        let server = Server::start_with_clock(cfg, clock.clone()).await.unwrap();
        Some(App::logged_in(dir, server, clock, false).await)
    }

    /// [`App::start`] without sockets: the router driven in-process, no media workers.
    pub async fn start_in_process(backend: Backend) -> Option<App> {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_tests(dir.path());
        if backend == Backend::Postgres {
            cfg.database.url = super::pg::fresh_database().await?;
        }
        let clock = ManualClock::new(monday_7am());
        let server = Server::in_process(cfg, clock.clone()).await.unwrap();
        Some(App::logged_in(dir, server, clock, true).await)
    }

    async fn logged_in(
        dir: tempfile::TempDir,
        server: Server,
        clock: Arc<ManualClock>,
        in_process: bool,
    ) -> App {
        let (user, password) = server
            .first_admin()
            .cloned()
            .expect("first start makes an admin");
        let base = server.base_url();
        let oneshot = in_process.then(|| server.app());
        let mut app = App {
            dir,
            server,
            base,
            http: reqwest::Client::new(),
            clock,
            admin: String::new(),
            oneshot,
        };
        let (s, v) = app
            .call(
                None,
                Method::POST,
                "/api/login",
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        app.admin = v["token"].as_str().unwrap().to_string();
        app
    }

    /// Sends a request in-process; returns the response.
    pub async fn oneshot_request(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> axum::response::Response {
        use tower::ServiceExt;
        let router = self.oneshot.clone().expect("started in-process");
        let mut req = axum::http::Request::builder()
            .method(axum::http::Method::from_bytes(method.as_str().as_bytes()).unwrap())
            .uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                axum::body::Body::from(b.to_string())
            }
            None => axum::body::Body::empty(),
        };
        router.oneshot(req.body(body).unwrap()).await.unwrap()
    }

    /// Sends a request as `token` (None: anonymous) and returns status and JSON body.
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        if self.oneshot.is_some() {
            let r = self.oneshot_request(token, method, path, body).await;
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            return (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            );
        }
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// As admin; panics unless the status is `want`.
    pub async fn admin_ok(
        &self,
        method: Method,
        path: &str,
        body: Value,
        want: StatusCode,
    ) -> Value {
        let (s, v) = self
            .call(Some(&self.admin), method.clone(), path, Some(body))
            .await;
        assert_eq!(s, want, "{method} {path}: {v}");
        v
    }

    pub async fn create(&self, path: &str, body: Value) -> i64 {
        self.admin_ok(Method::POST, path, body, StatusCode::CREATED)
            .await["id"]
            .as_i64()
            .unwrap()
    }

    /// Posts CSV text as admin.
    pub async fn post_csv(&self, path: &str, csv: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Logs in and returns the session token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                None,
                Method::POST,
                "/api/login",
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Issues a device token for a classroom.
    pub async fn device(&self, classroom: i64) -> String {
        let v = self
            .admin_ok(
                Method::POST,
                &format!("/api/classrooms/{classroom}/devices"),
                json!({"label": "讲台电脑"}),
                StatusCode::CREATED,
            )
            .await;
        v["token"].as_str().unwrap().to_string()
    }
}

/// The ids of the small school every lesson test uses.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub region: i64,
    pub hub_school: i64,
    pub partner_a: i64,
    pub partner_b: i64,
    pub hub_room: i64,
    pub room_a: i64,
    pub room_b: i64,
    pub room_view: i64,
    pub teacher: i64,
    pub other_teacher: i64,
    pub assistant_a: i64,
    pub term: i64,
    pub teacher_login: String,
    pub other_teacher_login: String,
    pub observer_login: String,
    pub inspector_login: String,
}

pub async fn fixture(app: &App) -> Fixture {
    let region = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "凉山彝族自治州", "county": "昭觉县"}),
        )
        .await;
    let hub_school = app
        .create(
            "/api/schools",
            json!({"code": "HUB01", "name": "成都七中", "kind": "hub", "region_id": region}),
        )
        .await;
    let partner_a = app.create("/api/schools", json!({"code": "ZJ01", "name": "昭觉县民族小学", "kind": "partner", "region_id": region})).await;
    let partner_b = app.create("/api/schools", json!({"code": "ZJ02", "name": "昭觉县城北小学", "kind": "partner", "region_id": region})).await;
    let hub_room = app
        .create(
            "/api/classrooms",
            json!({"school_id": hub_school, "name": "录播教室", "kind": "hub"}),
        )
        .await;
    let room_a = app.create("/api/classrooms", json!({"school_id": partner_a, "name": "三年级1班", "kind": "interactive", "device": "希沃 C86"})).await;
    let room_b = app
        .create(
            "/api/classrooms",
            json!({"school_id": partner_b, "name": "三年级2班", "kind": "interactive"}),
        )
        .await;
    let room_view = app
        .create(
            "/api/classrooms",
            json!({"school_id": partner_b, "name": "多媒体教室", "kind": "receive_only"}),
        )
        .await;
    let teacher = app
        .create(
            "/api/teachers",
            json!({"code": "T001", "name": "王老师", "school_id": hub_school, "subjects": "英语"}),
        )
        .await;
    let other_teacher = app
        .create(
            "/api/teachers",
            json!({"code": "T002", "name": "李老师", "school_id": hub_school, "subjects": "音乐"}),
        )
        .await;
    let assistant_a = app
        .create(
            "/api/teachers",
            json!({"code": "A001", "name": "阿依老师", "school_id": partner_a}),
        )
        .await;
    let term = app
        .create(
            "/api/terms",
            json!({"name": "2026秋", "starts_on": "2026-09-01", "ends_on": "2027-01-20"}),
        )
        .await;
    let mut logins = Vec::new();
    for (name, role, t) in [
        ("wang", "teacher", Some(teacher)),
        ("li", "teacher", Some(other_teacher)),
        ("observer1", "observer", None),
        ("inspector1", "inspector", None),
    ] {
        // Teachers act in their school; the observer and inspector in the county office.
        let scope = if t.is_some() { "school" } else { "county" };
        app.create("/api/users", json!({"username": name, "display_name": name, "role": role, "password": "password-123", "teacher_id": t, "scope": scope, "region_id": region})).await;
        logins.push(app.login(name, "password-123").await);
    }
    Fixture {
        region,
        hub_school,
        partner_a,
        partner_b,
        hub_room,
        room_a,
        room_b,
        room_view,
        teacher,
        other_teacher,
        assistant_a,
        term,
        teacher_login: logins[0].clone(),
        other_teacher_login: logins[1].clone(),
        observer_login: logins[2].clone(),
        inspector_login: logins[3].clone(),
    }
}

/// Pairs the hub school with both partner schools for 英语 三年级 in 2026秋 (结对), once.
pub async fn pair(app: &App, f: &Fixture) {
    for partner in [f.partner_a, f.partner_b] {
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::POST,
                "/api/pairings",
                Some(
                    json!({"hub_school_id": f.hub_school, "partner_school_id": partner,
                            "subject": "英语", "grade": "三年级", "term": "2026秋"}),
                ),
            )
            .await;
        assert!(
            s == StatusCode::CREATED || s == StatusCode::CONFLICT,
            "pairing: {s} {v}"
        );
    }
}

/// An ad hoc lesson today (Monday 2026-09-07) from `start` to `end` local ("HH:MM"), with
/// its sites paired first.
pub async fn lesson(app: &App, f: &Fixture, mode: &str, start: &str, end: &str) -> i64 {
    pair(app, f).await;
    let off = parse_offset("+08:00").unwrap();
    let d = parse_date("2026-09-07").unwrap();
    app.create(
        "/api/lessons",
        json!({
            "mode": mode, "subject": "英语", "grade": "三年级", "title": "Unit 3 Colours",
            "textbook": "人教版PEP", "chapter": "Unit 3",
            "hub_teacher_id": f.teacher, "hub_classroom_id": f.hub_room,
            "starts_at": local_to_millis(d, parse_hhmm(start).unwrap(), off),
            "ends_at": local_to_millis(d, parse_hhmm(end).unwrap(), off),
            "sites": [{"classroom_id": f.room_a, "assisting_teacher_id": f.assistant_a},
                      {"classroom_id": f.room_b}, {"classroom_id": f.room_view}],
        }),
    )
    .await
}

/// Makes an inspector; returns (user id, session token).
pub async fn inspector(app: &App, name: &str, scope: Value) -> (i64, String) {
    let mut body = json!({"username": name, "display_name": format!("专家{name}"),
                          "role": "inspector", "password": "password-123"});
    for (k, v) in scope.as_object().unwrap() {
        body[k] = v.clone();
    }
    let id = app.create("/api/users", body).await;
    (id, app.login(name, "password-123").await)
}

/// Uploads `bytes` as a file of evidence `id` under `name` (raw body, in-process): status and
/// JSON body.
pub async fn upload_evidence(
    app: &App,
    token: &str,
    id: i64,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    use tower::ServiceExt;
    let router = app.oneshot.clone().expect("in-process");
    let q = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/evidence/{id}/files?name={q}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from(bytes))
        .unwrap();
    let r = router.oneshot(req).await.unwrap();
    let s = r.status().as_u16();
    let b = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}
