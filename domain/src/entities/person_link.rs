use sea_orm::entity::prelude::*;

/// A link from a person's row in their new municipality to an earlier row of the same person
/// elsewhere (migration 000051). Holds no personal data.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "person_links")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub person_id: i64,
    pub earlier_person_id: i64,
    pub linked_at: DateTimeUtc,
    pub linked_by: String,
    pub purpose: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
