use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "site_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_code: String,
    pub version: i32,
    pub action: String,
    pub actor: String,
    pub changed_at: DateTimeUtc,
    /// JSON array of `FieldChange`.
    pub changes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
