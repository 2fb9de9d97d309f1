//! `bench`: the benchmark harness (DESIGN.md, "Performance is measured, not asserted").
//!
//! * `bench generate --out DIR` writes a realistic national data set (`sites.csv` in the
//!   import layout, optionally `persons.csv`), deterministic for a seed.
//! * `bench run --scenario NAME|all` runs scenarios against the release `vsys` binary and
//!   prints, per line, the median over runs, the min–max spread and the ratio to a baseline
//!   measured in the same run; `--record` appends the table to `BENCHMARKS.md`.
//!
//! Must not: assert timings (a slow figure is reported, never a test failure), or touch the
//! system under test except through its binary and its HTTP interface.

mod cpu;
mod generate;
mod load;
mod process;
mod report;
mod scenario;
mod scenarios;
mod words;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use scenario::{Context, LoadSettings, Storage};

/// The admin URL used by `--pg` when `--database-url` is not given.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "V-SYS benchmark harness: data generator and scenario runner"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a realistic national data set (sites.csv, optionally persons.csv).
    Generate {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of sites (at least 3 per municipality, i.e. 5,223).
        #[arg(long, default_value_t = 70_000)]
        sites: usize,
        /// Number of persons for persons.csv (0: no file).
        #[arg(long, default_value_t = 0)]
        persons: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Run scenarios and print medians, spreads and ratios to their baselines.
    Run {
        /// A scenario name, a comma-separated list, or `all`.
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Timed runs per scenario.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// PostgreSQL admin URL (may CREATE/DROP DATABASE); implies PostgreSQL storage.
        #[arg(long)]
        database_url: Option<String>,
        /// Use PostgreSQL at the default admin URL (postgres://postgres@127.0.0.1:5432/postgres).
        #[arg(long)]
        pg: bool,
        /// The release vsys binary [default: release/vsys in this binary's target dir, $CARGO_TARGET_DIR or target/].
        #[arg(long)]
        vsys: Option<PathBuf>,
        /// Append the results to BENCHMARKS.md (machine, date, table).
        #[arg(long)]
        record: bool,
        /// Where --record writes [default: BENCHMARKS.md at the workspace root].
        #[arg(long)]
        record_to: Option<PathBuf>,
        /// Sites generated for import scenarios.
        #[arg(long, default_value_t = 70_000)]
        sites: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Concurrent connections of the HTTP load generator.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Warm-up seconds before each measured load phase.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Measured seconds per load phase.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// List the scenarios and exit.
        #[arg(long)]
        list: bool,
    },
}

fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The release `vsys`: next to this binary's own target directory, else under
/// `$CARGO_TARGET_DIR`, else the workspace's `target/`.
fn default_vsys() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|target| target.join("release").join("vsys")));
    let from_env = std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("release").join("vsys"));
    let workspace = workspace_root().join("target").join("release").join("vsys");
    [beside, from_env]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or(workspace)
}

fn generate(out: PathBuf, sites: usize, persons: u64, seed: u64) -> Result<()> {
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let start = Instant::now();
    let reference = generate::Reference::load()?;
    let rows = generate::generate_sites(&reference, sites, seed)?;
    let path = out.join("sites.csv");
    generate::write_sites_csv(&path, &rows)?;
    let bases = rows.iter().filter(|r| r.is_base()).count();
    println!(
        "wrote {} sites ({} base sites) over {} municipalities in {} prefectures to {} in {:.1?}",
        rows.len(),
        bases,
        reference.municipalities.len(),
        reference.prefectures.len(),
        path.display(),
        start.elapsed()
    );
    if persons > 0 {
        let start = Instant::now();
        let path = out.join("persons.csv");
        generate::write_persons_csv(&path, &reference, persons, seed)?;
        println!(
            "wrote {persons} persons to {} in {:.1?}",
            path.display(),
            start.elapsed()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run(
    selection: String,
    runs: usize,
    database_url: Option<String>,
    pg: bool,
    vsys: Option<PathBuf>,
    record: Option<PathBuf>,
    sites: usize,
    seed: u64,
    load: LoadSettings,
) -> Result<()> {
    let mut all = scenario::registry();
    let wanted: Vec<String> = selection
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if !wanted.iter().any(|w| w == "all") {
        for w in &wanted {
            if !all.iter().any(|s| s.name() == w) {
                let names: Vec<_> = all.iter().map(|s| s.name()).collect();
                bail!("unknown scenario {w}; known: {}", names.join(", "));
            }
        }
        all.retain(|s| wanted.iter().any(|w| w == s.name()));
    }
    let storage = match (database_url, pg) {
        (Some(url), _) if url.starts_with("postgres") => Storage::Postgres { admin_url: url },
        (Some(url), _) => {
            bail!("--database-url must be a postgres:// admin URL (SQLite runs use a fresh temp file); got {url}")
        }
        (None, true) => Storage::Postgres {
            admin_url: DEFAULT_PG_URL.to_owned(),
        },
        (None, false) => Storage::Sqlite,
    };
    let vsys = vsys.unwrap_or_else(default_vsys);
    if !vsys.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p api` or pass --vsys PATH",
            vsys.display()
        );
    }
    let work = tempfile::Builder::new().prefix("vsys-bench-").tempdir()?;
    let ctx = Context {
        vsys: vsys.canonicalize()?,
        storage,
        runs: runs.max(1),
        seed,
        sites,
        load,
        work: work.path().to_owned(),
    };
    let machine = report::Machine::detect();
    let load_at_start = report::load_average();
    println!("machine: {}   load average: {load_at_start}", machine.describe());
    if load_at_start
        .split(' ')
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l > 0.5)
    {
        println!("warning: the machine is busy (load {load_at_start}); figures will be noisy");
    }
    println!(
        "vsys: {}   storage: {}   runs: {}",
        ctx.vsys.display(),
        ctx.storage.label(),
        ctx.runs
    );

    let mut summaries = Vec::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for s in all.iter_mut() {
        println!("\n== {} — {}", s.name(), s.describe());
        let outcome: Result<Vec<Vec<scenario::Measurement>>> = async {
            let t = Instant::now();
            s.setup(&ctx).await.with_context(|| format!("{}: setup", s.name()))?;
            println!("   setup {:.1?}", t.elapsed());
            let mut results = Vec::new();
            for r in 1..=ctx.runs {
                let ms = s.run(&ctx, r).await.with_context(|| format!("{}: run {r}", s.name()))?;
                for m in &ms {
                    let base = m
                        .baseline
                        .as_ref()
                        .map(|(n, b)| {
                            format!(
                                "   [{n} {} {}, ratio {:.2}]",
                                report::format_value(*b, m.unit),
                                m.unit,
                                m.value / b
                            )
                        })
                        .unwrap_or_default();
                    println!(
                        "   run {r}: {:<40} {} {}{base}",
                        m.metric,
                        report::format_value(m.value, m.unit),
                        m.unit
                    );
                }
                results.push(ms);
            }
            Ok(results)
        }
        .await;
        if let Err(e) = s.teardown(&ctx).await {
            eprintln!("   teardown of {} failed: {e:#}", s.name());
        }
        match outcome {
            Ok(results) => summaries.extend(scenario::summarise(s.name(), &results)),
            Err(e) => {
                eprintln!("   FAILED: {e:#}");
                failures.push(format!("{e:#}"));
            }
        }
        notes.extend(s.notes(&ctx));
    }
    report::print_table(&summaries);
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(path) = record {
        let mut extra = vec![
            format!("Storage: {}", ctx.storage.label()),
            format!("vsys: `{}`", ctx.vsys.display()),
            format!(
                "Load average (1/5/15 min) at start: {load_at_start}; at end: {}",
                report::load_average()
            ),
        ];
        if let Storage::Postgres { admin_url } = &ctx.storage
            && let Some(v) = report::command_line("psql", &[admin_url, "-XAtc", "SHOW server_version"])
        {
            extra.push(format!("PostgreSQL server {v}"));
        }
        if let Some(rev) = report::command_line(
            "git",
            &[
                "-C",
                &workspace_root().to_string_lossy(),
                "rev-parse",
                "--short",
                "HEAD",
            ],
        ) {
            let root = workspace_root().to_string_lossy().into_owned();
            let dirty = std::process::Command::new("git")
                .args(["-C", &root, "status", "--porcelain", "--untracked-files=no"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            extra.push(format!(
                "git {rev}{}",
                if dirty { " + uncommitted changes" } else { "" }
            ));
        }
        let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        let section = report::markdown(
            &format!("bench {command}"),
            &machine,
            &extra,
            &summaries,
            &failures,
            &notes,
        );
        report::append(&path, &section)?;
        println!("recorded in {}", path.display());
    }
    if !failures.is_empty() {
        bail!("{} scenario(s) failed", failures.len());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Generate {
            out,
            sites,
            persons,
            seed,
        } => generate(out, sites, persons, seed),
        Cmd::Run {
            scenario,
            runs,
            database_url,
            pg,
            vsys,
            record,
            record_to,
            sites,
            seed,
            concurrency,
            warmup,
            duration,
            list,
        } => {
            if list {
                for s in scenario::registry() {
                    println!("{:<20} {}", s.name(), s.describe());
                }
                return Ok(());
            }
            let load = LoadSettings {
                concurrency: concurrency.max(1),
                warmup: Duration::from_secs_f64(warmup),
                duration: Duration::from_secs_f64(duration),
            };
            let record = record.then(|| record_to.unwrap_or_else(|| workspace_root().join("BENCHMARKS.md")));
            run(scenario, runs, database_url, pg, vsys, record, sites, seed, load).await
        }
    }
}
