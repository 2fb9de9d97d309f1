//! Wholesaler adapters behind one trait. The worker hands each adapter the messages it claimed
//! for wholesalers of that adapter's kind; the adapter answers, per message, how the attempt
//! ended. Each partner's wire format stays inside its adapter.

pub mod file_drop;
pub mod http_push;

use std::future::Future;
use std::pin::Pin;

use domain::dispatch::Claimed;
use domain::wholesaler::AdapterKind;

/// A boxed future borrowing the adapter and its batch (async fns in a `dyn` trait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How one attempt to hand a message to a partner ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The partner has it. `acknowledged`: its answer confirmed receipt.
    Delivered {
        acknowledged: bool,
        reference: Option<String>,
    },
    /// Worth trying again later (the partner is down, slow or overloaded).
    Transient(String),
    /// Trying again will not help until someone looks (refused, unreadable answer).
    Permanent(String),
}

/// One way of reaching wholesalers.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;

    /// Attempts every message of `batch` (all of this adapter's kind); returns one attempt per
    /// message, in the batch's order.
    fn deliver<'a>(&'a self, batch: &'a [Claimed]) -> BoxFuture<'a, Vec<Attempt>>;
}

/// Pull: nothing leaves the system. Delivering publishes the order to its wholesaler, which
/// reads it over GraphQL (`orders(filter: { status: SENT })`) and acknowledges it
/// (`acknowledgeOrders`).
pub struct Pull;

impl Adapter for Pull {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Pull
    }

    fn deliver<'a>(&'a self, batch: &'a [Claimed]) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            batch
                .iter()
                .map(|_| Attempt::Delivered {
                    acknowledged: false,
                    reference: None,
                })
                .collect()
        })
    }
}
