//! Presenting results: the terminal table, the machine description, and the dated Markdown
//! section appended to `BENCHMARKS.md` by `bench run --record`.
//!
//! Owns: formatting only. Must not: measure or summarise (that is `scenario`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::scenario::{Summary, higher_is_better};

/// The machine the figures were taken on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub memory: String,
    pub cpu: String,
    pub os: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or_else(|| "unknown".to_owned(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let os = command_line("uname", &["-sr"]).unwrap_or_else(|| std::env::consts::OS.to_owned());
        Machine { cores, memory, cpu, os }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} cores (nproc), {} RAM, CPU: {}, {}",
            self.cores, self.memory, self.cpu, self.os
        )
    }
}

/// The 1, 5 and 15-minute load averages (other work on a shared machine skews figures).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The first line a command prints, if it runs.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

/// A value with precision that suits its unit.
pub fn format_value(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    if unit == "s" {
        if value < 1.0 {
            format!("{value:.3}")
        } else {
            format!("{value:.2}")
        }
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn spread(s: &Summary) -> String {
    format!("{}–{}", format_value(s.min, s.unit), format_value(s.max, s.unit))
}

fn baseline_cells(s: &Summary) -> (String, String) {
    match &s.baseline {
        Some((name, value, ratio)) => {
            let better = if higher_is_better(s.unit) {
                "higher is better"
            } else {
                "lower is better"
            };
            (
                format!("{name} {} {}", format_value(*value, s.unit), s.unit),
                format!("{ratio:.2}× ({better})"),
            )
        }
        None => ("—".to_owned(), "—".to_owned()),
    }
}

/// The terminal table.
pub fn print_table(summaries: &[Summary]) {
    println!(
        "\n{:<44} {:>10} {:>20} {:<7} {:<30} ratio (median of runs)",
        "scenario", "median", "min–max", "unit", "baseline (median)"
    );
    for s in summaries {
        let (base, ratio) = baseline_cells(s);
        println!(
            "{:<44} {:>10} {:>20} {:<7} {:<30} {}",
            s.metric,
            format_value(s.median, s.unit),
            spread(s),
            s.unit,
            base,
            ratio
        );
    }
}

/// The Markdown section recorded for one `bench run`.
pub fn markdown(
    command: &str,
    machine: &Machine,
    extra: &[String],
    summaries: &[Summary],
    failures: &[String],
    notes: &[String],
) -> String {
    let now = chrono::Local::now();
    let mut md = String::new();
    let _ = writeln!(md, "\n## {} — `{command}`\n", now.format("%Y-%m-%d %H:%M %:z"));
    let _ = writeln!(md, "- Machine: {}", machine.describe());
    for e in extra {
        let _ = writeln!(md, "- {e}");
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| scenario | median | min–max | unit | runs | baseline (median) | ratio (median of per-run ratios) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---|---:|---|---|");
    for s in summaries {
        let (base, ratio) = baseline_cells(s);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.metric.replace('|', "\\|"),
            format_value(s.median, s.unit),
            spread(s),
            s.unit,
            s.runs,
            base.replace('|', "\\|"),
            ratio
        );
    }
    if !failures.is_empty() || !notes.is_empty() {
        let _ = writeln!(md);
    }
    for f in failures {
        let _ = writeln!(md, "- **Failed**: {}", f.replace('\n', " "));
    }
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md
}

const HEADER: &str = "# Benchmarks\n\n\
Recorded by `cargo run --release -p bench -- run --record` (see `bench/README.md`). Each section is one \
run of the harness on one machine; every ratio compares a figure with its baseline measured in the same \
run (DESIGN.md: \"Performance is measured, not asserted\"). Figures from different machines or dates are \
not comparable with each other.\n";

/// Appends `section` to `path`, creating the file with its header when missing.
pub fn append(path: &Path, section: &str) -> Result<()> {
    let exists = path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if !exists {
        f.write_all(HEADER.as_bytes())?;
    }
    f.write_all(section.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_a_row_per_summary() {
        let summaries = vec![
            Summary {
                scenario: "import-70k".into(),
                metric: "import-70k".into(),
                unit: "s",
                runs: 3,
                median: 2.5,
                min: 2.4,
                max: 2.7,
                baseline: Some(("psql \\copy".into(), 0.5, 5.0)),
            },
            Summary {
                scenario: "graphql-overhead".into(),
                metric: "graphql-overhead".into(),
                unit: "req/s",
                runs: 3,
                median: 12000.0,
                min: 11000.0,
                max: 13000.0,
                baseline: None,
            },
        ];
        let machine = Machine {
            cores: 2,
            memory: "1 GiB".into(),
            cpu: "x".into(),
            os: "Linux".into(),
        };
        let md = markdown(
            "bench run",
            &machine,
            &[],
            &summaries,
            &["boom".into()],
            &["note".into()],
        );
        assert!(
            md.contains("| import-70k | 2.50 | 2.40–2.70 | s | 3 | psql \\copy 0.500 s | 5.00× (lower is better) |")
        );
        assert!(md.contains("| graphql-overhead | 12000 | 11000–13000 | req/s | 3 | — | — |"));
        assert!(md.contains("- **Failed**: boom"));
        assert!(md.contains("2 cores (nproc)"));
    }
}
