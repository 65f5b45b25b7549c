//! Alertmanager's API v2, the part `amtool`, Prometheus, vmalert and
//! Grafana use: alerts (list and post), silences (list, get, create,
//! update, expire), receivers and status.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::dispatch::{Alertmanager, now_ms};
use super::matcher::Matcher;
use super::store::{AmAlert, Silence, SilenceMatcher, parse_rfc3339, rfc3339};

fn json_response(status: StatusCode, body: Json) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        Json::String(msg.into()).to_string(),
    )
        .into_response()
}

struct Query {
    filters: Vec<Matcher>,
    flags: BTreeMap<String, bool>,
    receiver: Option<regex::Regex>,
}

fn parse_query(q: Option<&str>) -> Result<Query, String> {
    let mut out = Query {
        filters: Vec::new(),
        flags: BTreeMap::new(),
        receiver: None,
    };
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "filter" => out.filters.extend(Matcher::parse_list(&v)?),
            "active" | "silenced" | "inhibited" | "unprocessed" => {
                let b = match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    other => return Err(format!("{k}: invalid boolean {other:?}")),
                };
                out.flags.insert(k.into_owned(), b);
            }
            "receiver" if !v.is_empty() => {
                out.receiver = Some(regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("receiver: {e}"))?);
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn get_alerts(State(am): State<Arc<Alertmanager>>, RawQuery(q): RawQuery) -> Response {
    let q = match parse_query(q.as_deref()) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let flag = |name: &str| q.flags.get(name).copied().unwrap_or(true);
    let now = now_ms();
    let list: Vec<Json> = am
        .alerts()
        .into_iter()
        .filter(|(a, s, receivers)| {
            let silenced = !s.silenced_by.is_empty();
            let inhibited = !s.inhibited_by.is_empty();
            !a.resolved(now)
                && q.filters.iter().all(|m| m.matches(&a.labels))
                && (flag("silenced") || !silenced)
                && (flag("inhibited") || !inhibited)
                && (flag("active") || silenced || inhibited)
                && q.receiver
                    .as_ref()
                    .is_none_or(|re| receivers.iter().any(|r| re.is_match(r)))
        })
        .map(|(a, s, receivers)| {
            let state = if s.silenced_by.is_empty() && s.inhibited_by.is_empty() {
                "active"
            } else {
                "suppressed"
            };
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(a.ends_at),
                "updatedAt": rfc3339(a.updated_at),
                "generatorURL": a.generator_url,
                "fingerprint": format!("{:016x}", a.fingerprint()),
                "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
                "status": {"state": state, "silencedBy": s.silenced_by, "inhibitedBy": s.inhibited_by},
            })
        })
        .collect();
    json_response(StatusCode::OK, Json::Array(list))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// Checks posted alerts and converts them.
pub fn parse_alerts(body: &[u8]) -> Result<Vec<AmAlert>, String> {
    let posted: Vec<PostableAlert> = serde_json::from_slice(body).map_err(|e| format!("invalid alerts: {e}"))?;
    let mut out = Vec::with_capacity(posted.len());
    for (i, p) in posted.into_iter().enumerate() {
        let labels: BTreeMap<String, String> = p.labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        if labels.is_empty() {
            return Err(format!("alert {i}: at least one label pair required"));
        }
        for k in labels.keys() {
            if !crate::rules::valid_label_name(k) {
                return Err(format!("alert {i}: invalid label name {k:?}"));
            }
        }
        let starts_at = parse_rfc3339(p.starts_at.as_deref().unwrap_or("")).map_err(|e| format!("alert {i}: {e}"))?;
        let ends_at = parse_rfc3339(p.ends_at.as_deref().unwrap_or("")).map_err(|e| format!("alert {i}: {e}"))?;
        if starts_at != 0 && ends_at != 0 && ends_at < starts_at {
            return Err(format!("alert {i}: start time must be before end time"));
        }
        out.push(AmAlert {
            labels,
            annotations: p.annotations,
            starts_at,
            ends_at,
            generator_url: p.generator_url.unwrap_or_default(),
            updated_at: 0,
            timeout: false,
        });
    }
    Ok(out)
}

async fn post_alerts(State(am): State<Arc<Alertmanager>>, body: Bytes) -> Response {
    match parse_alerts(&body) {
        Ok(alerts) => {
            am.put(alerts);
            (StatusCode::OK, "").into_response()
        }
        Err(e) => bad_request(e),
    }
}

fn silence_json(s: &Silence, now: i64) -> Json {
    json!({
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": rfc3339(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "startsAt": rfc3339(s.starts_at),
        "endsAt": rfc3339(s.ends_at),
        "matchers": s.matchers,
    })
}

async fn get_silences(State(am): State<Arc<Alertmanager>>, RawQuery(q): RawQuery) -> Response {
    let q = match parse_query(q.as_deref()) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let now = now_ms();
    let mut list = am.silences();
    // Active first, then pending, then expired (as Alertmanager sorts).
    let rank = |s: &Silence| match s.state(now) {
        "active" => 0,
        "pending" => 1,
        _ => 2,
    };
    list.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.ends_at.cmp(&b.ends_at)));
    let out: Vec<Json> = list
        .iter()
        .filter(|s| {
            q.filters.iter().all(|f| {
                s.matchers
                    .iter()
                    .any(|m| m.name == f.name && f.matches(&[(m.name.clone(), m.value.clone())].into_iter().collect()))
            })
        })
        .map(|s| silence_json(s, now))
        .collect();
    json_response(StatusCode::OK, Json::Array(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

async fn post_silence(State(am): State<Arc<Alertmanager>>, body: Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("invalid silence: {e}")),
    };
    let (starts_at, ends_at) = match (parse_rfc3339(&p.starts_at), parse_rfc3339(&p.ends_at)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return bad_request(e),
    };
    if p.created_by.is_empty() {
        return bad_request("silence invalid: creator information missing");
    }
    if p.comment.is_empty() {
        return bad_request("silence invalid: comment missing");
    }
    let s = Silence {
        id: p.id.unwrap_or_default(),
        matchers: p.matchers,
        starts_at,
        ends_at,
        created_by: p.created_by,
        comment: p.comment,
        updated_at: 0,
    };
    match am.upsert_silence(s) {
        Ok(id) => json_response(StatusCode::OK, json!({ "silenceID": id })),
        Err(e) if e.contains("not found") => (StatusCode::NOT_FOUND, e).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn get_silence(State(am): State<Arc<Alertmanager>>, Path(id): Path<String>) -> Response {
    match am.silences().into_iter().find(|s| s.id == id) {
        Some(s) => json_response(StatusCode::OK, silence_json(&s, now_ms())),
        None => (StatusCode::NOT_FOUND, format!("silence {id} not found")).into_response(),
    }
}

async fn delete_silence(State(am): State<Arc<Alertmanager>>, Path(id): Path<String>) -> Response {
    match am.expire_silence(&id) {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) if e.contains("not found") => (StatusCode::NOT_FOUND, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn receivers(State(am): State<Arc<Alertmanager>>) -> Response {
    let list: Vec<Json> = am.receiver_names().iter().map(|n| json!({ "name": n })).collect();
    json_response(StatusCode::OK, Json::Array(list))
}

async fn status(State(am): State<Arc<Alertmanager>>) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "cluster": {"status": "disabled", "peers": []},
            "config": {"original": am.config().original},
            "uptime": rfc3339(am.started_at()),
            "versionInfo": {
                "version": env!("CARGO_PKG_VERSION"),
                "branch": "",
                "revision": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "sightline",
            },
        }),
    )
}

/// The API v2 routes.
pub fn router(am: Arc<Alertmanager>) -> Router {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/status", get(status))
        .route("/internal/v1/nflog", axum::routing::post(merge_nflog))
        .with_state(am)
}

/// `POST /internal/v1/nflog`: notification log entries from a peer site.
async fn merge_nflog(
    State(am): State<Arc<Alertmanager>>,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, (axum::http::StatusCode, String)> {
    let entries: Vec<(String, super::store::NflogEntry)> = serde_json::from_slice(&body).map_err(|e| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("invalid notification log entries: {e}"),
        )
    })?;
    let taken = am.merge_nflog(entries);
    Ok(axum::Json(serde_json::json!({ "taken": taken })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_alerts_are_checked() {
        let ok = parse_alerts(br#"[{"labels":{"alertname":"A"},"startsAt":"2023-11-14T22:13:20Z"}]"#).unwrap();
        assert_eq!(ok[0].starts_at, 1_700_000_000_000);
        assert_eq!(ok[0].ends_at, 0);
        for (body, want) in [
            (&br#"[{"labels":{}}]"#[..], "at least one label"),
            (br#"[{"labels":{"1x":"a"}}]"#, "invalid label name"),
            (
                br#"[{"labels":{"a":"b"},"startsAt":"2023-11-14T22:13:20Z","endsAt":"2020-01-01T00:00:00Z"}]"#,
                "before end",
            ),
            (br#"[{"labels":{"a":"b"},"startsAt":"soon"}]"#, "invalid time"),
            (br#"{"labels":{}}"#, "invalid alerts"),
        ] {
            let e = parse_alerts(body).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
