use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "site_availability")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub site_code: String,
    pub status: String,
    pub source: String,
    pub booking_phone: Option<String>,
    pub booking_url: Option<String>,
    pub booking_notes: Option<String>,
    pub remaining: Option<i32>,
    pub capacity: Option<i32>,
    pub updated_at: DateTimeUtc,
    pub updated_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
