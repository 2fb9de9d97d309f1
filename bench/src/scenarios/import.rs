//! `import-70k`: the national site master (70,000 generated sites) imported by the release
//! `vsys sites import`, against PostgreSQL's own `COPY` of the same file.
//!
//! Per run: a fresh database (PostgreSQL: `CREATE DATABASE bench_import_<n>`, dropped after;
//! SQLite: a new file), `vsys migrate` (untimed), then three timed subprocesses:
//! 1. `vsys sites import FILE --report R` — must report every row inserted, none rejected;
//! 2. baseline (PostgreSQL only): `psql -c "\copy bench_copy … FROM FILE CSV HEADER"` into a
//!    scratch table with the file's columns, the site table's column types, its primary key
//!    and its indexes on the columns the file has — the raw load the import is compared to;
//! 3. the same import again — must report every row unchanged.
//!
//! Both sides are timed the same way: process spawn to exit, connection set-up included.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail, ensure};
use domain::sites::CSV_COLUMNS;

use crate::generate;
use crate::process::{self, psql, run_timed, with_database};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};

/// The import's own counts, parsed from its summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// Finds `inserted N, updated N, unchanged N, rejected N` in the import's stdout.
pub fn parse_summary(stdout: &str) -> Option<ImportCounts> {
    stdout.lines().rev().find_map(|line| {
        let number_after = |key: &str| -> Option<u64> {
            let at = line.find(key)? + key.len();
            let digits: String = line[at..]
                .trim_start_matches([' ', ':', '='])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        };
        Some(ImportCounts {
            inserted: number_after("inserted")?,
            updated: number_after("updated")?,
            unchanged: number_after("unchanged")?,
            rejected: number_after("rejected")?,
        })
    })
}

/// The scratch table of the `COPY` baseline: the import file's columns with the `sites`
/// table's types, primary key and (where the file has the columns) indexes.
fn copy_table_ddl() -> String {
    let ty = |c: &str| match c {
        "code" => "char(10) PRIMARY KEY",
        "kind" => "varchar(20)",
        "municipality_code" => "char(6)",
        "postal_code" => "char(7)",
        "phone" => "varchar(20)",
        "latitude" | "longitude" => "double precision",
        "cold_chain_role" => "varchar(10)",
        "freezer_class" => "varchar(20)",
        "base_site_code" => "char(10)",
        "receiving_days" | "receiving_hours" => "varchar(40)",
        "delivery_notes" | "products" => "text",
        "wholesaler_id" => "varchar(32)",
        "status" => "varchar(12)",
        _ => "varchar",
    };
    let cols: Vec<String> = CSV_COLUMNS.iter().map(|c| format!("{c} {}", ty(c))).collect();
    format!(
        "CREATE TABLE bench_copy ({}); \
         CREATE INDEX bench_copy_municipality ON bench_copy (municipality_code, code); \
         CREATE INDEX bench_copy_base ON bench_copy (base_site_code);",
        cols.join(", ")
    )
}

#[derive(Default)]
pub struct Import {
    csv: Option<PathBuf>,
    rows: u64,
    /// A database left by a failed run, dropped at teardown.
    pending_drop: Option<String>,
}

impl Import {
    fn file(&self) -> Result<&PathBuf> {
        self.csv.as_ref().context("setup did not run")
    }

    fn import_cmd(&self, ctx: &Context, url: &str, report: &std::path::Path) -> Result<Command> {
        let mut cmd = Command::new(&ctx.vsys);
        cmd.arg("sites")
            .arg("import")
            .arg(self.file()?)
            .arg("--report")
            .arg(report)
            .env("DATABASE_URL", url);
        Ok(cmd)
    }

    async fn timed_import(
        &self,
        ctx: &Context,
        url: &str,
        report: &std::path::Path,
        what: &str,
    ) -> Result<(f64, ImportCounts)> {
        let t = run_timed(self.import_cmd(ctx, url, report)?, what).await?;
        let counts = parse_summary(&t.stdout).with_context(|| {
            format!(
                "{what}: no 'inserted N, updated N, unchanged N, rejected N' line in its output:\n{}\n{}",
                process::tail(&t.stdout, 10),
                process::tail(&t.stderr, 10)
            )
        })?;
        if counts.rejected > 0 {
            let head = std::fs::read_to_string(report).unwrap_or_default();
            bail!(
                "{what} rejected {} generated rows — the generator and the importer disagree; report {}:\n{}",
                counts.rejected,
                report.display(),
                head.chars().take(2000).collect::<String>()
            );
        }
        Ok((t.elapsed.as_secs_f64(), counts))
    }

    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let rows = self.rows as f64;
        let file = self.file()?.clone();
        let (url, admin) = match &ctx.storage {
            Storage::Sqlite => {
                let path = ctx.work.join(format!("import-{run}.db"));
                (format!("sqlite://{}?mode=rwc", path.display()), None)
            }
            Storage::Postgres { admin_url } => {
                let name = format!("bench_import_{run}");
                psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                psql(admin_url, &format!("CREATE DATABASE {name}")).await?;
                self.pending_drop = Some(name.clone());
                (with_database(admin_url, &name)?, Some(admin_url.clone()))
            }
        };
        let mut migrate = Command::new(&ctx.vsys);
        migrate.arg("migrate").env("DATABASE_URL", &url);
        run_timed(migrate, "vsys migrate").await?;

        let report = ctx.work.join(format!("import-{run}.report"));
        let (import_s, first) = self.timed_import(ctx, &url, &report, "vsys sites import").await?;
        ensure!(
            first.inserted == self.rows,
            "first import inserted {} of {} rows ({first:?})",
            first.inserted,
            self.rows
        );

        let mut out = Vec::new();
        let copy_s = if admin.is_some() {
            psql(&url, &copy_table_ddl()).await?;
            let mut copy = Command::new("psql");
            copy.args([url.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
                .arg(format!(
                    "\\copy bench_copy ({}) FROM '{}' WITH (FORMAT csv, HEADER true)",
                    CSV_COLUMNS.join(", "),
                    file.display()
                ));
            let t = run_timed(copy, "psql \\copy").await?;
            let loaded: u64 = psql(&url, "SELECT count(*) FROM bench_copy").await?.trim().parse()?;
            ensure!(loaded == self.rows, "\\copy loaded {loaded} of {} rows", self.rows);
            Some(t.elapsed.as_secs_f64())
        } else {
            None
        };

        let (reimport_s, second) = self
            .timed_import(ctx, &url, &report, "vsys sites import (again)")
            .await?;
        ensure!(
            second.unchanged == self.rows && second.inserted == 0 && second.updated == 0,
            "re-import should leave all {} rows unchanged, got {second:?}",
            self.rows
        );

        let mut import = Measurement::new(self.name(), import_s, "s");
        let mut throughput = Measurement::new(format!("{} throughput", self.name()), rows / import_s, "rows/s");
        if let Some(c) = copy_s {
            import = import.against("psql \\copy", c);
            throughput = throughput.against("psql \\copy", rows / c);
        }
        out.push(import);
        out.push(throughput);
        out.push(Measurement::new(
            format!("{} re-import (all unchanged)", self.name()),
            reimport_s,
            "s",
        ));

        match admin {
            Some(admin_url) => {
                if let Some(name) = self.pending_drop.take() {
                    psql(&admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                }
            }
            None => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(ctx.work.join(format!("import-{run}.db{suffix}")));
                }
            }
        }
        Ok(out)
    }
}

impl Scenario for Import {
    fn name(&self) -> &'static str {
        "import-70k"
    }

    fn describe(&self) -> &'static str {
        "`vsys sites import` of the generated national site master into a fresh database; baseline: psql \\copy of the same CSV"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let reference = generate::Reference::load()?;
            let rows = generate::generate_sites(&reference, ctx.sites, ctx.seed)?;
            let path = ctx.work.join("sites.csv");
            generate::write_sites_csv(&path, &rows)?;
            self.rows = rows.len() as u64;
            self.csv = Some(path);
            if let Storage::Postgres { admin_url } = &ctx.storage {
                psql(admin_url, "SELECT 1")
                    .await
                    .context("connecting to PostgreSQL with psql")?;
            }
            Ok(())
        })
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let (Some(name), Storage::Postgres { admin_url }) = (self.pending_drop.take(), &ctx.storage) {
                psql(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
            }
            Ok(())
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        let mut notes = vec![format!(
            "import-70k: {} generated sites (seed {}), {}; times are process spawn to exit, `vsys migrate` untimed.",
            ctx.sites,
            ctx.seed,
            ctx.storage.label()
        )];
        if ctx.storage == Storage::Sqlite {
            notes.push("import-70k on SQLite has no baseline (the COPY baseline is PostgreSQL's).".to_owned());
        } else {
            notes.push(
                "Baseline `psql \\copy`: same CSV into a scratch table with the file's columns, the sites table's types, primary key and indexes; ratio = import time / copy time (lower is better), rows/s ratio = import / copy."
                    .to_owned(),
            );
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_line() {
        let out = "loading…\ninserted 70000, updated 0, unchanged 0, rejected 0\n";
        assert_eq!(
            parse_summary(out),
            Some(ImportCounts {
                inserted: 70000,
                updated: 0,
                unchanged: 0,
                rejected: 0
            })
        );
        let out = "site import: inserted: 1, updated: 2, unchanged: 3, rejected: 4 (report r.json)";
        assert_eq!(
            parse_summary(out),
            Some(ImportCounts {
                inserted: 1,
                updated: 2,
                unchanged: 3,
                rejected: 4
            })
        );
        assert_eq!(parse_summary("nothing here"), None);
    }

    #[test]
    fn copy_table_has_every_column() {
        let ddl = copy_table_ddl();
        for c in CSV_COLUMNS {
            assert!(ddl.contains(&format!("{c} ")), "{c}");
        }
    }
}
