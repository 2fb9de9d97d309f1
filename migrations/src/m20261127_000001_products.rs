//! Products: vaccines with their packaging and storage class, ancillaries (needles, syringes),
//! and how many of each ancillary go with one vial of a vaccine. Seeded with the products of
//! Japan's COVID-19 programme; NATIONAL maintains them afterwards.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000001_products"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("products")
                    .col(string_len("code", 32).primary_key())
                    .col(string("name"))
                    .col(string("manufacturer"))
                    .col(string_len("kind", 12))
                    .col(string_len("storage_class", 16))
                    .col(integer_null("doses_per_vial"))
                    .col(integer_null("vials_per_box"))
                    .col(integer_null("pieces_per_box"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("product_ancillaries")
                    .col(string_len("product_code", 32))
                    .col(string_len("ancillary_code", 32))
                    .col(integer("per_vial"))
                    .primary_key(Index::create().col("product_code").col("ancillary_code"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("product_ancillaries", "product_code")
                            .to("products", "code"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("product_ancillaries", "ancillary_code")
                            .to("products", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        // Spikevax vials per box and the ancillary counts per vial are not published in the
        // sources we have (domain-facts §3.1, §3.3): assumptions, editable by NATIONAL.
        let products: [(&str, &str, &str, &str, &str, Option<i32>, Option<i32>, Option<i32>); 4] = [
            (
                "comirnaty",
                "コミナティ筋注",
                "ファイザー",
                "VACCINE",
                "ULTRA_COLD",
                Some(6),
                Some(195),
                None,
            ),
            (
                "spikevax",
                "スパイクバックス筋注",
                "モデルナ",
                "VACCINE",
                "FROZEN",
                Some(10),
                Some(10),
                None,
            ),
            (
                "syringe-lds",
                "低デッドスペースシリンジ 1mL",
                "-",
                "ANCILLARY",
                "AMBIENT",
                None,
                None,
                Some(100),
            ),
            (
                "needle-25g",
                "注射針 25G",
                "-",
                "ANCILLARY",
                "AMBIENT",
                None,
                None,
                Some(100),
            ),
        ];
        let mut insert = Query::insert()
            .into_table("products")
            .columns([
                "code",
                "name",
                "manufacturer",
                "kind",
                "storage_class",
                "doses_per_vial",
                "vials_per_box",
                "pieces_per_box",
            ])
            .to_owned();
        for (code, name, maker, kind, storage, dpv, vpb, ppb) in products {
            insert.values_panic([
                code.into(),
                name.into(),
                maker.into(),
                kind.into(),
                storage.into(),
                dpv.into(),
                vpb.into(),
                ppb.into(),
            ]);
        }
        manager.exec_stmt(insert).await?;
        let mut pairs = Query::insert()
            .into_table("product_ancillaries")
            .columns(["product_code", "ancillary_code", "per_vial"])
            .to_owned();
        for (p, a, n) in [
            ("comirnaty", "syringe-lds", 6),
            ("comirnaty", "needle-25g", 6),
            ("spikevax", "syringe-lds", 10),
            ("spikevax", "needle-25g", 10),
        ] {
            pairs.values_panic([p.into(), a.into(), n.into()]);
        }
        manager.exec_stmt(pairs).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("product_ancillaries").to_owned())
            .await?;
        manager.drop_table(Table::drop().table("products").to_owned()).await
    }
}
