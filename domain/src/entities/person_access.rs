use sea_orm::entity::prelude::*;

/// One audited read of a person's personal fields (migration 000051). Holds field *names*,
/// never values.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "person_access_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub person_id: i64,
    pub municipality_code: String,
    pub actor: String,
    pub subject: String,
    pub role: String,
    pub accessed_at: DateTimeUtc,
    pub fields: String,
    pub purpose: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
