//! The `sightline` binary: wires storage, ingest and query together.

#[cfg(feature = "jemalloc")]
mod allocator;
mod config;
mod metrics;
mod report;
mod rules;
mod server;
mod unittest;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Sightline: observability and alerting backend.
#[derive(Parser)]
#[command(name = "sightline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service on this node: ingest, storage, query.
    Serve {
        /// Data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// HTTP listen address (APIs, remote write, OTLP HTTP, /metrics).
        #[arg(long, value_name = "ADDR")]
        http_listen: Option<String>,
        /// OTLP gRPC listen address.
        #[arg(long, value_name = "ADDR")]
        grpc_listen: Option<String>,
        /// Configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// How long to keep data, e.g. 15d.
        #[arg(long, value_name = "DURATION")]
        retention: Option<String>,
    },
    /// Run the collector agent of a node: scrape its targets and ship the
    /// samples to its site's ingest (failing over to the next site).
    Agent {
        /// Agent configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Work with Prometheus-format rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Reports over stored data.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Compare work done per unit of resource between two cohorts (two
    /// time windows, or two label selectors) with confidence intervals.
    Efficiency {
        /// Report configuration (YAML): work and resource queries, the
        /// baseline and candidate cohorts, step, confidence.
        #[arg(long, value_name = "FILE", required_unless_present = "sample")]
        config: Option<PathBuf>,
        /// The Sightline server that holds the data.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9780")]
        url: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: report::Format,
        /// Use built-in sample data instead of a server: `gain20` (a known
        /// 20 % gain) or `none` (no change).
        #[arg(long, value_name = "KIND")]
        sample: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Check rule files as `promtool check rules` does: syntax, PromQL,
    /// names; prints every problem with file, line and column.
    Check {
        /// The query language of the expressions: `promql` (Prometheus
        /// rule files) or `logql` (Loki ruler files, as in
        /// `logs.rule_files`).
        #[arg(long, value_enum, default_value = "promql")]
        lang: RuleLang,
        /// Rule files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run rule unit tests written for `promtool test rules`: input
    /// series, expected alerts and query results at given times.
    Test {
        /// Test files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// The query language of a rule file, as given on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum RuleLang {
    /// PromQL.
    Promql,
    /// LogQL.
    Logql,
}

/// `sightline rules check`: true when every file is valid.
fn check_rules(files: &[PathBuf], lang: RuleLang) -> bool {
    let lang = match lang {
        RuleLang::Promql => sightline_alerting::rules::Lang::Promql,
        RuleLang::Logql => sightline_alerting::rules::Lang::Logql,
    };
    let mut ok = true;
    for f in files {
        println!("Checking {}", f.display());
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                println!("  FAILED:\n{}: cannot read: {e}", f.display());
                ok = false;
                continue;
            }
        };
        match sightline_alerting::rules::check_lang(&text, lang) {
            Ok((_, n)) => println!("  SUCCESS: {n} rules found"),
            Err(problems) => {
                ok = false;
                println!("  FAILED:");
                for p in problems {
                    println!("{}: {p}", f.display());
                }
            }
        }
        println!();
    }
    ok
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    sightline_alerting::tls::install_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data_dir,
            http_listen,
            grpc_listen,
            config,
            retention,
        } => {
            let flags = config::Overrides {
                data_dir,
                http_listen,
                grpc_listen,
                retention,
            };
            let cfg = config::Config::load(config.as_deref(), &flags)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(server::serve(cfg, config, flags))
        }
        Command::Agent { config } => {
            let cfg = sightline_ingest::agent::AgentConfig::load(&config).map_err(anyhow::Error::msg)?;
            let base = config.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            rt.block_on(async {
                tracing::info!(config = %config.display(), "sightline agent started");
                sightline_ingest::agent::run(cfg, base, server::shutdown_signal())
                    .await
                    .map_err(anyhow::Error::msg)
            })
        }
        Command::Rules {
            command: RulesCommand::Check { files, lang },
        } => {
            if !check_rules(&files, lang) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::Test { files },
        } => {
            if !unittest::run(&files) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Report {
            command:
                ReportCommand::Efficiency {
                    config,
                    url,
                    format,
                    sample,
                },
        } => report::efficiency(config.as_deref(), &url, format, sample.as_deref()),
    }
}
