//! The allocation issue's two figures, on the national site master (70,000 generated sites in
//! 1,741 municipalities of 47 prefectures):
//!
//! * `allocation-propose` — the pure proposal arithmetic (`domain::allocation::propose`) for
//!   one national round all the way down: nation → 47 prefectures, each prefecture → its
//!   municipalities, each municipality → its sites (1,789 proposals over 71,788 claims), in
//!   this process, release build. Weights: prefectures and municipalities by target
//!   population (here: 1,000 per site), sites by their request (1–6 boxes, seeded); every
//!   site eligible, so every claim takes part in the arithmetic (the worst case). Baseline in
//!   the same run: cloning and sorting the 71,788 claim codes — an O(n log n) pass over the
//!   same data, so the ratio says how many "sorts of the country" a proposal costs.
//! * `allocation-confirm` (PostgreSQL) — the deadline run: `vsys allocations confirm-all`
//!   confirming every municipality's site allocation of the round in one transaction — 70,000
//!   lines, 70,000 orders (their ancillaries in a column of each since migration 045; 140,000
//!   `order_ancillaries` rows before), 70,000 outbox entries. Set-up (untimed): a
//!   template database with the sites imported by `vsys sites import` (all of them made
//!   ultra-cold base sites with a wholesaler and Comirnaty, so that every site gets a line and
//!   an order), target population imported, a round of 210,000 boxes proposed and confirmed at
//!   the national and the 47 prefectural levels and proposed (left in draft) in all 1,741
//!   municipalities, through the domain services. Each run copies the template
//!   (`CREATE DATABASE … TEMPLATE`, untimed) and times the `vsys` process from spawn to exit.
//!   Baseline in the same run: `psql` `\copy` of exactly the rows the run wrote (exported
//!   after it) into a fresh copy of the template, in one transaction — the raw load of the
//!   same rows with the same indexes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::NaiveDate;
use domain::allocation::{Claim, Params, WeightSource, propose};
use domain::allocations::{self, NewRound, ProposeOptions};
use domain::authz::Actor;
use domain::quantity::Boxes;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::generate::{self, SiteRow};
use crate::process::{psql, run_timed, with_database};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};

/// Boxes of the benchmark round: three per site on average, so every site gets at least one.
const SUPPLY_PER_SITE: u64 = 3;
const TEMPLATE: &str = "bench_alloc_template";
const RUN_DB: &str = "bench_alloc_run";
const COPY_DB: &str = "bench_alloc_copy";
/// The tables the deadline run writes (or wrote: `order_ancillaries` stays empty since
/// migration 045, and copying it costs nothing), in the order the baseline loads them.
const WRITTEN: [&str; 3] = ["orders", "order_ancillaries", "outbox"];

/// Target population per site: prefectures and municipalities are weighted by their site count.
const PEOPLE_PER_SITE: u64 = 1_000;

/// The generated country, grouped: prefecture → municipality → (site code, request).
type Country = BTreeMap<String, BTreeMap<String, Vec<(String, u64)>>>;

fn country(rows: &[SiteRow], seed: u64) -> Country {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa11);
    let mut out = Country::new();
    for r in rows {
        let m = r.municipality_code.as_str().to_owned();
        out.entry(m[..2].to_owned())
            .or_default()
            .entry(m)
            .or_default()
            .push((r.code.as_str().to_owned(), rng.random_range(1..=6u64)));
    }
    out
}

fn claim(code: &str, weight: u64, request: Option<u64>) -> Claim {
    Claim {
        code: code.to_owned(),
        weight,
        request: request.map(Boxes::new),
        cap: None,
        ineligible: None,
    }
}

fn params(total: Boxes, weight_source: WeightSource) -> Params {
    Params {
        total,
        adjustment_percent: domain::allocation::DEFAULT_ADJUSTMENT_PERCENT,
        weight_source,
        cap_at_request: false,
    }
}

/// Every claim of the country, built once (untimed): nation, prefectures, municipalities.
struct Claims {
    national: Vec<Claim>,
    /// Per prefecture, in the order of `national`.
    prefectures: Vec<Vec<Claim>>,
    /// Per municipality, grouped by prefecture in the same orders.
    municipalities: Vec<Vec<Vec<Claim>>>,
    total: Boxes,
}

impl Claims {
    fn build(country: &Country) -> Self {
        let sites = |munis: &BTreeMap<String, Vec<(String, u64)>>| munis.values().map(Vec::len).sum::<usize>() as u64;
        let national = country
            .iter()
            .map(|(p, munis)| claim(p, sites(munis) * PEOPLE_PER_SITE, None))
            .collect();
        let prefectures = country
            .values()
            .map(|munis| {
                munis
                    .iter()
                    .map(|(m, s)| claim(m, s.len() as u64 * PEOPLE_PER_SITE, None))
                    .collect()
            })
            .collect();
        let municipalities = country
            .values()
            .map(|munis| {
                munis
                    .values()
                    .map(|s| s.iter().map(|(code, req)| claim(code, *req, Some(*req))).collect())
                    .collect()
            })
            .collect();
        let all_sites: u64 = country.values().map(sites).sum();
        Claims {
            national,
            prefectures,
            municipalities,
            total: Boxes::new(all_sites * SUPPLY_PER_SITE),
        }
    }

    fn count(&self) -> usize {
        self.national.len()
            + self.prefectures.iter().map(Vec::len).sum::<usize>()
            + self.municipalities.iter().flatten().map(Vec::len).sum::<usize>()
    }

    fn codes(&self) -> Vec<&str> {
        self.national
            .iter()
            .chain(self.prefectures.iter().flatten())
            .chain(self.municipalities.iter().flatten().flatten())
            .map(|c| c.code.as_str())
            .collect()
    }

    /// The whole round, level by level: returns (proposals made, boxes handed to sites).
    fn propose_country(&self) -> Result<(usize, u64)> {
        let national = propose(&params(self.total, WeightSource::TargetPopulation), &self.national)?;
        let mut proposals = 1;
        let mut to_sites = 0;
        for ((p_line, p_claims), m_claims) in national.lines.iter().zip(&self.prefectures).zip(&self.municipalities) {
            let prefecture = propose(&params(p_line.boxes, WeightSource::TargetPopulation), p_claims)?;
            proposals += 1;
            for (m_line, s_claims) in prefecture.lines.iter().zip(m_claims) {
                let municipality = propose(&params(m_line.boxes, WeightSource::Request), s_claims)?;
                proposals += 1;
                to_sites += municipality.lines.iter().map(|l| l.boxes.get()).sum::<u64>();
            }
        }
        Ok((proposals, to_sites))
    }
}

/// `allocation-propose`: see the module documentation.
#[derive(Default)]
pub struct Propose {
    claims: Option<Claims>,
}

impl Scenario for Propose {
    fn name(&self) -> &'static str {
        "allocation-propose"
    }

    fn describe(&self) -> &'static str {
        "pure proposal of one national round down to every site (target ≤ 50 ms), against sorting the same codes"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let reference = generate::Reference::load()?;
            let rows = generate::generate_sites(&reference, ctx.sites, ctx.seed)?;
            let claims = Claims::build(&country(&rows, ctx.seed));
            // One untimed pass: checks the arithmetic hands every box down and warms the caches.
            let (proposals, to_sites) = claims.propose_country()?;
            ensure!(
                to_sites == claims.total.get(),
                "the proposal handed {to_sites} of {} boxes to sites",
                claims.total.get()
            );
            println!(
                "   {proposals} proposals over {} claims, {} boxes",
                claims.count(),
                claims.total.get()
            );
            self.claims = Some(claims);
            Ok(())
        })
    }

    fn run<'a>(&'a mut self, _ctx: &'a Context, _run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(async move {
            let claims = self.claims.as_ref().context("setup did not run")?;
            let start = Instant::now();
            let mut codes = claims.codes();
            codes.sort_unstable();
            let sort_ms = start.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(&codes);

            let start = Instant::now();
            let out = claims.propose_country()?;
            let propose_ms = start.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(out);
            Ok(vec![
                Measurement::new("proposal, nation → 70,000 sites", propose_ms, "ms")
                    .against("sort of the same codes", sort_ms),
            ])
        })
    }
}

/// `allocation-confirm`: see the module documentation.
#[derive(Default)]
pub struct Confirm {
    admin: Option<String>,
    round: i32,
    sites: usize,
    municipalities: usize,
}

/// Ends every session on `db` so it can be used as a template or dropped.
async fn disconnect(admin: &str, db: &str) -> Result<()> {
    psql(
        admin,
        &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}'"),
    )
    .await?;
    Ok(())
}

async fn fresh_copy(admin: &str, name: &str) -> Result<String> {
    disconnect(admin, TEMPLATE).await?;
    psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    psql(admin, &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}")).await?;
    with_database(admin, name)
}

impl Confirm {
    async fn prepare(&mut self, ctx: &Context) -> Result<()> {
        let Storage::Postgres { admin_url } = &ctx.storage else {
            bail!("allocation-confirm runs on PostgreSQL only (the issue's figure is for PostgreSQL): pass --pg");
        };
        self.admin = Some(admin_url.clone());
        disconnect(admin_url, TEMPLATE).await?;
        // Every site an ultra-cold base site with a wholesaler and Comirnaty: every one gets a line.
        let reference = generate::Reference::load()?;
        let mut rows = generate::generate_sites(&reference, ctx.sites, ctx.seed)?;
        for r in &mut rows {
            r.freezer_class = Some("ULTRA_COLD");
            r.base_site = None;
            r.products = "comirnaty";
            if r.wholesaler_id.is_empty() {
                r.wholesaler_id = "suzuken";
            }
        }
        self.sites = rows.len();
        let url = super::database_with_sites(ctx, admin_url, TEMPLATE, &rows, "allocation").await?;

        let country = country(&rows, ctx.seed);
        self.municipalities = country.values().map(BTreeMap::len).sum();
        let db = api::db::connect(&url).await?;
        let store = domain::store::Store::new(db.clone());
        let mut population = String::from("municipality_code,population\n");
        for (m, sites) in country.values().flatten() {
            population.push_str(&format!("{m},{}\n", sites.len() as u64 * PEOPLE_PER_SITE));
        }
        allocations::import_target_population(&store, &Actor::National, &population).await?;
        let round = allocations::create_round(
            &store,
            &Actor::National,
            &NewRound {
                product: "comirnaty".parse()?,
                number: 1,
                starts_on: NaiveDate::from_ymd_opt(2021, 7, 5).context("date")?,
                supply: Some(Boxes::new(rows.len() as u64 * SUPPLY_PER_SITE)),
            },
        )
        .await?;
        self.round = round.id;
        let options = ProposeOptions::default();
        let national = domain::allocation::AllocationOwner::National;
        allocations::propose(&store, &Actor::National, round.id, &national, &options).await?;
        allocations::confirm(&store, &Actor::National, round.id, &national, None).await?;
        let start = Instant::now();
        for (p, munis) in &country {
            let code: domain::codes::PrefectureCode = p.parse()?;
            let (actor, owner) = (
                Actor::Prefecture(code),
                domain::allocation::AllocationOwner::Prefecture(code),
            );
            allocations::propose(&store, &actor, round.id, &owner, &options).await?;
            allocations::confirm(&store, &actor, round.id, &owner, None).await?;
            for m in munis.keys() {
                let code: domain::codes::MunicipalityCode = m.parse()?;
                let (actor, owner) = (
                    Actor::Municipality(code),
                    domain::allocation::AllocationOwner::Municipality(code),
                );
                allocations::propose(&store, &actor, round.id, &owner, &options).await?;
            }
        }
        println!(
            "   round {} proposed and confirmed down to {} municipalities in {:.1?}",
            round.id,
            self.municipalities,
            start.elapsed()
        );
        db.close().await?;
        psql(&url, "VACUUM ANALYZE").await?;
        Ok(())
    }

    /// `\copy` of the rows `run_db` holds in the written tables into a fresh copy of the
    /// template, in one transaction; returns the seconds the psql process took.
    async fn copy_baseline(&self, ctx: &Context, admin: &str, run_db: &str) -> Result<f64> {
        let mut script = String::from("BEGIN;\n");
        for t in WRITTEN {
            let file = ctx.work.join(format!("allocation-{t}.csv"));
            psql(run_db, &format!("\\copy {t} TO '{}' CSV", file.display())).await?;
            script.push_str(&format!("\\copy {t} FROM '{}' CSV\n", file.display()));
        }
        script.push_str("COMMIT;\n");
        let copy_db = fresh_copy(admin, COPY_DB).await?;
        // `psql -c` runs one backslash command per `-c`: the script goes in a file.
        let path = ctx.work.join("allocation-copy.sql");
        std::fs::write(&path, script)?;
        let mut cmd = Command::new("psql");
        cmd.args([copy_db.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&path);
        let timed = run_timed(cmd, "psql \\copy of the written rows").await?;
        let n = psql(&copy_db, "SELECT count(*) FROM orders").await?;
        ensure!(
            n.trim() == self.sites.to_string(),
            "the baseline loaded {n} orders, expected {}",
            self.sites
        );
        Ok(timed.elapsed.as_secs_f64())
    }
}

/// The seconds `confirm-all` reported for itself (`… in 1.234 s; …`), if it printed them.
fn reported_seconds(stdout: &str) -> Option<f64> {
    let at = stdout.find(" in ")? + 4;
    let rest = &stdout[at..];
    rest[..rest.find(" s")?].trim().parse().ok()
}

impl Scenario for Confirm {
    fn name(&self) -> &'static str {
        "allocation-confirm"
    }

    fn describe(&self) -> &'static str {
        "confirming every site allocation of the country (70,000 orders + outbox) on PostgreSQL (target ≤ 2 s), against \\copy of the same rows"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.prepare(ctx))
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, _run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(async move {
            let admin = self.admin.clone().context("setup did not run")?;
            let run_db = fresh_copy(&admin, RUN_DB).await?;
            let mut cmd = Command::new(&ctx.vsys);
            cmd.args(["allocations", "confirm-all", "--round", &self.round.to_string()])
                .env("DATABASE_URL", &run_db)
                .env("RUST_LOG", "warn");
            let out = run_timed(cmd, "vsys allocations confirm-all").await?;
            let expected = format!(
                "confirmed {} municipality allocations with {} orders",
                self.municipalities, self.sites
            );
            ensure!(
                out.stdout.contains(&expected) && out.stdout.contains("; 0 blocked"),
                "the deadline run did not confirm everything: {}",
                out.stdout
            );
            println!("   {}", out.stdout.lines().next().unwrap_or_default());
            let copy = self.copy_baseline(ctx, &admin, &run_db).await?;
            let total = out.elapsed.as_secs_f64();
            let mut ms =
                vec![Measurement::new("confirm-all, process", total, "s").against("\\copy of the same rows", copy)];
            if let Some(inside) = reported_seconds(&out.stdout) {
                ms.push(Measurement::new("confirm-all, in the transaction", inside, "s"));
            }
            Ok(ms)
        })
    }

    fn teardown<'a>(&'a mut self, _ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(admin) = &self.admin {
                for db in [RUN_DB, COPY_DB, TEMPLATE] {
                    psql(admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
                }
            }
            Ok(())
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        match ctx.storage {
            Storage::Postgres { .. } => Vec::new(),
            Storage::Sqlite => vec!["allocation-confirm needs PostgreSQL (--pg)".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reported_seconds() {
        let line = "confirmed 1741 municipality allocations with 70000 orders (and outbox entries) in 1.234 s; 0 blocked; loading 0.2 s";
        assert_eq!(reported_seconds(line), Some(1.234));
        assert_eq!(reported_seconds("nothing"), None);
    }

    #[test]
    fn the_country_proposal_hands_every_box_to_sites() {
        let reference = generate::Reference::load().expect("reference");
        let rows = generate::generate_sites(&reference, 6_000, 7).expect("sites");
        let claims = Claims::build(&country(&rows, 7));
        let (proposals, to_sites) = claims.propose_country().expect("proposal");
        assert_eq!(proposals, 1 + 47 + reference.municipalities.len());
        assert_eq!(to_sites, 6_000 * SUPPLY_PER_SITE);
        assert_eq!(claims.count(), 47 + reference.municipalities.len() + 6_000);
    }
}
