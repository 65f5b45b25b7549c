//! `sightline report efficiency`: asks a Sightline server for an
//! efficiency report (`POST /api/v1/efficiency`, the same engine as the
//! API), or makes one over the built-in sample data without a server.

use std::path::Path;

use anyhow::{Context, bail};
use sightline_query::efficiency::{self, ReportConfig, sample};
use sightline_query::promql::{Engine, EngineOptions};

/// How the report is printed.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Markdown: a table and the verdict, for a review or a wiki.
    Markdown,
    /// The API's JSON report.
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Json => "json",
        }
    }
}

/// Prints the report `config` asks for, from the server at `url`, or over
/// the sample data set `sample` (`gain20`, `none`) when given (with its
/// own configuration unless `config` is given too).
pub fn efficiency(config: Option<&Path>, url: &str, format: Format, sample: Option<&str>) -> anyhow::Result<()> {
    let text = match config {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?),
        None => None,
    };
    if let Some(kind) = sample {
        let kind = sample::SampleKind::from_name(kind)
            .with_context(|| format!("unknown sample data set {kind:?}: use gain20 or none"))?;
        let (data, sample_config) = sample::build(kind);
        let cfg: ReportConfig = match &text {
            Some(t) => serde_saphyr::from_str(t).context("invalid report configuration")?,
            None => sample_config,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let engine = Engine::new(EngineOptions::default());
        let report = rt.block_on(efficiency::run(&engine, &data, &cfg))?;
        match format {
            Format::Markdown => print!("{}", report.to_markdown()),
            Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        }
        return Ok(());
    }
    let Some(text) = text else {
        bail!("give --config FILE (and --url of the server), or --sample gain20|none");
    };
    let endpoint = format!("{}/api/v1/efficiency", url.trim_end_matches('/'));
    let response = reqwest::blocking::Client::new()
        .post(&endpoint)
        .query(&[("format", format.name())])
        .header(reqwest::header::CONTENT_TYPE, "application/yaml")
        .body(text)
        .send()
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let body = response.text().context("cannot read the server's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("{endpoint} answered {status}: {message}");
    }
    match format {
        Format::Markdown => print!("{body}"),
        Format::Json => {
            let v: serde_json::Value = serde_json::from_str(&body).context("the server's answer is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&v["data"])?);
        }
    }
    Ok(())
}
