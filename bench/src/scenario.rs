//! The scenario framework: what a scenario is, what it returns, and how runs are summarised.
//!
//! Owns: the [`Scenario`] trait, [`Measurement`], the registry of scenarios, and the
//! statistics (median, spread, ratio to a baseline measured in the same run). Must not: time
//! anything itself or know any scenario's details; printing and recording live in `report`.
//!
//! To add a scenario: implement [`Scenario`] in a module under `scenarios/` and add it to
//! [`registry`]. `setup` does the untimed preparation once (generate data, start servers),
//! `run` performs one timed run and returns one [`Measurement`] per line it wants printed,
//! each with its baseline measured in that same run when there is one.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;

use crate::scenarios;

/// A boxed future borrowing the scenario and the context (async fns in a `dyn` trait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One measured quantity of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The printed line's label, e.g. `import-70k` or `import-70k re-import`.
    pub metric: String,
    pub value: f64,
    /// `s`, `rows/s`, `req/s` … ; see [`higher_is_better`].
    pub unit: &'static str,
    /// The baseline's name and its value in the same unit, measured in the same run.
    pub baseline: Option<(String, f64)>,
}

impl Measurement {
    pub fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Measurement {
            metric: metric.into(),
            value,
            unit,
            baseline: None,
        }
    }

    pub fn against(mut self, baseline: impl Into<String>, value: f64) -> Self {
        self.baseline = Some((baseline.into(), value));
        self
    }
}

/// Rates are better high, durations low.
pub fn higher_is_better(unit: &str) -> bool {
    unit.ends_with("/s")
}

/// Where the database under test lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A fresh SQLite file per run, in the work directory.
    Sqlite,
    /// PostgreSQL; `admin_url` may `CREATE DATABASE` / `DROP DATABASE`.
    Postgres { admin_url: String },
}

impl Storage {
    pub fn label(&self) -> &'static str {
        match self {
            Storage::Sqlite => "SQLite",
            Storage::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// Settings of the closed-loop HTTP load generator.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Everything a scenario may use; built once per `bench run`.
#[derive(Debug)]
pub struct Context {
    /// The release `vsys` binary under test.
    pub vsys: PathBuf,
    pub storage: Storage,
    pub runs: usize,
    pub seed: u64,
    /// Sites to generate for import scenarios.
    pub sites: usize,
    pub load: LoadSettings,
    /// A scratch directory, removed at exit.
    pub work: PathBuf,
}

/// A benchmark scenario. Object-safe so the registry can hold them all.
pub trait Scenario {
    /// The name used on the command line (`--scenario NAME`).
    fn name(&self) -> &'static str;
    /// One sentence: what is measured and against what.
    fn describe(&self) -> &'static str;
    /// Untimed preparation, once before the runs.
    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>>;
    /// One run (`run` counts from 1).
    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>>;
    /// Untimed cleanup after the runs (also called after a failed run).
    fn teardown<'a>(&'a mut self, _ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Caveats to print and record with the results (e.g. "no baseline on SQLite").
    fn notes(&self, _ctx: &Context) -> Vec<String> {
        Vec::new()
    }
}

/// Every scenario, in the order `--scenario all` runs them.
pub fn registry() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(scenarios::import::Import::default()),
        Box::new(scenarios::graphql_overhead::GraphqlOverhead::default()),
        Box::new(scenarios::public_search::PublicSearch::default()),
        Box::new(scenarios::allocation::Propose::default()),
        Box::new(scenarios::allocation::Confirm::default()),
        Box::new(scenarios::outbox_drain::OutboxDrain::default()),
        Box::new(scenarios::ledger_writes::LedgerWrites::default()),
        Box::new(scenarios::stock_subscribers::StockSubscribers::new(
            "stock-subscribers",
            1_000,
        )),
        Box::new(scenarios::stock_subscribers::StockSubscribers::new(
            "stock-subscribers-100",
            100,
        )),
        Box::new(scenarios::subscriber_churn::SubscriberChurn::default()),
        Box::new(scenarios::person_lookup::PersonLookup::default()),
        Box::new(scenarios::doses::DoseBatch::default()),
        Box::new(scenarios::doses::DoseSingle::default()),
    ]
}

/// Median of a non-empty sample (mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One printed line: a metric summarised over all runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub metric: String,
    pub unit: &'static str,
    pub runs: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Baseline name, its median, and the median over runs of value / baseline (each run's
    /// ratio taken against the baseline measured in that run).
    pub baseline: Option<(String, f64, f64)>,
}

/// Groups the measurements of all runs by metric (keeping first-seen order) and summarises.
pub fn summarise(scenario: &str, runs: &[Vec<Measurement>]) -> Vec<Summary> {
    let mut order: Vec<String> = Vec::new();
    for m in runs.iter().flatten() {
        if !order.contains(&m.metric) {
            order.push(m.metric.clone());
        }
    }
    order
        .into_iter()
        .map(|metric| {
            let ms: Vec<&Measurement> = runs.iter().flatten().filter(|m| m.metric == metric).collect();
            let values: Vec<f64> = ms.iter().map(|m| m.value).collect();
            let base: Vec<(&str, f64, f64)> = ms
                .iter()
                .filter_map(|m| m.baseline.as_ref().map(|(n, b)| (n.as_str(), *b, m.value / *b)))
                .collect();
            let baseline = base.first().map(|(name, _, _)| {
                let b: Vec<f64> = base.iter().map(|x| x.1).collect();
                let r: Vec<f64> = base.iter().map(|x| x.2).collect();
                ((*name).to_owned(), median(&b), median(&r))
            });
            Summary {
                scenario: scenario.to_owned(),
                unit: ms[0].unit,
                runs: values.len(),
                median: median(&values),
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                baseline,
                metric,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratios_are_taken_per_run() {
        let runs = vec![
            vec![
                Measurement::new("x", 10.0, "s").against("b", 5.0),
                Measurement::new("y", 1.0, "s"),
            ],
            vec![
                Measurement::new("x", 30.0, "s").against("b", 10.0),
                Measurement::new("y", 3.0, "s"),
            ],
            vec![
                Measurement::new("x", 20.0, "s").against("b", 20.0),
                Measurement::new("y", 2.0, "s"),
            ],
        ];
        let s = summarise("sc", &runs);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].metric, "x");
        assert_eq!((s[0].median, s[0].min, s[0].max), (20.0, 10.0, 30.0));
        // Per-run ratios 2, 3, 1 → median 2; baseline median 10.
        assert_eq!(s[0].baseline, Some(("b".to_owned(), 10.0, 2.0)));
        assert_eq!(s[1].baseline, None);
        assert_eq!(s[1].median, 2.0);
    }

    #[test]
    fn names_are_unique() {
        let names: Vec<_> = registry().iter().map(|s| s.name()).collect();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        assert!(names.contains(&"import-70k") && names.contains(&"graphql-overhead"));
    }
}
