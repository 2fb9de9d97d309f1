use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_lots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub lot_number: String,
    pub line: i16,
    pub product_code: String,
    pub expiry_date: Date,
    pub vials: i64,
    pub accepted: Option<i64>,
    pub rejected: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
