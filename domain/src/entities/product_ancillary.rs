use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "product_ancillaries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub ancillary_code: String,
    pub per_vial: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
