//! Wholesaler integration: the wholesalers (organisation, area served, how orders reach them),
//! the translation of national site codes to each wholesaler's own customer codes (versioned by
//! effective dates), where each order stands with its wholesaler (held, sent, acknowledged), and
//! the outbox claim token that lets several workers share the queue.
//!
//! Deliveries are not here: the stock ledger derives delivered quantities from its own entries.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000040_wholesalers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("wholesalers")
                    // The slug sites name in `wholesaler_id` (e.g. "suzuken").
                    .col(string_len("id", 32).primary_key())
                    .col(string("name"))
                    // Prefecture codes served, space-separated; empty: nationwide.
                    .col(text("area"))
                    // HTTP_PUSH | FILE_DROP | PULL
                    .col(string_len("adapter", 16))
                    // HTTP_PUSH: the URL orders are POSTed to.
                    .col(text_null("endpoint"))
                    // HTTP_PUSH: the HMAC-SHA256 key; never read back through the API.
                    .col(text_null("signing_secret"))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(string("updated_by"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("customer_codes")
                    .col(big_pk_auto("id"))
                    .col(string_len("wholesaler_id", 32))
                    .col(char_len("site_code", 10))
                    .col(string_len("customer_code", 32))
                    // Valid from this Japan date, up to (excluding) `effective_to`.
                    .col(date("effective_from"))
                    .col(date_null("effective_to"))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(string("updated_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("customer_codes_key")
                    .table("customer_codes")
                    .col("wholesaler_id")
                    .col("site_code")
                    .col("effective_from")
                    .unique()
                    .to_owned(),
            )
            .await?;

        // Where an order stands with its wholesaler. SQLite adds one column per statement.
        let order_columns = [
            string_len_null("customer_code", 32),
            timestamp_with_time_zone_null("sent_at"),
            timestamp_with_time_zone_null("acknowledged_at"),
            string_len_null("ack_reference", 128),
            text_null("hold_reason"),
        ];
        for mut c in order_columns {
            manager
                .alter_table(Table::alter().table("orders").add_column(&mut c).to_owned())
                .await?;
        }
        // The worker that holds a message's lease writes its token here; its outcome is recorded
        // only while the token is still its own. No new index: parked and held messages are
        // found through `outbox_due (status, …)`, and every index slows the national write.
        manager
            .alter_table(
                Table::alter()
                    .table("outbox")
                    .add_column(string_len_null("claim_token", 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("outbox").drop_column("claim_token").to_owned())
            .await?;
        for c in [
            "customer_code",
            "sent_at",
            "acknowledged_at",
            "ack_reference",
            "hold_reason",
        ] {
            manager
                .alter_table(Table::alter().table("orders").drop_column(c).to_owned())
                .await?;
        }
        for table in ["customer_codes", "wholesalers"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
