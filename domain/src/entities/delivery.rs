use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: String,
    pub wholesaler_id: String,
    pub site_code: String,
    pub prefecture_code: String,
    pub municipality_code: String,
    pub product_code: String,
    pub idempotency_key: String,
    pub delivered_on: Date,
    pub vials: i64,
    pub over_delivery_reason: Option<String>,
    pub note: String,
    pub registered_at: DateTimeUtc,
    pub registered_by: String,
    pub accepted: Option<i64>,
    pub rejected: Option<i64>,
    pub rejection_reason: Option<String>,
    pub rejection_note: Option<String>,
    pub received_on: Option<Date>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub confirmed_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
