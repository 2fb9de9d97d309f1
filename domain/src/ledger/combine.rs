//! PostgreSQL: withdrawals that arrive together are written together (group commit).
//!
//! Each withdrawal alone is one statement and one commit (`sql::withdraw_in_one_statement`),
//! and at national peak the database spends most of its time starting statements and flushing
//! commits rather than moving rows: measured with pgbench on this schema, one conditional update
//! and insert per transaction ran at 0.47× a plain single-row insert, while the same work for 8
//! rows per statement moved 2.8× the rows per second of the single-row insert. So the ledger
//! queues withdrawals and a lane worker takes whatever is waiting (up to [`MAX_BATCH`]) and
//! writes it as ONE statement: a conditional update of every balance row from arrays, the
//! entries inserted from what the update returned. Nothing waits on purpose: a lone withdrawal
//! is written the moment it arrives; batches form only while the previous statement of the lane
//! is running, i.e. exactly when the database is the bottleneck.
//!
//! The rules stay those of the single statement, row by row: a balance row changes only if it
//! holds enough and its expiry guard passes (re-checked on the latest committed row after
//! waiting for its lock), and an entry exists only for a row that changed. A batch holds each
//! balance row at most once (a second withdrawal from the same lot waits for the next batch, so
//! it sees the first one's result), and a site always goes to the same lane, so two batches
//! never wait on each other's rows. Should a batch statement fail (a deadlock with a
//! transaction locking rows in another order, say), nothing of it was written and every
//! withdrawal in it is retried alone on the single-statement path, which reports its own
//! outcome. Each caller gets the answer of its own row, after the commit.
//!
//! Must not: decide anything (rules are in `crate::stock` and the service), or delay a write
//! to make batches bigger.

use std::collections::{HashSet, VecDeque};
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use tokio::sync::{mpsc, oneshot};

use super::sql::{self, ExpiryGuard, Key, Moved, NewEntry};
use crate::codes::{LotNumber, ProductCode, SiteCode};
use crate::error::{DomainError, DomainResult};
use crate::quantity::Vials;
use crate::stock::{Counter, Effect, EntryKind, WasteReason};

/// Most withdrawals in one statement.
pub const MAX_BATCH: usize = 256;
/// Lanes (statements in flight at once). A site always uses the same lane.
///
/// One: measured with 8 clients on 2 cores (`bench run --scenario ledger-writes`, same binary,
/// back to back), one lane booked 1.6–2.1× the writes/s of two, with about half the server's and
/// half PostgreSQL's CPU per write (135 vs 213–235 µs, 132–139 vs 256–262 µs), and four lanes
/// were no better than two: every extra statement in flight splits the batches, and a
/// statement and its commit cost far more than another row in one.
const LANES: usize = 1;

/// What the single statement returns: the entry id, the balance after, the site's municipality.
pub(crate) type Outcome = Option<(i64, Moved, String)>;

/// One withdrawal, owned so it can wait in a queue.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub site: SiteCode,
    pub product: ProductCode,
    pub lot: LotNumber,
    pub kind: EntryKind,
    pub effect: Effect,
    pub guard: ExpiryGuard,
    pub waste_reason: Option<WasteReason>,
    pub note: String,
    pub occurred_on: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
}

impl Request {
    fn key(&self) -> Key<'_> {
        Key {
            site: &self.site,
            product: &self.product,
            lot: &self.lot,
        }
    }

    fn entry(&self) -> NewEntry<'_> {
        NewEntry {
            key: self.key(),
            kind: self.kind,
            quantity: self.effect.on_hand,
            balance_after: Vials::ZERO,
            waste_reason: self.waste_reason,
            note: &self.note,
            occurred_on: self.occurred_on,
            recorded_at: self.recorded_at,
            actor: &self.actor,
            counterpart: None,
            paired_entry: None,
            reverses: None,
            delivery: None,
            report: None,
        }
    }

    fn row_key(&self) -> (String, String, String) {
        (
            self.site.as_str().to_owned(),
            self.product.as_str().to_owned(),
            self.lot.as_str().to_owned(),
        )
    }
}

struct Job {
    request: Request,
    reply: oneshot::Sender<DomainResult<Outcome>>,
}

/// The lanes of one database; started on first use (inside the runtime that uses them).
#[derive(Default)]
pub(crate) struct Combiner {
    lanes: OnceLock<Vec<mpsc::UnboundedSender<Job>>>,
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combiner").finish_non_exhaustive()
    }
}

impl Combiner {
    /// Writes `request` with whatever else is waiting on its lane. When the lane is gone (its
    /// runtime ended) the withdrawal is written alone.
    pub(crate) async fn withdraw(&self, db: &DatabaseConnection, request: Request) -> DomainResult<Outcome> {
        let lanes = self.lanes.get_or_init(|| {
            (0..LANES)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(lane(db.clone(), rx));
                    tx
                })
                .collect()
        });
        let lane = lane_of(&request.site, lanes.len());
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = lanes[lane].send(Job { request, reply }) {
            return alone(db, &job.request).await;
        }
        match answer.await {
            Ok(outcome) => outcome,
            // The lane ended (its runtime shut down) before answering; whether the row was
            // written is unknown, so say so as a storage failure rather than guess.
            Err(_) => Err(DomainError::Database(sea_orm::DbErr::Custom(
                "the stock ledger's writer stopped before answering".into(),
            ))),
        }
    }
}

pub(crate) fn lane_of(site: &SiteCode, lanes: usize) -> usize {
    // Site codes are digits; their sum spreads consecutive codes over the lanes.
    site.as_str().bytes().map(usize::from).sum::<usize>() % lanes.max(1)
}

async fn alone(db: &DatabaseConnection, r: &Request) -> DomainResult<Outcome> {
    sql::withdraw_in_one_statement(db, &r.entry(), r.effect, r.guard).await
}

/// One lane: take the first waiting job, add every other waiting job whose balance row is not
/// in the batch yet, write them, answer, repeat. Jobs for a row already in the batch stay
/// first in line for the next one.
async fn lane(db: DatabaseConnection, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut keys = HashSet::new();
        keys.insert(first.request.row_key());
        let mut batch = vec![first];
        let mut later = VecDeque::new();
        let mut place = |job: Job, batch: &mut Vec<Job>| {
            if batch.len() < MAX_BATCH && keys.insert(job.request.row_key()) {
                batch.push(job);
            } else {
                later.push_back(job);
            }
        };
        for job in std::mem::take(&mut held) {
            place(job, &mut batch);
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => place(job, &mut batch),
                Err(_) => break,
            }
        }
        held = later;
        write(&db, batch).await;
    }
}

async fn write(db: &DatabaseConnection, batch: Vec<Job>) {
    if batch.len() == 1 {
        let job = batch.into_iter().next().expect("one job");
        let outcome = alone(db, &job.request).await;
        let _ = job.reply.send(outcome);
        return;
    }
    match together(db, &batch).await {
        Ok(mut rows) => {
            for job in batch {
                let outcome = rows.remove(&job.request.row_key());
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = batch.len(), "batched stock withdrawal failed; writing each alone");
            for job in batch {
                let outcome = alone(db, &job.request).await;
                let _ = job.reply.send(outcome);
            }
        }
    }
}

type Rows = std::collections::HashMap<(String, String, String), (i64, Moved, String)>;

/// The batch as one statement. Returns the rows that moved, by balance key; a key missing from
/// the answer is a withdrawal whose condition failed (nothing written for it).
async fn together(db: &DatabaseConnection, batch: &[Job]) -> DomainResult<Rows> {
    let n = batch.len();
    let mut cols: [Vec<Value>; 15] = Default::default();
    for job in batch {
        let r = &job.request;
        let delta = |c: Counter| {
            if r.effect.counter == c {
                r.effect.counter_delta
            } else {
                0
            }
        };
        let (guard, today) = match r.guard {
            ExpiryGuard::None => ("", r.occurred_on),
            ExpiryGuard::Unexpired(d) => ("U", d),
            ExpiryGuard::Expired(d) => ("E", d),
        };
        let row: [Value; 15] = [
            r.site.as_str().into(),
            r.product.as_str().into(),
            r.lot.as_str().into(),
            r.effect.on_hand.into(),
            delta(Counter::Administered).into(),
            delta(Counter::Wasted).into(),
            delta(Counter::Expired).into(),
            guard.into(),
            today.into(),
            r.kind.as_str().into(),
            r.waste_reason.map(|w| w.as_str()).unwrap_or("").into(),
            r.note.as_str().into(),
            r.occurred_on.into(),
            r.recorded_at.into(),
            r.actor.as_str().into(),
        ];
        for (col, v) in cols.iter_mut().zip(row) {
            col.push(v);
        }
    }
    let types = [
        ArrayType::String,
        ArrayType::String,
        ArrayType::String,
        ArrayType::BigInt,
        ArrayType::BigInt,
        ArrayType::BigInt,
        ArrayType::BigInt,
        ArrayType::String,
        ArrayType::ChronoDate,
        ArrayType::String,
        ArrayType::String,
        ArrayType::String,
        ArrayType::ChronoDate,
        ArrayType::ChronoDateTimeUtc,
        ArrayType::String,
    ];
    let values: Vec<Value> = cols
        .into_iter()
        .zip(types)
        .map(|(col, t)| Value::Array(t, Some(Box::new(col))))
        .collect();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, BATCH_SQL, values))
        .await?;
    let mut out = Rows::with_capacity(n);
    for row in rows {
        let key: (String, String, String) = (
            row.try_get("", "site_code")?,
            row.try_get("", "product_code")?,
            row.try_get("", "lot_number")?,
        );
        let moved = sql::moved(&row)?;
        out.insert(
            key,
            (row.try_get("", "id")?, moved, row.try_get("", "municipality_code")?),
        );
    }
    Ok(out)
}

/// The batch statement: the same conditional update and insert as
/// `sql::withdraw_in_one_statement`, for arrays of withdrawals with distinct balance rows.
const BATCH_SQL: &str = "\
WITH req AS ( \
  SELECT * FROM UNNEST($1::bpchar[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], \
    $8::text[], $9::date[], $10::text[], $11::text[], $12::text[], $13::date[], $14::timestamptz[], $15::text[]) \
    AS r(site_code, product_code, lot_number, d_on_hand, d_administered, d_wasted, d_expired, \
         guard, today, kind, waste_reason, note, occurred_on, recorded_at, actor) \
), moved AS ( \
  UPDATE stock_balances b SET on_hand = b.on_hand + r.d_on_hand, \
    administered = b.administered + r.d_administered, wasted = b.wasted + r.d_wasted, \
    expired = b.expired + r.d_expired, updated_at = r.recorded_at \
  FROM req r \
  WHERE b.site_code = r.site_code AND b.product_code = r.product_code AND b.lot_number = r.lot_number \
    AND b.on_hand + r.d_on_hand >= 0 \
    AND (r.guard = '' OR (r.guard = 'U' AND b.expiry_date >= r.today) OR (r.guard = 'E' AND b.expiry_date < r.today)) \
  RETURNING b.site_code, b.product_code, b.lot_number, b.on_hand, b.expiry_date \
), entry AS ( \
  INSERT INTO stock_entries (site_code, product_code, lot_number, kind, quantity, balance_after, \
    waste_reason, note, occurred_on, recorded_at, actor) \
  SELECT r.site_code, r.product_code, r.lot_number, r.kind, r.d_on_hand, m.on_hand, \
    NULLIF(r.waste_reason, ''), r.note, r.occurred_on, r.recorded_at, r.actor \
  FROM moved m JOIN req r ON r.site_code = m.site_code AND r.product_code = m.product_code \
    AND r.lot_number = m.lot_number \
  RETURNING id, site_code, product_code, lot_number \
) \
SELECT e.id, e.site_code, e.product_code, e.lot_number, m.on_hand, m.expiry_date, s.municipality_code \
FROM entry e \
JOIN moved m ON m.site_code = e.site_code AND m.product_code = e.product_code AND m.lot_number = e.lot_number \
JOIN sites s ON s.code = e.site_code";
