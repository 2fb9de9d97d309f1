//! A dose record's versions keep the interval override each version used.
//!
//! An amendment now re-decides whether the dose needs the municipality's override (a date moved
//! later may no longer need it), so the override is part of what a version says. Versions kept
//! before this migration have it NULL: they were kept when amendments did not change it, so the
//! current record's value applied to them too — unknown here, and left unknown rather than
//! guessed.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000060_dose_version_override"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("dose_record_versions")
                    .add_column(big_integer_null("override_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("dose_record_versions")
                    .drop_column("override_id")
                    .to_owned(),
            )
            .await
    }
}
