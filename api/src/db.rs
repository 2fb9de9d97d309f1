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
    let mut opts = ConnectOptions::new(without_tls_on_loopback(url));
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

/// A PostgreSQL URL naming a loopback host and no `sslmode` gets `sslmode=disable`: the
/// driver's default (`prefer`) would set up TLS for every pooled connection to a server on the
/// same machine, where it protects nothing and costs a handshake per connection (≈ 0.2 s of a
/// CLI command's start here) and the encryption of every byte of a bulk write. Any `sslmode`
/// the operator gives is kept, and other hosts are left as they are.
fn without_tls_on_loopback(url: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return url.to_owned();
    };
    if url.contains("sslmode=") {
        return url.to_owned();
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
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

#[cfg(test)]
mod tests {
    use super::without_tls_on_loopback as f;

    #[test]
    fn loopback_postgres_without_sslmode_connects_without_tls() {
        for (given, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/vsys",
                "postgres://postgres@127.0.0.1:5432/vsys?sslmode=disable",
            ),
            (
                "postgresql://u:p@localhost/db?application_name=x",
                "postgresql://u:p@localhost/db?application_name=x&sslmode=disable",
            ),
            (
                "postgres://u@[::1]:5432/db",
                "postgres://u@[::1]:5432/db?sslmode=disable",
            ),
            ("postgres://127.0.0.1", "postgres://127.0.0.1?sslmode=disable"),
            // The operator's choice stands; other hosts and SQLite are untouched.
            (
                "postgres://u@127.0.0.1/db?sslmode=require",
                "postgres://u@127.0.0.1/db?sslmode=require",
            ),
            (
                "postgres://u@db.example.jp:5432/vsys",
                "postgres://u@db.example.jp:5432/vsys",
            ),
            (
                "postgres://localhost.example.jp/vsys",
                "postgres://localhost.example.jp/vsys",
            ),
            (
                "postgres://u:127.0.0.1@10.0.0.5/db",
                "postgres://u:127.0.0.1@10.0.0.5/db",
            ),
            ("sqlite://vsys.db?mode=rwc", "sqlite://vsys.db?mode=rwc"),
        ] {
            assert_eq!(f(given), expected, "{given}");
        }
    }
}
