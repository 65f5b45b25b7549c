//! The rule manager: runs one task per group on its evaluation grid,
//! swaps rule sets on reload (a bad file keeps the old rules running),
//! carries alert state across reloads, and persists it so a restart
//! continues `for` and `keep_firing_for` where they were.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::group::{EvalDeps, Group, GroupSpec, eval_group, next_eval};
use crate::rule::{Alert, AlertState};

/// How restored alert state is treated (Prometheus' `--rules.alert.*`).
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// State older than this is not restored (`for-outage-tolerance`), ms.
    pub outage_tolerance: i64,
    /// A pending alert gets at least this long after a restart before it
    /// fires (`for-grace-period`), ms.
    pub for_grace_period: i64,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            outage_tolerance: 3_600_000,
            for_grace_period: 600_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupSnapshot {
    /// Time of the evaluation the state is from (ms).
    evaluated_at: i64,
    /// Alerts per rule key.
    rules: BTreeMap<String, Vec<Alert>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    groups: BTreeMap<String, GroupSnapshot>,
}

/// Alert state on disk (`<data>/rules/state.json`), rewritten atomically
/// after every group evaluation.
struct StateStore {
    path: Option<PathBuf>,
    data: Mutex<StateFile>,
}

impl StateStore {
    fn open(path: Option<PathBuf>) -> Self {
        let data = path
            .as_ref()
            .and_then(|p| match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "alert state file unreadable; starting without it");
                        None
                    }
                },
                Err(_) => None,
            })
            .unwrap_or_default();
        StateStore {
            path,
            data: Mutex::new(data),
        }
    }

    fn snapshot(&self, key: &str) -> Option<GroupSnapshot> {
        self.data.lock().groups.get(key).cloned()
    }

    fn save(&self, group: &Group) {
        let snap = GroupSnapshot {
            evaluated_at: group.stats.lock().last_evaluation,
            rules: group
                .rule_keys()
                .into_iter()
                .zip(&group.states)
                .filter_map(|(k, st)| {
                    let st = st.lock();
                    (!st.active.is_empty()).then(|| {
                        let mut alerts: Vec<Alert> = st.active.values().cloned().collect();
                        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
                        (k, alerts)
                    })
                })
                .collect(),
        };
        let mut data = self.data.lock();
        data.version = 1;
        data.groups.insert(group.spec.key(), snap);
        self.write(&data);
    }

    fn retain(&self, keys: &[String]) {
        let mut data = self.data.lock();
        data.groups.retain(|k, _| keys.contains(k));
        self.write(&data);
    }

    fn write(&self, data: &StateFile) {
        let Some(path) = &self.path else { return };
        let result = crate::persist::write_json_atomic(path, data);
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot save alert state");
        }
    }
}

/// Restores a rule's alerts saved at `saved_at`, now that it is `now`:
/// pending alerts keep the time they had already waited (the downtime does
/// not count, and at least the grace period remains), firing alerts keep
/// firing, and `keep_firing_for` continues where it was.
fn restore_alerts(alerts: Vec<Alert>, hold: i64, saved_at: i64, now: i64, opts: &RestoreOptions) -> Vec<Alert> {
    let down = (now - saved_at).max(0);
    alerts
        .into_iter()
        .map(|mut a| {
            match a.state {
                AlertState::Pending => {
                    let remaining = hold - (saved_at - a.active_at);
                    if remaining <= 0 {
                        // Would have fired: fires at the next evaluation.
                    } else if remaining < opts.for_grace_period {
                        a.active_at = now + opts.for_grace_period - hold;
                    } else {
                        a.active_at += down;
                    }
                }
                AlertState::Firing if a.keep_firing_since != 0 => a.keep_firing_since += down,
                _ => {}
            }
            a
        })
        .collect()
}

struct Running {
    group: Arc<Group>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The outcome of the last (re)load.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Whether it worked.
    pub success: bool,
    /// Why not.
    pub error: String,
    /// When (ms).
    pub at: i64,
}

/// Runs rule groups.
pub struct RuleManager {
    deps: EvalDeps,
    restore: RestoreOptions,
    store: StateStore,
    running: RwLock<Vec<Running>>,
    status: Mutex<ReloadStatus>,
    first_load: Mutex<bool>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl RuleManager {
    /// A manager with no rules yet; state is kept in `state_path` (none:
    /// only in memory).
    pub fn new(deps: EvalDeps, restore: RestoreOptions, state_path: Option<PathBuf>) -> Arc<Self> {
        Arc::new(RuleManager {
            deps,
            restore,
            store: StateStore::open(state_path),
            running: RwLock::new(Vec::new()),
            status: Mutex::new(ReloadStatus::default()),
            first_load: Mutex::new(true),
        })
    }

    /// Replaces the running groups with `specs`. Groups and rules that
    /// stay (same file, group name, rule name and labels) keep their alert
    /// state; on the first load, state saved by the previous run is
    /// restored. Must be called within the Tokio runtime.
    pub fn apply(self: &Arc<Self>, specs: Vec<GroupSpec>) {
        let now = now_ms();
        let first = std::mem::replace(&mut *self.first_load.lock(), false);
        let mut running = self.running.write();
        let old: HashMap<String, Arc<Group>> = running.iter().map(|r| (r.group.spec.key(), r.group.clone())).collect();
        for r in running.drain(..) {
            let _ = r.stop.send(true);
            r.task.abort();
        }
        let mut keys = Vec::new();
        for spec in specs {
            let group = Arc::new(Group::new(spec));
            let key = group.spec.key();
            keys.push(key.clone());
            if let Some(prev) = old.get(&key) {
                copy_state(prev, &group);
            } else if first && let Some(snap) = self.store.snapshot(&key) {
                if now - snap.evaluated_at <= self.restore.outage_tolerance {
                    self.restore_group(&group, snap, now);
                } else {
                    tracing::info!(group = %key, "saved alert state is older than the outage tolerance; not restored");
                }
            }
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(run_group(group.clone(), self.deps.clone(), rx, self.clone()));
            running.push(Running { group, stop, task });
        }
        drop(running);
        self.store.retain(&keys);
        *self.status.lock() = ReloadStatus {
            success: true,
            error: String::new(),
            at: now,
        };
    }

    fn restore_group(&self, group: &Group, snap: GroupSnapshot, now: i64) {
        let mut restored = 0usize;
        for ((key, state), rule) in group.rule_keys().into_iter().zip(&group.states).zip(&group.spec.rules) {
            let Some(alerts) = snap.rules.get(&key) else { continue };
            let hold = match &rule.kind {
                crate::rule::RuleKind::Alerting { hold, .. } => *hold,
                crate::rule::RuleKind::Recording => continue,
            };
            let mut st = state.lock();
            for a in restore_alerts(alerts.clone(), hold, snap.evaluated_at, now, &self.restore) {
                st.active.insert(a.labels.clone(), a);
                restored += 1;
            }
        }
        if restored > 0 {
            tracing::info!(group = %group.spec.key(), alerts = restored, "alert state restored");
        }
    }

    /// Records a failed reload (the running rules stay).
    pub fn reload_failed(&self, error: String) {
        *self.status.lock() = ReloadStatus {
            success: false,
            error,
            at: now_ms(),
        };
    }

    /// The outcome of the last load.
    pub fn status(&self) -> ReloadStatus {
        self.status.lock().clone()
    }

    /// The running groups, in load order.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.running.read().iter().map(|r| r.group.clone()).collect()
    }

    /// Stops every group and saves their state.
    pub async fn stop(&self) {
        let running: Vec<Running> = self.running.write().drain(..).collect();
        for r in running {
            let _ = r.stop.send(true);
            let _ = r.task.await;
            self.store.save(&r.group);
        }
    }
}

fn copy_state(from: &Group, to: &Group) {
    let old: HashMap<String, crate::rule::RuleState> = from
        .rule_keys()
        .into_iter()
        .zip(&from.states)
        .map(|(k, s)| (k, s.lock().clone()))
        .collect();
    for (k, st) in to.rule_keys().into_iter().zip(&to.states) {
        if let Some(prev) = old.get(&k) {
            let mut st = st.lock();
            st.active = prev.active.clone();
            st.previous_series = prev.previous_series.clone();
        }
    }
    *to.stats.lock() = from.stats.lock().clone();
}

async fn run_group(group: Arc<Group>, deps: EvalDeps, mut stop: watch::Receiver<bool>, manager: Arc<RuleManager>) {
    loop {
        let now = now_ms();
        let ts = next_eval(&group.spec, now);
        let wait = std::time::Duration::from_millis((ts - now).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        eval_group(&group, ts, &deps).await;
        manager.store.save(&group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{GroupSpec, NotifyAlert};
    use crate::rule::{Labels, RuleKind, RuleSpec, Sample};

    /// Queries answer one sample while their expression is in `on`.
    fn deps(on: Arc<Mutex<Vec<&'static str>>>) -> EvalDeps {
        EvalDeps {
            log_query: None,
            query: Arc::new(move |q: String, _t| {
                let on = on.lock().iter().any(|e| *e == q);
                Box::pin(async move {
                    Ok(if on {
                        vec![Sample {
                            labels: [("instance".to_string(), "a".to_string())].into_iter().collect(),
                            value: 1.0,
                        }]
                    } else {
                        Vec::new()
                    })
                })
            }),
            append: Arc::new(|_| Box::pin(async { Ok(()) })),
            notify: Arc::new(|_: Vec<NotifyAlert>| {}),
            external_labels: Labels::new(),
            external_url: String::new(),
            resend_delay: 60_000,
        }
    }

    fn spec() -> GroupSpec {
        GroupSpec {
            file: "f.yml".into(),
            name: "g".into(),
            interval: 3_600_000,
            query_offset: 0,
            limit: 0,
            lang: Default::default(),
            rules: vec![
                RuleSpec {
                    name: "Sticky".into(),
                    expr: "sticky".into(),
                    labels: Labels::new(),
                    kind: RuleKind::Alerting {
                        hold: 0,
                        keep_firing_for: 10 * MIN,
                        annotations: Labels::new(),
                    },
                },
                RuleSpec {
                    name: "Slow".into(),
                    expr: "slow".into(),
                    labels: Labels::new(),
                    kind: RuleKind::Alerting {
                        hold: 30 * MIN,
                        keep_firing_for: 0,
                        annotations: Labels::new(),
                    },
                },
            ],
        }
    }

    #[tokio::test]
    async fn keep_firing_for_and_for_survive_a_restart_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let on = Arc::new(Mutex::new(vec!["sticky", "slow"]));
        let m = RuleManager::new(deps(on.clone()), RestoreOptions::default(), Some(path.clone()));
        m.apply(vec![spec()]);
        let g = m.groups()[0].clone();
        let now = now_ms();
        crate::group::eval_group(&g, now - 3 * MIN, &m.deps).await;
        // Both conditions clear: Sticky keeps firing, Slow (pending) is gone.
        on.lock().clear();
        crate::group::eval_group(&g, now - 2 * MIN, &m.deps).await;
        // Slow's condition returns: pending again from here.
        on.lock().push("slow");
        crate::group::eval_group(&g, now - MIN, &m.deps).await;
        m.store.save(&g);
        let sticky_since = g.states[0].lock().active.values().next().unwrap().keep_firing_since;
        assert_eq!(sticky_since, now - 2 * MIN);
        m.stop().await;

        let m2 = RuleManager::new(deps(on), RestoreOptions::default(), Some(path));
        m2.apply(vec![spec()]);
        let g2 = m2.groups()[0].clone();
        let sticky = g2.states[0].lock().active.values().next().cloned().expect("restored");
        assert_eq!(sticky.state, AlertState::Firing);
        // Shifted by the downtime (last evaluation → now): still 9 of its
        // 10 minutes to go.
        assert!(sticky.keep_firing_since >= now - 2 * MIN + MIN - 1_000, "{sticky:?}");
        let slow = g2.states[1].lock().active.values().next().cloned().expect("restored");
        assert_eq!(slow.state, AlertState::Pending);
        // It had waited 0 of 30 minutes at its last evaluation, one
        // minute before the restart: the minute of downtime does not count.
        assert!(slow.active_at >= now - 1_000, "{slow:?}");
        m2.stop().await;
    }

    fn alert(state: AlertState, active_at: i64, keep_since: i64) -> Alert {
        Alert {
            labels: Labels::new(),
            annotations: Labels::new(),
            state,
            value: 1.0,
            active_at,
            fired_at: 0,
            resolved_at: 0,
            last_sent_at: 0,
            valid_until: 0,
            keep_firing_since: keep_since,
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn restored_pending_alerts_do_not_count_the_downtime() {
        let opts = RestoreOptions::default();
        // Pending 2 of 30 minutes when stopped; down 5 minutes.
        let a = restore_alerts(
            vec![alert(AlertState::Pending, 0, 0)],
            30 * MIN,
            2 * MIN,
            7 * MIN,
            &opts,
        );
        assert_eq!(a[0].active_at, 5 * MIN, "28 minutes still to wait");
        // 25 of 30 minutes waited: at least the 10-minute grace remains.
        let a = restore_alerts(
            vec![alert(AlertState::Pending, 0, 0)],
            30 * MIN,
            25 * MIN,
            26 * MIN,
            &opts,
        );
        assert_eq!(a[0].active_at, 26 * MIN + 10 * MIN - 30 * MIN);
        // Already due when stopped: unchanged, fires at the next evaluation.
        let a = restore_alerts(vec![alert(AlertState::Pending, 0, 0)], 5 * MIN, 6 * MIN, 8 * MIN, &opts);
        assert_eq!(a[0].active_at, 0);
        // keep_firing_for continues where it was.
        let a = restore_alerts(vec![alert(AlertState::Firing, 0, 4 * MIN)], 0, 6 * MIN, 9 * MIN, &opts);
        assert_eq!(a[0].keep_firing_since, 7 * MIN);
    }
}
