//! The built-in Alertmanager: alerts are routed into aggregation groups,
//! each group notifies its receiver after `group_wait`, then on changes
//! every `group_interval` and unchanged every `repeat_interval`; silenced,
//! inhibited and time-muted alerts are left out; the notification log
//! decides what is new. State is saved before anything is acknowledged or
//! sent, and groups are rebuilt from the saved alerts on start, so inhibition
//! is in force before the first notification after a restart and a crash
//! can repeat a notification but never lose one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use super::config::{AmConfig, Route};
use super::notify::{Notification, deliver};
use super::store::{AmAlert, NflogEntry, Persisted, Silence};
use crate::rule::{Labels, labels_string};

struct Group {
    route: Route,
    labels: Labels,
    alerts: BTreeSet<u64>,
    next_flush: i64,
    flushed: bool,
    flushing: bool,
}

struct State {
    data: Persisted,
    groups: BTreeMap<String, Group>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AmStats {
    /// Notifications delivered.
    pub notifications: AtomicU64,
    /// Deliveries that failed after retries.
    pub failed: AtomicU64,
    /// Alerts received.
    pub received: AtomicU64,
}

/// Why an alert is not notified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suppression {
    /// Ids of the silences muting it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// The built-in Alertmanager.
pub struct Alertmanager {
    config: RwLock<Arc<AmConfig>>,
    state: Mutex<State>,
    path: Option<PathBuf>,
    client: reqwest::Client,
    external_url: String,
    wake: Notify,
    started_at: i64,
    /// Delivery attempts per flush for transient failures.
    pub attempts: usize,
    /// Counters.
    pub stats: AmStats,
    /// The other sites' Alertmanagers, when several sites notify.
    cluster: RwLock<Option<Cluster>>,
}

/// Several sites evaluating the same rules, each with this Alertmanager,
/// notify once between them, as Alertmanager's cluster mode: the site at
/// position `p` (sites sorted by name) waits `p × wait` before sending
/// and sends only what the notification log, replicated to and from the
/// peers, does not hold yet.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// This site's position among all sites.
    pub position: usize,
    /// The peers' base URLs (their `/internal/v1/nflog` receives entries).
    pub peers: Vec<String>,
    /// Wait per position before notifying.
    pub wait: std::time::Duration,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Alertmanager {
    /// Starts with `config`, loading saved state from `path` and regrouping
    /// the saved alerts.
    pub fn new(config: AmConfig, path: Option<PathBuf>, external_url: String) -> Arc<Self> {
        let data = Persisted::load(&path);
        let am = Arc::new(Alertmanager {
            config: RwLock::new(Arc::new(config)),
            state: Mutex::new(State {
                data,
                groups: BTreeMap::new(),
            }),
            path,
            client: crate::tls::http_client(),
            external_url,
            wake: Notify::new(),
            started_at: now_ms(),
            attempts: 5,
            stats: AmStats::default(),
            cluster: RwLock::new(None),
        });
        am.regroup(now_ms());
        am
    }

    /// Notifies together with other sites' Alertmanagers (see [`Cluster`]).
    pub fn set_cluster(&self, cluster: Cluster) {
        *self.cluster.write() = Some(cluster);
    }

    /// Merges notification log entries a peer site sent: an entry newer
    /// than the one held replaces it. Returns how many were taken.
    pub fn merge_nflog(&self, entries: Vec<(String, NflogEntry)>) -> usize {
        let mut st = self.state.lock();
        let mut taken = 0;
        for (k, e) in entries {
            let newer = st.data.nflog.get(&k).is_none_or(|held| held.at < e.at);
            if newer {
                st.data.nflog.insert(k, e);
                taken += 1;
            }
        }
        if taken > 0 {
            self.save(&st);
        }
        taken
    }

    /// Sends `entries` to every peer's notification log, in the background.
    fn replicate(&self, entries: Vec<(String, NflogEntry)>) {
        let Some(cluster) = self.cluster.read().clone() else {
            return;
        };
        if entries.is_empty() {
            return;
        }
        for peer in cluster.peers {
            let (client, entries) = (self.client.clone(), entries.clone());
            tokio::spawn(async move {
                let url = format!("{}/internal/v1/nflog", peer.trim_end_matches('/'));
                let sent = client
                    .post(&url)
                    .timeout(std::time::Duration::from_secs(2))
                    .json(&entries)
                    .send()
                    .await;
                if let Err(e) = sent.and_then(|r| r.error_for_status()) {
                    tracing::warn!(%url, error = %e, "cannot replicate the notification log to a peer site");
                }
            });
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<AmConfig> {
        self.config.read().clone()
    }

    /// When it started (ms).
    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    /// The external URL used in links.
    pub fn external_url(&self) -> &str {
        &self.external_url
    }

    /// Replaces the configuration; groups are rebuilt from the alerts
    /// (the notification log is kept, so nothing already sent is repeated
    /// early).
    pub fn set_config(&self, config: AmConfig) {
        *self.config.write() = Arc::new(config);
        self.regroup(now_ms());
        self.wake.notify_one();
    }

    fn regroup(&self, now: i64) {
        let cfg = self.config();
        let mut st = self.state.lock();
        st.groups.clear();
        let alerts: Vec<AmAlert> = st.data.alerts.values().cloned().collect();
        for a in alerts {
            insert_into_groups(&mut st.groups, &cfg, &a, now);
        }
    }

    fn save(&self, st: &State) {
        if let Err(e) = st.data.save(&self.path) {
            tracing::error!(error = %e, "cannot save notification state");
        }
    }

    /// Receives alerts (from rules or `POST /api/v2/alerts`): merged with
    /// what is known, grouped, saved durably before returning.
    pub fn put(&self, alerts: Vec<AmAlert>) {
        if alerts.is_empty() {
            return;
        }
        let now = now_ms();
        let cfg = self.config();
        let mut st = self.state.lock();
        for mut a in alerts {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            if a.starts_at == 0 {
                a.starts_at = now;
            }
            if a.ends_at == 0 {
                a.ends_at = now + cfg.resolve_timeout;
                a.timeout = true;
            }
            a.updated_at = now;
            let fp = a.fingerprint();
            let merged = match st.data.alerts.get(&fp) {
                // A new occurrence after the old one ended starts afresh.
                Some(old) if !(old.resolved(now) && a.starts_at > old.ends_at) => old.merge(a),
                _ => a,
            };
            insert_into_groups(&mut st.groups, &cfg, &merged, now);
            st.data.alerts.insert(fp, merged);
        }
        self.save(&st);
        drop(st);
        self.wake.notify_one();
    }

    /// Every alert with its suppression, sorted by labels.
    pub fn alerts(&self) -> Vec<(AmAlert, Suppression, Vec<String>)> {
        let now = now_ms();
        let cfg = self.config();
        let st = self.state.lock();
        let mut out: Vec<(AmAlert, Suppression, Vec<String>)> = st
            .data
            .alerts
            .values()
            .map(|a| {
                let receivers = cfg
                    .route
                    .matching(&a.labels)
                    .iter()
                    .map(|r| r.receiver.clone())
                    .collect();
                (a.clone(), suppression(&st.data, &cfg, a, now), receivers)
            })
            .collect();
        out.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
        out
    }

    /// Every silence.
    pub fn silences(&self) -> Vec<Silence> {
        self.state.lock().data.silences.values().cloned().collect()
    }

    /// Creates or updates a silence; returns its id. Updating an active
    /// silence's matchers or start expires it and creates a new one, as
    /// Alertmanager does.
    pub fn upsert_silence(&self, mut s: Silence) -> Result<String, String> {
        let now = now_ms();
        if s.matchers.is_empty() {
            return Err("silence needs at least one matcher".into());
        }
        for m in &s.matchers {
            m.compile()?;
        }
        if s.ends_at <= s.starts_at {
            return Err("end time must not be before start time".into());
        }
        if s.ends_at <= now {
            return Err("end time can't be in the past".into());
        }
        let mut st = self.state.lock();
        if !s.id.is_empty() {
            let Some(old) = st.data.silences.get(&s.id).cloned() else {
                return Err(format!("silence {} not found", s.id));
            };
            let same_scope = old.matchers == s.matchers && old.starts_at == s.starts_at;
            if old.state(now) == "expired" || (old.state(now) == "active" && !same_scope) {
                if old.state(now) == "active" {
                    let mut expired = old;
                    expired.ends_at = now;
                    expired.updated_at = now;
                    st.data.silences.insert(expired.id.clone(), expired);
                }
                s.id = String::new();
            }
        }
        if s.id.is_empty() {
            s.id = super::store::new_silence_id();
        }
        if s.starts_at < now {
            s.starts_at = now;
        }
        s.updated_at = now;
        let id = s.id.clone();
        st.data.silences.insert(id.clone(), s);
        self.save(&st);
        drop(st);
        self.wake.notify_one();
        Ok(id)
    }

    /// Expires a silence.
    pub fn expire_silence(&self, id: &str) -> Result<(), String> {
        let now = now_ms();
        let mut st = self.state.lock();
        let Some(s) = st.data.silences.get_mut(id) else {
            return Err(format!("silence {id} not found"));
        };
        if s.state(now) == "expired" {
            return Err(format!("silence {id} already expired"));
        }
        s.ends_at = now;
        if s.starts_at > now {
            s.starts_at = now;
        }
        s.updated_at = now;
        self.save(&st);
        Ok(())
    }

    /// Sends due notifications until `stop` (then returns).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let now = now_ms();
            let mut due = Vec::new();
            let mut next = now + 1_000;
            {
                let mut st = self.state.lock();
                for (key, g) in st.groups.iter_mut() {
                    if g.flushing {
                        continue;
                    }
                    if g.next_flush <= now {
                        g.flushing = true;
                        due.push(key.clone());
                    } else {
                        next = next.min(g.next_flush);
                    }
                }
                self.gc(&mut st, now);
            }
            for key in due {
                let am = self.clone();
                tokio::spawn(async move { am.flush(&key).await });
            }
            let wait = std::time::Duration::from_millis((next - now).clamp(10, 1_000) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Drops resolved alerts no group holds any more, after a while.
    fn gc(&self, st: &mut State, now: i64) {
        let held: BTreeSet<u64> = st.groups.values().flat_map(|g| g.alerts.iter().copied()).collect();
        let before = st.data.alerts.len();
        st.data
            .alerts
            .retain(|fp, a| held.contains(fp) || !a.resolved(now - 15 * 60_000));
        let expired_before = now - 5 * 86_400_000;
        st.data.silences.retain(|_, s| s.ends_at > expired_before);
        if st.data.alerts.len() != before {
            self.save(st);
        }
    }

    async fn flush(self: Arc<Self>, key: &str) {
        let now = now_ms();
        let cfg = self.config();
        // Snapshot what to send under the lock.
        let plan = {
            let st = self.state.lock();
            let Some(g) = st.groups.get(key) else { return };
            let time_muted = time_muted(&cfg, &g.route, now);
            // Resolved alerts that are muted, or gone from the store, will
            // never be notified: they leave the group after this flush.
            let mut dead = BTreeSet::new();
            let mut alerts = Vec::new();
            for fp in &g.alerts {
                let Some(a) = st.data.alerts.get(fp) else {
                    dead.insert(*fp);
                    continue;
                };
                let s = suppression(&st.data, &cfg, a, now);
                if s.silenced_by.is_empty() && s.inhibited_by.is_empty() {
                    alerts.push(a.clone());
                } else if a.resolved(now) {
                    dead.insert(*fp);
                }
            }
            alerts.sort_by(|a, b| a.resolved(now).cmp(&b.resolved(now)).then(a.labels.cmp(&b.labels)));
            let integrations = cfg.receivers.get(&g.route.receiver).cloned().unwrap_or_default();
            let entries: Vec<Option<NflogEntry>> = (0..integrations.len())
                .map(|i| st.data.nflog.get(&nflog_key(key, &g.route.receiver, i)).cloned())
                .collect();
            (
                time_muted,
                alerts,
                integrations,
                entries,
                g.route.clone(),
                g.labels.clone(),
                dead,
            )
        };
        let (time_muted, alerts, integrations, mut entries, route, group_labels, dead) = plan;
        // With peer sites: wait for this site's turn, then take what the
        // peers have notified meanwhile into account.
        let turn = self.cluster.read().as_ref().map(|c| c.wait * c.position as u32);
        if let Some(turn) = turn.filter(|t| !t.is_zero() && !alerts.is_empty()) {
            tokio::time::sleep(turn).await;
            let st = self.state.lock();
            entries = (0..integrations.len())
                .map(|i| st.data.nflog.get(&nflog_key(key, &route.receiver, i)).cloned())
                .collect();
        }
        let now = if turn.is_some_and(|t| !t.is_zero()) {
            now_ms()
        } else {
            now
        };
        let firing: BTreeSet<u64> = alerts
            .iter()
            .filter(|a| !a.resolved(now))
            .map(AmAlert::fingerprint)
            .collect();
        let resolved: BTreeSet<u64> = alerts
            .iter()
            .filter(|a| a.resolved(now))
            .map(AmAlert::fingerprint)
            .collect();
        let mut all_ok = true;
        let mut updates = Vec::new();
        if !time_muted && !alerts.is_empty() {
            for (i, (integration, entry)) in integrations.iter().zip(entries).enumerate() {
                if !needs_update(
                    entry.as_ref(),
                    &firing,
                    &resolved,
                    integration.send_resolved(),
                    route.repeat_interval,
                    now,
                ) {
                    continue;
                }
                let shown: Vec<AmAlert> = if integration.send_resolved() {
                    alerts.clone()
                } else {
                    alerts.iter().filter(|a| !a.resolved(now)).cloned().collect()
                };
                let result = if shown.is_empty() {
                    Ok(())
                } else {
                    let n = Notification {
                        receiver: &route.receiver,
                        group_key: key,
                        group_labels: &group_labels,
                        alerts: &shown,
                        now,
                        external_url: &self.external_url,
                    };
                    deliver(&self.client, integration, &n, self.attempts).await
                };
                match result {
                    Ok(()) => {
                        if !shown.is_empty() {
                            self.stats.notifications.fetch_add(1, Ordering::Relaxed);
                        }
                        updates.push((
                            nflog_key(key, &route.receiver, i),
                            NflogEntry {
                                firing: firing.clone(),
                                resolved: resolved.clone(),
                                at: now,
                            },
                        ));
                    }
                    Err(e) => {
                        all_ok = false;
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(group = key, receiver = %route.receiver, integration = integration.kind(),
                            error = %e, "notification failed; retrying at the next group interval");
                    }
                }
            }
        }
        self.replicate(updates.clone());
        let mut st = self.state.lock();
        for (k, e) in updates {
            st.data.nflog.insert(k, e);
        }
        if let Some(g) = st.groups.get_mut(key) {
            g.flushing = false;
            g.flushed = true;
            g.next_flush = now + route.group_interval;
            g.alerts.retain(|fp| !dead.contains(fp));
            if all_ok && !time_muted {
                // Resolved alerts that were reported leave the group.
                g.alerts.retain(|fp| !resolved.contains(fp));
            }
            if g.alerts.is_empty() {
                st.groups.remove(key);
                let prefix = format!("{key}\u{0}");
                st.data.nflog.retain(|k, _| !k.starts_with(&prefix));
            }
        }
        self.save(&st);
    }

    /// The receivers' names.
    pub fn receiver_names(&self) -> Vec<String> {
        self.config().receivers.keys().cloned().collect()
    }
}

fn nflog_key(group: &str, receiver: &str, i: usize) -> String {
    format!("{group}\u{0}{receiver}\u{0}{i}")
}

fn insert_into_groups(groups: &mut BTreeMap<String, Group>, cfg: &AmConfig, a: &AmAlert, now: i64) {
    for route in cfg.route.matching(&a.labels) {
        let labels = route.group_labels(&a.labels);
        let key = format!("{}:{}", route.key, labels_string(&labels));
        let g = groups.entry(key).or_insert_with(|| Group {
            route: route.clone(),
            labels,
            alerts: BTreeSet::new(),
            next_flush: now + route.group_wait,
            flushed: false,
            flushing: false,
        });
        g.alerts.insert(a.fingerprint());
        // An alert older than group_wait needs no more waiting.
        if !g.flushed && a.starts_at + route.group_wait < now {
            g.next_flush = g.next_flush.min(now);
        }
    }
}

fn time_muted(cfg: &AmConfig, route: &Route, now: i64) -> bool {
    let inside = |name: &String| {
        cfg.time_intervals
            .get(name)
            .is_some_and(|ivs| ivs.iter().any(|i| i.contains(now)))
    };
    route.mute_time_intervals.iter().any(inside)
        || (!route.active_time_intervals.is_empty() && !route.active_time_intervals.iter().any(inside))
}

/// Silences and inhibitions muting `a` at `now`.
fn suppression(data: &Persisted, cfg: &AmConfig, a: &AmAlert, now: i64) -> Suppression {
    let mut s = Suppression::default();
    for sil in data.silences.values() {
        if sil.mutes(&a.labels, now) {
            s.silenced_by.push(sil.id.clone());
        }
    }
    let fp = a.fingerprint();
    for rule in &cfg.inhibit_rules {
        if !super::matcher::all_match(&rule.target, &a.labels) {
            continue;
        }
        for src in data.alerts.values() {
            if src.resolved(now) || src.fingerprint() == fp || !super::matcher::all_match(&rule.source, &src.labels) {
                continue;
            }
            if rule.equal.iter().all(|l| src.labels.get(l) == a.labels.get(l)) {
                s.inhibited_by.push(format!("{:016x}", src.fingerprint()));
            }
        }
    }
    s
}

/// Alertmanager's dedup decision.
fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: i64,
    now: i64,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    e.at < now - repeat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)], ends_at: i64) -> AmAlert {
        AmAlert {
            labels: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: Labels::new(),
            starts_at: 1,
            ends_at,
            generator_url: String::new(),
            updated_at: 0,
            timeout: false,
        }
    }

    #[tokio::test]
    async fn peers_log_entries_replace_only_older_ones() {
        let cfg = AmConfig::parse("route:\n  receiver: r\nreceivers: [{name: r}]\n").expect("config");
        let am = Alertmanager::new(cfg, None, String::new());
        let entry = |at: i64, fp: u64| NflogEntry {
            firing: BTreeSet::from([fp]),
            resolved: BTreeSet::new(),
            at,
        };
        assert_eq!(am.merge_nflog(vec![("g\u{0}r\u{0}0".into(), entry(100, 1))]), 1);
        // An older entry from a slower peer does not win.
        assert_eq!(am.merge_nflog(vec![("g\u{0}r\u{0}0".into(), entry(50, 2))]), 0);
        assert_eq!(am.merge_nflog(vec![("g\u{0}r\u{0}0".into(), entry(150, 3))]), 1);
        let held = am.state.lock().data.nflog.get("g\u{0}r\u{0}0").cloned();
        assert_eq!(held, Some(entry(150, 3)));
    }

    #[tokio::test]
    async fn muted_alerts_that_resolve_leave_their_group() {
        let cfg = AmConfig::parse(
            "route:\n  receiver: r\n  group_by: [alertname]\nreceivers: [{name: r}]\ninhibit_rules:\n  - source_matchers: [alertname=ClusterDown]\n    target_matchers: [alertname=NodeDown]\n",
        )
        .unwrap();
        let am = Alertmanager::new(cfg, None, String::new());
        let far = now_ms() + 3_600_000;
        am.put(vec![
            alert(&[("alertname", "ClusterDown")], far),
            alert(&[("alertname", "NodeDown"), ("instance", "n1")], far),
        ]);
        // The node alert resolves while inhibited.
        am.put(vec![alert(
            &[("alertname", "NodeDown"), ("instance", "n1")],
            now_ms() - 1,
        )]);
        let key = am
            .state
            .lock()
            .groups
            .keys()
            .find(|k| k.contains("NodeDown"))
            .cloned()
            .unwrap();
        am.clone().flush(&key).await;
        assert!(!am.state.lock().groups.contains_key(&key), "the group is gone");
    }

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let e = NflogEntry {
            firing: set(&[1, 2]),
            resolved: set(&[]),
            at: 1000,
        };
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, 10_000, 1000));
        assert!(
            !needs_update(None, &set(&[]), &set(&[1]), true, 10_000, 1000),
            "only resolved, never notified"
        );
        assert!(
            !needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, 10_000, 5000),
            "nothing new"
        );
        assert!(
            needs_update(Some(&e), &set(&[1, 2, 3]), &set(&[]), true, 10_000, 5000),
            "new firing"
        );
        assert!(
            needs_update(Some(&e), &set(&[1]), &set(&[2]), true, 10_000, 5000),
            "new resolved"
        );
        assert!(
            !needs_update(Some(&e), &set(&[1]), &set(&[2]), false, 10_000, 5000),
            "resolved not wanted"
        );
        assert!(
            needs_update(Some(&e), &set(&[]), &set(&[1, 2]), false, 10_000, 5000),
            "all resolved"
        );
        assert!(
            needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, 10_000, 12_000),
            "repeat"
        );
    }
}
