//! The `sightline` binary: wires storage, ingest and query together.

mod config;
mod metrics;
mod server;

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
            rt.block_on(server::serve(cfg))
        }
    }
}
