//! The scenarios, one module each; `scenario::registry` lists them.

pub mod graphql_overhead;
pub mod import;
pub mod ledger_writes;
pub mod public_search;
pub mod stock_common;
pub mod stock_subscribers;
pub mod subscriber_churn;
