//! The parameters shared by `/api/v1/series`, `/labels`,
//! `/label/<name>/values` and `/export`, read once by an extractor.

use axum::extract::{FromRequest, Request};
use sightline_storage::Matcher;

use super::ApiError;
use super::query::AllParams;
use crate::fanout::SiteScope;
use crate::params::{MAX_TIME, MIN_TIME, Params};
use crate::selector::parse_selector;

/// `match[]` (every alternative of every selector), `start`, `end`, `limit`.
#[derive(Debug)]
pub struct SeriesQuery {
    /// One matcher list per selector alternative; empty when no `match[]`.
    pub matcher_sets: Vec<Vec<Matcher>>,
    /// Start of the time range (ms, inclusive; default: all time).
    pub start: i64,
    /// End of the time range (ms, inclusive; default: all time).
    pub end: i64,
    /// Maximum results, 0 for no limit.
    pub limit: usize,
    /// The request's view of the fleet (`partial_response=false`: every
    /// site must answer).
    pub scope: SiteScope,
}

impl SeriesQuery {
    /// The matcher sets, or one empty set (all series) when none was given.
    pub fn sets_or_all(&self) -> Vec<Vec<Matcher>> {
        if self.matcher_sets.is_empty() {
            vec![Vec::new()]
        } else {
            self.matcher_sets.clone()
        }
    }

    /// Applies `limit`, adding Prometheus' warning when it cut results.
    pub fn truncate<T>(&self, mut v: Vec<T>, warnings: &mut Vec<String>) -> Vec<T> {
        if self.limit > 0 && v.len() > self.limit {
            v.truncate(self.limit);
            warnings.push("results truncated due to limit".into());
        }
        v
    }

    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let mut matcher_sets = Vec::new();
        for m in params.all("match[]") {
            matcher_sets.extend(parse_selector(m).map_err(ApiError::bad_data)?);
        }
        let start = params.time("start", MIN_TIME).map_err(ApiError::bad_data)?;
        let end = params.time("end", MAX_TIME).map_err(ApiError::bad_data)?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let limit = params.limit().map_err(ApiError::bad_data)?;
        Ok(SeriesQuery {
            matcher_sets,
            start,
            end,
            limit,
            scope: super::site_scope(params)?,
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for SeriesQuery {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let AllParams(params) = AllParams::from_request(req, state).await?;
        Self::from_params(&params)
    }
}
