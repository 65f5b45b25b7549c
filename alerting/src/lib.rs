//! Sightline alerting: Prometheus-format rule files (this step: parsing
//! and validation, as `promtool check rules`); evaluation, alert state and
//! notifications come next (issue 4).
//!
//! Depends on the query crate for PromQL, never on HTTP.

#![warn(missing_docs)]

pub mod am;
pub mod api;
pub mod delivery;
pub mod group;
pub mod inventory;
pub mod manager;
pub mod notifier;
pub mod persist;
pub mod rule;
pub mod rules;
pub mod template;
pub mod timefmt;
pub mod tls;
