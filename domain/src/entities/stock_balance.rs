use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stock_balances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub site_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub lot_number: String,
    pub expiry_date: Date,
    pub on_hand: i64,
    pub received: i64,
    pub administered: i64,
    pub wasted: i64,
    pub expired: i64,
    pub transferred_in: i64,
    pub transferred_out: i64,
    pub adjusted: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
