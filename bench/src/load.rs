//! A closed-loop HTTP load generator: C workers, each sending the next request as soon as the
//! previous response is read, over keep-alive connections, for a fixed duration after a
//! warm-up.
//!
//! Owns: request pacing and success counting. A success is a `200` whose JSON body has no
//! `errors` field (DESIGN.md: "a response with a GraphQL `errors` field is a failure"). Must
//! not: know which server it talks to; the same loop drives the GraphQL server and its
//! plain-axum baseline so their numbers compare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use crate::scenario::LoadSettings;

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// What one load phase achieved.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    pub window: Duration,
}

impl LoadResult {
    /// Successful responses per second in the measured window.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

/// Only the field that decides success is deserialised.
#[derive(Deserialize)]
struct Envelope {
    errors: Option<serde::de::IgnoredAny>,
}

/// Whether a response body counts as a success (JSON without an `errors` field).
pub fn body_is_success(body: &[u8]) -> bool {
    serde_json::from_slice::<Envelope>(body).is_ok_and(|e| e.errors.is_none())
}

/// Drives `POST url` with `body` (JSON) from `settings.concurrency` workers.
pub async fn closed_loop(url: &str, body: &'static str, settings: &LoadSettings) -> Result<LoadResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(settings.concurrency);
    for _ in 0..settings.concurrency {
        let (client, url) = (client.clone(), url.to_owned());
        let (phase, ok, failed) = (phase.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while phase.load(Ordering::Relaxed) != STOP {
                let good = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(bytes) => status == reqwest::StatusCode::OK && body_is_success(&bytes),
                            Err(_) => false,
                        }
                    }
                    Err(_) => false,
                };
                // Count by the phase at completion: a response finished inside the window.
                if phase.load(Ordering::Relaxed) == MEASURE {
                    if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(settings.warmup).await;
    phase.store(MEASURE, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(settings.duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let window = start.elapsed();
    for w in workers {
        w.await.context("a load worker panicked")?;
    }
    Ok(LoadResult {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_field_is_a_failure() {
        assert!(body_is_success(br#"{"data":{"__typename":"Query"}}"#));
        assert!(!body_is_success(br#"{"data":null,"errors":[{"message":"x"}]}"#));
        assert!(!body_is_success(b"not json"));
        // The word in a value is not the field.
        assert!(body_is_success(br#"{"data":{"text":"errors"}}"#));
    }
}
