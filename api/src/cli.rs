//! The `vsys` commands. Each returns `anyhow::Result`: this is the binary's edge.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use domain::authz::Actor;
use domain::store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use crate::auth::{DEV_JWT_SECRET, issue_hs256};
use crate::config::{
    AllocationsCommand, Cli, Command, OutboxCommand, PersonsCommand, ServeArgs, SitesCommand, StockCommand,
    TokenCommand,
};
use crate::server::{self, ServerConfig};

/// Largest site-master file `vsys sites import` reads (Japan's ~70,000 sites are ~15 MB).
pub const MAX_IMPORT_FILE_BYTES: u64 = 128 * 1024 * 1024;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(db) => {
            crate::db::connect(&db.database_url).await?;
            println!("migrated");
            Ok(())
        }
        Command::Schema { public } => {
            if public {
                print!("{}", crate::public::schema::sdl());
            } else {
                print!("{}", crate::graphql::sdl());
            }
            Ok(())
        }
        Command::Token(TokenCommand::Issue {
            role,
            scope,
            sub,
            hours,
            jwt,
        }) => {
            // Refuse what the server would refuse, so a typo shows here and not as a 401 later.
            Actor::from_claims(&role, scope.as_deref()).context("role/scope")?;
            let secret = jwt.jwt_secret.as_deref().unwrap_or(DEV_JWT_SECRET);
            let token = issue_hs256(
                secret,
                &jwt.jwt_issuer,
                &jwt.jwt_audience,
                &sub,
                &role,
                scope.as_deref(),
                chrono::Duration::hours(hours),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Sites(SitesCommand::Import { file, report, db }) => import(&file, &report, &db.database_url).await,
        Command::Allocations(AllocationsCommand::ConfirmAll { round, db }) => {
            confirm_all(round, &db.database_url).await
        }
        Command::Outbox(OutboxCommand::Drain { db, outbox }) => {
            let store = Store::new(crate::db::connect(&db.database_url).await?);
            let start = std::time::Instant::now();
            let r = integrations::Worker::new(store, outbox.worker_config()).drain().await?;
            println!(
                "outbox: {} claimed, {} delivered, {} retried later, {} parked, {} held, in {:.3} s",
                r.claimed,
                r.delivered,
                r.retried,
                r.parked,
                r.held,
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Persons(PersonsCommand::Import {
            municipality,
            file,
            report,
            db,
            keys,
        }) => import_persons(&municipality, &file, &report, &db.database_url, &keys).await,
        Command::Persons(PersonsCommand::Rekey { db, keys }) => {
            let keys = load_keys(&keys, &db.database_url)?;
            let store = Store::new(crate::db::connect(&db.database_url).await?);
            let n = domain::persons::rekey(&store, &keys, &Actor::System).await?;
            println!("re-sealed {n} My Numbers under key {}", keys.current_key_id());
            Ok(())
        }
        Command::Stock(StockCommand::Reconcile { db }) => {
            let store = Store::new(crate::db::connect(&db.database_url).await?);
            let mismatches = domain::ledger::reconcile(&store).await?;
            for m in &mismatches {
                println!(
                    "site {} {} lot {}: {} is {}, the entries say {}",
                    m.site, m.product, m.lot, m.column, m.stored, m.from_entries
                );
            }
            if mismatches.is_empty() {
                println!("stock balances equal the ledger");
                Ok(())
            } else {
                anyhow::bail!("{} balance figures differ from the ledger", mismatches.len())
            }
        }
    }
}

async fn confirm_all(round: i32, database_url: &str) -> anyhow::Result<()> {
    let store = Store::new(crate::db::connect(database_url).await?);
    let start = std::time::Instant::now();
    let report = domain::allocations::confirm_all_municipalities(&store, &Actor::System, round).await?;
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|(what, d)| format!("{what} {:.3} s", d.as_secs_f64()))
        .collect();
    println!(
        "confirmed {} municipality allocations with {} orders (and outbox entries) in {:.3} s; {} blocked; {}",
        report.confirmed,
        report.orders,
        start.elapsed().as_secs_f64(),
        report.blocked.len(),
        phases.join(", ")
    );
    for (m, items) in &report.blocked {
        for i in items {
            println!("  blocked {m}: {} {}", i.reason, i.message);
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    crate::telemetry::init(args.log_format);
    let cfg = ServerConfig {
        listen: args.listen,
        database_url: args.db.database_url.clone(),
        redis_url: args.redis_url.clone(),
        redis_prefix: args.redis_prefix.clone(),
        auth: args.jwt.settings(),
        max_body_bytes: args.max_body_bytes,
        public: args.public.settings(),
        outbox_worker: args.outbox.outbox_worker.then(|| args.outbox.worker_config()),
        websocket_ping: std::time::Duration::from_secs(args.ws_ping_secs),
        personal_keys: args.personal.settings(),
    };
    // Keys first: a keyless PostgreSQL start is refused before connecting (or the demo writes).
    let keys = std::sync::Arc::new(crate::personal_keys::load_and_announce(
        &cfg.personal_keys,
        &cfg.database_url,
    )?);
    let store = Store::new(crate::db::connect(&cfg.database_url).await?);
    if args.demo {
        let n = crate::demo::seed(&store).await?;
        if n > 0 {
            println!(
                "demo: registered {n} sites in 5 municipalities; round 9 of comirnaty is confirmed down to \
                 Tokyo, and Chiyoda (MUNICIPALITY 131016) has a proposal to confirm; its orders go to the \
                 pulling wholesalers suzuken, medipal and alfresa (Chiyoda's venue has no customer code yet: held)"
            );
        } else {
            println!("demo: the site master is not empty; left as it is");
        }
    }
    let running = server::start_with_keys(cfg.clone(), store, keys).await?;
    println!(
        "vsys listening on http://{0}  (public site: http://{0}/ , GraphiQL: http://{0}/graphql)",
        running.addr
    );
    if args.demo {
        println!("development tokens (paste into GraphiQL's headers as {{\"Authorization\": \"Bearer …\"}}):");
        for (label, token) in crate::demo::tokens(&cfg.auth)? {
            println!("  {label:<34} {token}");
        }
    }
    running.run_until(server::shutdown_signal()).await
}

async fn import(file: &Path, report_path: &Path, database_url: &str) -> anyhow::Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size > MAX_IMPORT_FILE_BYTES {
        anyhow::bail!(
            "{} is {size} bytes; the limit is {MAX_IMPORT_FILE_BYTES}",
            file.display()
        );
    }
    let store = Store::new(crate::db::connect(database_url).await?);
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("importing sites");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = domain::sites::import_csv(&store, &Actor::System, reader, &progress).await?;
    bar.finish_and_clear();
    let mut w = csv::Writer::from_path(report_path)
        .with_context(|| format!("cannot write the report to {}", report_path.display()))?;
    w.write_record(["line", "column", "reason"])?;
    for r in &report.rejected {
        w.write_record([r.line.to_string(), r.column.clone(), r.reason.clone()])?;
    }
    w.flush()?;
    println!(
        "inserted {}, updated {}, unchanged {}, rejected {}{}",
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        if report.rejected.is_empty() {
            String::new()
        } else {
            format!(" (see {})", report_path.display())
        }
    );
    Ok(())
}

/// The personal-data keys for a command, with where they came from on stderr (never what they are).
fn load_keys(
    args: &crate::config::PersonalKeyArgs,
    database_url: &str,
) -> anyhow::Result<domain::personal::crypto::PersonalKeys> {
    use crate::personal_keys::KeySource;
    let (keys, source) = args.settings().load(database_url)?;
    match source {
        KeySource::Generated(p) => eprintln!(
            "personal-data keys: generated {} (mode 0600) beside the SQLite database; keep it with the database",
            p.display()
        ),
        KeySource::Ephemeral => eprintln!("personal-data keys: in-memory database, keys for this process only"),
        KeySource::Configured | KeySource::File(_) => {}
    }
    Ok(keys)
}

async fn import_persons(
    municipality: &str,
    file: &Path,
    report_path: &Path,
    database_url: &str,
    key_args: &crate::config::PersonalKeyArgs,
) -> anyhow::Result<()> {
    let municipality: domain::codes::MunicipalityCode = municipality
        .parse()
        .map_err(|e| anyhow::anyhow!("--municipality: {e}"))?;
    let keys = load_keys(key_args, database_url)?;
    let reader =
        std::io::BufReader::new(std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?);
    let store = Store::new(crate::db::connect(database_url).await?);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("importing persons of {municipality}"));
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report =
        domain::persons::import::import_csv(&store, &keys, &Actor::System, &municipality, reader, &progress).await?;
    bar.finish_and_clear();
    let mut w = csv::Writer::from_path(report_path)
        .with_context(|| format!("cannot write the report to {}", report_path.display()))?;
    w.write_record(["row", "field", "code", "reason"])?;
    for r in &report.rejected {
        w.write_record([r.row.to_string(), r.field.clone(), r.code.to_string(), r.reason.clone()])?;
    }
    w.flush()?;
    println!(
        "inserted {}, updated {}, unchanged {}, rejected {} rows{}",
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected_rows(),
        if report.rejected.is_empty() {
            String::new()
        } else {
            format!(" (see {})", report_path.display())
        }
    );
    Ok(())
}
