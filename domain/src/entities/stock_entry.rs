use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stock_entries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub site_code: String,
    pub product_code: String,
    pub lot_number: String,
    pub kind: String,
    /// Signed vials: positive in, negative out.
    pub quantity: i64,
    pub balance_after: i64,
    pub waste_reason: Option<String>,
    pub note: String,
    pub occurred_on: Date,
    pub recorded_at: DateTimeUtc,
    pub actor: String,
    /// TRANSFERRED_OUT: the satellite; TRANSFERRED_IN: the base site.
    pub counterpart_site: Option<String>,
    /// TRANSFERRED_IN: its TRANSFERRED_OUT entry.
    pub paired_entry_id: Option<i64>,
    /// REVERSED: the entry it cancels (unique: an entry is reversed at most once).
    pub reverses_entry_id: Option<i64>,
    /// REVERSED: the kind of the entry it cancels.
    pub original_kind: Option<String>,
    /// RECEIVED: the delivery it books (deliveries come with the wholesaler integration).
    pub delivery_id: Option<i64>,
    /// ADJUSTED: the stock report whose count it records.
    pub report_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
