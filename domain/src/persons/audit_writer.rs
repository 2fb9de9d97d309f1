//! PostgreSQL: the audit rows of reads that arrive together are written together (group
//! commit).
//!
//! Every read of personal data commits its audit row before it answers, and a commit waits for
//! the WAL to reach the disk (one `fdatasync`: ~3 ms, ~300 per second, on the reference
//! machine's disk by `pg_test_fsync`). Measured at 1,000 look-ups/s (`bench run --scenario
//! person-lookup`, BENCHMARKS.md), sampling `pg_stat_activity` every 20 ms: ~80% of the
//! server's active backend samples were in `LWLock:WALWrite` or `IO:WALSync`, i.e. queued
//! behind each other's commit flushes, each holding a pooled connection and one of the client's requests while it
//! waited. So reads hand their rows to a few writer tasks; a writer takes every row waiting
//! (up to [`MAX_ROWS`]) and inserts them with ONE statement and ONE commit, then answers each
//! reader. Nothing waits on purpose: a lone read is written the moment it arrives; batches form
//! only while the previous statement is waiting for its flush, i.e. exactly when the disk is
//! the bottleneck.
//!
//! The guarantee stays the single read's: a reader is answered only after the statement holding
//! its rows has committed, and if that statement fails, nothing of the batch was written and
//! every read in it is retried alone, which reports its own outcome (a failed audit fails the
//! read).
//!
//! Must not: decide anything (the caller checked the reader may read every field), or delay a
//! write to make batches bigger.

use std::sync::{Arc, OnceLock};

use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{DomainError, DomainResult};

/// Most rows in one statement (a list page brings a few hundred).
pub const MAX_ROWS: usize = 2_000;
/// Statements in flight at once.
const WRITERS: usize = 2;

/// One audit row, owned so it can wait in a queue.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub person: i64,
    pub municipality: String,
    pub actor: String,
    pub subject: String,
    pub role: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub fields: String,
    pub purpose: Option<String>,
}

struct Job {
    rows: Vec<Row>,
    reply: oneshot::Sender<DomainResult<()>>,
}

type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Job>>>;

/// The writers of one database; started on first use (inside the runtime that uses them).
#[derive(Default)]
pub(crate) struct AuditWriter {
    queue: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Writes `rows` with whatever else is waiting and returns after their commit. When the
    /// writers are gone (their runtime ended) the rows are written alone.
    pub(crate) async fn write(&self, db: &DatabaseConnection, rows: Vec<Row>) -> DomainResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let rx: Queue = Arc::new(Mutex::new(rx));
            for _ in 0..WRITERS {
                tokio::spawn(writer(db.clone(), rx.clone()));
            }
            tx
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { rows, reply }) {
            return insert(db, &job.rows).await;
        }
        match answer.await {
            Ok(outcome) => outcome,
            // The writer ended (its runtime shut down) before answering; whether the rows were
            // written is unknown, so the read fails rather than hand data out unaudited.
            Err(_) => Err(DomainError::Database(sea_orm::DbErr::Custom(
                "the audit writer stopped before answering".into(),
            ))),
        }
    }
}

/// One writer: take the first waiting job and every other one waiting (up to [`MAX_ROWS`]),
/// write them, answer, repeat. The other writers wait for the queue meanwhile, so the next
/// batch forms while this one is being flushed.
async fn writer(db: DatabaseConnection, queue: Queue) {
    loop {
        let batch = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut n = first.rows.len();
            let mut batch = vec![first];
            while n < MAX_ROWS {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.rows.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        write(&db, batch).await;
    }
}

async fn write(db: &DatabaseConnection, batch: Vec<Job>) {
    if batch.len() > 1 {
        let rows: Vec<Row> = batch.iter().flat_map(|j| j.rows.iter().cloned()).collect();
        match insert(db, &rows).await {
            Ok(()) => {
                for job in batch {
                    let _ = job.reply.send(Ok(()));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, reads = batch.len(), "batched audit insert failed; writing each read alone");
            }
        }
    }
    for job in batch {
        let outcome = insert(db, &job.rows).await;
        let _ = job.reply.send(outcome);
    }
}

/// The rows as one statement (autocommit): one array parameter per column, so the statement
/// text does not depend on the row count and is prepared once per connection.
async fn insert(db: &DatabaseConnection, rows: &[Row]) -> DomainResult<()> {
    let mut cols: [Vec<Value>; 8] = Default::default();
    for r in rows {
        let row: [Value; 8] = [
            r.person.into(),
            r.municipality.as_str().into(),
            r.actor.as_str().into(),
            r.subject.as_str().into(),
            r.role.as_str().into(),
            r.at.into(),
            r.fields.as_str().into(),
            // A purpose is never empty (`Purpose::parse`); '' stands for none.
            r.purpose.as_deref().unwrap_or("").into(),
        ];
        for (col, v) in cols.iter_mut().zip(row) {
            col.push(v);
        }
    }
    let types = [
        ArrayType::BigInt,
        ArrayType::String,
        ArrayType::String,
        ArrayType::String,
        ArrayType::String,
        ArrayType::ChronoDateTimeUtc,
        ArrayType::String,
        ArrayType::String,
    ];
    let values: Vec<Value> = cols
        .into_iter()
        .zip(types)
        .map(|(col, t)| Value::Array(t, Some(Box::new(col))))
        .collect();
    db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, INSERT_SQL, values))
        .await?;
    Ok(())
}

const INSERT_SQL: &str = "\
INSERT INTO person_access_log (person_id, municipality_code, actor, subject, role, accessed_at, fields, purpose) \
SELECT u.person_id, u.municipality_code, u.actor, u.subject, u.role, u.accessed_at, u.fields, NULLIF(u.purpose, '') \
FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[]) \
  AS u(person_id, municipality_code, actor, subject, role, accessed_at, fields, purpose)";
