//! Site stock as an append-only ledger: the lots known to the system (product + lot number →
//! expiry date), the entries (never updated or deleted), one balance row per site × product ×
//! lot kept in step with the entries inside the same transaction, and stock reports (physical
//! counts) with their lines.
//!
//! The balance row is what keeps stock from going negative under concurrent writers: every
//! withdrawal is a conditional `UPDATE … SET on_hand = on_hand - n WHERE on_hand >= n` on it,
//! and `CHECK (on_hand >= 0)` backs that up. `stock_entries.reverses_entry_id` is unique (where
//! set), so an entry is reversed at most once even when two reversals race. `delivery_id` is where a
//! RECEIVED entry will name the delivery it books (the deliveries table comes later; no
//! foreign key yet).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000020_stock_ledger"
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
                    .table("lots")
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(date("expiry_date"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("product_code").col("lot_number"))
                    .foreign_key(ForeignKey::create().from("lots", "product_code").to("products", "code"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("stock_balances")
                    .col(char_len("site_code", 10))
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(date("expiry_date"))
                    .col(big_integer("on_hand").check(Expr::col("on_hand").gte(0)))
                    .col(big_integer("received").default(0))
                    .col(big_integer("administered").default(0))
                    .col(big_integer("wasted").default(0))
                    .col(big_integer("expired").default(0))
                    .col(big_integer("transferred_in").default(0))
                    .col(big_integer("transferred_out").default(0))
                    .col(big_integer("adjusted").default(0))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("site_code").col("product_code").col("lot_number"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("stock_balances", "site_code")
                            .to("sites", "code"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("stock_balances", ("product_code", "lot_number"))
                            .to("lots", ("product_code", "lot_number")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("stock_balances_expiry", "stock_balances", &["expiry_date"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("stock_entries")
                    .col(big_pk_auto("id"))
                    .col(char_len("site_code", 10))
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(string_len("kind", 16))
                    .col(big_integer("quantity").check(Expr::col("quantity").ne(0)))
                    .col(big_integer("balance_after").check(Expr::col("balance_after").gte(0)))
                    .col(string_len_null("waste_reason", 24))
                    .col(text("note"))
                    .col(date("occurred_on"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .col(string("actor"))
                    .col(char_len_null("counterpart_site", 10))
                    .col(big_integer_null("paired_entry_id"))
                    .col(big_integer_null("reverses_entry_id"))
                    .col(string_len_null("original_kind", 16))
                    .col(big_integer_null("delivery_id"))
                    .col(big_integer_null("report_id"))
                    // No foreign key to stock_balances: every entry is written right after its
                    // balance row moved, in the same statement or transaction, and balance rows
                    // are never deleted; the check cost ~15% of the hottest write (measured with
                    // pgbench), and `vsys stock reconcile` verifies entries against balances.
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("stock_entries_site", &["site_code", "id"][..]),
            ("stock_entries_occurred", &["occurred_on", "kind"][..]),
        ] {
            manager.create_index(index(name, "stock_entries", cols)).await?;
        }
        // Most entries are plain uses: these columns are null on them, so their indexes are
        // partial and cost the hot path nothing.
        for (name, col, unique) in [
            ("stock_entries_paired", "paired_entry_id", false),
            ("stock_entries_delivery", "delivery_id", false),
            ("stock_entries_reverses", "reverses_entry_id", true),
        ] {
            let mut i = index(name, "stock_entries", &[col]);
            i.and_where(Expr::col(col).is_not_null());
            if unique {
                i.unique();
            }
            manager.create_index(i).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("stock_reports")
                    .col(big_pk_auto("id"))
                    .col(char_len("site_code", 10))
                    .col(date("counted_on"))
                    .col(text("reason"))
                    .col(string("actor"))
                    .col(timestamp_with_time_zone("recorded_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("stock_reports", "site_code")
                            .to("sites", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("stock_reports_site", "stock_reports", &["site_code", "id"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("stock_report_lines")
                    .col(big_integer("report_id"))
                    .col(string_len("product_code", 32))
                    .col(string_len("lot_number", 20))
                    .col(big_integer("counted").check(Expr::col("counted").gte(0)))
                    .col(big_integer("ledger_before"))
                    .col(big_integer("difference"))
                    .col(text("reason"))
                    .col(big_integer_null("adjustment_entry_id"))
                    .primary_key(Index::create().col("report_id").col("product_code").col("lot_number"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("stock_report_lines", "report_id")
                            .to("stock_reports", "id"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "stock_report_lines",
            "stock_reports",
            "stock_entries",
            "stock_balances",
            "lots",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
