use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_codes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub wholesaler_id: String,
    pub site_code: String,
    pub customer_code: String,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
    pub version: i32,
    pub updated_at: DateTimeUtc,
    pub updated_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
