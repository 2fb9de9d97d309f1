use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assigned_code_serials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub prefecture_code: String,
    pub last_serial: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
