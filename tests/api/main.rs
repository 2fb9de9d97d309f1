//! One black-box test binary: every module starts the real server and talks GraphQL over HTTP
//! or WebSocket. Run on SQLite by default; set TEST_DATABASE_URL (and TEST_REDIS_URL) to run
//! the same tests on PostgreSQL (and Redis).

mod allocation;
mod auth;
mod availability;
mod cli;
mod deliveries;
mod doses;
mod import;
mod ops;
mod persons;
mod public;
mod public_browser;
mod reference;
mod schema;
mod sites;
mod stock;
mod subscriptions;
mod subscriptions_stock;
mod two_instances;
mod wholesale;
