//! The OpenAPI 3.1 document at `/api/openapi.json`, derived with `utoipa`: the component
//! schemas from `#[derive(ToSchema)]` on the real request and response types, the operations
//! from `#[utoipa::path]` on the handlers (and, for the generic entity handlers, from each
//! entity type), and who may call each route from [`super::api::ROUTES`]. Must never describe
//! a type by hand: a schema here is a type's derive or nothing.
//!
//! The router is built from `ROUTES` (so no route exists without an access rule); the tests
//! below fail when the document and `ROUTES` disagree on a path or a method. Parts mounted
//! above the school side (observation) bring their operations and route table as a [`Part`];
//! `http` assembles the served document with them ([`document_with`]) and hands it to the
//! handler as a [`Served`] extension, since `school` must never import those modules.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::api::{Allow, Operations, RouteRule, ROUTES};
use super::model::{Classroom, Entity, Pairing, Region, School, Teacher, Term};

/// The WHIP/WHEP operations of signalling, from the attributes on its handlers.
#[derive(OpenApi)]
#[openapi(paths(
    crate::signal::whip_post,
    crate::signal::whep_post,
    crate::signal::patch_session,
    crate::signal::delete_session,
    crate::signal::whep_layer,
    crate::signal::ice_servers_get
))]
struct Signalling;

/// The schemas no operation names by itself: the entity rows (their operations are made per
/// entity type below) and the problem every error answers with.
#[derive(OpenApi)]
#[openapi(components(schemas(
    Region,
    School,
    Classroom,
    Teacher,
    Pairing,
    Term,
    crate::problem::Problem
)))]
struct Schemas;

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The five operations of the generic entity handlers for `E`, into `paths`.
fn entity_operations<E: Entity + utoipa::ToSchema>(paths: &mut Map<String, Value>) {
    let name = E::name();
    let row = schema_ref(&name);
    let json_of = |schema: Value| json!({"application/json": {"schema": schema}});
    let id = json!({"name": "id", "in": "path", "required": true, "description": "the row's id",
        "schema": {"type": "integer", "format": "int64"}});
    let filters: Vec<Value> = E::FILTERS
        .iter()
        .map(|f| {
            json!({"name": f, "in": "query", "required": false,
            "description": format!("only rows with this {f}"),
            "schema": {"type": "integer", "format": "int64"}})
        })
        .collect();
    let list = format!("/api/{}", E::TABLE);
    let item = format!("{list}/{{id}}");
    let op = |verb: &str, what: &str| format!("{verb}_{}{what}", E::NAME);
    paths.insert(
        list,
        json!({
            "get": {"operationId": op("list_", "s"), "parameters": filters,
                "responses": {"200": {"description": "the rows the caller may read",
                    "content": json_of(json!({"type": "array", "items": row}))}}},
            "post": {"operationId": op("create_", ""),
                "requestBody": {"required": true, "content": json_of(row.clone())},
                "responses": {"201": {"description": "created", "content": json_of(row.clone()),
                    "headers": {"location": {"description": "the new row",
                        "schema": {"type": "string"}}}}}},
        }),
    );
    paths.insert(
        item,
        json!({
            "get": {"operationId": op("get_", ""), "parameters": [id],
                "responses": {"200": {"description": "the row", "content": json_of(row.clone())}}},
            "put": {"operationId": op("update_", ""), "parameters": [id],
                "requestBody": {"required": true, "content": json_of(row.clone())},
                "responses": {"200": {"description": "changed", "content": json_of(row.clone())}}},
            "delete": {"operationId": op("delete_", ""), "parameters": [id],
                "responses": {"204": {"description": "deleted"}}},
        }),
    );
}

/// The errors every operation may answer, each an `application/problem+json` [`Problem`].
///
/// [`Problem`]: crate::problem::Problem
const ERRORS: &[(&str, &str)] = &[
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
];

/// Who may call a route, as the document's `x-classrelay-allow` says it.
fn allow_value(a: Allow) -> Value {
    match a {
        Allow::Anyone => json!("anyone"),
        Allow::Roles(roles) => json!(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
    }
}

/// Adds to `op` (the operation `method path`) its rule from the route `tables`, and the
/// problem answers.
fn complete(method: &str, path: &str, op: &mut Map<String, Value>, tables: &[&[RouteRule]]) {
    if let Some(rule) = tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|r| r.path == path && r.method.eq_ignore_ascii_case(method))
    {
        op.insert("summary".into(), json!(rule.summary));
        op.insert("tags".into(), json!([rule.tag]));
        op.insert("x-classrelay-allow".into(), allow_value(rule.allow));
        if rule.allow == Allow::Anyone {
            op.insert("security".into(), json!([]));
        }
        // The handler's doc comment is for this code's readers, not the API's.
        op.remove("description");
    }
    let body = op.contains_key("requestBody");
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    let problem = json!({"application/problem+json": {"schema": schema_ref("Problem")}});
    let upload = [
        (
            "413",
            "the body is too large (CSV: see max_bytes or max_rows)",
        ),
        (
            "415",
            "the body is not declared with the content type documented here",
        ),
    ];
    let more = upload.into_iter().filter(|_| body);
    for (code, what) in ERRORS.iter().copied().chain(more) {
        responses
            .entry(code)
            .or_insert_with(|| json!({"description": what, "content": problem}));
    }
}

/// A part of the API mounted above the school side: the operations derived from its
/// handlers and the route table its router is built from (who may call each route).
pub(crate) struct Part {
    /// The derived operations and the schemas they name.
    pub ops: utoipa::openapi::OpenApi,
    /// Its route table.
    pub routes: &'static [RouteRule],
}

/// The document `GET /api/openapi.json` serves, when the router that mounts it provides one
/// (the whole API's, from [`document_with`]); without it the handler serves [`document`].
#[derive(Clone)]
pub(crate) struct Served(pub Arc<Value>);

/// The school side's document (school API and signalling).
pub(crate) fn document() -> Value {
    document_with(Vec::new())
}

/// The document of the school side and `parts`.
/// `into.merge(other)`, refusing two different schemas under one name: utoipa's merge keeps
/// the first and drops the second without a word, so one area's type would be documented
/// with another's fields (it happened: two `GradeBody`s). The same type reached from two
/// parts (an identical schema) is fine.
fn merge_parts(into: &mut utoipa::openapi::OpenApi, other: utoipa::openapi::OpenApi) {
    if let (Some(have), Some(add)) = (&into.components, &other.components) {
        for (name, schema) in &add.schemas {
            if let Some(kept) = have.schemas.get(name) {
                // Plain data: serializing cannot fail.
                let same = serde_json::to_value(kept).expect("schema serializes")
                    == serde_json::to_value(schema).expect("schema serializes");
                assert!(
                    same,
                    "two different OpenAPI schemas are named `{name}`: rename one of the types"
                );
            }
        }
    }
    into.merge(other);
}

pub(crate) fn document_with(parts: Vec<Part>) -> Value {
    let mut derived = Operations::openapi();
    merge_parts(&mut derived, Signalling::openapi());
    merge_parts(&mut derived, Schemas::openapi());
    let mut tables: Vec<&[RouteRule]> = vec![ROUTES];
    for p in parts {
        merge_parts(&mut derived, p.ops);
        tables.push(p.routes);
    }
    // Serializing the derived document (plain data) cannot fail.
    let mut doc = serde_json::to_value(derived).expect("the OpenAPI document serializes");
    let paths = doc["paths"].as_object_mut().expect("paths");
    entity_operations::<Region>(paths);
    entity_operations::<School>(paths);
    entity_operations::<Classroom>(paths);
    entity_operations::<Teacher>(paths);
    entity_operations::<Pairing>(paths);
    entity_operations::<Term>(paths);
    for (path, item) in paths.iter_mut() {
        for (method, op) in item.as_object_mut().expect("path item").iter_mut() {
            if let Some(op) = op.as_object_mut() {
                complete(method, path, op, &tables);
            }
        }
    }
    doc["info"] = json!({
        "title": "classrelay API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Schools, classrooms, pairings, the term timetable and lessons of the three classrooms \
            (三个课堂). Log in with POST /api/login (cookie or bearer), or send a classroom device token as a \
            bearer. Media goes over WHIP/WHEP with the token from POST /api/lessons/{id}/join. Every error is \
            application/problem+json; x-classrelay-allow names who may call each /api operation (\"anyone\", \
            or roles), and each handler checks the row against the caller's organisation scope."
    });
    doc["servers"] = json!([{"url": "/"}]);
    doc["components"]["securitySchemes"] = json!({
        "session": {"type": "apiKey", "in": "cookie", "name": super::api::COOKIE},
        "bearer": {"type": "http", "scheme": "bearer",
            "description": "a login session token, a classroom device token, or (WHIP/WHEP) a lesson media token"}
    });
    doc["security"] = json!([{"session": []}, {"bearer": []}]);
    doc
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[derive(utoipa::ToSchema)]
    #[allow(dead_code)]
    struct Clash {
        grade: String,
    }
    mod other {
        #[derive(utoipa::ToSchema)]
        #[schema(as = Clash)]
        #[allow(dead_code)]
        pub(super) struct Clash {
            points: u32,
        }
    }
    #[derive(utoipa::OpenApi)]
    #[openapi(components(schemas(Clash)))]
    struct First;
    #[derive(utoipa::OpenApi)]
    #[openapi(components(schemas(other::Clash)))]
    struct Second;

    #[test]
    #[should_panic(expected = "two different OpenAPI schemas are named `Clash`")]
    fn two_different_schemas_under_one_name_are_refused() {
        let mut doc = First::openapi();
        merge_parts(&mut doc, Second::openapi());
    }

    #[test]
    fn the_same_schema_from_two_parts_merges() {
        let mut doc = First::openapi();
        merge_parts(&mut doc, First::openapi());
        let schemas = &doc.components.expect("components").schemas;
        assert!(schemas.contains_key("Clash"));
    }

    /// `(METHOD, path)` of every operation of the document under `/api`.
    pub(crate) fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                if path.starts_with("/api/") {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// How `doc`'s `/api` operations and the route `tables` disagree: a route without an
    /// operation, an operation without a route, or a summary or `x-classrelay-allow` that is
    /// not the route's. Empty when they agree.
    pub(crate) fn route_mismatches(doc: &Value, tables: &[&[RouteRule]]) -> Vec<String> {
        let rules: Vec<&RouteRule> = tables.iter().flat_map(|t| t.iter()).collect();
        let routes: BTreeSet<(String, String)> = rules
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let docs = documented(doc);
        let mut out: Vec<String> = routes
            .difference(&docs)
            .map(|(m, p)| format!("route without an operation: {m} {p}"))
            .collect();
        out.extend(
            docs.difference(&routes)
                .map(|(m, p)| format!("operation without a route: {m} {p}")),
        );
        for rule in rules {
            let op = &doc["paths"][rule.path][rule.method.to_lowercase()];
            if op["x-classrelay-allow"] != allow_value(rule.allow) || op["summary"] != rule.summary
            {
                out.push(format!(
                    "{} {}: allow {} and summary {} are not the route's",
                    rule.method, rule.path, op["x-classrelay-allow"], op["summary"]
                ));
            }
        }
        out
    }

    /// The router is built from `ROUTES`; the document must list exactly its routes with the
    /// same methods: a route without a documented operation, an operation without a route,
    /// or a documented method the route does not have all fail here.
    #[test]
    fn the_document_lists_exactly_the_routes() {
        let doc = document();
        let routes: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let docs = documented(&doc);
        let undocumented: Vec<_> = routes.difference(&docs).collect();
        let unrouted: Vec<_> = docs.difference(&routes).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes without an operation: {undocumented:?}; operations without a route: {unrouted:?}"
        );
        for rule in ROUTES {
            let op = &doc["paths"][rule.path][rule.method.to_lowercase()];
            assert_eq!(
                op["x-classrelay-allow"],
                allow_value(rule.allow),
                "{rule:?}"
            );
            assert_eq!(op["summary"], rule.summary);
        }
    }

    /// Every `$ref` resolves to a derived component schema.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, schemas: &Map<String, Value>, bad: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let name = r.trim_start_matches("#/components/schemas/");
                        if !schemas.contains_key(name) {
                            bad.push(r.clone());
                        }
                    }
                    m.values().for_each(|v| walk(v, schemas, bad));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, schemas, bad)),
                _ => {}
            }
        }
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut bad = Vec::new();
        walk(&doc, schemas, &mut bad);
        assert!(bad.is_empty(), "unresolved: {bad:?}");
        assert_eq!(doc["openapi"], "3.1.0");
        // Every operation has an id, and no two share one (client generators need both).
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str();
                assert!(
                    id.is_some_and(|i| ids.insert(i.to_string())),
                    "{method} {path}: {id:?}"
                );
            }
        }
    }

    #[test]
    fn lesson_events_and_link_quality_are_described() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["LiveState"]["properties"]["links"]["items"]["$ref"],
            "#/components/schemas/LinkSummary"
        );
        assert_eq!(
            schemas["Grade"]["enum"],
            json!(["good", "fair", "poor"]),
            "{}",
            schemas["Grade"]
        );
        let event = schemas["LessonEvent"]["description"].as_str().unwrap();
        for k in ["joined", "left", "spotlight", "state", "quality"] {
            assert!(event.contains(k), "{k}");
        }
        let events = &doc["paths"]["/api/lessons/{id}/events"]["get"];
        assert!(events["summary"].as_str().unwrap().contains("quality"));
        assert_eq!(
            events["responses"]["200"]["content"]["text/event-stream"]["schema"]["$ref"],
            "#/components/schemas/LessonEvent"
        );
    }

    /// The text enums' schemas name exactly the values serde writes.
    #[test]
    fn text_enums_list_their_stored_names() {
        use crate::school::model::{ClassroomKind, LessonMode, LessonState, SchoolKind};
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let names = |all: &[&str]| json!(all);
        let cases = [
            (
                "LessonMode",
                names(
                    &LessonMode::ALL
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "LessonState",
                names(
                    &LessonState::ALL
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "SchoolKind",
                names(
                    &SchoolKind::ALL
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "ClassroomKind",
                names(
                    &ClassroomKind::ALL
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(schemas[name]["enum"], want, "{name}");
        }
        let roles: Vec<&str> = crate::auth::people::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(schemas["Role"]["enum"], json!(roles));
    }

    #[test]
    fn whip_and_whep_are_described() {
        let doc = document();
        for path in ["/whip/{room}", "/whep/{room}"] {
            let op = &doc["paths"][path]["post"];
            assert!(
                op["requestBody"]["content"]["application/sdp"].is_object(),
                "{op}"
            );
            let created = &op["responses"]["201"];
            assert!(created["content"]["application/sdp"].is_object(), "{op}");
            for h in ["location", "etag", "link"] {
                assert!(created["headers"][h].is_object(), "{path} {h}: {op}");
            }
            assert_eq!(op["security"], json!([{"bearer": []}]));
        }
        assert!(doc["paths"]["/{kind}/{room}/{id}"]["delete"].is_object());
        assert!(doc["paths"]["/{kind}/{room}/{id}"]["patch"].is_object());
        assert!(doc["paths"]["/whep/{room}/{id}/layer"]["post"].is_object());
    }
}
