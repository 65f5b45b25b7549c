//! Sightline query: the Prometheus HTTP API over storage's
//! [`SeriesReader`] trait.
//!
//! This crate reads only through that trait, so it works the same over
//! the local database and, later, over blocks in an object store.

#![warn(missing_docs)]

pub mod api;
pub mod efficiency;
pub mod fanout;
pub mod gotemplate;
pub mod logql;
pub mod loki;
pub mod params;
pub mod promql;
pub mod selector;
pub mod series_notation;

use std::sync::Arc;

use sightline_storage::{MetadataStore, SeriesReader};

use crate::promql::{Engine, EngineOptions};

/// Shared state of the query handlers.
pub struct ApiState<R> {
    /// Where series come from.
    pub reader: Arc<R>,
    /// The PromQL engine (its limits are shared by all requests).
    pub engine: Arc<Engine>,
    /// Metric metadata for `/api/v1/metadata`.
    pub metadata: Arc<MetadataStore>,
}

impl<R> Clone for ApiState<R> {
    fn clone(&self) -> Self {
        ApiState {
            reader: self.reader.clone(),
            engine: self.engine.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

impl<R: SeriesReader> ApiState<R> {
    /// State reading from `reader` with the default engine limits.
    pub fn new(reader: Arc<R>) -> Self {
        Self::with_engine(reader, EngineOptions::default())
    }

    /// State reading from `reader` with these engine limits.
    pub fn with_engine(reader: Arc<R>, opts: EngineOptions) -> Self {
        ApiState {
            reader,
            engine: Arc::new(Engine::new(opts)),
            metadata: Arc::new(MetadataStore::new()),
        }
    }

    /// Serves `metadata` from `/api/v1/metadata`.
    pub fn with_metadata(mut self, metadata: Arc<MetadataStore>) -> Self {
        self.metadata = metadata;
        self
    }
}

pub use api::router;
