use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub round_id: i32,
    pub allocation_id: i32,
    pub product_code: String,
    pub site_code: String,
    pub prefecture_code: String,
    pub municipality_code: String,
    pub wholesaler_id: String,
    pub boxes: i64,
    pub vials: i64,
    pub doses: i64,
    pub status: String,
    pub created_at: DateTimeUtc,
    pub created_by: String,
    /// The wholesaler's customer code the order went out with (set when first translated).
    pub customer_code: Option<String>,
    pub sent_at: Option<DateTimeUtc>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub ack_reference: Option<String>,
    /// Why the order waits (no customer code yet, wholesaler not configured).
    pub hold_reason: Option<String>,
    /// The ancillaries shipped with the order, as JSON (`[{"product", "perVial", "pieces"}]`);
    /// NULL for orders written before it existed, whose ancillaries are `order_ancillaries` rows.
    pub ancillaries: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
