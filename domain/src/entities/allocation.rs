use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "allocations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub round_id: i32,
    pub level: String,
    /// Empty for the national allocation.
    pub owner_code: String,
    pub parent_id: Option<i32>,
    pub received: i64,
    pub allocated: i64,
    pub status: String,
    pub version: i32,
    /// JSON `StoredProposal`.
    pub proposal: Option<String>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub confirmed_by: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
