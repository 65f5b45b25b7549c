//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus' format, which
//! Grafana's alerting and rule views read.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value as Json, json};

use crate::am::matcher::Matcher;
use crate::inventory::Inventory;
use crate::manager::RuleManager;
use crate::rule::{Alert, AlertState, RuleKind};
use crate::timefmt::{float_e, rfc3339 as time_json};

fn value_json(v: f64) -> String {
    float_e(v, false)
}

fn alert_json(a: &Alert) -> Json {
    let mut j = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": time_json(a.active_at),
        "value": value_json(a.value),
    });
    if a.keep_firing_since != 0 {
        j["keepFiringSince"] = json!(time_json(a.keep_firing_since));
    }
    j
}

fn success(data: Json) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "success", "data": data}).to_string(),
    )
        .into_response()
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "error", "errorType": "bad_data", "error": msg}).to_string(),
    )
        .into_response()
}

#[derive(Default)]
struct RuleFilter {
    kind: Option<String>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl RuleFilter {
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut f = RuleFilter::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "type" => match v.as_ref() {
                    "alert" | "record" => f.kind = Some(v.into_owned()),
                    "" => {}
                    other => return Err(format!("not supported value {other:?}")),
                },
                "rule_name[]" => f.names.push(v.into_owned()),
                "rule_group[]" => f.groups.push(v.into_owned()),
                "file[]" => f.files.push(v.into_owned()),
                "exclude_alerts" => {
                    f.exclude_alerts = match v.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        other => return Err(format!("parameter \"exclude_alerts\": invalid boolean {other:?}")),
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }

    fn filtering(&self) -> bool {
        self.kind.is_some() || !self.names.is_empty() || !self.groups.is_empty() || !self.files.is_empty()
    }
}

async fn rules(State(m): State<Arc<RuleManager>>, RawQuery(q): RawQuery) -> Response {
    let filter = match RuleFilter::parse(q.as_deref()) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let mut groups = Vec::new();
    for g in m.groups() {
        let spec = &g.spec;
        if (!filter.groups.is_empty() && !filter.groups.contains(&spec.name))
            || (!filter.files.is_empty() && !filter.files.contains(&spec.file))
        {
            continue;
        }
        let mut rules = Vec::new();
        for (rule, state) in spec.rules.iter().zip(&g.states) {
            if !filter.names.is_empty() && !filter.names.contains(&rule.name) {
                continue;
            }
            let st = state.lock();
            let common = |mut j: Json| {
                j["health"] = json!(st.health.as_str());
                j["evaluationTime"] = json!(st.evaluation_seconds);
                j["lastEvaluation"] = json!(time_json(st.last_evaluation));
                if !st.last_error.is_empty() {
                    j["lastError"] = json!(st.last_error);
                }
                j
            };
            match &rule.kind {
                RuleKind::Recording => {
                    if filter.kind.as_deref() == Some("alert") {
                        continue;
                    }
                    rules.push(common(json!({
                        "name": rule.name,
                        "query": rule.expr,
                        "labels": rule.labels,
                        "type": "recording",
                    })));
                }
                RuleKind::Alerting {
                    hold,
                    keep_firing_for,
                    annotations,
                } => {
                    if filter.kind.as_deref() == Some("record") {
                        continue;
                    }
                    let mut active: Vec<&Alert> = st.active.values().filter(|a| a.resolved_at == 0).collect();
                    active.sort_by(|a, b| a.labels.cmp(&b.labels));
                    let state = st
                        .active
                        .values()
                        .map(|a| a.state)
                        .max()
                        .unwrap_or(AlertState::Inactive);
                    let mut j = json!({
                        "state": state.as_str(),
                        "name": rule.name,
                        "query": rule.expr,
                        "duration": *hold as f64 / 1000.0,
                        "keepFiringFor": *keep_firing_for as f64 / 1000.0,
                        "labels": rule.labels,
                        "annotations": annotations,
                        "type": "alerting",
                    });
                    if !filter.exclude_alerts {
                        j["alerts"] = Json::Array(active.into_iter().map(alert_json).collect());
                    }
                    rules.push(common(j));
                }
            }
        }
        if rules.is_empty() && filter.filtering() {
            continue;
        }
        let stats = g.stats.lock().clone();
        groups.push(json!({
            "name": spec.name,
            "file": spec.file,
            "rules": rules,
            "interval": spec.interval as f64 / 1000.0,
            "limit": spec.limit,
            "evaluationTime": stats.evaluation_seconds,
            "lastEvaluation": time_json(stats.last_evaluation),
        }));
    }
    success(json!({ "groups": groups }))
}

/// Every pending or firing alert of every rule.
pub fn active_alerts(m: &RuleManager) -> Vec<Alert> {
    let mut out = Vec::new();
    for g in m.groups() {
        for st in &g.states {
            out.extend(st.lock().active.values().filter(|a| a.resolved_at == 0).cloned());
        }
    }
    out.sort_by(|a: &Alert, b: &Alert| a.labels.cmp(&b.labels));
    out
}

async fn alerts(State(m): State<Arc<RuleManager>>) -> Response {
    let list: Vec<Json> = active_alerts(&m).iter().map(alert_json).collect();
    success(json!({ "alerts": list }))
}

async fn inventory_list(State(inv): State<Arc<Inventory>>) -> Response {
    let list: Vec<Json> = inv
        .list()
        .into_iter()
        .map(|(l, seen)| json!({"labels": l, "firstSeen": time_json(seen.first), "lastSeen": time_json(seen.last)}))
        .collect();
    success(Json::Array(list))
}

async fn inventory_retire(State(inv): State<Arc<Inventory>>, RawQuery(q): RawQuery) -> Response {
    let mut sets = Vec::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        if k == "match[]" {
            match Matcher::parse_list(&v) {
                Ok(m) if !m.is_empty() => sets.push(m),
                Ok(_) => return bad_request("match[]: empty selector would retire everything; name labels".into()),
                Err(e) => return bad_request(format!("match[]: {e}")),
            }
        }
    }
    if sets.is_empty() {
        return bad_request("give the targets to retire as match[]={site=\"…\"}".into());
    }
    let retired: usize = sets.iter().map(|m| inv.retire(m)).sum();
    success(json!({ "retired": retired }))
}

/// `GET /api/v1/inventory` lists what should be reporting;
/// `DELETE /api/v1/inventory?match[]=…` retires targets for good.
pub fn inventory_router(inv: Arc<Inventory>) -> Router {
    Router::new()
        .route("/api/v1/inventory", get(inventory_list).delete(inventory_retire))
        .with_state(inv)
}

/// The routes, to merge into the server's router.
pub fn router(manager: Arc<RuleManager>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_reject_bad_values() {
        let f = RuleFilter::parse(Some("type=alert&rule_name[]=A&rule_name[]=B&exclude_alerts=true")).unwrap();
        assert_eq!(f.kind.as_deref(), Some("alert"));
        assert_eq!(f.names, vec!["A", "B"]);
        assert!(f.exclude_alerts);
        assert!(RuleFilter::parse(Some("type=bogus")).is_err());
        assert!(RuleFilter::parse(Some("exclude_alerts=maybe")).is_err());
    }
}
