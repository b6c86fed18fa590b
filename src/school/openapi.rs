//! The OpenAPI 3.1 document at `/api/openapi.json`, built from [`super::api::ROUTES`] (so a
//! route cannot exist without being described) plus the component schemas below.
//!
//! Written by hand rather than derived: the route table already holds what a derive would
//! need, and the schemas are short.

use serde_json::{json, Map, Value};

use super::api::{Allow, ROUTES};

fn object(props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    json!({"type": "object", "properties": p, "required": required})
}

fn string() -> Value {
    json!({"type": "string"})
}
fn int() -> Value {
    json!({"type": "integer", "format": "int64"})
}
fn int_or_null() -> Value {
    json!({"type": ["integer", "null"], "format": "int64"})
}
fn number() -> Value {
    json!({"type": "number"})
}
fn number_or_null() -> Value {
    json!({"type": ["number", "null"]})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}
fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
fn nullable(v: Value) -> Value {
    json!({"anyOf": [v, {"type": "null"}]})
}
fn array_of(v: Value) -> Value {
    json!({"type": "array", "items": v})
}

fn schemas() -> Value {
    let site = object(
        &[
            ("classroom_id", int()),
            ("assisting_teacher_id", int_or_null()),
        ],
        &["classroom_id"],
    );
    let modes = one_of(&["delivery", "master", "sync"]);
    let states = one_of(&["scheduled", "open", "live", "ended"]);
    let roles = one_of(&["admin", "teacher", "classroom", "observer", "inspector"]);
    let scopes = one_of(&["school", "county", "city", "province", "global"]);
    // Recording control (issue 20); added after, as one more entry would pass `json!`'s
    // recursion limit.
    let recording_switch = object(&[("on", boolean())], &["on"]);
    let recording_state = object(
        &[
            ("lesson", int()),
            ("recording", boolean()),
            (
                "recordings",
                array_of(object(
                    &[
                        ("id", int()),
                        ("room", string()),
                        ("state", one_of(&["recording", "stopped", "failed"])),
                        ("started_at", int()),
                        ("ended_at", int_or_null()),
                        ("capture_path", string()),
                        ("error", json!({"type": ["string", "null"]})),
                    ],
                    &["id", "state"],
                )),
            ),
        ],
        &["lesson", "recording"],
    );
    let mut all = json!({
        "Problem": object(&[("type", string()), ("title", string()), ("status", int()), ("detail", string()),
            ("errors", array_of(object(&[("row", int()), ("column", string()), ("message", string())], &["row", "column", "message"]))),
            ("error_count", int()), ("limit", int()), ("max_rows", int()), ("max_bytes", int())],
            &["type", "title", "status", "detail"]),
        "Login": object(&[("username", string()), ("password", string())], &["username", "password"]),
        "LoginResult": object(&[("token", string()), ("user", schema_ref("User")), ("expires_at", int())], &["token", "user", "expires_at"]),
        "Principal": object(&[("kind", one_of(&["user", "device"])), ("id", int()), ("role", roles.clone()),
            ("username", string()), ("display_name", string()), ("school_id", int_or_null()), ("teacher_id", int_or_null()),
            ("scope", schema_ref("Scope")), ("classroom_id", int()), ("label", string())], &["kind", "id"]),
        "Scope": object(&[("level", scopes.clone()), ("province", string()), ("city", string()), ("region_id", int()), ("school_id", int())],
            &["level"]),
        "User": object(&[("id", int()), ("username", string()), ("display_name", string()), ("role", roles.clone()),
            ("school_id", int_or_null()), ("teacher_id", int_or_null()), ("disabled", boolean()), ("scope", scopes.clone()),
            ("region_id", int_or_null())], &["id", "username", "role", "scope"]),
        "NewUser": object(&[("username", string()), ("display_name", string()), ("role", roles), ("password", string()),
            ("school_id", int_or_null()), ("teacher_id", int_or_null()), ("scope", scopes.clone()), ("region_id", int_or_null())],
            &["username", "display_name", "role", "password"]),
        "UserPatch": object(&[("password", string()), ("disabled", boolean()), ("scope", scopes), ("school_id", int_or_null()),
            ("region_id", int_or_null())], &[]),
        "NewDevice": object(&[("label", string())], &["label"]),
        "DeviceToken": object(&[("id", int()), ("classroom_id", int()), ("label", string()), ("created_at", int()), ("revoked_at", int_or_null())],
            &["id", "classroom_id", "label", "created_at"]),
        "IssuedDevice": object(&[("token", string()), ("device", schema_ref("DeviceToken"))], &["token", "device"]),
        "Region": object(&[("id", int()), ("province", string()), ("city", string()), ("county", string())], &["province", "city", "county"]),
        "School": object(&[("id", int()), ("code", string()), ("name", string()), ("kind", one_of(&["hub", "partner"])), ("region_id", int_or_null()),
            ("max_master_sites", int())],
            &["code", "name", "kind"]),
        "Classroom": object(&[("id", int()), ("school_id", int()), ("name", string()),
            ("kind", one_of(&["hub", "interactive", "receive_only"])), ("device", string())], &["school_id", "name", "kind"]),
        "Teacher": object(&[("id", int()), ("code", string()), ("name", string()), ("school_id", int()), ("subjects", string())],
            &["code", "name", "school_id"]),
        "Pairing": object(&[("id", int()), ("hub_school_id", int()), ("partner_school_id", int()), ("subject", string()),
            ("grade", string()), ("term", string()), ("owner", string())], &["hub_school_id", "partner_school_id", "subject", "grade", "term"]),
        "Term": object(&[("id", int()), ("name", string()), ("starts_on", json!({"type": "string", "format": "date"})),
            ("ends_on", json!({"type": "string", "format": "date"}))], &["name", "starts_on", "ends_on"]),
        "Site": site.clone(),
        "Slot": object(&[("id", int()), ("term_id", int()), ("weekday", json!({"type": "integer", "minimum": 1, "maximum": 7})),
            ("period", int()), ("starts", string()), ("ends", string()), ("subject", string()), ("grade", string()), ("mode", modes.clone()),
            ("hub_teacher_id", int()), ("hub_classroom_id", int()), ("sites", array_of(schema_ref("Site")))],
            &["term_id", "weekday", "period", "starts", "ends", "subject", "grade", "mode", "hub_teacher_id", "hub_classroom_id", "sites"]),
        "Lesson": object(&[("id", int()), ("slot_id", int_or_null()), ("lesson_date", json!({"type": ["string", "null"]})), ("mode", modes.clone()),
            ("title", string()), ("subject", string()), ("grade", string()), ("textbook", string()), ("chapter", string()),
            ("hub_teacher_id", int()), ("hub_classroom_id", int()), ("starts_at", int()), ("ends_at", int()),
            ("state", states.clone()), ("ended_at", int_or_null()), ("sites", array_of(schema_ref("Site"))), ("room", string()), ("starts", string()), ("ends", string()),
            ("override_pairing", boolean())],
            &["mode", "subject", "grade", "hub_teacher_id", "hub_classroom_id", "starts_at", "ends_at"]),
        "DateRange": object(&[("from", string()), ("to", string())], &["from", "to"]),
        "Generated": object(&[("created", int()), ("from", string()), ("to", string())], &["created"]),
        "ImportResult": object(&[("imported", int())], &["imported"]),
        "UsersImported": object(&[("imported", int()), ("updated", int()),
            ("created", array_of(object(&[("id", int()), ("username", string()), ("password", string())], &["id", "username", "password"])))],
            &["imported", "created", "updated"]),
        "Join": object(&[("lesson", int()), ("mode", modes), ("state", states), ("room", string()), ("part", string()),
            ("publish", boolean()), ("needs_speak_grant", boolean()), ("token", string()), ("whip", string()), ("whep", string()),
            ("events", string()), ("hub_classroom_id", int()), ("spotlight", int_or_null())], &["lesson", "token", "whip", "whep"]),
        "Hand": object(&[("raised", boolean())], &["raised"]),
        "Speak": object(&[("classroom_id", int()), ("granted", boolean())], &["classroom_id", "granted"]),
        "Spotlight": object(&[("classroom_id", int_or_null())], &[]),
        "LiveState": object(&[("seq", int()), ("hands", array_of(int())), ("speakers", array_of(int())), ("spotlight", int_or_null()),
            ("present", array_of(object(&[("part", string()), ("publishing", int()), ("watching", int())], &["part"]))),
            ("links", array_of(schema_ref("LinkSummary"))), ("recording", boolean())], &["seq"]),
        "LinkSummary": object(&[("part", string()), ("grade", one_of(&["good", "fair", "poor"])),
            ("rtt_ms", number_or_null()), ("loss_pct", number_or_null()), ("kbps_in", number()), ("kbps_out", number()),
            ("sessions", int())], &["part", "grade", "kbps_in", "kbps_out", "sessions"]),
        "LessonEvent": {
            "description": "One server-sent event of GET /api/lessons/{id}/events (the SSE `event:` is `kind`, \
                `id:` is `seq`). data by kind: joined/left/published/unpublished {part}; hand {classroom, raised}; \
                speak {classroom, granted}; spotlight {classroom}; state {state, lesson}; \
                quality {links: [LinkSummary]} (when a participant's link grade changes: good = loss < 2 % and \
                RTT < 150 ms, poor = loss >= 8 % or RTT >= 400 ms, else fair); resync {live: LiveState, state}.",
            "type": "object",
            "properties": {
                "seq": int(),
                "kind": one_of(&["joined", "left", "published", "unpublished", "hand", "speak", "spotlight",
                    "state", "quality", "resync"]),
                "at": int(),
                "data": {"type": "object"}
            },
            "required": ["seq", "kind", "data"]
        },
        "Today": object(&[("now", int()), ("date", string()), ("current", nullable(schema_ref("Lesson"))), ("next", nullable(schema_ref("Lesson"))), ("lessons", array_of(schema_ref("Lesson")))],
            &["now", "date", "lessons"]),
    });
    all["RecordingSwitch"] = recording_switch;
    all["RecordingState"] = recording_state;
    all
}

fn content(schema: &str) -> Value {
    match schema {
        "csv" => json!({"text/csv": {"schema": {"type": "string"}}}),
        "event-stream" => json!({"text/event-stream": {"schema": {"type": "string",
            "description": "Server-sent events; each data line is a LessonEvent",
            "contentSchema": schema_ref("LessonEvent")}}}),
        name => match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(inner) => json!({"application/json": {"schema": array_of(schema_ref(inner))}}),
            None => json!({"application/json": {"schema": schema_ref(name)}}),
        },
    }
}

/// The document.
pub(crate) fn document() -> Value {
    let problem = json!({"application/problem+json": {"schema": schema_ref("Problem")}});
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
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": int()}))
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
