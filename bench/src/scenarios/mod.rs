//! The scenarios, one module each; `scenario::registry` lists them.

pub mod allocation;
pub mod graphql_overhead;
pub mod import;
pub mod outbox_drain;
pub mod public_search;
