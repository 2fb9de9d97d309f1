//! Order instructions (発注指示) and the outbox.
//!
//! Confirming a municipality's allocation writes, in one transaction, one order per site that
//! got boxes (the vaccine in boxes, vials and doses, plus its ancillaries in pieces) and one
//! outbox row per order. The outbox is the contract with the partner worker (wholesaler
//! integration): it polls `status = 'PENDING' AND next_attempt_at <= now` (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`), delivers `payload` with `idempotency_key`, and records the
//! outcome in `status`, `attempts`, `next_attempt_at`, `last_error` and `delivered_at`.
//!
//! Write cost decides the shape: a national confirmation writes 280,000 rows at once, so these
//! tables carry only the indexes their readers need and no foreign keys (each would lock the
//! referenced row for every inserted row). Integrity holds by construction: orders, their
//! ancillaries and outbox entries are written together in one transaction from rows read in
//! it, the order id (round and site) is the primary key, and rounds and sites are never deleted.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000011_orders_outbox"
    }
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: &'static str,
    cols: &[&'static str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create().name(name).table(table).to_owned();
    for col in cols {
        index.col(*col);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("orders")
                    // "{round_id}-{site_code}": one order per site and round.
                    .col(string_len("id", 24).primary_key())
                    .col(integer("round_id"))
                    .col(integer("allocation_id"))
                    .col(string_len("product_code", 32))
                    .col(char_len("site_code", 10))
                    .col(char_len("prefecture_code", 2))
                    .col(char_len("municipality_code", 6))
                    .col(string_len("wholesaler_id", 32))
                    .col(big_integer("boxes"))
                    .col(big_integer("vials"))
                    .col(big_integer("doses"))
                    .col(string_len("status", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string("created_by"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "orders_municipality",
            "orders",
            &["municipality_code", "id"],
            false,
        )
        .await?;
        index(manager, "orders_wholesaler", "orders", &["wholesaler_id", "id"], false).await?;

        manager
            .create_table(
                Table::create()
                    .table("order_ancillaries")
                    .col(string_len("order_id", 24))
                    .col(string_len("product_code", 32))
                    .col(integer("per_vial"))
                    .col(big_integer("pieces"))
                    .primary_key(Index::create().col("order_id").col("product_code"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .col(big_pk_auto("id"))
                    // e.g. "order.created"
                    .col(string_len("topic", 64))
                    // e.g. "order" and the order's id
                    .col(string_len("aggregate_type", 32))
                    .col(string_len("aggregate_key", 64))
                    // the partner to deliver to, e.g. "wholesaler:suzuken"
                    .col(string_len("destination", 64))
                    .col(text("payload"))
                    // "order.created:{order id}": unique because the order id is the orders'
                    // primary key (no index of its own: it would only slow the national write).
                    .col(string_len("idempotency_key", 128))
                    // PENDING → DELIVERED, or PARKED after repeated failure (replay sets PENDING)
                    .col(string_len("status", 16))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .to_owned(),
            )
            .await?;
        index(manager, "outbox_due", "outbox", &["status", "next_attempt_at"], false).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox", "order_ancillaries", "orders"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
