//! The national site master: sites keyed by their 10-character code, their change history,
//! and the per-prefecture counter from which assigned (類似) codes are drawn.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000002_sites"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("sites")
                    .col(char_len("code", 10).primary_key())
                    .col(string_len("code_kind", 20))
                    .col(string("name"))
                    .col(string("name_kana"))
                    .col(string_len("kind", 20))
                    .col(char_len("prefecture_code", 2))
                    .col(char_len("municipality_code", 6))
                    .col(char_len("postal_code", 7))
                    .col(string("address"))
                    .col(string_len("phone", 20))
                    .col(double_null("latitude"))
                    .col(double_null("longitude"))
                    .col(string_len("cold_chain_role", 10))
                    .col(string_len_null("freezer_class", 20))
                    .col(char_len_null("base_site_code", 10))
                    .col(string_len("receiving_days", 40))
                    .col(string_len("receiving_hours", 40))
                    .col(text("delivery_notes"))
                    .col(string_len_null("wholesaler_id", 32))
                    .col(text("products"))
                    .col(string_len("status", 12))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("sites", "municipality_code")
                            .to("municipalities", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("sites_prefecture_code", &["prefecture_code", "code"][..]),
            ("sites_municipality_code", &["municipality_code", "code"][..]),
            ("sites_base_site", &["base_site_code"][..]),
        ] {
            let mut index = Index::create().name(name).table("sites").to_owned();
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("site_history")
                    .col(big_pk_auto("id"))
                    .col(char_len("site_code", 10))
                    .col(integer("version"))
                    .col(string_len("action", 12))
                    .col(string("actor"))
                    .col(timestamp_with_time_zone("changed_at"))
                    .col(text("changes"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("site_history_site_version")
                    .table("site_history")
                    .col("site_code")
                    .col("version")
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("assigned_code_serials")
                    .col(char_len("prefecture_code", 2).primary_key())
                    .col(integer("last_serial"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["assigned_code_serials", "site_history", "sites"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
