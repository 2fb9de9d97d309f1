//! What a municipality keeps around its persons (migration 000050): links between a moved
//! person's rows in different municipalities (転入), the audit log of every read of personal
//! data, and the coupons (接種券) it issued in batches.
//!
//! - `person_links`: the new municipality's row (`person_id`) found an earlier row of the same
//!   person elsewhere (`earlier_person_id`, same My Number lookup hash) and linked it: who, when,
//!   for which stated purpose. Unique per pair, so linking again changes nothing. Neither row is
//!   changed by linking: the old municipality keeps its history as it was.
//! - `person_access_log`: one row per read of a person's personal fields (names, address, birth
//!   date, My Number, link look-ups): the actor (`ROLE:scope`), the token's subject, the role,
//!   when, which person (and its municipality, whose officials query the log), the fields read
//!   (comma-separated names) and the stated purpose. Append-only: nothing updates or deletes it.
//! - `coupon_batches` / `coupons`: one batch per issue run (municipality, 券種, 回数, when, by
//!   whom), one row per covered person with the 18-digit OCR/QR line printed on the coupon.
//!
//! No foreign keys: rows are written in bulk and persons are never deleted; the services write
//! related rows in one transaction.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000051_person_records"
    }
}

fn index(name: &str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut i = Index::create().name(name).table(table).to_owned();
    for c in cols {
        i.col(*c);
    }
    i
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("person_links")
                    .col(big_pk_auto("id"))
                    .col(big_integer("person_id"))
                    .col(big_integer("earlier_person_id"))
                    .col(timestamp_with_time_zone("linked_at"))
                    .col(string("linked_by"))
                    .col(text("purpose"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("person_links_pair", "person_links", &["person_id", "earlier_person_id"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("person_links_earlier", "person_links", &["earlier_person_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("person_access_log")
                    .col(big_pk_auto("id"))
                    .col(big_integer("person_id"))
                    .col(char_len("municipality_code", 6))
                    .col(string("actor"))
                    .col(string("subject"))
                    .col(string_len("role", 32))
                    .col(timestamp_with_time_zone("accessed_at"))
                    .col(text("fields"))
                    .col(text_null("purpose"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "person_access_log_person",
                "person_access_log",
                &["person_id", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "person_access_log_municipality",
                "person_access_log",
                &["municipality_code", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("coupon_batches")
                    .col(big_pk_auto("id"))
                    .col(char_len("municipality_code", 6))
                    // 券種 0-9 and 回数 1-9, as on the line.
                    .col(small_integer("kind"))
                    .col(small_integer("dose_number"))
                    .col(integer("coupons"))
                    .col(timestamp_with_time_zone("issued_at"))
                    .col(string("issued_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "coupon_batches_municipality",
                "coupon_batches",
                &["municipality_code", "id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("coupons")
                    .col(big_integer("batch_id"))
                    .col(big_integer("person_id"))
                    .col(char_len("coupon_number", 10))
                    .col(char_len("line", 18))
                    .primary_key(Index::create().col("batch_id").col("person_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["coupons", "coupon_batches", "person_access_log", "person_links"] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
