//! PostgreSQL: single doses that arrive together are written together (group commit).
//!
//! Written alone, a dose was a transaction of seven statements and a commit, and PostgreSQL
//! spent ~1.5 ms of CPU on each (measured on 2 cores: planning and starting statements, not
//! moving rows; a batch of 1,000 cost ~0.05 ms a record). So `recordDose` calls queue here and
//! a lane takes every call waiting (up to [`MAX_CALLS`]) and writes them as one batch in one
//! transaction ([`super::record_group`]: lock the lots, one look-up of sites, keys, persons,
//! earlier doses, overrides and new ids, one write of entries, records and balances — the same
//! statements whatever the group's size). Nothing waits on purpose: a lone dose is written the
//! moment it arrives; groups form only while the lane's previous transaction runs, i.e. exactly
//! when the database is the bottleneck. With one lane, a group waits behind any writer holding
//! one of its lots (a 1,000-record batch of the same site, say), and so do its other calls.
//!
//! The answers are those the calls would get one after the other in arrival order: the group
//! is decided as one batch (records see each other: the same person's earlier dose, the same
//! site's key, the same lot), each call keeps its own field names, stock changes and
//! `recordedBy`. Should the group's transaction fail (a deadlock with a writer locking rows in
//! another order, a unique index meeting another process's write), nothing of it was written
//! and every call in it is written alone on the direct path, which retries and reports its own
//! outcome.
//!
//! Must not: decide anything (the rules are the batch's), or delay a write to grow a group.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::{Call, Recorded, record_alone, record_group};
use crate::error::{DomainError, DomainResult};
use crate::store::Store;

/// Most calls in one group.
pub const MAX_CALLS: usize = 128;

/// Lanes (group transactions in flight at once); a site always uses the same lane.
///
/// One: measured with 8 clients on 2 cores (`bench run --scenario dose-single`, same binary,
/// back to back, 3 runs each), one lane wrote 2,753–2,834 doses/s and two 2,038–2,054: a second
/// lane halves the groups and doubles the statements, on a machine where the statements are
/// the cost (as `ledger::combine` found for withdrawals). Measured again once the statements'
/// plans were cached (`sql::PROBES_UP_TO`), with two or three writers sharing one queue: no
/// better than one (1,511–1,772/s vs 1,721–1,842/s on a slower machine, BENCHMARKS).
const LANES: usize = 1;

struct Job {
    call: Call,
    reply: oneshot::Sender<DomainResult<Recorded>>,
}

/// The lanes of one database (PostgreSQL only: a SQLite store's writer lock is its own);
/// started on first use, inside the runtime that uses them.
#[derive(Default)]
pub(crate) struct Combiner {
    lanes: OnceLock<Vec<mpsc::UnboundedSender<Job>>>,
    /// Calls queued and not yet taken by their lane.
    waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("doses::Combiner").finish_non_exhaustive()
    }
}

impl Combiner {
    /// Calls queued and not yet taken by a lane (0 when the database keeps up).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Writes `call` with whatever else is waiting on its lane. When the lane is gone (its
    /// runtime ended) the call is written alone.
    pub(crate) async fn record(&self, store: &Store, call: Call) -> DomainResult<Recorded> {
        let lanes = self.lanes.get_or_init(|| {
            (0..LANES)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    // The lane holds the connection, not this store: a store holding its
                    // own lane would keep it (and the pool) alive after every user is gone.
                    tokio::spawn(lane(Store::new(store.db().clone()), rx, self.waiting.clone()));
                    tx
                })
                .collect()
        });
        let lane = crate::ledger::combine::lane_of(&call.site, lanes.len());
        let (reply, answer) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(job)) = lanes[lane].send(Job { call, reply }) {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return record_alone(store, &job.call).await;
        }
        match answer.await {
            Ok(outcome) => outcome,
            // The lane ended (its runtime shut down) before answering; whether the dose was
            // written is unknown, so say so as a storage failure rather than guess (a retry with
            // the same key finds it if it was).
            Err(_) => Err(DomainError::Database(sea_orm::DbErr::Custom(
                "the dose writer stopped before answering".into(),
            ))),
        }
    }
}

/// One lane: take the first waiting call and every other one waiting (up to [`MAX_CALLS`]),
/// write them, answer, repeat.
async fn lane(store: Store, mut rx: mpsc::UnboundedReceiver<Job>, waiting: Arc<AtomicUsize>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_CALLS {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        waiting.fetch_sub(group.len(), Ordering::Relaxed);
        write(&store, group).await;
    }
}

async fn write(store: &Store, group: Vec<Job>) {
    if group.len() > 1 {
        let (calls, replies): (Vec<Call>, Vec<_>) = group.into_iter().map(|j| (j.call, j.reply)).unzip();
        match record_group(store, &calls).await {
            Ok(done) => {
                for (reply, recorded) in replies.into_iter().zip(done) {
                    let _ = reply.send(recorded);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, calls = calls.len(), "grouped doses failed; writing each alone");
                for (reply, call) in replies.into_iter().zip(&calls) {
                    let _ = reply.send(record_alone(store, call).await);
                }
            }
        }
        return;
    }
    for job in group {
        let outcome = record_alone(store, &job.call).await;
        let _ = job.reply.send(outcome);
    }
}
