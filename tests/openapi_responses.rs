//! The served `/api/openapi.json` describes what the server really answers: every GET route
//! with a JSON response is called on a small school with a lesson under way (as a role the
//! route allows), and each body is validated with `jsonschema` against the schema the
//! document gives for that route and status; so is a problem response. A field renamed,
//! retyped or dropped in a Rust type without its schema fails here.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, lesson, App, Backend};

/// The schema of `content` (a media-type map) as a standalone JSON Schema whose
/// `#/components/...` references resolve in `doc`.
fn validator(doc: &Value, content: &Value, media: &str) -> jsonschema::Validator {
    let schema = &content[media]["schema"];
    assert!(schema.is_object(), "no {media} schema in {content}");
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    jsonschema::draft202012::new(&root).expect("the document's schemas compile")
}

/// What in `body` does not match the schema, each line naming `what` and where.
fn mismatches(doc: &Value, content: &Value, media: &str, what: &str, body: &Value) -> Vec<String> {
    let v = validator(doc, content, media);
    v.iter_errors(body)
        .map(|e| format!("{what}: {} at {}", e, e.instance_path()))
        .collect()
}

#[tokio::test]
async fn real_responses_match_the_served_document() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let slot = app
        .create(
            "/api/slots",
            json!({"term_id": f.term, "weekday": 2, "period": 1, "starts": "08:00",
                   "ends": "08:40", "subject": "英语", "grade": "三年级", "mode": "delivery",
                   "hub_teacher_id": f.teacher, "hub_classroom_id": f.hub_room,
                   "sites": [{"classroom_id": f.room_a, "assisting_teacher_id": f.assistant_a}]}),
        )
        .await;
    let device = app.device(f.room_a).await;
    // A lesson live now (the clock stands at 07:00), so live state and today have content.
    // Made last: it wakes the scheduler, whose writes can make a concurrent SQLite write
    // transaction give up with 503 (seen with POST /api/slots made right after).
    let lesson_id = lesson(&app, &f, "sync", "07:00", "07:40").await;
    let (_, users) = app
        .call(Some(&app.admin), Method::GET, "/api/users", None)
        .await;
    let user = users[0]["id"].as_i64().unwrap();
    let pairing = app
        .call(Some(&app.admin), Method::GET, "/api/pairings", None)
        .await
        .1[0]["id"]
        .as_i64()
        .unwrap();

    let (status, doc) = app.call(None, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);

    // Each `{id}` route gets a row that exists; the rest of the path and a query as needed.
    let concrete = |path: &str| -> Option<String> {
        let id = match path.split('/').nth(2)? {
            "regions" => f.region,
            "schools" => f.hub_school,
            "classrooms" => f.room_a,
            "teachers" => f.teacher,
            "pairings" => pairing,
            "terms" => f.term,
            "slots" => slot,
            "lessons" => lesson_id,
            "users" => user,
            _ => 0,
        };
        let p = path.replace("{id}", &id.to_string());
        Some(match p.as_str() {
            "/api/slots" => format!("/api/slots?term_id={}", f.term),
            _ => p,
        })
    };

    let mut checked = Vec::new();
    let mut wrong = Vec::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, ops) in paths {
        let Some(get) = ops.get("get") else { continue };
        let ok = &get["responses"]["200"]["content"];
        if ok.get("application/json").is_none() {
            continue; // CSV, event streams and the document itself
        }
        let roles: Vec<&str> = get["x-roles"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Every allowed role whose view differs: the admin sees all, a teacher their own
        // lessons, a classroom device its own.
        let mut callers: Vec<(&str, &str)> = Vec::new();
        for (role, token) in [
            ("admin", app.admin.as_str()),
            ("teacher", f.teacher_login.as_str()),
            ("classroom", device.as_str()),
        ] {
            if roles.is_empty() || roles.contains(&role) {
                callers.push((role, token));
            }
        }
        assert!(!callers.is_empty(), "GET {path}: no caller for {roles:?}");
        let url = concrete(path).unwrap();
        for (role, token) in callers {
            let (status, body) = app.call(Some(token), Method::GET, &url, None).await;
            if role != "admin" && status == StatusCode::FORBIDDEN {
                // Allowed by role but not for this row (another school's); the admin's
                // call covers the body.
                continue;
            }
            assert_eq!(status, StatusCode::OK, "GET {url} as {role}: {body}");
            wrong.extend(mismatches(
                &doc,
                ok,
                "application/json",
                &format!("GET {url} as {role}"),
                &body,
            ));
            checked.push(format!("{path} as {role}"));
        }
    }
    for must in [
        "/api/regions",
        "/api/regions/{id}",
        "/api/schools/{id}",
        "/api/classrooms/{id}",
        "/api/teachers/{id}",
        "/api/pairings/{id}",
        "/api/terms/{id}",
        "/api/slots",
        "/api/slots/{id}",
        "/api/lessons",
        "/api/lessons/{id}",
        "/api/lessons/{id}/live",
        "/api/today",
        "/api/me",
    ] {
        assert!(
            checked
                .iter()
                .any(|c| c.starts_with(&format!("{must} as "))),
            "{must} was not checked: {checked:?}"
        );
    }
    // The live state and today carry the lesson under way, so their nested schemas are used.
    let (_, live) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{lesson_id}/live"),
            None,
        )
        .await;
    assert!(live.is_object(), "{live}");

    // A problem: 404 as application/problem+json, against the document's Problem schema.
    let r = app
        .http
        .get(format!("{}/api/regions/999999", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let ct = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let body: Value = r.json().await.unwrap();
    let not_found = &doc["paths"]["/api/regions/{id}"]["get"]["responses"]["404"]["content"];
    wrong.extend(mismatches(
        &doc,
        not_found,
        "application/problem+json",
        "a 404 problem",
        &body,
    ));
    assert!(
        wrong.is_empty(),
        "responses that do not match the document:\n{}",
        wrong.join("\n")
    );
}
