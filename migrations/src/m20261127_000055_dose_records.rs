//! Dose records (接種記録) of the vaccination records, and the stock columns a dose needs.
//!
//! - `dose_records`: one row per dose given, in its current version. Never deleted: a record
//!   entered in error is VOIDED, a wrong one amended; every earlier version is kept in
//!   `dose_record_versions` (copied there before the row changes). `(recorded_by_site,
//!   idempotency_key)` is unique, so a tablet retrying after a timeout never records a dose
//!   twice; `(person_id, dose_number)` is unique among ACTIVE records (a partial index), so two
//!   sites racing to record the same person's same dose cannot both succeed.
//! - `dose_interval_rules`: the minimum interval before a dose of a product (days and/or
//!   months), a table because the values change with policy and some are unconfirmed
//!   (domain-facts §7); `dose_number` 0 is the rule for any later dose not listed.
//! - `dose_interval_overrides`: a municipality's standing permission, with its reason, for one
//!   person's dose to be given earlier than the product's minimum.
//! - `dose_leftovers`: doses left in an opened vial and discarded (end of day).
//! - `stock_balances.open_doses` / `open_entry_id`: doses still in the vial that was opened for
//!   a dose (the vial left the stock as ADMINISTERED when it was opened), and the entry that
//!   opened it. `stock_entries.dose_record_id`: the dose record that opened a vial.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000055_dose_records"
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
                    .table("dose_records")
                    .col(big_pk_auto("id"))
                    .col(big_integer("person_id"))
                    // The person's municipality (of residence) and its prefecture: scope and counts.
                    .col(char_len("municipality_code", 6))
                    .col(char_len("prefecture_code", 2))
                    .col(char_len("coupon_number", 10))
                    .col(small_integer("dose_number"))
                    .col(date("administered_on"))
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(char_len("site_code", 10))
                    .col(string_len("doctor_name", 40))
                    .col(string_len("capture", 8))
                    .col(string_len("status", 8))
                    .col(big_integer_null("override_id"))
                    .col(text_null("override_reason"))
                    // The ADMINISTERED entry of the vial this dose came from, and whether this
                    // dose opened it.
                    .col(big_integer_null("vial_entry_id"))
                    .col(boolean("opened_vial"))
                    .col(char_len("recorded_by_site", 10))
                    .col(string_len("idempotency_key", 100))
                    // SHA-256 (hex) of the request's content, to tell a retry from a reused key.
                    .col(char_len("request_hash", 64))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .col(string("recorded_by"))
                    .col(timestamp_with_time_zone("changed_at"))
                    .col(string("changed_by"))
                    .col(text_null("change_reason"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "dose_records_key",
                    "dose_records",
                    &["recorded_by_site", "idempotency_key"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        let mut person_dose = index(
            "dose_records_person_dose",
            "dose_records",
            &["person_id", "dose_number"],
        );
        person_dose.unique().and_where(Expr::col("status").eq("ACTIVE"));
        manager.create_index(person_dose).await?;
        for (name, cols) in [
            ("dose_records_person", &["person_id"][..]),
            ("dose_records_site", &["site_code", "administered_on"][..]),
            (
                "dose_records_municipality",
                &["municipality_code", "administered_on"][..],
            ),
            ("dose_records_day", &["administered_on"][..]),
        ] {
            manager.create_index(index(name, "dose_records", cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("dose_record_versions")
                    .col(big_integer("record_id"))
                    .col(integer("version"))
                    .col(big_integer("person_id"))
                    .col(small_integer("dose_number"))
                    .col(date("administered_on"))
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(char_len("site_code", 10))
                    .col(string_len("doctor_name", 40))
                    .col(string_len("capture", 8))
                    .col(string_len("status", 8))
                    .col(big_integer_null("vial_entry_id"))
                    .col(boolean("opened_vial"))
                    // Who made this version, when and why (null reason: the first recording).
                    .col(timestamp_with_time_zone("made_at"))
                    .col(string("made_by"))
                    .col(text_null("reason"))
                    .primary_key(Index::create().col("record_id").col("version"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("dose_interval_rules")
                    .col(string_len("product_code", 32))
                    .col(small_integer("dose_number"))
                    .col(integer("min_days"))
                    .col(integer("min_months"))
                    .col(text("source"))
                    .primary_key(Index::create().col("product_code").col("dose_number"))
                    .to_owned(),
            )
            .await?;
        // domain-facts §7. Comirnaty 1→2: earliest day 19 (MHLW Q&A). Spikevax 1→2: 27 days is
        // the probable earliest day (unconfirmed). Later doses: 3 months after the last dose
        // (the rule from 2022-10-21). All editable: the table is the policy, not the code.
        for (product, dose, days, months, source) in [
            ("comirnaty", 2, 19, 0, "MHLW Q&A 0036: earliest day 19 after dose 1"),
            ("spikevax", 2, 27, 0, "4 weeks standard; earliest day 27 unconfirmed"),
            ("comirnaty", 0, 0, 3, "from 2022-10-21: 3 months after the last dose"),
            ("spikevax", 0, 0, 3, "from 2022-10-21: 3 months after the last dose"),
        ] {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table("dose_interval_rules")
                        .columns(["product_code", "dose_number", "min_days", "min_months", "source"])
                        .values_panic([product.into(), dose.into(), days.into(), months.into(), source.into()])
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("dose_interval_overrides")
                    .col(big_pk_auto("id"))
                    .col(big_integer("person_id"))
                    .col(small_integer("dose_number"))
                    .col(char_len("municipality_code", 6))
                    .col(text("reason"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string("created_by"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "dose_interval_overrides_person",
                    "dose_interval_overrides",
                    &["person_id", "dose_number"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("dose_leftovers")
                    .col(big_pk_auto("id"))
                    .col(char_len("site_code", 10))
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(big_integer("doses"))
                    .col(big_integer_null("vial_entry_id"))
                    .col(date("occurred_on"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .col(string("actor"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("dose_leftovers_site", "dose_leftovers", &["site_code", "id"]))
            .await?;

        // SQLite adds one column per ALTER.
        manager
            .alter_table(
                Table::alter()
                    .table("stock_balances")
                    .add_column(
                        big_integer("open_doses")
                            .default(0)
                            .check(Expr::col("open_doses").gte(0)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("stock_balances")
                    .add_column(big_integer_null("open_entry_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("stock_entries")
                    .add_column(big_integer_null("dose_record_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "dose_leftovers",
            "dose_interval_overrides",
            "dose_interval_rules",
            "dose_record_versions",
            "dose_records",
        ] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
