use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sites")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub code_kind: String,
    pub name: String,
    pub name_kana: String,
    pub kind: String,
    pub prefecture_code: String,
    pub municipality_code: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub cold_chain_role: String,
    pub freezer_class: Option<String>,
    pub base_site_code: Option<String>,
    pub receiving_days: String,
    pub receiving_hours: String,
    pub delivery_notes: String,
    pub wholesaler_id: Option<String>,
    pub products: String,
    pub status: String,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
