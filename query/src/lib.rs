//! Sightline query: the Prometheus HTTP API over storage's
//! [`SeriesReader`] trait.
//!
//! This crate reads only through that trait, so it works the same over
//! the local database and, later, over blocks in an object store.

#![warn(missing_docs)]

pub mod api;
pub mod params;
pub mod promql;
pub mod selector;

use std::sync::Arc;

use sightline_storage::SeriesReader;

/// Shared state of the query handlers.
pub struct ApiState<R> {
    /// Where series come from.
    pub reader: Arc<R>,
}

impl<R> Clone for ApiState<R> {
    fn clone(&self) -> Self {
        ApiState {
            reader: self.reader.clone(),
        }
    }
}

impl<R: SeriesReader> ApiState<R> {
    /// State reading from `reader`.
    pub fn new(reader: Arc<R>) -> Self {
        ApiState { reader }
    }
}

pub use api::router;
