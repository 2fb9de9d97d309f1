//! Partner integrations: adapters that speak each wholesaler's wire format behind one trait
//! ([`adapters::Adapter`]: HTTP push, file drop, pull), and the outbox [`worker`] that delivers
//! what the domain wrote to the outbox in the same transaction as the change that caused it.
//!
//! Must not: know GraphQL or serve HTTP; let a partner's wire format leak out of its adapter;
//! touch the database except through `domain` (claims, outcomes and holds live in
//! `domain::dispatch`). Pure rules — the retry schedule ([`backoff`]), the signature
//! ([`signing`]), the file layout (`adapters::file_drop::render`), the meaning of a partner's
//! answer (`adapters::http_push::classify`) and of an attempt (`worker::decide`) — are
//! table-tested next to their code.

pub mod adapters;
pub mod backoff;
pub mod signing;
pub mod worker;

pub use backoff::Backoff;
pub use worker::{Clock, ManualClock, Report, SystemClock, Worker, WorkerConfig};
