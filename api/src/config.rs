//! Command line and environment: every setting of `vsys` with its flag, variable and default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::{AuthSettings, DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// The SQLite file used when no database URL is given: created in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://vsys.db?mode=rwc";

#[derive(Debug, Parser)]
#[command(
    name = "vsys",
    version,
    about = "V-SYS/VRS: vaccine logistics and vaccination records"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the GraphQL server (migrates the database first).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Print the GraphQL schema (SDL); `schema.graphql` must equal it.
    Schema,
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The site master.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Site stock.
    #[command(subcommand)]
    Stock(StockCommand),
}

#[derive(Debug, Subcommand)]
pub enum StockCommand {
    /// Check that every balance row equals the sum of its ledger entries; exits 1 and lists the
    /// differences if not.
    Reconcile {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// `sqlite://FILE?mode=rwc` (default, created on first start) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Debug, Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct JwtArgs {
    /// HS256 secret for development tokens. Unset: a fixed development secret, with a warning.
    #[arg(long, env = "VSYS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Production: a JWKS file path or http(s) URL; RS256/ES256 tokens only.
    #[arg(long, env = "VSYS_JWKS")]
    pub jwks: Option<String>,
    /// Expected `iss` claim.
    #[arg(long, env = "VSYS_JWT_ISSUER", default_value = DEFAULT_ISSUER)]
    pub jwt_issuer: String,
    /// Expected `aud` claim.
    #[arg(long, env = "VSYS_JWT_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
}

impl JwtArgs {
    pub fn settings(&self) -> AuthSettings {
        AuthSettings {
            jwt_secret: self.jwt_secret.clone(),
            jwks: self.jwks.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VSYS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    /// Redis for cross-instance events and readiness; unset: in-process only.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of the Redis channels events travel on; instances of one deployment share it.
    #[arg(long, env = "VSYS_EVENT_CHANNEL_PREFIX", default_value = crate::server::DEFAULT_EVENT_CHANNEL_PREFIX)]
    pub event_channel_prefix: String,
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Log format.
    #[arg(long, env = "VSYS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Fill an empty database with demo data and print a token per role.
    #[arg(long)]
    pub demo: bool,
    /// Seconds between the server's WebSocket pings; a peer silent for three is dropped.
    #[arg(long, env = "VSYS_WS_PING_SECS", default_value_t = 30)]
    pub ws_ping_secs: u64,
    /// Largest request body accepted, in bytes (site imports through GraphQL are the big ones).
    #[arg(long, env = "VSYS_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a development HS256 token (signed with VSYS_JWT_SECRET or the development default).
    Issue {
        /// NATIONAL, PREFECTURE, MUNICIPALITY, SITE, WHOLESALER, MEDICAL_ASSOCIATION, FEDERATION.
        #[arg(long)]
        role: String,
        /// The role's scope: a prefecture, municipality or site code, a wholesaler id, …
        #[arg(long)]
        scope: Option<String>,
        /// Subject (who the token names).
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 12)]
        hours: i64,
        #[command(flatten)]
        jwt: JwtArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Import sites from a CSV file (see README for the layout); rejected lines go to a report.
    Import {
        file: PathBuf,
        /// Where to write the rejected lines (CSV: line,column,reason).
        #[arg(long, default_value = "import-rejected.csv")]
        report: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
}
