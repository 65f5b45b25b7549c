//! The narrow read interface the query layer depends on.

use std::future::Future;
use std::sync::Arc;

use crate::error::Result;
use crate::labels::Labels;
use crate::matcher::Matcher;

/// One series' samples in columnar form: `timestamps[i]` goes with
/// `values[i]`; timestamps ascend strictly.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// Sample timestamps (ms since epoch), ascending, no duplicates.
    pub timestamps: Vec<i64>,
    /// Sample values; staleness markers kept bit for bit.
    pub values: Vec<f64>,
}

/// What the query layer may ask of storage. Every time range is inclusive
/// at both ends, in milliseconds. Results are sorted by labels.
pub trait SeriesReader: Send + Sync + 'static {
    /// The samples in `[start, end]` of every series matching all matchers.
    fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<Vec<SeriesData>>> + Send;

    /// The label sets of the series matching all matchers that have
    /// samples in `[start, end]`, without reading samples.
    fn series(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<Vec<Arc<Labels>>>> + Send;

    /// Label names in use by series matching `matchers` (all series when
    /// empty) within `[start, end]`, sorted.
    fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Values of label `name` on series matching `matchers` within
    /// `[start, end]`, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}
