//! The outbox worker: claims due messages, hands them to their wholesaler's adapter, and records
//! each outcome — at least once, with the message's idempotency key.
//!
//! Tests and the `vsys outbox drain` command drive it synchronously ([`Worker::run_once`],
//! [`Worker::drain`], or the three steps [`Worker::claim`], [`Worker::send`],
//! [`Worker::record`]); `vsys serve` runs [`Worker::spawn`], which polls. Time comes from a
//! [`Clock`], so tests move it forward instead of sleeping.
//!
//! Coordination lives in the database (see `domain::dispatch`): any number of workers, in one
//! process or many (PostgreSQL), take disjoint leases; none sends a message while another holds
//! its lease. A failure is retried after [`Backoff`] until `max_attempts`, then parked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::DomainResult;
use domain::dispatch::{self, Claim, Outcome, Recorded};
use domain::store::Store;
use domain::wholesaler::AdapterKind;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::file_drop::FileDrop;
use crate::adapters::http_push::HttpPush;
use crate::adapters::{Adapter, Attempt, Pull};
use crate::backoff::Backoff;

/// Where the worker's "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests, replays of a scenario).
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The worker's settings (`vsys serve --outbox-*`).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Messages claimed per round trip.
    pub batch: u64,
    /// How long a claim keeps other workers off a message; longer than `http_timeout`, so a
    /// message is never sent by two workers at once.
    pub lease: Duration,
    /// Attempts before a retried message is parked.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// The longest a partner may take to answer one message.
    pub http_timeout: Duration,
    /// Messages pushed at once.
    pub concurrency: usize,
    /// Where file-drop wholesalers' files go (one subdirectory per wholesaler).
    pub drop_dir: PathBuf,
    /// How long the background loop waits when the queue is empty.
    pub poll_interval: Duration,
    /// Rounds in flight at once: while one round sends, another claims or records. Safe for
    /// any number (claims are disjoint); on SQLite claims and records still take turns.
    pub parallel: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch: 500,
            lease: Duration::from_secs(120),
            max_attempts: 12,
            backoff: Backoff::default(),
            http_timeout: Duration::from_secs(10),
            concurrency: 64,
            drop_dir: PathBuf::from("outbox-drop"),
            poll_interval: Duration::from_secs(1),
            parallel: 2,
        }
    }
}

/// What one round (or a drain) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub claimed: u64,
    pub delivered: u64,
    pub retried: u64,
    pub parked: u64,
    pub held: u64,
    /// Outcomes not recorded because the lease had passed to another worker.
    pub stale: u64,
}

impl Report {
    fn add(&mut self, o: Report) {
        self.claimed += o.claimed;
        self.delivered += o.delivered;
        self.retried += o.retried;
        self.parked += o.parked;
        self.held += o.held;
        self.stale += o.stale;
    }

    /// Nothing was due.
    pub fn is_idle(&self) -> bool {
        self.claimed == 0 && self.held == 0 && self.parked == 0
    }
}

/// The attempts of a claim, ready to record.
pub struct Sent {
    token: String,
    outcomes: Vec<(i64, String, Outcome)>,
}

type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// An outbox worker.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    config: WorkerConfig,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
    adapters: Arc<HashMap<AdapterKind, Arc<dyn Adapter>>>,
    id: String,
    claims: Arc<AtomicU64>,
}

impl Worker {
    /// A worker on the real clock with the three standard adapters.
    pub fn new(store: Store, config: WorkerConfig) -> Self {
        Self::with_clock(store, config, Arc::new(SystemClock))
    }

    pub fn with_clock(store: Store, config: WorkerConfig, clock: Arc<dyn Clock>) -> Self {
        let adapters: Vec<Arc<dyn Adapter>> = vec![
            Arc::new(HttpPush::new(config.http_timeout, config.concurrency)),
            Arc::new(FileDrop::new(config.drop_dir.clone())),
            Arc::new(Pull),
        ];
        Worker {
            store,
            clock,
            jitter: Arc::new(rand::random::<f64>),
            adapters: Arc::new(adapters.into_iter().map(|a| (a.kind(), a)).collect()),
            id: format!("w{:016x}", rand::random::<u64>()),
            claims: Arc::new(AtomicU64::new(0)),
            config,
        }
    }

    /// Replaces the jitter source (a fixed value makes retry times exact in tests).
    pub fn with_jitter(mut self, jitter: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    /// Replaces (or adds) the adapter of its kind.
    pub fn with_adapter(mut self, adapter: Arc<dyn Adapter>) -> Self {
        let mut map: HashMap<AdapterKind, Arc<dyn Adapter>> = (*self.adapters).clone();
        map.insert(adapter.kind(), adapter);
        self.adapters = Arc::new(map);
        self
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Step 1: claims a batch of due messages (holding those that cannot be translated yet).
    pub async fn claim(&self) -> DomainResult<Claim> {
        let n = self.claims.fetch_add(1, Ordering::Relaxed);
        let token = format!("{}-{n}", self.id);
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::minutes(2));
        dispatch::claim(&self.store, &token, self.clock.now(), lease, self.config.batch).await
    }

    /// Step 2: hands each claimed message to its adapter and decides what each attempt means:
    /// delivered, retry at a time from the backoff schedule, or park.
    pub async fn send(&self, claim: &Claim) -> Sent {
        let mut by_kind: HashMap<AdapterKind, Vec<usize>> = HashMap::new();
        for (i, m) in claim.ready.iter().enumerate() {
            by_kind.entry(m.adapter.kind()).or_default().push(i);
        }
        let mut attempts: Vec<Option<Attempt>> = vec![None; claim.ready.len()];
        let runs = by_kind.into_iter().map(|(kind, idx)| {
            let batch: Vec<_> = idx.iter().map(|i| claim.ready[*i].clone()).collect();
            let adapter = self.adapters.get(&kind).cloned();
            async move {
                let results = match adapter {
                    Some(a) => a.deliver(&batch).await,
                    None => vec![Attempt::Permanent(format!("no {kind} adapter in this worker")); batch.len()],
                };
                (kind, idx, results)
            }
        });
        for (kind, idx, results) in futures_util::future::join_all(runs).await {
            let label = kind.as_str();
            for (i, a) in idx.into_iter().zip(results) {
                match &a {
                    Attempt::Delivered { .. } => {
                        metrics::counter!("vsys_outbox_deliveries_total", "adapter" => label).increment(1)
                    }
                    Attempt::Transient(_) => {
                        metrics::counter!("vsys_outbox_failures_total", "adapter" => label, "kind" => "transient")
                            .increment(1)
                    }
                    Attempt::Permanent(_) => {
                        metrics::counter!("vsys_outbox_failures_total", "adapter" => label, "kind" => "permanent")
                            .increment(1)
                    }
                }
                attempts[i] = Some(a);
            }
        }
        let now = self.clock.now();
        let outcomes = claim
            .ready
            .iter()
            .zip(attempts)
            .map(|(m, a)| {
                let a = a.unwrap_or_else(|| Attempt::Transient("not attempted".into()));
                (m.id, m.order_id.clone(), self.outcome(a, m.attempt, now))
            })
            .collect();
        Sent {
            token: claim.token.clone(),
            outcomes,
        }
    }

    fn outcome(&self, a: Attempt, attempt: i32, now: DateTime<Utc>) -> Outcome {
        decide(a, attempt, now, &self.config, (self.jitter)())
    }

    /// Step 3: records the outcomes (only where this worker still holds the lease).
    pub async fn record(&self, sent: Sent) -> DomainResult<Recorded> {
        dispatch::record(&self.store, &sent.token, self.clock.now(), &sent.outcomes).await
    }

    /// One round: claim, send, record.
    pub async fn run_once(&self) -> DomainResult<Report> {
        let claim = self.claim().await?;
        let mut report = Report {
            claimed: claim.ready.len() as u64,
            held: claim.held,
            parked: claim.parked,
            ..Default::default()
        };
        if !claim.ready.is_empty() {
            let sent = self.send(&claim).await;
            let r = self.record(sent).await?;
            report.delivered = r.delivered;
            report.retried = r.retried;
            report.parked += r.parked;
            report.stale = r.stale;
        }
        Ok(report)
    }

    /// Rounds until nothing is due now (messages waiting for a retry time stay queued), with
    /// `parallel` rounds in flight.
    pub async fn drain(&self) -> DomainResult<Report> {
        let lanes = (0..self.config.parallel.max(1)).map(|_| self.drain_lane());
        let mut total = Report::default();
        for r in futures_util::future::join_all(lanes).await {
            total.add(r?);
        }
        self.refresh_metrics().await;
        Ok(total)
    }

    async fn drain_lane(&self) -> DomainResult<Report> {
        let mut total = Report::default();
        loop {
            let r = self.run_once().await?;
            if r.is_idle() {
                return Ok(total);
            }
            total.add(r);
        }
    }

    /// Sets the queue gauges: messages waiting, age of the oldest, parked messages.
    pub async fn refresh_metrics(&self) {
        match dispatch::stats(&self.store, self.clock.now()).await {
            Ok(s) => {
                metrics::gauge!("vsys_outbox_waiting").set(s.waiting as f64);
                metrics::gauge!("vsys_outbox_oldest_age_seconds").set(s.oldest_age_seconds);
                metrics::gauge!("vsys_outbox_parked").set(s.parked as f64);
            }
            Err(e) => tracing::warn!(error = %e, "outbox statistics unavailable"),
        }
    }

    /// Runs rounds in the background until `stop` turns true, waiting `poll_interval` whenever
    /// nothing was due. Errors are logged and retried after the interval.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            tracing::info!(worker = %self.id, "outbox worker started");
            // One lane here: `vsys serve` instances on PostgreSQL add lanes by adding instances;
            // `drain` uses `parallel`.
            let mut last_stats = std::time::Instant::now() - Duration::from_secs(3600);
            loop {
                if *stop.borrow() {
                    break;
                }
                let idle = match self.run_once().await {
                    Ok(r) => r.is_idle(),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox round failed");
                        true
                    }
                };
                if last_stats.elapsed() >= Duration::from_secs(5) {
                    self.refresh_metrics().await;
                    last_stats = std::time::Instant::now();
                }
                if idle {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
            tracing::info!(worker = %self.id, "outbox worker stopped");
        })
    }
}

/// What an attempt means for the message (pure; table-tested): delivered; retried after the
/// backoff for this attempt; or parked — at once for a permanent failure, after `max_attempts`
/// for a transient one.
pub fn decide(a: Attempt, attempt: i32, now: DateTime<Utc>, config: &WorkerConfig, jitter: f64) -> Outcome {
    let attempt = u32::try_from(attempt).unwrap_or(1).max(1);
    match a {
        Attempt::Delivered {
            acknowledged,
            reference,
        } => Outcome::Delivered {
            acknowledged,
            reference,
        },
        Attempt::Permanent(error) => Outcome::Park { error },
        Attempt::Transient(error) if attempt >= config.max_attempts => Outcome::Park {
            error: format!("gave up after {attempt} attempts; last: {error}"),
        },
        Attempt::Transient(error) => {
            let wait = config.backoff.delay(attempt, jitter);
            Outcome::Retry {
                at: now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)),
                error: format!("attempt {attempt}: {error}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_become_outcomes() {
        let now: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().expect("time");
        let config = WorkerConfig {
            max_attempts: 3,
            backoff: Backoff {
                base: Duration::from_secs(10),
                cap: Duration::from_secs(100),
            },
            ..Default::default()
        };
        let t = |s: i64| now + chrono::Duration::seconds(s);
        let transient = || Attempt::Transient("HTTP 503".into());
        let cases: Vec<(Attempt, i32, f64, Outcome)> = vec![
            (
                Attempt::Delivered {
                    acknowledged: true,
                    reference: None,
                },
                1,
                0.0,
                Outcome::Delivered {
                    acknowledged: true,
                    reference: None,
                },
            ),
            (
                transient(),
                1,
                0.0,
                Outcome::Retry {
                    at: t(5),
                    error: "attempt 1: HTTP 503".into(),
                },
            ),
            (
                transient(),
                2,
                1.0,
                Outcome::Retry {
                    at: t(20),
                    error: "attempt 2: HTTP 503".into(),
                },
            ),
            (
                transient(),
                3,
                0.0,
                Outcome::Park {
                    error: "gave up after 3 attempts; last: HTTP 503".into(),
                },
            ),
            (
                Attempt::Permanent("HTTP 400: no".into()),
                1,
                0.0,
                Outcome::Park {
                    error: "HTTP 400: no".into(),
                },
            ),
        ];
        for (a, attempt, jitter, want) in cases {
            assert_eq!(
                decide(a.clone(), attempt, now, &config, jitter),
                want,
                "{a:?} #{attempt}"
            );
        }
    }
}
