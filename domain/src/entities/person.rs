use sea_orm::entity::prelude::*;
use std::fmt;

/// A person as stored (migration 000050). `Debug` shows only the id, municipality and version:
/// names, addresses, dates of birth and the sealed My Number must never reach a log line.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "persons")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub municipality_code: String,
    pub coupon_number: String,
    pub resident_id: Option<String>,
    pub name: String,
    pub name_kana: String,
    pub birth_date: Date,
    pub sex: i16,
    pub address: String,
    pub my_number_key_id: Option<String>,
    pub my_number_sealed: Option<String>,
    pub my_number_hash: Option<String>,
    pub moved_out_on: Option<Date>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: String,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("person::Model")
            .field("id", &self.id)
            .field("municipality_code", &self.municipality_code)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
