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
//! - [`availability`], [`products`]: reservation availability (○△×), venue slots and the
//!   status derived from them, product names — pure rules.
//! - [`reservations`]: the availability service (set a status, keep a venue's slots).
//! - [`public`]: anonymous reads for the public site and the open feed ([`public::PublicSite`]
//!   is the only shape in which a site leaves anonymously); [`feed`]: its SMART Scheduling
//!   Links mapping (pure).
//! - [`wholesaler`]: wholesalers, adapter kinds and the site → customer-code translation
//!   (pure); [`wholesalers`]: their service (configuration, customer codes, CSV import,
//!   acknowledgements); [`dispatch`]: the outbox worker's claims, outcomes, holds and replays.
//! - [`stock`]: the stock ledger's vocabulary and pure rules (entry kinds, reversals,
//!   transfers, days of supply); [`ledger`]: the stock service over it.
//! - [`delivery`]: deliveries against orders and receipt confirmation (pure rules);
//!   [`deliveries`]: the service (accepted vials enter the ledger).
//! - [`personal`]: VRS personal data — My Number protection and the person's pure field
//!   rules; [`persons`]: the person service (register, import, coupons, 転入 links, counts,
//!   the audit log of personal-data reads).
//! - [`dose`]: dose records' vocabulary and pure rules (intervals, conflicts, doses from open
//!   vials); [`doses`]: the dose-record service (recording with its stock effect, corrections,
//!   counts).
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
pub mod availability;
mod bulk;
pub mod codes;
pub mod deliveries;
pub mod delivery;
pub mod dispatch;
pub mod dose;
pub mod doses;
pub mod entities;
pub mod error;
pub mod feed;
mod held;
pub mod ledger;
pub mod order;
pub mod outbox;
pub mod personal;
pub mod persons;
pub mod product;
pub mod product_names;
pub mod public;
pub mod quantity;
pub mod reservations;
pub mod site;
pub mod sites;
pub mod stock;
pub mod store;
pub mod wholesaler;
pub mod wholesalers;

pub use error::{DomainError, DomainResult};
