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

// Parsed once at start and never moved around: the size difference between commands is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the GraphQL server (migrates the database first).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Print the GraphQL schema (SDL); `schema.graphql` must equal it.
    Schema {
        /// Print the public (anonymous) schema instead; `public-schema.graphql` must equal it.
        #[arg(long)]
        public: bool,
    },
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The site master.
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Allocation operations.
    #[command(subcommand)]
    Allocations(AllocationsCommand),
    /// The outbox of messages to partners.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Site stock.
    #[command(subcommand)]
    Stock(StockCommand),
    /// Persons (VRS residents).
    #[command(subcommand)]
    Persons(PersonsCommand),
}

#[derive(Debug, Subcommand)]
pub enum PersonsCommand {
    /// Import a municipality's residents from a resident-register CSV (see README for the
    /// columns); refused rows go to a report (row,field,code,reason — never values).
    Import {
        /// The importing municipality (6 digits with its check digit).
        #[arg(long)]
        municipality: String,
        file: PathBuf,
        /// Where to write the refused rows.
        #[arg(long, default_value = "persons-rejected.csv")]
        report: PathBuf,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        keys: PersonalKeyArgs,
    },
    /// Re-seal every stored My Number under the current key (after adding a new key first in
    /// the list); prints how many were re-sealed.
    Rekey {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        keys: PersonalKeyArgs,
    },
}

/// The personal-data keys (My Number encryption and lookup hash).
#[derive(Args, Clone, Default)]
pub struct PersonalKeyArgs {
    /// Encryption keys `id:base64` (32 bytes each), comma-separated, the current one first.
    #[arg(long, env = "VSYS_PERSONAL_KEYS", hide_env_values = true)]
    pub personal_keys: Option<String>,
    /// The My Number lookup-hash key, base64 of 32 bytes (cannot rotate without rehashing).
    #[arg(long, env = "VSYS_PERSONAL_LOOKUP_KEY", hide_env_values = true)]
    pub personal_lookup_key: Option<String>,
    /// A key file with `encryption=…` and `lookup=…` lines. Unset with SQLite: `<db file>.keys`,
    /// generated (mode 0600) on first start; PostgreSQL refuses to start without keys.
    #[arg(long, env = "VSYS_PERSONAL_KEY_FILE")]
    pub personal_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for PersonalKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.settings().fmt(f)
    }
}

impl PersonalKeyArgs {
    pub fn settings(&self) -> crate::personal_keys::PersonalKeySettings {
        crate::personal_keys::PersonalKeySettings {
            encryption: self.personal_keys.clone(),
            lookup: self.personal_lookup_key.clone(),
            key_file: self.personal_key_file.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Deliver every message that is due now, then print what happened (alongside or instead of
    /// the workers in `vsys serve`; safe to run concurrently with them).
    Drain {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        outbox: OutboxArgs,
    },
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
    /// Prefix of this deployment's Redis keys and channels (instances of one deployment share
    /// it; deployments sharing a Redis must not).
    #[arg(long, env = "VSYS_REDIS_PREFIX", default_value = crate::server::DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
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
    #[command(flatten)]
    pub public: PublicArgs,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub personal: PersonalKeyArgs,
}

/// The outbox worker that delivers orders to wholesalers.
#[derive(Debug, Args, Clone)]
pub struct OutboxArgs {
    /// Run the outbox worker in this process (`false`: leave delivery to other instances or to
    /// `vsys outbox drain`).
    #[arg(long, env = "VSYS_OUTBOX_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub outbox_worker: bool,
    /// Directory for file-drop wholesalers (one subdirectory per wholesaler).
    #[arg(long, env = "VSYS_OUTBOX_DROP_DIR", default_value = "outbox-drop")]
    pub outbox_drop_dir: PathBuf,
    /// Messages claimed per round.
    #[arg(long, env = "VSYS_OUTBOX_BATCH", default_value_t = 500)]
    pub outbox_batch: u64,
    /// Attempts before a message that keeps failing is parked.
    #[arg(long, env = "VSYS_OUTBOX_MAX_ATTEMPTS", default_value_t = 12)]
    pub outbox_max_attempts: u32,
    /// Seconds a wholesaler may take to answer one pushed message.
    #[arg(long, env = "VSYS_OUTBOX_HTTP_TIMEOUT", default_value_t = 10)]
    pub outbox_http_timeout: u64,
    /// Messages pushed at once.
    #[arg(long, env = "VSYS_OUTBOX_CONCURRENCY", default_value_t = 64)]
    pub outbox_concurrency: usize,
    /// First retry wait (seconds); it doubles per attempt up to `--outbox-backoff-cap`.
    #[arg(long, env = "VSYS_OUTBOX_BACKOFF_BASE", default_value_t = 2)]
    pub outbox_backoff_base: u64,
    /// Longest retry wait (seconds).
    #[arg(long, env = "VSYS_OUTBOX_BACKOFF_CAP", default_value_t = 3600)]
    pub outbox_backoff_cap: u64,
    /// Milliseconds the worker waits when nothing is due.
    #[arg(long, env = "VSYS_OUTBOX_POLL_MS", default_value_t = 1000)]
    pub outbox_poll_ms: u64,
    /// Rounds in flight at once (one claims or records while another sends).
    #[arg(long, env = "VSYS_OUTBOX_PARALLEL", default_value_t = 2)]
    pub outbox_parallel: usize,
}

impl OutboxArgs {
    pub fn worker_config(&self) -> integrations::WorkerConfig {
        use std::time::Duration;
        let timeout = Duration::from_secs(self.outbox_http_timeout.max(1));
        integrations::WorkerConfig {
            batch: self.outbox_batch.max(1),
            // Longer than a whole round of pushes can take, so no two workers ever send one
            // message at the same time.
            lease: (timeout * 4).max(Duration::from_secs(60)),
            max_attempts: self.outbox_max_attempts.max(1),
            backoff: integrations::Backoff {
                base: Duration::from_secs(self.outbox_backoff_base.max(1)),
                cap: Duration::from_secs(self.outbox_backoff_cap.max(1)),
            },
            http_timeout: timeout,
            concurrency: self.outbox_concurrency.max(1),
            drop_dir: self.outbox_drop_dir.clone(),
            poll_interval: Duration::from_millis(self.outbox_poll_ms.max(10)),
            parallel: self.outbox_parallel.clamp(1, 16),
        }
    }
}

/// The public side: anonymous traffic limits, the response cache, the feed's address.
#[derive(Debug, Args, Clone)]
pub struct PublicArgs {
    /// Requests per second each client address may make to the public site and API (and
    /// anonymously to /graphql); 0 turns rate limiting off.
    #[arg(long, env = "VSYS_PUBLIC_RATE_LIMIT", default_value_t = 20.0)]
    pub public_rate_limit: f64,
    /// Requests a client may make in a burst before the rate applies.
    #[arg(long, env = "VSYS_PUBLIC_RATE_BURST", default_value_t = 60)]
    pub public_rate_burst: u32,
    /// Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    #[arg(long, env = "VSYS_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Memory for cached public answers, in MiB; 0 turns the cache off.
    #[arg(long, env = "VSYS_PUBLIC_CACHE_MB", default_value_t = 64)]
    pub public_cache_mb: usize,
    /// Longest life of a cached public answer, in seconds (changes made through the API
    /// invalidate at once; this bounds staleness after writes made around it).
    #[arg(long, env = "VSYS_PUBLIC_CACHE_TTL", default_value_t = 300)]
    pub public_cache_ttl: u64,
    /// Absolute base URL for the feed's manifest, e.g. https://vaccine.example.jp
    /// (default: http:// + the request's Host).
    #[arg(long, env = "VSYS_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
}

impl PublicArgs {
    pub fn settings(&self) -> crate::public::PublicSettings {
        crate::public::PublicSettings {
            rate_per_second: self.public_rate_limit,
            rate_burst: self.public_rate_burst,
            trust_forwarded_for: self.trust_forwarded_for,
            cache_bytes: self.public_cache_mb * 1024 * 1024,
            cache_ttl: std::time::Duration::from_secs(self.public_cache_ttl),
            base_url: self.public_base_url.clone(),
            ..Default::default()
        }
    }
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

#[derive(Debug, Subcommand)]
pub enum AllocationsCommand {
    /// The deadline run: confirm every municipality allocation of a round that is still in
    /// draft, exactly as if each municipality had confirmed it (orders and outbox entries in one
    /// transaction). Municipalities with a blocking problem stay in draft and are listed.
    ConfirmAll {
        /// The round's id.
        #[arg(long)]
        round: i32,
        #[command(flatten)]
        db: DbArgs,
    },
}
