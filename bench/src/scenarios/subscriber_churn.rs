//! `subscriber-churn`: 10,000 WebSocket connect → `connection_init` → subscribe →
//! disconnect cycles per run against one release `vsys serve` (half closing politely, half
//! dropping the TCP connection), then what the server still holds: subscriptions, routing
//! channels and WebSocket connections must all be back to zero, and its memory must not grow
//! with the cycles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;

use super::stock_common::{self, Server};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario, Storage};

pub const CYCLES: usize = 10_000;
const CONCURRENCY: usize = 100;
const QUERY: &str = "subscription($site: SiteCode) { stockChanged(site: $site) { entryId onHand } }";

#[derive(Default)]
pub struct SubscriberChurn {
    server: Option<Server>,
    sites: Vec<String>,
    rss_start: f64,
}

impl SubscriberChurn {
    async fn start(&mut self, ctx: &Context) -> Result<()> {
        let server = Server::start(ctx, "subscriber-churn", &Storage::Sqlite).await?;
        self.sites = server.seed_sites(100, 1_000, 16).await?;
        self.rss_start = server.rss_mib()?.0;
        self.server = Some(server);
        Ok(())
    }

    async fn one_run(&mut self, run: usize) -> Result<Vec<Measurement>> {
        let server = self.server.as_mut().context("setup did not run")?;
        let addr = server.ws_addr();
        let gate = Arc::new(Semaphore::new(CONCURRENCY));
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(CYCLES);
        for i in 0..CYCLES {
            let site = self.sites[i % self.sites.len()].clone();
            let token = stock_common::token("SITE", Some(&site))?;
            let (addr, gate) = (addr.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                let mut ws = stock_common::subscribe(&addr, &token, QUERY, json!({ "site": site })).await?;
                if i % 2 == 0 {
                    ws.close(None).await?;
                    // Read to the server's close, as a polite client does.
                    while let Some(Ok(_)) = ws.next().await {}
                }
                // Odd cycles: the connection is simply dropped (TCP FIN, no close frame).
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let cycles_per_s = CYCLES as f64 / start.elapsed().as_secs_f64();
        let settle = Duration::from_secs(10);
        let subs = server
            .wait_metric("vsys_event_subscriptions{topic=\"stock\"}", 0.0, settle)
            .await?;
        let channels = server.wait_metric("vsys_event_channels", 0.0, settle).await?;
        let sockets = server.wait_metric("vsys_websocket_connections", 0.0, settle).await?;
        server.check_alive()?;
        let (rss, _) = server.rss_mib()?;
        ensure!(
            subs == 0.0 && channels == 0.0 && sockets == 0.0,
            "run {run}: after {CYCLES} cycles the server still holds {subs} subscriptions, {channels} channels, {sockets} sockets"
        );
        Ok(vec![
            Measurement::new("subscriber-churn cycles", cycles_per_s, "cycles/s"),
            Measurement::new("subscriber-churn leaked subscriptions", subs, "subscriptions"),
            Measurement::new("subscriber-churn leaked WebSockets", sockets, "connections"),
            Measurement::new("subscriber-churn server RSS after", rss, "MiB"),
            Measurement::new("subscriber-churn RSS growth since start", rss - self.rss_start, "MiB"),
        ])
    }
}

impl Scenario for SubscriberChurn {
    fn name(&self) -> &'static str {
        "subscriber-churn"
    }

    fn describe(&self) -> &'static str {
        "10,000 WebSocket connect/subscribe/disconnect cycles per run: nothing may be left held, memory must not grow"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start(ctx))
    }

    fn run<'a>(&'a mut self, _ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(run))
    }

    fn teardown<'a>(&'a mut self, _ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(server) = self.server.take() {
                server.stop().await?;
            }
            Ok(())
        })
    }

    fn notes(&self, _ctx: &Context) -> Vec<String> {
        vec![format!(
            "subscriber-churn: {CYCLES} cycles per run, {CONCURRENCY} at a time, SITE tokens over 100 sites; even cycles close \
             with a close frame, odd ones drop the TCP connection; gauges read from the server's /metrics after at most 10 s."
        )]
    }
}
