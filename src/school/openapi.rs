//! The OpenAPI 3.1 document at `/api/openapi.json`, built from [`super::api::ROUTES`] (so a
//! route cannot exist without being described) plus the component schemas below.
//!
//! Written by hand rather than derived: the route table already holds what a derive would
//! need, and the schemas are short.

use serde_json::{json, Map, Value};

use super::api::{Allow, ROUTES};

fn obj(props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    json!({"type": "object", "properties": p, "required": required})
}

fn s() -> Value {
    json!({"type": "string"})
}
fn i() -> Value {
    json!({"type": "integer", "format": "int64"})
}
fn oi() -> Value {
    json!({"type": ["integer", "null"], "format": "int64"})
}
fn num() -> Value {
    json!({"type": "number"})
}
fn num_or_null() -> Value {
    json!({"type": ["number", "null"]})
}
fn b() -> Value {
    json!({"type": "boolean"})
}
fn e(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}
fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
fn arr(v: Value) -> Value {
    json!({"type": "array", "items": v})
}

fn schemas() -> Value {
    let site = obj(
        &[("classroom_id", i()), ("assisting_teacher_id", oi())],
        &["classroom_id"],
    );
    let modes = e(&["delivery", "master", "sync"]);
    let states = e(&["scheduled", "open", "live", "ended"]);
    let roles = e(&["admin", "teacher", "classroom", "observer", "inspector"]);
    let scopes = e(&["school", "county", "city", "province", "global"]);
    json!({
        "Problem": obj(&[("type", s()), ("title", s()), ("status", i()), ("detail", s()),
            ("errors", arr(obj(&[("row", i()), ("column", s()), ("message", s())], &["row", "column", "message"]))),
            ("error_count", i()), ("limit", i()), ("max_rows", i()), ("max_bytes", i())],
            &["type", "title", "status", "detail"]),
        "Login": obj(&[("username", s()), ("password", s())], &["username", "password"]),
        "LoginResult": obj(&[("token", s()), ("user", r("User")), ("expires_at", i())], &["token", "user", "expires_at"]),
        "Principal": obj(&[("kind", e(&["user", "device"])), ("id", i()), ("role", roles.clone()),
            ("username", s()), ("display_name", s()), ("school_id", oi()), ("teacher_id", oi()),
            ("scope", r("Scope")), ("classroom_id", i()), ("label", s())], &["kind", "id"]),
        "Scope": obj(&[("level", scopes.clone()), ("province", s()), ("city", s()), ("region_id", i()), ("school_id", i())],
            &["level"]),
        "User": obj(&[("id", i()), ("username", s()), ("display_name", s()), ("role", roles.clone()),
            ("school_id", oi()), ("teacher_id", oi()), ("disabled", b()), ("scope", scopes.clone()),
            ("region_id", oi())], &["id", "username", "role", "scope"]),
        "NewUser": obj(&[("username", s()), ("display_name", s()), ("role", roles), ("password", s()),
            ("school_id", oi()), ("teacher_id", oi()), ("scope", scopes.clone()), ("region_id", oi())],
            &["username", "display_name", "role", "password"]),
        "UserPatch": obj(&[("password", s()), ("disabled", b()), ("scope", scopes), ("school_id", oi()),
            ("region_id", oi())], &[]),
        "NewDevice": obj(&[("label", s())], &["label"]),
        "DeviceToken": obj(&[("id", i()), ("classroom_id", i()), ("label", s()), ("created_at", i()), ("revoked_at", oi())],
            &["id", "classroom_id", "label", "created_at"]),
        "IssuedDevice": obj(&[("token", s()), ("device", r("DeviceToken"))], &["token", "device"]),
        "Region": obj(&[("id", i()), ("province", s()), ("city", s()), ("county", s())], &["province", "city", "county"]),
        "School": obj(&[("id", i()), ("code", s()), ("name", s()), ("kind", e(&["hub", "partner"])), ("region_id", oi()),
            ("max_master_sites", i())],
            &["code", "name", "kind"]),
        "Classroom": obj(&[("id", i()), ("school_id", i()), ("name", s()),
            ("kind", e(&["hub", "interactive", "receive_only"])), ("device", s())], &["school_id", "name", "kind"]),
        "Teacher": obj(&[("id", i()), ("code", s()), ("name", s()), ("school_id", i()), ("subjects", s())],
            &["code", "name", "school_id"]),
        "Pairing": obj(&[("id", i()), ("hub_school_id", i()), ("partner_school_id", i()), ("subject", s()),
            ("grade", s()), ("term", s()), ("owner", s())], &["hub_school_id", "partner_school_id", "subject", "grade", "term"]),
        "Term": obj(&[("id", i()), ("name", s()), ("starts_on", json!({"type": "string", "format": "date"})),
            ("ends_on", json!({"type": "string", "format": "date"}))], &["name", "starts_on", "ends_on"]),
        "Site": site.clone(),
        "Slot": obj(&[("id", i()), ("term_id", i()), ("weekday", json!({"type": "integer", "minimum": 1, "maximum": 7})),
            ("period", i()), ("starts", s()), ("ends", s()), ("subject", s()), ("grade", s()), ("mode", modes.clone()),
            ("hub_teacher_id", i()), ("hub_classroom_id", i()), ("sites", arr(r("Site")))],
            &["term_id", "weekday", "period", "starts", "ends", "subject", "grade", "mode", "hub_teacher_id", "hub_classroom_id", "sites"]),
        "Lesson": obj(&[("id", i()), ("slot_id", oi()), ("lesson_date", json!({"type": ["string", "null"]})), ("mode", modes.clone()),
            ("title", s()), ("subject", s()), ("grade", s()), ("textbook", s()), ("chapter", s()),
            ("hub_teacher_id", i()), ("hub_classroom_id", i()), ("starts_at", i()), ("ends_at", i()),
            ("state", states.clone()), ("ended_at", oi()), ("sites", arr(r("Site"))), ("room", s()), ("starts", s()), ("ends", s()),
            ("override_pairing", b())],
            &["mode", "subject", "grade", "hub_teacher_id", "hub_classroom_id", "starts_at", "ends_at"]),
        "DateRange": obj(&[("from", s()), ("to", s())], &["from", "to"]),
        "Generated": obj(&[("created", i()), ("from", s()), ("to", s())], &["created"]),
        "ImportResult": obj(&[("imported", i())], &["imported"]),
        "UsersImported": obj(&[("imported", i()), ("updated", i()),
            ("created", arr(obj(&[("id", i()), ("username", s()), ("password", s())], &["id", "username", "password"])))],
            &["imported", "created", "updated"]),
        "Join": obj(&[("lesson", i()), ("mode", modes), ("state", states), ("room", s()), ("part", s()),
            ("publish", b()), ("needs_speak_grant", b()), ("token", s()), ("whip", s()), ("whep", s()),
            ("events", s()), ("hub_classroom_id", i()), ("spotlight", oi())], &["lesson", "token", "whip", "whep"]),
        "Hand": obj(&[("raised", b())], &["raised"]),
        "Speak": obj(&[("classroom_id", i()), ("granted", b())], &["classroom_id", "granted"]),
        "Spotlight": obj(&[("classroom_id", oi())], &[]),
        "LiveState": obj(&[("seq", i()), ("hands", arr(i())), ("speakers", arr(i())), ("spotlight", oi()),
            ("present", arr(obj(&[("part", s()), ("publishing", i()), ("watching", i())], &["part"]))),
            ("links", arr(r("LinkSummary")))], &["seq"]),
        "LinkSummary": obj(&[("part", s()), ("grade", e(&["good", "fair", "poor"])),
            ("rtt_ms", num_or_null()), ("loss_pct", num_or_null()), ("kbps_in", num()), ("kbps_out", num()),
            ("sessions", i())], &["part", "grade", "kbps_in", "kbps_out", "sessions"]),
        "LessonEvent": {
            "description": "One server-sent event of GET /api/lessons/{id}/events (the SSE `event:` is `kind`, \
                `id:` is `seq`). data by kind: joined/left/published/unpublished {part}; hand {classroom, raised}; \
                speak {classroom, granted}; spotlight {classroom}; state {state, lesson}; \
                quality {links: [LinkSummary]} (when a participant's link grade changes: good = loss < 2 % and \
                RTT < 150 ms, poor = loss >= 8 % or RTT >= 400 ms, else fair); resync {live: LiveState, state}.",
            "type": "object",
            "properties": {
                "seq": i(),
                "kind": e(&["joined", "left", "published", "unpublished", "hand", "speak", "spotlight",
                    "state", "quality", "resync"]),
                "at": i(),
                "data": {"type": "object"}
            },
            "required": ["seq", "kind", "data"]
        },
        "Today": obj(&[("now", i()), ("date", s()), ("current", r("Lesson")), ("next", r("Lesson")), ("lessons", arr(r("Lesson")))],
            &["now", "date", "lessons"]),
    })
}

fn content(schema: &str) -> Value {
    match schema {
        "csv" => json!({"text/csv": {"schema": {"type": "string"}}}),
        "event-stream" => json!({"text/event-stream": {"schema": {"type": "string",
            "description": "Server-sent events; each data line is a LessonEvent",
            "contentSchema": r("LessonEvent")}}}),
        name => match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(inner) => json!({"application/json": {"schema": arr(r(inner))}}),
            None => json!({"application/json": {"schema": r(name)}}),
        },
    }
}

/// The document.
pub fn document() -> Value {
    let problem = json!({"application/problem+json": {"schema": r("Problem")}});
    let mut paths = Map::new();
    for rule in ROUTES {
        let mut op = Map::new();
        op.insert("summary".into(), json!(rule.summary));
        op.insert("tags".into(), json!([rule.tag]));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}_{}",
                rule.method.to_lowercase(),
                rule.path
                    .trim_start_matches("/api/")
                    .replace(['/', '.', '{', '}'], "_")
            )),
        );
        let params: Vec<Value> = rule
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": i()}))
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), json!(params));
        }
        match rule.allow {
            Allow::Anyone => {
                op.insert("security".into(), json!([]));
            }
            Allow::Roles(roles) => {
                op.insert(
                    "x-roles".into(),
                    json!(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
                );
            }
        }
        if let Some(body) = rule.body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": content(body)}),
            );
        }
        let ok = match (rule.method, rule.response) {
            ("POST", Some(_))
                if !rule.path.contains('{')
                    && rule.body.is_some_and(|b| b != "csv")
                    && !rule.path.ends_with("login")
                    && !rule.path.ends_with("generate") =>
            {
                "201"
            }
            (_, Some(_)) => "200",
            (_, None) if rule.path.ends_with("openapi.json") => "200",
            (_, None) => "204",
        };
        let mut responses = Map::new();
        let mut success = json!({"description": "success"});
        if let Some(resp) = rule.response {
            success["content"] = content(resp);
        }
        responses.insert(ok.into(), success);
        for (code, what) in [
            ("400", "malformed request"),
            (
                "401",
                "not logged in, or the credentials are invalid, expired or revoked",
            ),
            ("403", "this role, or this caller, may not do this"),
            ("404", "no such row"),
            (
                "409",
                "conflict (duplicate, timetable clash, wrong lesson mode, still referenced)",
            ),
            (
                "422",
                "a field is wrong; CSV imports list every bad row and column",
            ),
            (
                "429",
                "a limit was reached (logins, lessons per day); see Retry-After",
            ),
            (
                "503",
                "the database is unavailable or the server is shedding load; see Retry-After",
            ),
        ] {
            responses.insert(
                code.into(),
                json!({"description": what, "content": problem}),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(rule.path.to_string())
            .or_insert_with(|| json!({}));
        entry[rule.method.to_lowercase()] = Value::Object(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "classrelay API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Schools, classrooms, pairings, the term timetable and lessons of the three classrooms \
                (三个课堂). Log in with POST /api/login (cookie or bearer), or send a classroom device token as a \
                bearer. Media goes over WHIP/WHEP with the token from POST /api/lessons/{id}/join. Every error is \
                application/problem+json; x-roles names who may call each operation."
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": super::api::COOKIE},
                "bearer": {"type": "http", "scheme": "bearer"}
            }
        },
        "security": [{"session": []}, {"bearer": []}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lesson_events_and_link_quality_are_described() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["LiveState"]["properties"]["links"]["items"]["$ref"],
            "#/components/schemas/LinkSummary"
        );
        assert_eq!(
            schemas["LinkSummary"]["properties"]["grade"]["enum"],
            json!(["good", "fair", "poor"])
        );
        let kinds = schemas["LessonEvent"]["properties"]["kind"]["enum"]
            .as_array()
            .unwrap();
        for k in ["joined", "left", "spotlight", "state", "quality"] {
            assert!(kinds.contains(&json!(k)), "{k}");
        }
        let events = &doc["paths"]["/api/lessons/{id}/events"]["get"];
        assert!(events["summary"].as_str().unwrap().contains("quality"));
        assert_eq!(
            events["responses"]["200"]["content"]["text/event-stream"]["schema"]["contentSchema"]
                ["$ref"],
            "#/components/schemas/LessonEvent"
        );
    }
}
