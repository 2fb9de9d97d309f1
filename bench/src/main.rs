//! `bench`: the benchmark runner. Builds nothing itself: point it at a release `vsys`
//! (`cargo build --release -p api`), pick scenarios, and it prints each metric's median over
//! the runs with its baseline and ratio, optionally appending them to `BENCHMARKS.md` with the
//! machine and date.
//!
//! ```text
//! cargo build --release -p api -p bench
//! target/release/bench run --scenario ledger-writes --storage postgres --runs 3 --record BENCHMARKS.md
//! target/release/bench list
//! ```

// Parts of the generator (persons, reference fields) serve the VRS scenarios still to come.
#[allow(dead_code)]
mod generate;
mod load;
mod process;
mod scenario;
mod scenarios;
mod words;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use scenario::{Context, LoadSettings, Storage, Summary, higher_is_better, registry, summarise};

#[derive(Parser)]
#[command(name = "bench", about = "V-SYS/VRS benchmarks (release build)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum StorageArg {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the scenarios.
    List,
    /// Run scenarios and print medians, baselines and ratios.
    Run {
        /// Scenario names (repeat), or `all`.
        #[arg(long = "scenario", default_value = "all")]
        scenarios: Vec<String>,
        #[arg(long, value_enum, default_value = "sqlite")]
        storage: StorageArg,
        /// PostgreSQL account that may CREATE/DROP DATABASE.
        #[arg(
            long,
            env = "PG_ADMIN_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        pg_admin_url: String,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sites generated for the import scenario.
        #[arg(long, default_value_t = 70_000)]
        sites: usize,
        /// Closed-loop HTTP connections.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// The release `vsys` binary; default: next to this one.
        #[arg(long)]
        vsys: Option<PathBuf>,
        /// Append the results to this file (e.g. BENCHMARKS.md).
        #[arg(long)]
        record: Option<PathBuf>,
    },
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB RAM")
}

fn format_value(v: f64, unit: &str) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

fn line(s: &Summary) -> String {
    let mut out = format!(
        "{} | {}: median {} (min {}, max {}, {} runs)",
        s.scenario,
        s.metric,
        format_value(s.median, s.unit),
        format_value(s.min, s.unit),
        format_value(s.max, s.unit),
        s.runs
    );
    if let Some((name, base, ratio)) = &s.baseline {
        let better = if higher_is_better(s.unit) { "higher" } else { "lower" };
        out.push_str(&format!(
            "; baseline {name}: {}; ratio {ratio:.2}x ({better} is better)",
            format_value(*base, s.unit)
        ));
    }
    out
}

async fn run(cli: Cmd) -> Result<()> {
    let Cmd::Run {
        scenarios,
        storage,
        pg_admin_url,
        runs,
        seed,
        sites,
        concurrency,
        warmup_secs,
        duration_secs,
        vsys,
        record,
    } = cli
    else {
        for s in registry() {
            println!("{:<22} {}", s.name(), s.describe());
        }
        return Ok(());
    };
    let vsys = match vsys {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("vsys"),
    };
    if !vsys.exists() {
        bail!("{} not found: cargo build --release -p api", vsys.display());
    }
    let work = tempfile::tempdir().context("scratch directory")?;
    let ctx = Context {
        vsys,
        storage: match storage {
            StorageArg::Sqlite => Storage::Sqlite,
            StorageArg::Postgres => Storage::Postgres {
                admin_url: pg_admin_url,
            },
        },
        runs,
        seed,
        sites,
        load: LoadSettings {
            concurrency,
            warmup: Duration::from_secs(warmup_secs),
            duration: Duration::from_secs(duration_secs),
        },
        work: work.path().to_owned(),
    };
    let all = scenarios.iter().any(|s| s == "all");
    let mut chosen: Vec<_> = registry()
        .into_iter()
        .filter(|s| all || scenarios.iter().any(|n| n == s.name()))
        .collect();
    if chosen.is_empty() {
        bail!("no scenario named {scenarios:?}; see `bench list`");
    }
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    for sc in &mut chosen {
        println!("== {} ({}): {}", sc.name(), ctx.storage.label(), sc.describe());
        if let Err(e) = sc.setup(&ctx).await {
            let _ = sc.teardown(&ctx).await;
            return Err(e.context(format!("{} setup", sc.name())));
        }
        let mut results = Vec::new();
        for r in 1..=ctx.runs {
            match sc.run(&ctx, r).await {
                Ok(m) => {
                    for x in &m {
                        println!("   run {r}: {} = {}", x.metric, format_value(x.value, x.unit));
                    }
                    results.push(m);
                }
                Err(e) => {
                    let _ = sc.teardown(&ctx).await;
                    return Err(e.context(format!("{} run {r}", sc.name())));
                }
            }
        }
        sc.teardown(&ctx).await?;
        for s in summarise(sc.name(), &results) {
            let l = line(&s);
            println!("{l}");
            lines.push(l);
        }
        notes.extend(sc.notes(&ctx));
    }
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(path) = record {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(
            f,
            "\n## {} — {} ({})\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M"),
            chosen.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
            ctx.storage.label()
        )?;
        writeln!(f, "Machine: {}.\n", machine())?;
        for l in &lines {
            writeln!(f, "- {l}")?;
        }
        for n in &notes {
            writeln!(f, "- note: {n}")?;
        }
        println!("recorded in {}", path.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli.command))
}
