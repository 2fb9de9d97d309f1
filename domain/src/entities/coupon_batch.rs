use sea_orm::entity::prelude::*;

/// One batch of issued coupons (migration 000051).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "coupon_batches")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub municipality_code: String,
    pub kind: i16,
    pub dose_number: i16,
    pub coupons: i32,
    pub issued_at: DateTimeUtc,
    pub issued_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
