//! A PostgreSQL connection held by one user, running sea-orm statements (`ConnectionTrait`)
//! with sea-orm's own binder.
//!
//! sea-orm lends a pool's connection for one statement at a time (or for a transaction), and
//! sqlx pings every connection given back to its pool before anyone may take it again — a
//! round trip to the server per statement run outside a transaction. A user that runs
//! statement after statement on a connection of its own (a dose writer, see
//! `doses::combine`) or needs what sea-orm does not lend (COPY: `bulk::CopyTx`) holds one here
//! instead: `T` is a pooled connection or a transaction on one.

use std::ops::DerefMut;
use std::sync::Arc;

use sea_orm::sqlx::{self, PgConnection, Postgres};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use tokio::sync::Mutex;

pub(crate) struct Held<T> {
    pub(crate) conn: Mutex<T>,
}

impl<T> Held<T> {
    pub(crate) fn new(conn: T) -> Self {
        Held { conn: Mutex::new(conn) }
    }

    pub(crate) fn into_inner(self) -> T {
        self.conn.into_inner()
    }
}

impl<T> std::fmt::Debug for Held<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

pub(crate) fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

fn bind(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, sea_query_sqlx::SqlxValues> {
    let values = stmt.values.clone().unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(
        sqlx::AssertSqlSafe(stmt.sql.as_str()),
        sea_query_sqlx::SqlxValues(values),
    )
}

#[async_trait::async_trait]
impl<T: DerefMut<Target = PgConnection> + Send> ConnectionTrait for Held<T> {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut conn = self.conn.lock().await;
        bind(&stmt).execute(&mut **conn).await.map(Into::into).map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        use sqlx::Executor as _;
        let mut conn = self.conn.lock().await;
        (&mut **conn)
            .execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut conn = self.conn.lock().await;
        bind(&stmt)
            .fetch_optional(&mut **conn)
            .await
            .map(|r| r.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut conn = self.conn.lock().await;
        bind(&stmt)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }
}
