//! Structured logs with `tracing`: human text by default, JSON with `VSYS_LOG_FORMAT=json`.
//! `RUST_LOG` filters (default `info`). Nothing logs request bodies, variables, tokens or
//! personal data; services log codes and counts only.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
