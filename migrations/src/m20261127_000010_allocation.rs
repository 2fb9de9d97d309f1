//! Allocation: rounds (クール) of a product, target populations per municipality (the base
//! share's weight), requests (希望量), and the allocations of each level with their lines.
//!
//! An allocation row belongs to one owner (the nation, a prefecture or a municipality) in one
//! round and is the row writers lock: every change to its lines happens under that lock, so the
//! sum of the lines is checked against `received` with no concurrent writer in between.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000010_allocation"
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
                    .table("rounds")
                    .col(pk_auto("id"))
                    .col(string_len("product_code", 32))
                    .col(integer("number"))
                    .col(date("starts_on"))
                    .col(date("ends_on"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string("created_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("rounds", "product_code")
                            .to("products", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "rounds_product_number",
            "rounds",
            &["product_code", "number"],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("target_populations")
                    .col(char_len("municipality_code", 6).primary_key())
                    .col(big_integer("population"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(string("updated_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("target_populations", "municipality_code")
                            .to("municipalities", "code"),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("allocations")
                    .col(pk_auto("id"))
                    .col(integer("round_id"))
                    .col(string_len("level", 16))
                    // Empty for the national allocation, else the prefecture or municipality code.
                    .col(string_len("owner_code", 6))
                    .col(integer_null("parent_id"))
                    .col(big_integer("received"))
                    .col(big_integer("allocated"))
                    .col(string_len("status", 12))
                    .col(integer("version"))
                    // JSON: the last proposal's totals (ProposalSummary) and who made it.
                    .col(text_null("proposal"))
                    .col(timestamp_with_time_zone_null("confirmed_at"))
                    .col(string_null("confirmed_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(ForeignKey::create().from("allocations", "round_id").to("rounds", "id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("allocations", "parent_id")
                            .to("allocations", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "allocations_round_owner",
            "allocations",
            &["round_id", "owner_code"],
            true,
        )
        .await?;
        index(
            manager,
            "allocations_round_level",
            "allocations",
            &["round_id", "level", "status"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("allocation_lines")
                    .col(integer("allocation_id"))
                    // A prefecture, municipality or site code, by the allocation's level.
                    .col(string_len("child_code", 10))
                    .col(big_integer("boxes"))
                    .col(big_integer_null("proposed"))
                    // JSON: the proposal's LineReason for this child.
                    .col(text_null("reason"))
                    .col(string_null("edited_by"))
                    .col(timestamp_with_time_zone_null("edited_at"))
                    .primary_key(Index::create().col("allocation_id").col("child_code"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("allocation_lines", "allocation_id")
                            .to("allocations", "id"),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("allocation_requests")
                    .col(integer("round_id"))
                    .col(string_len("requester_code", 10))
                    .col(string_len("level", 16))
                    .col(char_len("prefecture_code", 2))
                    .col(char_len_null("municipality_code", 6))
                    .col(big_integer("boxes"))
                    .col(text("note"))
                    .col(string("submitted_by"))
                    .col(timestamp_with_time_zone("submitted_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("round_id").col("requester_code"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("allocation_requests", "round_id")
                            .to("rounds", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "allocation_requests_prefecture",
            "allocation_requests",
            &["round_id", "prefecture_code"],
            false,
        )
        .await?;
        index(
            manager,
            "allocation_requests_municipality",
            "allocation_requests",
            &["round_id", "municipality_code"],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "allocation_requests",
            "allocation_lines",
            "allocations",
            "target_populations",
            "rounds",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
