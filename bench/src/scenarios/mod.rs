//! The scenarios, one module each; `scenario::registry` lists them.

pub mod allocation;
pub mod graphql_overhead;
pub mod import;
pub mod public_search;
