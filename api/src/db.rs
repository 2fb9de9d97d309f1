//! Connecting to SQLite or PostgreSQL and migrating. The same code path serves both.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Opens the database named by `url` and applies pending migrations.
///
/// SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout and foreign
/// keys on; its pool is small because writes are serialised anyway (see `domain::store`).
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false).acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        opts.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    } else {
        // sqlx pings a pooled connection on every checkout by default: one extra round trip
        // (and a wake-up of the PostgreSQL backend) before each statement, as much as the
        // ledger's whole write. Only connections idle long enough to have been dropped by the
        // server or a firewall are pinged now; a connection that broke anyway fails its
        // statement, which reports a storage error like any other.
        opts.max_connections(32)
            .min_connections(2)
            .test_before_acquire_if_idle_for(Duration::from_secs(30));
    }
    let db = Database::connect(opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open database: {e}"))?;
    Migrator::up(&db, None)
        .await
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(db)
}

/// Connections in use and idle, for `/metrics`.
pub fn pool_stats(db: &DatabaseConnection) -> (u32, usize) {
    match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => {
            let p = db.get_sqlite_connection_pool();
            (p.size(), p.num_idle())
        }
        _ => {
            let p = db.get_postgres_connection_pool();
            (p.size(), p.num_idle())
        }
    }
}
