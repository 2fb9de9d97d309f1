//! The database handle services share, and the one way to open a write transaction.
//!
//! SQLite allows one writer at a time, and a transaction that starts reading and later writes
//! can fail with SQLITE_BUSY instead of waiting. So on SQLite every write transaction first
//! takes a process-wide async lock (readers never do); PostgreSQL needs no such lock, its row
//! locks and constraints do the work. This is the "single writer" of the SQLite mode: one
//! process per SQLite file. Run several instances only on PostgreSQL.

use std::ops::Deref;
use std::sync::Arc;

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, TransactionTrait};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::DomainResult;

#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    writer: Option<Arc<Mutex<()>>>,
    /// PostgreSQL: the stock ledger's withdrawal batching (`ledger::combine`), shared by every
    /// clone of this store.
    withdrawals: Arc<crate::ledger::combine::Combiner>,
    /// PostgreSQL: single doses written together (`doses::combine`), shared likewise.
    doses: Arc<crate::doses::combine::Combiner>,
    /// PostgreSQL: the session forces generic plans (a dose writer's own connection, see
    /// `doses::combine`), so statements may take array parameters directly.
    generic_plans: bool,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        let writer = match db.get_database_backend() {
            DbBackend::Sqlite => Some(Arc::new(Mutex::new(()))),
            _ => None,
        };
        Store {
            db,
            writer,
            withdrawals: Arc::default(),
            doses: Arc::default(),
            generic_plans: false,
        }
    }

    /// A store over a PostgreSQL connection whose sessions set
    /// `plan_cache_mode = force_generic_plan`.
    pub(crate) fn with_generic_plans(db: DatabaseConnection) -> Self {
        Store {
            generic_plans: true,
            ..Store::new(db)
        }
    }

    /// Whether this store's sessions force generic plans.
    pub(crate) fn generic_plans(&self) -> bool {
        self.generic_plans
    }

    /// For reads (and single statements that need no transaction).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn withdrawals(&self) -> &crate::ledger::combine::Combiner {
        &self.withdrawals
    }

    pub(crate) fn doses(&self) -> &crate::doses::combine::Combiner {
        &self.doses
    }

    /// PostgreSQL: single doses queued for their writer and not yet taken (0 when the
    /// database keeps up; grows at a peak it cannot absorb).
    pub fn doses_waiting(&self) -> usize {
        self.doses.waiting()
    }

    /// PostgreSQL: the nice value the single-dose writer's thread runs at
    /// (`doses::combine::WRITER_NICE` when the system allowed raising it); `None` until the
    /// first single dose started it, or where it cannot be read.
    pub fn dose_writer_nice(&self) -> Option<i32> {
        self.doses.writer_nice()
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Opens a transaction for writing; commit it with [`WriteTx::commit`], or drop it to roll back.
    pub async fn write(&self) -> DomainResult<WriteTx> {
        let guard = match &self.writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.db.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// A write transaction; on SQLite it also holds the writer lock until commit or drop.
pub struct WriteTx {
    tx: DatabaseTransaction,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> DomainResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

/// A code to compare with a fixed-length `char(n)` column (site, municipality, prefecture and
/// postal codes). PostgreSQL binds a Rust string as `text`, and `char_column = text` is
/// resolved as `char_column::text = text`: the column's index cannot serve it, and every
/// lookup becomes a sequential scan (of 70,000 sites). Casting the *value* to `bpchar` keeps
/// the index. SQLite reads `bpchar` as a TEXT type name, so the cast changes nothing there.
pub fn fixed(code: &str) -> Expr {
    Expr::val(code).cast_as(Alias::new("bpchar"))
}
