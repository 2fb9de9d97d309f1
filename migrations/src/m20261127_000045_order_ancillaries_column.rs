//! An order's ancillaries as a column of the order instead of rows of their own.
//!
//! The national deadline run wrote 140,000 `order_ancillaries` rows (two per order, each with
//! its primary-key entry) next to 70,000 orders: a third of its rows for a few bytes each. The
//! ancillaries are a snapshot of the product's ratios times the order's vials, written once with
//! the order and never changed, so they travel with it: `orders.ancillaries` holds them as JSON
//! (`[{"product":"needle-25g","perVial":6,"pieces":2340}, …]`).
//!
//! Expand only: orders written before this migration keep their `order_ancillaries` rows (the
//! column is NULL for them and readers fall back to the rows); the table stays until a later
//! migration copies them over and drops it.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000045_order_ancillaries_column"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("orders")
                    .add_column(text_null("ancillaries"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("orders").drop_column("ancillaries").to_owned())
            .await
    }
}
