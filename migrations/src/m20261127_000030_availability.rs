//! Reservation availability for the public site: each site's stated (or slot-derived) status
//! with how to book, the bookable slots of non-medical venues, and an index for postal-code
//! prefix searches.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000030_availability"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per site that has stated its availability; sites without one show as
        // "no information". Keyed by the site code, so the public search joins it by primary key.
        manager
            .create_table(
                Table::create()
                    .table("site_availability")
                    .col(char_len("site_code", 10).primary_key())
                    .col(string_len("status", 20))
                    .col(string_len("source", 10))
                    .col(string_len_null("booking_phone", 20))
                    .col(text_null("booking_url"))
                    .col(text_null("booking_notes"))
                    .col(integer_null("remaining"))
                    .col(integer_null("capacity"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(string("updated_by"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("site_availability", "site_code")
                            .to("sites", "code"),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("venue_slots")
                    .col(big_pk_auto("id"))
                    .col(char_len("site_code", 10))
                    .col(date("slot_date"))
                    .col(string_len("start_time", 5))
                    .col(string_len("end_time", 5))
                    .col(integer("capacity"))
                    .col(integer("booked"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("venue_slots", "site_code")
                            .to("sites", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        // A venue's slot is identified by its date and start time; the same index serves
        // "this venue's upcoming slots" (site_code, slot_date >= today).
        manager
            .create_index(
                Index::create()
                    .name("venue_slots_site_date_start")
                    .table("venue_slots")
                    .col("site_code")
                    .col("slot_date")
                    .col("start_time")
                    .unique()
                    .to_owned(),
            )
            .await?;

        // Postal-code prefix searches are range scans ([prefix, next prefix)), which a plain
        // b-tree answers under any collation.
        manager
            .create_index(
                Index::create()
                    .name("sites_postal_code")
                    .table("sites")
                    .col("postal_code")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("sites_postal_code").table("sites").to_owned())
            .await?;
        for table in ["venue_slots", "site_availability"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
