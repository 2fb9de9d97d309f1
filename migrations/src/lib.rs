#![allow(elided_lifetimes_in_paths)] // the MigrationTrait signature elides SchemaManager<'_>
//! Schema history for both storage modes (SQLite and PostgreSQL).
//!
//! Owns: every table, index and the reference data (prefectures, municipalities) that ships
//! with the system. Must not: reference `domain` entities — a migration is frozen history, and
//! building it from today's entity structs would silently rewrite the past. A change to an
//! applied migration is forbidden; add a new one (expand, then contract).

use sea_orm_migration::prelude::*;

mod m20261126_000001_reference_data;
mod m20261126_000002_sites;
mod m20261127_000001_products;
mod m20261127_000010_allocation;
mod m20261127_000011_orders_outbox;
mod m20261127_000020_stock_ledger;
mod m20261127_000021_deliveries;
mod m20261127_000030_availability;
mod m20261127_000040_wholesalers;
mod m20261127_000045_order_ancillaries_column;
mod m20261127_000050_persons;
mod m20261127_000051_person_records;
mod m20261127_000055_dose_records;
mod m20261127_000060_dose_version_override;

pub use sea_orm_migration::MigratorTrait;

/// Applies every migration in order; `vsys serve` runs it on start, tests on each fresh database.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_reference_data::Migration),
            Box::new(m20261126_000002_sites::Migration),
            Box::new(m20261127_000001_products::Migration),
            Box::new(m20261127_000030_availability::Migration),
            Box::new(m20261127_000010_allocation::Migration),
            Box::new(m20261127_000011_orders_outbox::Migration),
            Box::new(m20261127_000040_wholesalers::Migration),
            Box::new(m20261127_000020_stock_ledger::Migration),
            Box::new(m20261127_000021_deliveries::Migration),
            Box::new(m20261127_000050_persons::Migration),
            Box::new(m20261127_000045_order_ancillaries_column::Migration),
            Box::new(m20261127_000051_person_records::Migration),
            Box::new(m20261127_000055_dose_records::Migration),
            Box::new(m20261127_000060_dose_version_override::Migration),
        ]
    }
}

/// The official list of prefectures and municipalities (JIS X 0402), as shipped.
pub const MUNICIPALITIES_CSV: &str = include_str!("municipalities.csv");
