//! The built-in Alertmanager: Alertmanager-format configuration (routes,
//! inhibition, time intervals, receivers), grouping and deduplication,
//! silences, delivery with retries, crash-safe state and the API v2.

pub mod api;
pub mod config;
pub mod dispatch;
pub mod matcher;
pub mod notify;
pub mod store;
pub mod timeinterval;

pub use config::AmConfig;
pub use dispatch::{Alertmanager, Cluster};
