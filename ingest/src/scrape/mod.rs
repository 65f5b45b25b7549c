//! Scraping Prometheus targets: the text exposition format, relabelling,
//! and what one scrape of a target records.

pub mod expfmt;
pub mod relabel;
pub mod target;
