//! The Alertmanager configuration file, in Alertmanager's spelling: the
//! route tree, inhibition rules, time intervals and receivers (webhook,
//! PagerDuty Events v2, Slack), checked and compiled.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::matcher::{MatchType, Matcher};
use super::timeinterval::TimeInterval;
use crate::rule::Labels;
use crate::rules::valid_label_name;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    global: GlobalDef,
    route: Option<RouteDef>,
    #[serde(default)]
    receivers: Vec<ReceiverDef>,
    #[serde(default)]
    inhibit_rules: Vec<InhibitDef>,
    #[serde(default)]
    time_intervals: Vec<TimeIntervalDef>,
    #[serde(default)]
    mute_time_intervals: Vec<TimeIntervalDef>,
    #[serde(default)]
    templates: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalDef {
    resolve_timeout: Option<String>,
    slack_api_url: Option<String>,
    pagerduty_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDef {
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    continue_: bool,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default, rename = "match")]
    match_: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, String>,
    group_wait: Option<String>,
    group_interval: Option<String>,
    repeat_interval: Option<String>,
    #[serde(default)]
    mute_time_intervals: Vec<String>,
    #[serde(default)]
    active_time_intervals: Vec<String>,
    #[serde(default)]
    routes: Vec<RouteDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverDef {
    name: String,
    #[serde(default)]
    webhook_configs: Vec<WebhookDef>,
    #[serde(default)]
    pagerduty_configs: Vec<PagerDutyDef>,
    #[serde(default)]
    slack_configs: Vec<SlackDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookDef {
    url: String,
    send_resolved: Option<bool>,
    #[serde(default)]
    max_alerts: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PagerDutyDef {
    routing_key: Option<String>,
    url: Option<String>,
    send_resolved: Option<bool>,
    severity: Option<String>,
    client: Option<String>,
    client_url: Option<String>,
    description: Option<String>,
    #[serde(default)]
    details: BTreeMap<String, String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackDef {
    api_url: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    send_resolved: Option<bool>,
    title: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitDef {
    #[serde(default)]
    source_matchers: Vec<String>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    source_match: BTreeMap<String, String>,
    #[serde(default)]
    target_match: BTreeMap<String, String>,
    #[serde(default)]
    source_match_re: BTreeMap<String, String>,
    #[serde(default)]
    target_match_re: BTreeMap<String, String>,
    #[serde(default)]
    equal: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeIntervalDef {
    name: String,
    #[serde(default)]
    time_intervals: Vec<super::timeinterval::TimeIntervalSpec>,
}

/// How alerts are grouped.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label.
    All,
    /// These labels.
    Labels(Vec<String>),
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path key (`{}/{severity="page"}`), part of group keys.
    pub key: String,
    /// The receiver.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// Matchers selecting alerts for this route.
    pub matchers: Vec<Matcher>,
    /// Keep matching siblings after this one.
    pub continue_: bool,
    /// Wait before the first notification of a group (ms).
    pub group_wait: i64,
    /// Wait between notifications about changes (ms).
    pub group_interval: i64,
    /// Wait before repeating an unchanged notification (ms).
    pub repeat_interval: i64,
    /// Muted during these time intervals.
    pub mute_time_intervals: Vec<String>,
    /// Muted outside these time intervals (when any are given).
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    pub routes: Vec<Route>,
}

impl Route {
    /// The routes an alert goes to (deepest matches, siblings after a
    /// match only with `continue`), or none when this route does not match.
    pub fn matching<'a>(&'a self, labels: &Labels) -> Vec<&'a Route> {
        if !super::matcher::all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for child in &self.routes {
            let m = child.matching(labels);
            if !m.is_empty() {
                out.extend(m);
                if !child.continue_ {
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(self);
        }
        out
    }

    /// The group labels of an alert on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// An inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    /// Alerts that mute.
    pub source: Vec<Matcher>,
    /// Alerts that are muted.
    pub target: Vec<Matcher>,
    /// Labels that must be equal on both.
    pub equal: Vec<String>,
}

/// A webhook receiver.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// Also send resolved notifications.
    pub send_resolved: bool,
    /// Most alerts per message (0: all).
    pub max_alerts: usize,
}

/// A PagerDuty Events API v2 receiver.
#[derive(Debug, Clone)]
pub struct PagerDuty {
    /// The integration's routing key.
    pub routing_key: String,
    /// Events API URL.
    pub url: String,
    /// Resolve the incident when the group resolves.
    pub send_resolved: bool,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    /// Shown as the client.
    pub client: String,
    /// Link shown with the client.
    pub client_url: String,
    /// Summary; default is built from the group.
    pub description: Option<String>,
    /// Extra details.
    pub details: BTreeMap<String, String>,
    /// Optional fields of the payload.
    pub component: Option<String>,
    /// Optional fields of the payload.
    pub group: Option<String>,
    /// Optional fields of the payload.
    pub class: Option<String>,
}

/// A Slack incoming-webhook receiver.
#[derive(Debug, Clone)]
pub struct Slack {
    /// The webhook URL.
    pub api_url: String,
    /// Channel override.
    pub channel: Option<String>,
    /// User name override.
    pub username: Option<String>,
    /// Also send resolved notifications.
    pub send_resolved: bool,
    /// Title override (plain text).
    pub title: Option<String>,
    /// Text override (plain text).
    pub text: Option<String>,
}

/// One way a receiver notifies.
#[derive(Debug, Clone)]
pub enum Integration {
    /// Alertmanager's webhook (version 4 body).
    Webhook(Webhook),
    /// PagerDuty Events API v2.
    PagerDuty(PagerDuty),
    /// Slack.
    Slack(Slack),
}

impl Integration {
    /// Whether resolved notifications are sent.
    pub fn send_resolved(&self) -> bool {
        match self {
            Integration::Webhook(w) => w.send_resolved,
            Integration::PagerDuty(p) => p.send_resolved,
            Integration::Slack(s) => s.send_resolved,
        }
    }

    /// `webhook`, `pagerduty` or `slack`.
    pub fn kind(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::PagerDuty(_) => "pagerduty",
            Integration::Slack(_) => "slack",
        }
    }
}

/// The whole checked configuration.
#[derive(Debug, Clone)]
pub struct AmConfig {
    /// The file as written (for `/api/v2/status`).
    pub original: String,
    /// Alerts without `endsAt` resolve after this (ms).
    pub resolve_timeout: i64,
    /// The route tree.
    pub route: Route,
    /// Receivers by name, each with its integrations.
    pub receivers: BTreeMap<String, Vec<Integration>>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Named time intervals.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
}

fn dur(what: &str, s: &Option<String>, default: i64) -> Result<i64, String> {
    match s {
        None => Ok(default),
        Some(s) => sightline_query::params::parse_duration_ms(s)
            .filter(|d| *d >= 0 && s.parse::<f64>().is_err())
            .ok_or_else(|| format!("{what}: not a duration: {s:?}")),
    }
}

fn matchers(
    what: &str,
    list: &[String],
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for m in list {
        out.extend(Matcher::parse_list(m).map_err(|e| format!("{what}: {e}"))?);
    }
    for (k, v) in eq {
        out.push(Matcher::new(k, MatchType::Equal, v).map_err(|e| format!("{what}: {e}"))?);
    }
    for (k, v) in re {
        out.push(Matcher::new(k, MatchType::Regex, v).map_err(|e| format!("{what}: {e}"))?);
    }
    Ok(out)
}

fn compile_route(def: &RouteDef, parent: Option<&Route>, index: usize) -> Result<Route, String> {
    let at = match parent {
        None => "route".to_string(),
        Some(p) => format!("route {} > routes[{index}]", p.key),
    };
    let ms = matchers(&at, &def.matchers, &def.match_, &def.match_re)?;
    if parent.is_none() && !ms.is_empty() {
        return Err("route: the root route must not have matchers".into());
    }
    if parent.is_none() && def.continue_ {
        return Err("route: the root route must not have 'continue'".into());
    }
    let group_by = match &def.group_by {
        None => parent.map_or(GroupBy::Labels(Vec::new()), |p| p.group_by.clone()),
        Some(l) if l.iter().any(|x| x == "...") => {
            if l.len() > 1 {
                return Err(format!("{at}: group_by '...' must be the only entry"));
            }
            GroupBy::All
        }
        Some(l) => {
            for n in l {
                if !valid_label_name(n) {
                    return Err(format!("{at}: invalid label name {n:?} in group_by"));
                }
            }
            GroupBy::Labels(l.clone())
        }
    };
    let receiver = match (&def.receiver, parent) {
        (Some(r), _) => r.clone(),
        (None, Some(p)) => p.receiver.clone(),
        (None, None) => return Err("route: the root route needs a receiver".into()),
    };
    let key = match parent {
        None => super::matcher::list_string(&ms),
        Some(p) => format!("{}/{}", p.key, super::matcher::list_string(&ms)),
    };
    let mut route = Route {
        key,
        receiver,
        group_by,
        matchers: ms,
        continue_: def.continue_,
        group_wait: dur(
            &format!("{at}: group_wait"),
            &def.group_wait,
            parent.map_or(30_000, |p| p.group_wait),
        )?,
        group_interval: dur(
            &format!("{at}: group_interval"),
            &def.group_interval,
            parent.map_or(300_000, |p| p.group_interval),
        )?,
        repeat_interval: dur(
            &format!("{at}: repeat_interval"),
            &def.repeat_interval,
            parent.map_or(14_400_000, |p| p.repeat_interval),
        )?,
        mute_time_intervals: def.mute_time_intervals.clone(),
        active_time_intervals: def.active_time_intervals.clone(),
        routes: Vec::new(),
    };
    if route.group_interval <= 0 || route.repeat_interval <= 0 {
        return Err(format!("{at}: group_interval and repeat_interval must be positive"));
    }
    let mut children = Vec::new();
    for (i, c) in def.routes.iter().enumerate() {
        children.push(compile_route(c, Some(&route), i)?);
    }
    route.routes = children;
    Ok(route)
}

fn check_route_refs(r: &Route, cfg: &AmConfig) -> Result<(), String> {
    if !cfg.receivers.contains_key(&r.receiver) {
        return Err(format!("undefined receiver {:?} used in route", r.receiver));
    }
    for name in r.mute_time_intervals.iter().chain(&r.active_time_intervals) {
        if !cfg.time_intervals.contains_key(name) {
            return Err(format!("undefined time interval {name:?} used in route"));
        }
    }
    r.routes.iter().try_for_each(|c| check_route_refs(c, cfg))
}

impl AmConfig {
    /// Parses and checks Alertmanager YAML.
    pub fn parse(text: &str) -> Result<AmConfig, String> {
        let def: FileDef = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if !def.templates.is_empty() {
            return Err("templates: custom notification templates are not supported yet; \
                        remove 'templates' (receivers use Alertmanager's default texts)"
                .into());
        }
        let route_def = def.route.ok_or("no route provided in config")?;
        let route = compile_route(&route_def, None, 0)?;
        let mut receivers = BTreeMap::new();
        for r in &def.receivers {
            if r.name.is_empty() {
                return Err("receivers: a receiver needs a name".into());
            }
            let mut ints = Vec::new();
            for w in &r.webhook_configs {
                if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                    return Err(format!(
                        "receiver {:?}: webhook url {:?} is not an http(s) URL",
                        r.name, w.url
                    ));
                }
                ints.push(Integration::Webhook(Webhook {
                    url: w.url.clone(),
                    send_resolved: w.send_resolved.unwrap_or(true),
                    max_alerts: w.max_alerts,
                }));
            }
            for p in &r.pagerduty_configs {
                let Some(key) = p.routing_key.clone().filter(|k| !k.is_empty()) else {
                    return Err(format!(
                        "receiver {:?}: pagerduty_configs needs routing_key (Events API v2)",
                        r.name
                    ));
                };
                ints.push(Integration::PagerDuty(PagerDuty {
                    routing_key: key,
                    url: p
                        .url
                        .clone()
                        .or_else(|| def.global.pagerduty_url.clone())
                        .unwrap_or_else(|| "https://events.pagerduty.com/v2/enqueue".into()),
                    send_resolved: p.send_resolved.unwrap_or(true),
                    severity: p.severity.clone().unwrap_or_else(|| "error".into()),
                    client: p.client.clone().unwrap_or_else(|| "Sightline".into()),
                    client_url: p.client_url.clone().unwrap_or_default(),
                    description: p.description.clone(),
                    details: p.details.clone(),
                    component: p.component.clone(),
                    group: p.group.clone(),
                    class: p.class.clone(),
                }));
            }
            for s in &r.slack_configs {
                let Some(url) = s.api_url.clone().or_else(|| def.global.slack_api_url.clone()) else {
                    return Err(format!(
                        "receiver {:?}: slack_configs needs api_url (or global.slack_api_url)",
                        r.name
                    ));
                };
                ints.push(Integration::Slack(Slack {
                    api_url: url,
                    channel: s.channel.clone(),
                    username: s.username.clone(),
                    send_resolved: s.send_resolved.unwrap_or(false),
                    title: s.title.clone(),
                    text: s.text.clone(),
                }));
            }
            if receivers.insert(r.name.clone(), ints).is_some() {
                return Err(format!("notification config name {:?} is not unique", r.name));
            }
        }
        let mut inhibit_rules = Vec::new();
        for (i, r) in def.inhibit_rules.iter().enumerate() {
            let what = format!("inhibit_rules[{i}]");
            inhibit_rules.push(InhibitRule {
                source: matchers(&what, &r.source_matchers, &r.source_match, &r.source_match_re)?,
                target: matchers(&what, &r.target_matchers, &r.target_match, &r.target_match_re)?,
                equal: r.equal.clone(),
            });
        }
        let mut time_intervals = BTreeMap::new();
        for ti in def.time_intervals.iter().chain(&def.mute_time_intervals) {
            let compiled = ti
                .time_intervals
                .iter()
                .map(TimeInterval::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("time interval {:?}: {e}", ti.name))?;
            if time_intervals.insert(ti.name.clone(), compiled).is_some() {
                return Err(format!("time interval {:?} is defined twice", ti.name));
            }
        }
        let cfg = AmConfig {
            original: text.to_string(),
            resolve_timeout: dur("global.resolve_timeout", &def.global.resolve_timeout, 300_000)?,
            route,
            receivers,
            inhibit_rules,
            time_intervals,
        };
        check_route_refs(&cfg.route, &cfg)?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
route:
  receiver: default
  group_by: [alertname, cluster]
  group_wait: 10s
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      continue: true
      routes:
        - match: {team: mail}
          receiver: mail-pager
          group_by: ['...']
    - matchers: ['severity=~"page|ticket"']
      receiver: tickets
      repeat_interval: 1h
receivers:
  - name: default
  - name: pager
    pagerduty_configs: [{routing_key: abc}]
  - name: mail-pager
    webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]
  - name: tickets
    slack_configs: [{api_url: 'http://127.0.0.1:1/slack', channel: '#t'}]
inhibit_rules:
  - source_matchers: [alertname=ClusterDown]
    target_matchers: [alertname=NodeDown]
    equal: [cluster]
"#;

    fn labels(p: &[(&str, &str)]) -> Labels {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn routes_match_like_alertmanager() {
        let cfg = AmConfig::parse(CFG).unwrap();
        let page_mail = labels(&[("alertname", "A"), ("severity", "page"), ("team", "mail")]);
        let got: Vec<&str> = cfg
            .route
            .matching(&page_mail)
            .iter()
            .map(|r| r.receiver.as_str())
            .collect();
        assert_eq!(got, vec!["mail-pager", "tickets"]);
        let r = cfg.route.matching(&page_mail)[0];
        assert_eq!(r.group_by, GroupBy::All);
        assert_eq!(r.group_wait, 10_000, "inherited");
        assert_eq!(r.key, r#"{}/{severity="page"}/{team="mail"}"#);
        let other = labels(&[("alertname", "B")]);
        let got: Vec<&str> = cfg.route.matching(&other).iter().map(|r| r.receiver.as_str()).collect();
        assert_eq!(got, vec!["default"]);
        let ticket = labels(&[("alertname", "C"), ("severity", "ticket"), ("cluster", "c1")]);
        let r = cfg.route.matching(&ticket)[0];
        assert_eq!(r.receiver, "tickets");
        assert_eq!(r.repeat_interval, 3_600_000);
        assert_eq!(
            r.group_labels(&ticket),
            labels(&[("alertname", "C"), ("cluster", "c1")])
        );
        assert_eq!(cfg.receivers["default"].len(), 0);
        assert_eq!(cfg.inhibit_rules[0].equal, vec!["cluster"]);
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        for (text, want) in [
            (
                "route: {receiver: nope}\nreceivers: [{name: x}]\n",
                "undefined receiver \"nope\"",
            ),
            ("receivers: [{name: x}]\n", "no route"),
            (
                "route: {receiver: x, matchers: [a=b]}\nreceivers: [{name: x}]\n",
                "root route must not have matchers",
            ),
            (
                "route: {receiver: x, group_wait: soon}\nreceivers: [{name: x}]\n",
                "group_wait",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, pagerduty_configs: [{service_key: k}]}]\n",
                "service_key",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, pagerduty_configs: [{url: 'http://x'}]}]\n",
                "routing_key",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x}, {name: x}]\n",
                "not unique",
            ),
            (
                "route: {receiver: x, mute_time_intervals: [night]}\nreceivers: [{name: x}]\n",
                "undefined time interval",
            ),
            (
                "route: {receiver: x}\nreceivers: [{name: x, email_configs: [{to: a@b}]}]\n",
                "email_configs",
            ),
        ] {
            let err = AmConfig::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
