//! CPU time accounting from `/proc` (Linux): of a whole process, of this process, or of this
//! process's threads with a given name.
//!
//! Why: on a 2-core machine the load generator competes with the server for the same cores,
//! so requests/s alone mixes client and server cost. CPU seconds spent by the server per
//! request separate the two. Returns `None` where `/proc` is unavailable.

use std::sync::OnceLock;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 on Linux in practice).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        crate::report::command_line("getconf", &["CLK_TCK"])
            .and_then(|s| s.parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime, in seconds, from the text of a `/proc/…/stat` file.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is parenthesised and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// The thread or process name in a `/proc/…/stat` text.
fn stat_name(stat: &str) -> Option<&str> {
    Some(&stat[stat.find('(')? + 1..stat.rfind(')')?])
}

/// CPU seconds used so far by process `pid` (all its threads).
pub fn process(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds used so far by this process.
pub fn this_process() -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU seconds used so far by this process's live threads whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> Option<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat_name(&stat).is_some_and(|n| n.starts_with(prefix)) {
            total += stat_cpu_seconds(&stat)?;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_spaces_in_the_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(stat_name(stat), Some("my (odd) name"));
        let secs = stat_cpu_seconds(stat).unwrap();
        assert!((secs - 300.0 / ticks_per_second()).abs() < 1e-9);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(this_process().is_some());
            assert!(threads_named("").unwrap() >= 0.0);
        }
    }
}
