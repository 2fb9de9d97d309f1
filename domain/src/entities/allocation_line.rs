use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "allocation_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub allocation_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub child_code: String,
    pub boxes: i64,
    pub proposed: Option<i64>,
    /// JSON `LineReason`.
    pub reason: Option<String>,
    pub edited_by: Option<String>,
    pub edited_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
