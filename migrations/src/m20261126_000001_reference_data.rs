//! Prefectures (47) and municipalities (1,741) from `municipalities.csv` (JIS X 0402 codes,
//! names, half-width kana). A prefecture row has an empty `city`.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000001_reference_data"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("prefectures")
                    .col(char_len("code", 2).primary_key())
                    .col(string("name"))
                    .col(string("name_kana"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("municipalities")
                    .col(char_len("code", 6).primary_key())
                    .col(char_len("prefecture_code", 2))
                    .col(string("name"))
                    .col(string("name_kana"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("municipalities", "prefecture_code")
                            .to("prefectures", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("municipalities_prefecture")
                    .table("municipalities")
                    .col("prefecture_code")
                    .to_owned(),
            )
            .await?;

        let mut prefectures = Query::insert()
            .into_table("prefectures")
            .columns(["code", "name", "name_kana"])
            .to_owned();
        let mut municipalities = Query::insert()
            .into_table("municipalities")
            .columns(["code", "prefecture_code", "name", "name_kana"])
            .to_owned();
        let mut reader = csv::Reader::from_reader(crate::MUNICIPALITIES_CSV.as_bytes());
        for record in reader.records() {
            let r = record.map_err(|e| DbErr::Custom(format!("municipalities.csv: {e}")))?;
            let (code, pref, city, pref_kana, city_kana) = (&r[0], &r[1], &r[2], &r[3], &r[4]);
            if city.is_empty() {
                prefectures.values_panic([code[..2].into(), pref.into(), pref_kana.into()]);
            } else {
                municipalities.values_panic([code.into(), code[..2].into(), city.into(), city_kana.into()]);
            }
        }
        manager.exec_stmt(prefectures).await?;
        manager.exec_stmt(municipalities).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("municipalities").to_owned())
            .await?;
        manager.drop_table(Table::drop().table("prefectures").to_owned()).await
    }
}
