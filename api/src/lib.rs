//! The only crate that knows GraphQL and HTTP: the axum server, the async-graphql schema, JWT
//! authentication, metrics, and the `vsys` command line.
//!
//! Layout:
//! - [`server`]: routes and lifecycle; [`graphql`]: schema, resolvers, view types, scalars;
//!   [`ws`]: GraphQL over WebSocket with server pings.
//! - [`auth`]: bearer-token verification (HS256 for development, JWKS RS256/ES256 in production).
//! - [`error`]: domain errors → GraphQL errors with stable codes.
//! - [`events`]: the event bus (in-process or Redis) fanning committed changes out to
//!   subscriptions (site master and stock changes).
//! - [`public`]: the anonymous side: public GraphQL schema, web page, open feed, rate limits,
//!   response cache.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and structured logs.
//! - [`personal_keys`]: where the My Number keys come from (configured, key file, or a
//!   generated development file beside a SQLite database).
//! - [`config`], [`cli`], [`demo`], [`db`]: the binary's commands and settings.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod events;
pub mod graphql;
pub mod metrics;
pub mod personal_keys;
pub mod public;
pub mod server;
pub mod telemetry;
pub mod ws;
