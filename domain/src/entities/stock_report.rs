use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stock_reports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_code: String,
    pub counted_on: Date,
    pub reason: String,
    pub actor: String,
    pub recorded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
