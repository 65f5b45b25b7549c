//! The narrow read interface the query layer depends on.

use std::future::Future;
use std::sync::Arc;

use crate::error::Result;
use crate::labels::Labels;
use crate::matcher::Matcher;

/// One series' samples in columnar form: `timestamps[i]` goes with
/// `values[i]` (and `start_timestamps[i]`, when present); timestamps
/// ascend strictly.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// Sample timestamps (ms since epoch), ascending, no duplicates.
    pub timestamps: Vec<i64>,
    /// Sample values; staleness markers kept bit for bit.
    pub values: Vec<f64>,
    /// Each sample's start timestamp (ms; when the counter it belongs to
    /// started counting, OpenTelemetry's `start_time_unix_nano`), 0 where
    /// unknown. Empty when no sample of the series in range has one.
    pub start_timestamps: Vec<i64>,
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

    /// Like [`Self::select`], but hands the series to `out` a batch at a
    /// time, in label order, each batch holding about `batch_samples`
    /// samples (at least one series), so a caller that consumes series
    /// one by one needs memory for a batch, not for the whole answer.
    /// Returns early, without error, once the receiver is gone; an error
    /// is returned, not sent.
    fn select_batches(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        batch_samples: usize,
        out: tokio::sync::mpsc::Sender<Vec<SeriesData>>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            send_in_batches(self.select(matchers, start, end).await?, batch_samples, out).await;
            Ok(())
        }
    }

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

/// Sends `series` to `out` in batches of about `batch_samples` samples (at
/// least one series each), in order; stops once the receiver is gone.
/// For readers that hold a whole answer and serve [`SeriesReader::select_batches`].
pub async fn send_in_batches(
    series: Vec<SeriesData>,
    batch_samples: usize,
    out: tokio::sync::mpsc::Sender<Vec<SeriesData>>,
) {
    let mut batch = Vec::new();
    let mut samples = 0;
    for s in series {
        samples += s.timestamps.len();
        batch.push(s);
        if samples >= batch_samples {
            samples = 0;
            if out.send(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = out.send(batch).await;
    }
}
