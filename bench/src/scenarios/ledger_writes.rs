//! `ledger-writes`: ADMINISTERED entries per second booked through the release `vsys serve` on
//! PostgreSQL by 8 concurrent clients (closed loop, each its own site), against `pgbench -n -c 8
//! -j 2 -T <duration>` inserting one row per transaction, measured in the same run.
//!
//! Each write is a whole GraphQL mutation: HTTP, JWT, parsing, the site lookup, and a
//! transaction with the conditional balance update and the entry insert (and its indexes). Two baselines: the same single-row insert into a table shaped like
//! `stock_entries` (`LIKE stock_entries INCLUDING ALL`: its columns, checks and indexes), and
//! into a 4-column table. Both sides alternate which goes first from run to run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};

use super::stock_common::{self, Server};
use crate::cpu;
use crate::load::body_is_success;
use crate::process::{psql, run_timed};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};

const CLIENTS: usize = 8;

/// CPU microseconds per successful write in the measured window: the `vsys serve` process,
/// this (load generator) process, and the PostgreSQL backends of the server's connections
/// (not PostgreSQL's shared background processes such as the WAL writer). `None` where
/// `/proc` is unreadable.
struct CpuPerWrite {
    server: Option<f64>,
    load: Option<f64>,
    database: Option<f64>,
}

/// The PostgreSQL backend processes of the server's connections (every other session of its
/// database; the bench's own `psql` has exited by the time they are read).
async fn server_backends(url: &str) -> Result<Vec<u32>> {
    let out = psql(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await?;
    Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

#[derive(Default)]
pub struct LedgerWrites {
    server: Option<Server>,
    sites: Vec<String>,
    failures: Vec<String>,
}

/// `tps = 2803.042318 (without initial connection time)` → 2803.04
pub(crate) fn pgbench_tps(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without initial connection time"))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub(crate) async fn pgbench(ctx: &Context, url: &str, script: &str) -> Result<f64> {
    let path = ctx.work.join("ledger-insert.sql");
    std::fs::write(&path, script)?;
    let mut cmd = std::process::Command::new("pgbench");
    cmd.args(["-n", "-c", &CLIENTS.to_string(), "-j", "2", "-T"])
        .arg(ctx.load.duration.as_secs().max(1).to_string())
        .arg("-f")
        .arg(&path)
        .arg(url);
    let out = run_timed(cmd, "pgbench").await?;
    pgbench_tps(&out.stdout).with_context(|| format!("no tps line in pgbench output:\n{}", out.stdout))
}

impl LedgerWrites {
    async fn start(&mut self, ctx: &Context) -> Result<()> {
        if !matches!(ctx.storage, Storage::Postgres { .. }) {
            bail!("ledger-writes compares against pgbench: run it with --storage postgres");
        }
        let server = Server::start(ctx, "ledger-writes", &ctx.storage).await?;
        self.sites = server.seed_sites(CLIENTS, 1_000_000, CLIENTS).await?;
        psql(
            &server.database_url,
            "CREATE TABLE bench_entries (LIKE stock_entries INCLUDING ALL); \
             CREATE TABLE bench_narrow (id bigserial PRIMARY KEY, site_code char(10), quantity bigint, recorded_at timestamptz)",
        )
        .await?;
        self.server = Some(server);
        Ok(())
    }

    /// Closed loop: each client books 1 vial at its own site as soon as the last one answered.
    /// Also returns the CPU each side spent per successful write in the measured window.
    async fn ours(&self, ctx: &Context) -> Result<(f64, u64, CpuPerWrite)> {
        let server = self.server.as_ref().context("setup did not run")?;
        let phase = Arc::new(AtomicU8::new(0));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut workers = Vec::new();
        for site in &self.sites {
            let (client, url) = (server.http.clone(), server.graphql_url());
            let token = stock_common::token("SITE", Some(site))?;
            let body = stock_common::administer_body(site);
            let (phase, ok, failed) = (phase.clone(), ok.clone(), failed.clone());
            workers.push(tokio::spawn(async move {
                while phase.load(Ordering::Relaxed) != 2 {
                    let good = match client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let status = r.status();
                            r.bytes()
                                .await
                                .is_ok_and(|b| status.is_success() && body_is_success(&b))
                        }
                        Err(_) => false,
                    };
                    if phase.load(Ordering::Relaxed) == 1 {
                        if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(ctx.load.warmup).await;
        // The server's database sessions as they are after the warm-up (the pool has grown).
        let backends = server_backends(&server.database_url).await.unwrap_or_default();
        let (server_pid, backend_cpu) = (server.pid(), || {
            backends.iter().map(|p| cpu::process(*p)).sum::<Option<f64>>()
        });
        let before = [cpu::process(server_pid), cpu::this_process(), backend_cpu()];
        phase.store(1, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(ctx.load.duration).await;
        phase.store(2, Ordering::Relaxed);
        let window = start.elapsed();
        let after = [cpu::process(server_pid), cpu::this_process(), backend_cpu()];
        for w in workers {
            w.await?;
        }
        let ok = ok.load(Ordering::Relaxed);
        let per_write = |i: usize| -> Option<f64> {
            let secs = after[i]? - before[i]?;
            (ok > 0 && !(i == 2 && backends.is_empty())).then(|| secs * 1e6 / ok as f64)
        };
        Ok((
            ok as f64 / window.as_secs_f64(),
            failed.load(Ordering::Relaxed),
            CpuPerWrite {
                server: per_write(0),
                load: per_write(1),
                database: per_write(2),
            },
        ))
    }

    async fn baselines(&self, ctx: &Context) -> Result<(f64, f64, f64)> {
        let server = self.server.as_ref().context("setup did not run")?;
        let site = &self.sites[0];
        let shaped = format!(
            "INSERT INTO bench_entries (site_code, product_code, lot_number, kind, quantity, balance_after, note, occurred_on, recorded_at, actor) \
             VALUES ('{site}', 'comirnaty', '{}', 'ADMINISTERED', -1, 0, '', CURRENT_DATE, now(), 'SITE:{site}');\n",
            stock_common::LOT
        );
        let narrow =
            format!("INSERT INTO bench_narrow (site_code, quantity, recorded_at) VALUES ('{site}', -1, now());\n");
        // The server's own write (domain::ledger's one-statement withdrawal on PostgreSQL), each
        // pgbench client on its own site as the API clients are: what the database alone does.
        let codes = self
            .sites
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(",");
        let me = format!("(ARRAY[{codes}])[:client_id + 1]");
        let statement = format!(
            "WITH moved AS (UPDATE stock_balances SET on_hand = on_hand + -1, administered = administered + 1, updated_at = now() \
             WHERE site_code = {me} AND product_code = 'comirnaty' AND lot_number = '{lot}' AND on_hand + -1 >= 0 \
             AND expiry_date >= CURRENT_DATE RETURNING on_hand, expiry_date), \
             entry AS (INSERT INTO stock_entries (site_code, product_code, lot_number, kind, quantity, balance_after, waste_reason, \
             note, occurred_on, recorded_at, actor) SELECT {me}, 'comirnaty', '{lot}', 'ADMINISTERED', -1, moved.on_hand, NULL, '', \
             CURRENT_DATE, now(), 'SITE:pgbench' FROM moved RETURNING id) \
             SELECT entry.id, moved.on_hand, moved.expiry_date, s.municipality_code FROM entry, moved, sites s WHERE s.code = {me};\n",
            lot = stock_common::LOT
        );
        Ok((
            pgbench(ctx, &server.database_url, &shaped).await?,
            pgbench(ctx, &server.database_url, &narrow).await?,
            pgbench(ctx, &server.database_url, &statement).await?,
        ))
    }

    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let ((ours, failed, cpu), (shaped, narrow, statement)) = if run % 2 == 1 {
            let o = self.ours(ctx).await?;
            (o, self.baselines(ctx).await?)
        } else {
            let b = self.baselines(ctx).await?;
            (self.ours(ctx).await?, b)
        };
        if let Some(s) = self.server.as_mut() {
            s.check_alive()?;
        }
        if failed > 0 {
            self.failures.push(format!("run {run}: {failed} writes failed"));
        }
        ensure!(ours > 0.0, "no successful writes in run {run}");
        let mut lines = vec![
            Measurement::new(self.name(), ours, "writes/s")
                .against("pgbench insert, stock_entries-shaped table", shaped),
            Measurement::new(format!("{} (vs narrow insert)", self.name()), ours, "writes/s")
                .against("pgbench insert, 4-column table", narrow),
            Measurement::new(format!("{} (vs its own SQL)", self.name()), ours, "writes/s")
                .against("pgbench running the ledger's write statement", statement),
        ];
        for (what, us) in [
            ("server CPU", cpu.server),
            ("load generator CPU", cpu.load),
            ("PostgreSQL sessions CPU", cpu.database),
        ] {
            if let Some(us) = us {
                lines.push(Measurement::new(format!("{} {what}", self.name()), us, "µs/write"));
            }
        }
        Ok(lines)
    }
}

impl Scenario for LedgerWrites {
    fn name(&self) -> &'static str {
        "ledger-writes"
    }

    fn describe(&self) -> &'static str {
        "ADMINISTERED entries/s through vsys serve on PostgreSQL, 8 clients; baseline: pgbench single-row insert, 8 clients, same run"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start(ctx))
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(server) = self.server.take() {
                // The ledger must still equal its balances after all those concurrent writes.
                let mut check = std::process::Command::new(&ctx.vsys);
                check
                    .args(["stock", "reconcile"])
                    .env("DATABASE_URL", &server.database_url);
                let verdict = run_timed(check, "vsys stock reconcile").await;
                server.stop().await?;
                verdict?;
            }
            Ok(())
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        let mut notes = vec![format!(
            "ledger-writes: {CLIENTS} closed-loop clients, one site each (no row contention), {:?} warm-up + {:?} measured; \
             each write = POST recordAdministered (1 vial) with a SITE token; pgbench -n -c {CLIENTS} -j 2 -T {} on the same \
             database right before or after, inserting one row per transaction into (a) a table created LIKE stock_entries \
             INCLUDING ALL and (b) a 4-column table, and (c) running the server's own one-statement withdrawal (update the \
             balance row, insert the entry) to separate the database's share from the API's; server, PostgreSQL, pgbench \
             and the load generator share the machine. \
             `vsys stock reconcile` passes after the runs.",
            ctx.load.warmup,
            ctx.load.duration,
            ctx.load.duration.as_secs()
        )];
        notes.extend(self.failures.iter().cloned());
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_tps() {
        let out = "number of failed transactions: 0 (0.000%)\nlatency average = 2.854 ms\ninitial connection time = 32.929 ms\ntps = 2803.042318 (without initial connection time)\n";
        assert_eq!(pgbench_tps(out), Some(2803.042318));
        assert_eq!(pgbench_tps("nothing"), None);
    }
}
