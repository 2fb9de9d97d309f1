//! Deliveries (納品) against orders: what a wholesaler delivered (date, lots with expiry and
//! vials), and what the receiving site accepted and rejected once it checked the boxes.
//!
//! Orders are not changed: an order's delivered / accepted figures are sums over its
//! deliveries, so this table and the order status the wholesaler integration keeps (its own
//! migration) never write the same row. `(wholesaler_id, idempotency_key)` is unique: a
//! wholesaler re-sending a delivery with the key it used before gets the first one back, and no
//! race can store it twice. Accepted vials enter the stock ledger as RECEIVED entries whose
//! `delivery_id` names the delivery (migration 000020).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000021_deliveries"
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
                    .table("deliveries")
                    .col(big_pk_auto("id"))
                    .col(string_len("order_id", 24))
                    .col(string_len("wholesaler_id", 32))
                    .col(char_len("site_code", 10))
                    .col(char_len("prefecture_code", 2))
                    .col(char_len("municipality_code", 6))
                    .col(string_len("product_code", 32))
                    .col(string_len("idempotency_key", 100))
                    .col(date("delivered_on"))
                    .col(big_integer("vials").check(Expr::col("vials").gt(0)))
                    .col(text_null("over_delivery_reason"))
                    .col(text("note"))
                    .col(timestamp_with_time_zone("registered_at"))
                    .col(string("registered_by"))
                    // Null until the site confirms receipt; then accepted + rejected = vials.
                    .col(big_integer_null("accepted"))
                    .col(big_integer_null("rejected"))
                    .col(string_len_null("rejection_reason", 32))
                    .col(text_null("rejection_note"))
                    .col(date_null("received_on"))
                    .col(timestamp_with_time_zone_null("confirmed_at"))
                    .col(string_null("confirmed_by"))
                    .foreign_key(ForeignKey::create().from("deliveries", "order_id").to("orders", "id"))
                    .to_owned(),
            )
            .await?;
        let mut unique = index(
            "deliveries_idempotency",
            "deliveries",
            &["wholesaler_id", "idempotency_key"],
        );
        unique.unique();
        manager.create_index(unique).await?;
        for (name, cols) in [
            ("deliveries_order", &["order_id", "id"][..]),
            ("deliveries_site", &["site_code", "id"][..]),
            ("deliveries_municipality", &["municipality_code", "id"][..]),
        ] {
            manager.create_index(index(name, "deliveries", cols)).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("delivery_lots")
                    .col(big_integer("delivery_id"))
                    .col(string_len("lot_number", 20))
                    .col(small_integer("line"))
                    .col(string_len("product_code", 32))
                    .col(date("expiry_date"))
                    .col(big_integer("vials").check(Expr::col("vials").gt(0)))
                    .col(big_integer_null("accepted"))
                    .col(big_integer_null("rejected"))
                    .primary_key(Index::create().col("delivery_id").col("lot_number"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("delivery_lots", "delivery_id")
                            .to("deliveries", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("delivery_lots", ("product_code", "lot_number"))
                            .to("lots", ("product_code", "lot_number")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["delivery_lots", "deliveries"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
