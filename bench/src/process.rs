//! Subprocess helpers: run-and-time a command, keep a server child alive for a scenario,
//! talk to PostgreSQL through `psql`, find a free port.
//!
//! Owns: every `std::process::Command` the harness spawns. Must not: interpret what the
//! commands print beyond what a caller asks for.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// What a finished command printed, and how long it took from spawn to exit.
#[derive(Debug)]
pub struct Timed {
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion on a blocking thread, timing spawn → exit; fails on a non-zero
/// exit status, quoting the tail of its output.
pub async fn run_timed(mut cmd: Command, what: &str) -> Result<Timed> {
    let what = what.to_owned();
    tokio::task::spawn_blocking(move || {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let out: Output = cmd.output().with_context(|| format!("starting {what}"))?;
        let elapsed = start.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!(
                "{what} failed ({}):\n{}\n{}",
                out.status,
                tail(&stdout, 20),
                tail(&stderr, 20)
            );
        }
        Ok(Timed {
            elapsed,
            stdout,
            stderr,
        })
    })
    .await?
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process killed (and reaped) when dropped, so no server outlives the harness.
pub struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, what: &str, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(ChildGuard {
            child,
            what: what.to_owned(),
        })
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})", self.what);
        }
        Ok(())
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `url` with its database name (the path) replaced by `name`; the query string is kept.
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let scheme_end = url.find("://").context("database URL lacks ://")? + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(format!("{host_part}/{name}{query}"))
}

/// Runs one SQL command through `psql` (ON_ERROR_STOP), returning its stdout.
pub async fn psql(url: &str, sql: &str) -> Result<String> {
    let mut cmd = Command::new("psql");
    cmd.args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]);
    Ok(run_timed(cmd, &format!("psql -c {sql:?}")).await?.stdout)
}

/// Fixed personal-data keys for every `vsys serve` the benchmarks start: on PostgreSQL the
/// server refuses to start without configured keys (benchmark data holds no real My Number).
pub fn with_personal_keys(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "VSYS_PERSONAL_KEYS",
        "bench:YmVuY2gtcGVyc29uYWwtZW5jcnlwdGlvbi1rZXktMzI=",
    )
    .env(
        "VSYS_PERSONAL_LOOKUP_KEY",
        "YmVuY2gtcGVyc29uYWwtbG9va3VwLWhhc2gta2V5MzI=",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/b1",
            ),
            ("postgres://u:p@h:5432", "postgres://u:p@h:5432/b1"),
            ("postgres://h/db?sslmode=disable", "postgres://h/b1?sslmode=disable"),
        ];
        for (input, expected) in cases {
            assert_eq!(with_database(input, "b1").unwrap(), expected);
        }
        assert!(with_database("nonsense", "b1").is_err());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
