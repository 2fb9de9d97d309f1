//! The scenarios, one module each; `scenario::registry` lists them.

pub mod allocation;
pub mod doses;
pub mod graphql_overhead;
pub mod import;
pub mod ledger_writes;
pub mod outbox_drain;
pub mod person_lookup;
pub mod public_search;
pub mod stock_common;
pub mod stock_subscribers;
pub mod subscriber_churn;

use std::process::Command;

use anyhow::{Result, ensure};

use crate::generate::{self, SiteRow};
use crate::process::{psql, run_timed, with_database};
use crate::scenario::Context;

/// A fresh PostgreSQL database `name`, migrated by `vsys migrate`, with `rows` imported by
/// `vsys sites import` (every row must be inserted); returns its URL. `tag` names the files
/// written to the work directory.
pub async fn database_with_sites(
    ctx: &Context,
    admin_url: &str,
    name: &str,
    rows: &[SiteRow],
    tag: &str,
) -> Result<String> {
    psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    psql(admin_url, &format!("CREATE DATABASE {name}")).await?;
    let url = with_database(admin_url, name)?;
    let mut migrate = Command::new(&ctx.vsys);
    migrate.arg("migrate").env("DATABASE_URL", &url);
    run_timed(migrate, "vsys migrate").await?;
    let csv = ctx.work.join(format!("{tag}-sites.csv"));
    generate::write_sites_csv(&csv, rows)?;
    let mut import = Command::new(&ctx.vsys);
    import
        .args(["sites", "import"])
        .arg(&csv)
        .arg("--report")
        .arg(ctx.work.join(format!("{tag}-rejected.csv")))
        .env("DATABASE_URL", &url);
    let out = run_timed(import, "vsys sites import").await?;
    ensure!(
        out.stdout.contains(&format!("inserted {}", rows.len())),
        "the import did not insert every generated site: {}",
        out.stdout
    );
    Ok(url)
}
