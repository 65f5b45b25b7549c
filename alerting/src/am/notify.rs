//! Building and delivering notifications: Alertmanager's webhook body
//! (version 4), PagerDuty Events API v2 and Slack messages, delivered
//! through [`crate::delivery::post_json`] (retries on network errors, 429
//! and 5xx, none on other 4xx).

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::config::{Integration, PagerDuty, Slack, Webhook};
use super::store::{AmAlert, rfc3339};
pub use crate::delivery::DeliveryError;
use crate::delivery::post_json;
use crate::rule::Labels;

/// What a notification is about.
pub struct Notification<'a> {
    /// Receiver name.
    pub receiver: &'a str,
    /// Group key (`{route}:{group labels}`).
    pub group_key: &'a str,
    /// Group labels.
    pub group_labels: &'a Labels,
    /// The alerts, firing first.
    pub alerts: &'a [AmAlert],
    /// When (ms), deciding which alerts are resolved.
    pub now: i64,
    /// Link to the alert list.
    pub external_url: &'a str,
}

impl Notification<'_> {
    fn firing(&self) -> usize {
        self.alerts.iter().filter(|a| !a.resolved(self.now)).count()
    }

    fn status(&self) -> &'static str {
        if self.firing() > 0 { "firing" } else { "resolved" }
    }

    fn common(&self, pick: impl Fn(&AmAlert) -> &Labels) -> Labels {
        let mut it = self.alerts.iter();
        let Some(first) = it.next() else {
            return Labels::new();
        };
        let mut common = pick(first).clone();
        for a in it {
            let l = pick(a);
            common.retain(|k, v| l.get(k) == Some(v));
        }
        common
    }

    /// Alertmanager's default subject: `[FIRING:2] NodeDown fra c1 (…)`.
    pub fn subject(&self) -> String {
        let status = self.status();
        let mut s = format!("[{}", status.to_uppercase());
        if status == "firing" {
            s.push_str(&format!(":{}", self.firing()));
        }
        s.push(']');
        let group: Vec<&str> = self.group_labels.values().map(String::as_str).collect();
        if !group.is_empty() {
            s.push(' ');
            s.push_str(&group.join(" "));
        }
        let common = self.common(|a| &a.labels);
        let extra: Vec<&str> = common
            .iter()
            .filter(|(k, _)| !self.group_labels.contains_key(*k))
            .map(|(_, v)| v.as_str())
            .collect();
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(" ")));
        }
        s
    }

    fn alert_json(&self, a: &AmAlert) -> Json {
        json!({
            "status": if a.resolved(self.now) { "resolved" } else { "firing" },
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at),
            "endsAt": if a.resolved(self.now) || !a.timeout { rfc3339(a.ends_at) } else { rfc3339(0) },
            "generatorURL": a.generator_url,
            "fingerprint": format!("{:016x}", a.fingerprint()),
        })
    }

    /// The webhook body (Alertmanager's version 4).
    pub fn webhook_body(&self, max_alerts: usize) -> Json {
        let shown = if max_alerts > 0 {
            self.alerts.len().min(max_alerts)
        } else {
            self.alerts.len()
        };
        json!({
            "receiver": self.receiver,
            "status": self.status(),
            "alerts": self.alerts[..shown].iter().map(|a| self.alert_json(a)).collect::<Vec<_>>(),
            "groupLabels": self.group_labels,
            "commonLabels": self.common(|a| &a.labels),
            "commonAnnotations": self.common(|a| &a.annotations),
            "externalURL": self.external_url,
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": self.alerts.len() - shown,
        })
    }

    /// The PagerDuty Events v2 body: one incident per group (the dedup
    /// key is a hash of the group key), triggered while any alert fires,
    /// resolved when all are resolved.
    pub fn pagerduty_body(&self, p: &PagerDuty) -> Json {
        let dedup = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(self.group_key.as_bytes()));
        if self.status() == "resolved" {
            return json!({
                "routing_key": p.routing_key,
                "dedup_key": dedup,
                "event_action": "resolve",
            });
        }
        let list = |resolved: bool| -> String {
            self.alerts
                .iter()
                .filter(|a| a.resolved(self.now) == resolved)
                .map(|a| {
                    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!(" - {k} = {v}")).collect();
                    format!("Labels:\n{}\nSource: {}\n", labels.join("\n"), a.generator_url)
                })
                .collect()
        };
        let mut details = serde_json::Map::new();
        details.insert("firing".into(), json!(list(false)));
        details.insert("resolved".into(), json!(list(true)));
        details.insert("num_firing".into(), json!(self.firing().to_string()));
        details.insert(
            "num_resolved".into(),
            json!((self.alerts.len() - self.firing()).to_string()),
        );
        for (k, v) in &p.details {
            details.insert(k.clone(), json!(v));
        }
        let mut summary = p.description.clone().unwrap_or_else(|| self.subject());
        if summary.chars().count() > 1024 {
            summary = summary.chars().take(1023).collect::<String>() + "…";
        }
        let mut payload = json!({
            "summary": summary,
            "source": p.client,
            "severity": p.severity,
            "custom_details": details,
        });
        for (k, v) in [("component", &p.component), ("group", &p.group), ("class", &p.class)] {
            if let Some(v) = v {
                payload[k] = json!(v);
            }
        }
        json!({
            "routing_key": p.routing_key,
            "dedup_key": dedup,
            "event_action": "trigger",
            "payload": payload,
            "client": p.client,
            "client_url": p.client_url,
        })
    }

    /// The Slack message.
    pub fn slack_body(&self, s: &Slack) -> Json {
        let title = s.title.clone().unwrap_or_else(|| self.subject());
        let text = s.text.clone().unwrap_or_else(|| {
            self.alerts
                .iter()
                .map(|a| {
                    let what = a
                        .annotations
                        .get("summary")
                        .or_else(|| a.annotations.get("description"))
                        .cloned()
                        .unwrap_or_else(|| a.labels.get("alertname").cloned().unwrap_or_default());
                    format!("{} {what}", if a.resolved(self.now) { "✓" } else { "•" })
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        let link = format!(
            "{}/#/alerts?receiver={}",
            self.external_url.trim_end_matches('/'),
            self.receiver
        );
        let mut body = json!({
            "attachments": [{
                "title": title,
                "title_link": link,
                "text": text,
                "fallback": format!("{title} | {link}"),
                "color": if self.status() == "firing" { "danger" } else { "good" },
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }],
        });
        if let Some(c) = &s.channel {
            body["channel"] = json!(c);
        }
        if let Some(u) = &s.username {
            body["username"] = json!(u);
        }
        body
    }
}

/// Delivers `n` through `integration`, retrying transient failures up to
/// `attempts` times.
pub async fn deliver(
    client: &reqwest::Client,
    integration: &Integration,
    n: &Notification<'_>,
    attempts: usize,
) -> Result<(), DeliveryError> {
    let (url, body) = match integration {
        Integration::Webhook(Webhook { url, max_alerts, .. }) => (url.clone(), n.webhook_body(*max_alerts)),
        Integration::PagerDuty(p) => (p.url.clone(), n.pagerduty_body(p)),
        Integration::Slack(s) => (s.api_url.clone(), n.slack_body(s)),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    post_json(client, &url, &bytes, Duration::from_secs(10), attempts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, instance: &str, resolved: bool) -> AmAlert {
        AmAlert {
            labels: [("alertname", name), ("cluster", "c1"), ("instance", instance)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), format!("{instance} down"))]
                .into_iter()
                .collect(),
            starts_at: 1_000,
            ends_at: if resolved { 2_000 } else { 1_000_000 },
            generator_url: "http://x/graph".into(),
            updated_at: 1_000,
            timeout: false,
        }
    }

    #[test]
    fn bodies_follow_the_receivers_formats() {
        let alerts = vec![alert("NodeDown", "a", false), alert("NodeDown", "b", true)];
        let group: Labels = [("alertname".to_string(), "NodeDown".to_string())]
            .into_iter()
            .collect();
        let n = Notification {
            receiver: "hook",
            group_key: "{}:{alertname=\"NodeDown\"}",
            group_labels: &group,
            alerts: &alerts,
            now: 5_000,
            external_url: "http://sightline:9780",
        };
        assert_eq!(n.subject(), "[FIRING:1] NodeDown (c1)");
        let w = n.webhook_body(0);
        assert_eq!(w["version"], "4");
        assert_eq!(w["status"], "firing");
        assert_eq!(w["alerts"][1]["status"], "resolved");
        assert_eq!(w["commonLabels"]["cluster"], "c1");
        assert!(w["commonLabels"].get("instance").is_none());
        assert_eq!(w["truncatedAlerts"], 0);
        assert_eq!(n.webhook_body(1)["truncatedAlerts"], 1);
        let p = PagerDuty {
            routing_key: "key".into(),
            url: "http://pd".into(),
            send_resolved: true,
            severity: "critical".into(),
            client: "Sightline".into(),
            client_url: String::new(),
            description: None,
            details: Default::default(),
            component: None,
            group: None,
            class: None,
        };
        let pd = n.pagerduty_body(&p);
        assert_eq!(pd["event_action"], "trigger");
        assert_eq!(pd["payload"]["severity"], "critical");
        assert_eq!(pd["payload"]["custom_details"]["num_firing"], "1");
        let all_resolved = vec![alert("NodeDown", "b", true)];
        let r = Notification {
            alerts: &all_resolved,
            ..n
        };
        let pr = r.pagerduty_body(&p);
        assert_eq!(pr["event_action"], "resolve");
        assert_eq!(pr["dedup_key"], pd["dedup_key"], "same incident");
        let s = r.slack_body(&Slack {
            api_url: "http://s".into(),
            channel: Some("#ops".into()),
            username: None,
            send_resolved: true,
            title: None,
            text: None,
        });
        assert_eq!(s["channel"], "#ops");
        assert_eq!(s["attachments"][0]["color"], "good");
        assert_eq!(s["attachments"][0]["title"], "[RESOLVED] NodeDown (c1 b)");
    }
}
