//! The V-SYS/VRS domain: codes, rules, authorization, entities and services.
//!
//! Layout:
//! - [`allocation`]: rounds, levels, eligibility and the proposal arithmetic (pure).
//! - [`allocations`]: the allocation service (rounds, requests, allocations, orders).
//! - [`order`]: order instructions and their outbox message (pure); [`outbox`]: the outbox.
//! - [`codes`]: parsed identifiers (prefecture, municipality, 10-character site codes, slugs).
//! - [`site`]: the site master's vocabulary and pure validation rules.
//! - [`authz`]: who may do what — the only place roles are interpreted.
//! - [`sites`]: the site-master service (register, change, withdraw, list, import, history).
//! - [`entities`]: SeaORM storage shapes, never handed to callers.
//! - [`store`]: the database handle and the single way to open a write transaction.
//! - [`error`]: the one error type services return.
//!
//! Architecture invariant: this crate knows nothing of GraphQL, HTTP or Redis.

#[macro_use]
mod macros;

pub mod allocation;
pub mod allocations;
pub mod authz;
mod bulk;
pub mod codes;
pub mod entities;
pub mod error;
pub mod order;
pub mod outbox;
pub mod product;
pub mod quantity;
pub mod site;
pub mod sites;
pub mod store;

pub use error::{DomainError, DomainResult};
