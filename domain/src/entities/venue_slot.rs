use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "venue_slots")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_code: String,
    pub slot_date: Date,
    pub start_time: String,
    pub end_time: String,
    pub capacity: i32,
    pub booked: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
