//! PostgreSQL: single doses that arrive together are written together (group commit).
//!
//! Written alone, a dose was a transaction of seven statements and a commit, and PostgreSQL
//! spent ~1.5 ms of CPU on each (measured on 2 cores: planning and starting statements, not
//! moving rows; a batch of 1,000 cost ~0.05 ms a record). So `recordDose` calls queue here and
//! a writer takes every call waiting (up to [`MAX_CALLS`]) and writes them as one batch
//! ([`super::record_group_unlocked`]: one look-up of sites, lots, keys, persons, earlier doses,
//! overrides and new ids, and one write of entries, records and balances that first locks the
//! lots and writes only if none moved since the look-up — two statements and no transaction,
//! whatever the group's size). Nothing waits on purpose: a lone dose is written the moment it
//! arrives; groups form only while the writers' previous groups are written, i.e. exactly when
//! the database is the bottleneck. [`WRITERS`] writers take from one queue, each on its own
//! thread with its own connection.
//!
//! The answers are those the calls would get one after the other in arrival order: a group is
//! decided as one batch on what was committed when it looked up, and written only if no
//! writer of its lots (the other writer's group of the same site, a 1,000-record batch, a
//! delivery, another process) committed since — the same answers as had it locked its lots
//! first. If one did, the group is written again as one transaction that does lock its lots
//! first ([`super::record_group`]), waiting behind any transaction holding one of them; a group
//! with a site the other writer is writing for goes that way at once. Its records see each
//! other (the same person's earlier dose, the same site's key, the same lot); each call keeps
//! its own field names, stock changes and `recordedBy`. (Two groups of different lots run side
//! by side, as a group and a `recordDoses` batch of another site always could: a person's
//! doses at two sites in the same instant meet at the unique dose number, not at the interval
//! rules.) Should the locked transaction fail too (a deadlock with a writer locking rows in
//! another order, a unique index meeting another process's write), nothing of it was written
//! and every call in it is written alone on the direct path, which retries and reports its
//! own outcome.
//!
//! The writer's thread asks for a higher scheduling priority ([`WRITER_NICE`]): its round
//! trips are the critical path of every single dose, and on a busy machine each of its
//! wake-ups otherwise waits behind request workers that only have more calls to queue.
//!
//! Must not: decide anything (the rules are the batch's), or delay a write to grow a group.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgPoolOptions;
use tokio::sync::{mpsc, oneshot};

use super::{Call, Recorded, record_alone, record_group, record_group_unlocked};
use crate::codes::SiteCode;
use crate::error::{DomainError, DomainResult};
use crate::held::Held;
use crate::store::Store;

/// Most calls in one group.
pub const MAX_CALLS: usize = 128;

/// Writers: group transactions in flight at once, each on its own thread with its own
/// connection, taking from one queue (see [`spawn_writer`]).
///
/// One, since each writer keeps its connection ([`Held`]). Measured with 8 clients on 2 cores
/// (`bench run --scenario dose-single`, 2026-11-28 03:5x–04:3x, an Intel Xeon; ratio to pgbench
/// by series of 3–5 runs): one writer 0.48, 0.63, 0.55, 0.51, 0.60 and 0.51×; two 0.47, 0.46,
/// 0.48, 0.51, 0.51 and 0.46× (two also with the queue held until a group was decided, so the
/// next group gathered meanwhile: 0.51 and 0.46×); three 0.46 and 0.42×. Two writers halve the
/// groups, and the database spent the cores starting twice as many statements per dose; one
/// leaves ~17 % of the cores idle while its group commits, and still records more. When a
/// pooled connection was pinged after every statement (so each group was four round trips),
/// two had been better: 2026-11-27 23:1x–23:3x, one writer 3,380–3,729/s against 4,482–4,948/s
/// for two (an AMD EPYC). A machine with more cores may want more.
pub const WRITERS: usize = 1;

/// The nice value a writer's thread asks for (lower runs first; 0 is every other thread's).
///
/// A writer is one thread that the whole single-dose load waits on, one round trip after
/// another; the request workers it competes with for the cores have nothing more urgent to do
/// than queue more calls for it. Measured with 8 clients on 2 cores (`bench run --scenario
/// dose-single`, 2026-11-28 06:39–06:47, an AMD EPYC; two interleaved 5-run series each):
/// 5,115 and 5,522 doses/s (ratio to pgbench 0.58 and 0.55×, every run 0.52× or more) against
/// 4,757 and 4,842/s (0.52 and 0.49×) at normal priority — about a tenth more doses. With the
/// writer raised, two writers fell further behind one (0.46–0.51× against 0.53–0.64×).
/// Raising a priority needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` that allows it); without, the
/// writer keeps the priority it has and says so once in the log
/// ([`Combiner::writer_nice`] tells which).
pub const WRITER_NICE: i32 = -10;

struct Job {
    call: Call,
    reply: oneshot::Sender<DomainResult<Recorded>>,
}

/// The queue and writers of one database (PostgreSQL only: a SQLite store's writer lock is
/// its own); started on first use.
#[derive(Default)]
pub(crate) struct Combiner {
    queue: OnceLock<mpsc::UnboundedSender<Job>>,
    /// Calls queued and not yet taken by a writer.
    waiting: Arc<AtomicUsize>,
    /// The nice value the writers' threads run at, once one has started.
    nice: Arc<OnceLock<i32>>,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("doses::Combiner").finish_non_exhaustive()
    }
}

impl Combiner {
    /// Calls queued and not yet taken by a writer (0 when the database keeps up).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The nice value the writers' threads run at ([`WRITER_NICE`] when the system allowed
    /// it); `None` before the first single dose started them, or where it cannot be read.
    pub(crate) fn writer_nice(&self) -> Option<i32> {
        self.nice.get().copied()
    }

    /// Writes `call` with whatever else is waiting. When no writer is left (none could be
    /// started) the call is written alone.
    pub(crate) async fn record(&self, store: &Store, call: Call) -> DomainResult<Recorded> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let writing = InFlight::default();
            for _ in 0..WRITERS {
                spawn_writer(
                    store,
                    rx.clone(),
                    self.waiting.clone(),
                    writing.clone(),
                    self.nice.clone(),
                );
            }
            tx
        });
        let (reply, answer) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { call, reply }) {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return record_alone(store, &job.call).await;
        }
        match answer.await {
            Ok(outcome) => outcome,
            // The writer ended before answering; whether the dose was written is unknown, so
            // say so as a storage failure rather than guess (a retry with the same key finds it
            // if it was).
            Err(_) => Err(DomainError::Database(sea_orm::DbErr::Custom(
                "the dose writer stopped before answering".into(),
            ))),
        }
    }
}

/// The queue the writers take from.
type Queue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>;

/// A writer's own connection, kept between groups.
type Connection = Held<PoolConnection<sea_orm::sqlx::Postgres>>;

/// The recording sites of the groups being written, once per group.
type InFlight = Arc<std::sync::Mutex<Vec<SiteCode>>>;

/// Starts a writer on its own thread, with its own connection: the writers are the critical
/// path of every single dose (one group's round trips after another), and on the server's
/// runtime each of their wake-ups would queue behind HTTP and GraphQL work. When no writer can
/// be started the queue's receiver is dropped, so calls are written alone
/// (see [`Combiner::record`]).
fn spawn_writer(store: &Store, queue: Queue, waiting: Arc<AtomicUsize>, writing: InFlight, nice: Arc<OnceLock<i32>>) {
    // The writer's store has its own one-connection pool, not this store: a store holding its
    // own writer would keep it (and the pool) alive after every user is gone, and a connection
    // of the server's pool would be driven by the server's runtime.
    //
    // Its session plans without sequential scans where an index exists: every statement a
    // group runs probes an index per key, and PostgreSQL caches a generic plan of each after
    // five runs, made with the table sizes of that moment — at the start of a day on a new
    // database, `dose_records` of a page or two, where reading the whole table is the cheapest
    // plan. Measured: with that plan frozen, a look-up read all of `dose_records` twice and
    // single doses fell from ~3,400/s to 283/s within three runs. And without JIT: a plan
    // that must still read a small table whole (the interval rules) is costed past
    // `jit_above_cost` once sequential scans are off, and compiling it took longer than
    // running it (14 doses/s). And with generic plans only, from the first run: its
    // statements then take array parameters directly rather than as sub-selects that keep
    // PostgreSQL from re-planning them (see `sql::Plans`), ~45 fewer plan nodes per group.
    let options = (*store.db().get_postgres_connection_pool().connect_options())
        .clone()
        .options([
            ("enable_seqscan", "off"),
            ("jit", "off"),
            ("plan_cache_mode", "force_generic_plan"),
        ]);
    let started = std::thread::Builder::new()
        .name("vsys-dose-writer".into())
        .spawn(move || {
            if let Some(n) = raise_priority() {
                let _ = nice.set(n);
            }
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a dose writer");
                    return;
                }
            };
            runtime.block_on(async move {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    // No ping per group (a round trip on the critical path); a connection idle
                    // this long is closed instead, so one a firewall dropped is never reused.
                    .test_before_acquire(false)
                    .idle_timeout(IDLE)
                    .connect_lazy_with(options);
                let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
                writer(Store::with_generic_plans(db), queue, waiting, writing).await;
            });
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start a dose writer");
    }
}

/// Asks for [`WRITER_NICE`] for the calling thread; answers the nice value it then runs at
/// (`None` where a thread's priority cannot be read). Refused (no `CAP_SYS_NICE`), the thread
/// keeps its priority and the log says so once per writer.
fn raise_priority() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        // Linux keeps a nice value per thread, and takes a thread id where POSIX says process.
        let me = Some(rustix::thread::gettid());
        if let Err(e) = setpriority_process(me, WRITER_NICE) {
            tracing::info!(
                error = %e,
                asked = WRITER_NICE,
                "the dose writer keeps its scheduling priority (raising it needs CAP_SYS_NICE)"
            );
        }
        getpriority_process(me).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A writer's connection is given back after this long unused, and the pool closes it after as
/// long again.
const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// One writer: take the first waiting call and every other one waiting (up to [`MAX_CALLS`]),
/// write them, answer, repeat. The queue is held only while taking, so while one writer
/// writes, the next group gathers for another. Ends when every sender is gone.
///
/// The writer keeps its connection between groups ([`Held`]): given back to the pool after
/// each statement, it would be pinged — a round trip per statement, doubling a group's. It
/// gives it back when a group must be written under lock (a transaction of the pool's), and
/// when no call came for [`IDLE`], so the pool closes it.
async fn writer(store: Store, queue: Queue, waiting: Arc<AtomicUsize>, writing: InFlight) {
    let mut held: Option<Connection> = None;
    loop {
        let taken = if held.is_some() {
            match tokio::time::timeout(IDLE, take(&queue)).await {
                Ok(taken) => taken,
                Err(_) => {
                    held = None;
                    continue;
                }
            }
        } else {
            take(&queue).await
        };
        let Some(group) = taken else { return };
        waiting.fetch_sub(group.len(), Ordering::Relaxed);
        let mut sites: Vec<SiteCode> = group.iter().map(|j| *j.call.site()).collect();
        sites.sort_unstable();
        sites.dedup();
        // A site another writer is writing for: that group will most likely commit between
        // this one's look-up and its write, and an unlocked write would only find its lots
        // moved. (Tablets of one site recording at once; sites of their own never meet.)
        let contended = {
            let mut w = writing.lock().unwrap_or_else(|p| p.into_inner());
            let met = sites.iter().any(|s| w.contains(s));
            w.extend_from_slice(&sites);
            met
        };
        write(&store, &mut held, group, contended).await;
        let mut w = writing.lock().unwrap_or_else(|p| p.into_inner());
        for s in &sites {
            if let Some(i) = w.iter().position(|x| x == s) {
                w.swap_remove(i);
            }
        }
    }
}

/// The first waiting call and every other one waiting (up to [`MAX_CALLS`]); `None` when
/// every sender is gone. Cancel-safe: nothing is taken before the first call is.
async fn take(queue: &Queue) -> Option<Vec<Job>> {
    let mut rx = queue.lock().await;
    let first = rx.recv().await?;
    let mut group = vec![first];
    while group.len() < MAX_CALLS {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some(group)
}

/// Writes a group: first unlocked ([`record_group_unlocked`]: a look-up and a guarded write,
/// no transaction, on the writer's `held` connection) unless `contended`; if a lot moved in
/// between, or that failed, under lock as one transaction; and if that failed too, each call
/// alone (the direct path retries and reports its own outcome).
async fn write(store: &Store, held: &mut Option<Connection>, group: Vec<Job>, contended: bool) {
    let (calls, replies): (Vec<Call>, Vec<_>) = group.into_iter().map(|j| (j.call, j.reply)).unzip();
    let unlocked = if contended {
        None
    } else {
        match unlocked(store, held, &calls).await {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(error = %e, calls = calls.len(), "unlocked dose group failed; locking");
                None
            }
        }
    };
    let done = match unlocked {
        Some(done) => Ok(done),
        None => {
            // The locked path takes a connection of the pool: this one.
            *held = None;
            record_group(store, &calls).await
        }
    };
    match done {
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
}

/// [`record_group_unlocked`] on the `held` connection (taken from the pool if none is). The
/// connection is kept only when the group was written: otherwise the locked path needs it
/// back in the pool (a broken one is then closed there).
async fn unlocked(
    store: &Store,
    held: &mut Option<Connection>,
    calls: &[Call],
) -> DomainResult<Option<Vec<DomainResult<Recorded>>>> {
    let conn = match held.take() {
        Some(conn) => conn,
        None => Held::new(
            store
                .db()
                .get_postgres_connection_pool()
                .acquire()
                .await
                .map_err(crate::held::exec_err)?,
        ),
    };
    let done = record_group_unlocked(store, &conn, calls).await?;
    if done.is_some() {
        *held = Some(conn);
    }
    Ok(done)
}
