//! Partner integrations: adapters that speak each wholesaler's and insurance federation's wire
//! format behind one trait per partner kind, and the outbox worker that delivers what the
//! domain wrote to the outbox in the same transaction as the change that caused it.
//!
//! Must not: know GraphQL or serve HTTP; let a partner's wire format leak out of its adapter.
//!
//! Empty until the wholesaler-integration issue: the seam exists so that the dependency
//! direction `domain` ← `integrations` ← `api` is fixed from the start.
