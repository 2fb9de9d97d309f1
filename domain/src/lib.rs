//! The V-SYS/VRS domain: codes, rules, authorization, entities and services.
//!
//! Layout:
//! - [`codes`]: parsed identifiers (prefecture, municipality, 10-character site codes, slugs).
//! - [`site`]: the site master's vocabulary and pure validation rules.
//! - [`authz`]: who may do what — the only place roles are interpreted.
//! - [`sites`]: the site-master service (register, change, withdraw, list, import, history).
//! - [`stock`]: the stock ledger's vocabulary and pure rules (entry kinds, reversals,
//!   transfers, days of supply); [`ledger`]: the stock service over it.
//! - [`entities`]: SeaORM storage shapes, never handed to callers.
//! - [`store`]: the database handle and the single way to open a write transaction.
//! - [`error`]: the one error type services return.
//!
//! Architecture invariant: this crate knows nothing of GraphQL, HTTP or Redis.

#[macro_use]
mod macros;

pub mod authz;
pub mod codes;
pub mod entities;
pub mod error;
pub mod ledger;
pub mod product;
pub mod quantity;
pub mod site;
pub mod sites;
pub mod stock;
pub mod store;

pub use error::{DomainError, DomainResult};
