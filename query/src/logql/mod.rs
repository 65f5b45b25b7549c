//! LogQL: Loki's query language over log storage's [`LogReader`].
//!
//! `parser` turns text into the tree in `ast` (printed back by
//! `Display` for `format_query`); `pipeline` runs one entry through the
//! stages; `eval` answers log queries (streams) and metric queries
//! (series at steps). Leading `|=` filters are handed to storage, which
//! answers them from its full-text index.
//!
//! [`LogReader`]: sightline_storage::logs::LogReader

pub mod ast;
pub mod eval;
pub mod lexer;
pub mod parser;
pub mod pattern;
pub mod pipeline;
pub mod template;

#[cfg(test)]
mod tests;

pub use ast::{Expr, LogExpr, MetricExpr};
pub use eval::{Context, Direction, EvalError, LogqlLimits, SeriesResult, Steps, StreamResult, eval_log, eval_metric};
pub use parser::{parse, parse_log};
