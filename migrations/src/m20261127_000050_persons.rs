//! Persons (接種対象者) of the vaccination records, held by their municipality of residence.
//!
//! One row per person per municipality: a person who moves keeps the old municipality's row
//! (its history) and gets a new one where they now live; the two are linked by the lookup hash
//! of their My Number (`my_number_hash`), never by the number itself. My Number is stored only
//! sealed (AES-256-GCM, `my_number_key_id` names the key so keys can rotate) — see
//! `domain::personal::crypto`. `(municipality_code, coupon_number)` is unique: the coupon
//! number (券番号) identifies a resident within a municipality and is what a site scans.
//! `resident_id` is the municipality's own person number (個別宛名番号), when it has one.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000050_persons"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("persons")
                    .col(big_pk_auto("id"))
                    .col(char_len("municipality_code", 6))
                    .col(char_len("coupon_number", 10))
                    .col(string_len_null("resident_id", 32))
                    .col(text("name"))
                    .col(text("name_kana"))
                    .col(date("birth_date"))
                    // ISO/IEC 5218: 0 not known, 1 male, 2 female, 9 not applicable.
                    .col(small_integer("sex"))
                    .col(text("address"))
                    .col(string_len_null("my_number_key_id", 32))
                    .col(text_null("my_number_sealed"))
                    // Hex HMAC-SHA256 of the number under the lookup key.
                    .col(char_len_null("my_number_hash", 64))
                    // Set when the municipality records the person as moved out (転出).
                    .col(date_null("moved_out_on"))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(string("updated_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("persons_coupon")
                    .table("persons")
                    .col("municipality_code")
                    .col("coupon_number")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("persons_my_number_hash")
                    .table("persons")
                    .col("my_number_hash")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("persons").to_owned()).await
    }
}
