//! One module per scenario; each is registered in `scenario::registry`.

pub mod graphql_overhead;
pub mod import;
pub mod ledger_writes;
mod stock_common;
pub mod stock_subscribers;
pub mod subscriber_churn;
