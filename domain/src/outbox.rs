//! The outbox: messages for partners, written in the same transaction as the change that
//! caused them, delivered later by the worker in `integrations` (at least once, with the
//! idempotency key). This module appends entries and lets NATIONAL read them; the worker owns
//! the delivery columns (`status`, `attempts`, `next_attempt_at`, `last_error`,
//! `delivered_at`).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::authz::{self, Actor};
use crate::entities::outbox;
use crate::error::{DomainError, DomainResult};
use crate::store::Store;

vocabulary! {
    /// Where a message stands.
    OutboxStatus {
        /// Waiting for (another) delivery attempt at `next_attempt_at`.
        Pending = "PENDING",
        /// The partner accepted it.
        Delivered = "DELIVERED",
        /// Failed permanently or too often; an operator looks at `last_error` and replays it.
        Parked = "PARKED",
        /// Cannot be sent yet (no customer code for the site, wholesaler not configured; the
        /// reason is in `last_error`); released automatically when that arrives.
        Held = "HELD",
    }
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxEntry {
    pub topic: String,
    pub aggregate_type: String,
    pub aggregate_key: String,
    pub destination: String,
    /// JSON.
    pub payload: String,
    pub idempotency_key: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub topic: String,
    pub aggregate_type: String,
    pub aggregate_key: String,
    pub destination: String,
    pub payload: String,
    pub idempotency_key: String,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub(crate) const COLUMNS: [&str; 10] = [
    "topic",
    "aggregate_type",
    "aggregate_key",
    "destination",
    "payload",
    "idempotency_key",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
];

/// Messages to append inside the caller's transaction: they become visible to the worker
/// exactly when the change that caused them commits.
pub(crate) struct Appended<'c> {
    rows: crate::bulk::Rows<'c>,
    now: DateTime<Utc>,
}

impl Appended<'static> {
    pub(crate) fn new<C: crate::bulk::Target>(db: &C, now: DateTime<Utc>) -> Self {
        Appended {
            rows: crate::bulk::Rows::new(db, &COLUMNS),
            now,
        }
    }

    /// As a binary COPY stream into `outbox` (see `bulk::Rows::for_copy`).
    pub(crate) fn for_copy(now: DateTime<Utc>) -> Self {
        Appended {
            rows: crate::bulk::Rows::for_copy(&COLUMNS),
            now,
        }
    }
}

impl Appended<'_> {
    pub(crate) fn push(&mut self, e: &NewOutboxEntry) {
        use crate::bulk::Cell;
        self.rows.push(&[
            Cell::Text(&e.topic),
            Cell::Text(&e.aggregate_type),
            Cell::Text(&e.aggregate_key),
            Cell::Text(&e.destination),
            Cell::Text(&e.payload),
            Cell::Text(&e.idempotency_key),
            Cell::Text(OutboxStatus::Pending.as_str()),
            Cell::Int4(0),
            Cell::Time(self.now),
            Cell::Time(self.now),
        ]);
    }

    pub(crate) async fn write<C: crate::bulk::Target>(self, db: &C) -> DomainResult<()> {
        crate::bulk::write(db, "outbox", self.rows).await
    }

    pub(crate) fn take_piece(&mut self, pieces: &crate::bulk::Pieces) -> Option<Vec<u8>> {
        self.rows.take_piece(pieces)
    }

    pub(crate) fn last_piece(self) -> Vec<u8> {
        self.rows.last_piece()
    }
}

pub(crate) fn from_model(m: outbox::Model) -> DomainResult<OutboxEntry> {
    Ok(OutboxEntry {
        status: m
            .status
            .parse()
            .map_err(|e| DomainError::Corrupt(format!("outbox {}: {e}", m.id)))?,
        id: m.id,
        topic: m.topic,
        aggregate_type: m.aggregate_type,
        aggregate_key: m.aggregate_key,
        destination: m.destination,
        payload: m.payload,
        idempotency_key: m.idempotency_key,
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at,
        last_error: m.last_error,
        created_at: m.created_at,
        delivered_at: m.delivered_at,
    })
}

/// Filters for reading the outbox; all optional.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub topic: Option<String>,
    pub aggregate_key: Option<String>,
    pub status: Option<OutboxStatus>,
}

/// Messages in id order after `after` (NATIONAL only).
pub async fn list(
    store: &Store,
    actor: &Actor,
    filter: &OutboxFilter,
    after: Option<i64>,
    first: u64,
) -> DomainResult<Vec<OutboxEntry>> {
    authz::can_read_outbox(actor)?;
    let mut q = outbox::Entity::find().order_by_asc(outbox::Column::Id).limit(first);
    if let Some(a) = after {
        q = q.filter(outbox::Column::Id.gt(a));
    }
    if let Some(t) = &filter.topic {
        q = q.filter(outbox::Column::Topic.eq(t.as_str()));
    }
    if let Some(k) = &filter.aggregate_key {
        q = q.filter(outbox::Column::AggregateKey.eq(k.as_str()));
    }
    if let Some(s) = filter.status {
        q = q.filter(outbox::Column::Status.eq(s.as_str()));
    }
    q.all(store.db()).await?.into_iter().map(from_model).collect()
}
