//! `stock-subscribers`: 10,000 concurrent `stockChanged` subscribers on one release
//! `vsys serve` (SQLite), 10 per site over 1,000 sites, while every site changes once per second
//! (an ADMINISTERED entry booked through the API at a fixed arrival rate, open loop). Measures
//! the latency from the entry's `recordedAt` (taken inside the writing transaction, before its
//! commit, so the figure is an upper bound of commit → client) to its arrival at each
//! subscriber, and the server's resident memory.
//!
//! Targets (issue 4): p99 ≤ 100 ms, RSS ≤ 512 MiB. No baseline: the targets are absolute.
//! Every delivery is counted; a subscriber told it lagged counts as a miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::stock_common::{self, Server, Ws};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario};

pub const SUBSCRIBERS: usize = 10_000;
const QUERY: &str = "subscription($site: SiteCode) { stockChanged(site: $site) { entryId onHand recordedAt } }";

#[derive(Default)]
struct Stats {
    /// Latencies (ms) of deliveries of entries recorded at or after `from_micros`.
    latencies: Mutex<Vec<f32>>,
    from_micros: AtomicI64,
    recording: AtomicBool,
    delivered: AtomicU64,
    lagged: AtomicU64,
}

pub struct StockSubscribers {
    name: &'static str,
    /// Sites watched; subscribers are spread evenly over them, each changes once per second.
    sites_watched: usize,
    server: Option<Server>,
    sites: Vec<String>,
    tokens: Vec<String>,
    readers: Vec<JoinHandle<()>>,
    stop: Option<watch::Sender<bool>>,
    stats: Arc<Stats>,
    notes: Vec<String>,
}

fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

/// Reads one subscriber's events until told to stop, recording each delivery's latency.
async fn read(mut ws: Ws, stats: Arc<Stats>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let now = chrono::Utc::now();
                    let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                    match v["type"].as_str() {
                        Some("next") if v["payload"].get("errors").is_none() => {
                            stats.delivered.fetch_add(1, Ordering::Relaxed);
                            let at = v["payload"]["data"]["stockChanged"]["recordedAt"]
                                .as_str()
                                .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok());
                            if let Some(at) = at
                                && stats.recording.load(Ordering::Relaxed)
                                && at.timestamp_micros() >= stats.from_micros.load(Ordering::Relaxed)
                            {
                                let ms = (now - at).num_microseconds().unwrap_or(i64::MAX) as f32 / 1000.0;
                                stats.latencies.lock().await.push(ms);
                            }
                        }
                        Some("next") => {
                            stats.lagged.fetch_add(1, Ordering::Relaxed);
                        }
                        Some("ping") => {
                            let _ = ws.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await;
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let _ = ws.close(None).await;
}

impl StockSubscribers {
    /// 10,000 subscribers over `sites` sites (each changing once per second).
    pub fn new(name: &'static str, sites: usize) -> Self {
        StockSubscribers {
            name,
            sites_watched: sites,
            server: None,
            sites: Vec::new(),
            tokens: Vec::new(),
            readers: Vec::new(),
            stop: None,
            stats: Arc::default(),
            notes: Vec::new(),
        }
    }

    async fn start(&mut self, ctx: &Context) -> Result<()> {
        if let Some(limit) = stock_common::open_file_limit()
            && limit < (SUBSCRIBERS + 2_000) as u64
        {
            bail!(
                "open-file limit {limit} is too low for {SUBSCRIBERS} WebSockets: raise `ulimit -n` to 20000 or more"
            );
        }
        let server = Server::start(ctx, self.name, &ctx.storage).await?;
        self.sites = server.seed_sites(self.sites_watched, 1_000_000, 16).await?;
        self.tokens = self
            .sites
            .iter()
            .map(|s| stock_common::token("SITE", Some(s)))
            .collect::<Result<_>>()?;
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(200));
        let addr = server.ws_addr();
        let mut connecting = Vec::with_capacity(SUBSCRIBERS);
        for i in 0..SUBSCRIBERS {
            let site = i % self.sites_watched;
            let (addr, token, code, gate) = (
                addr.clone(),
                self.tokens[site].clone(),
                self.sites[site].clone(),
                gate.clone(),
            );
            connecting.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                stock_common::subscribe(&addr, &token, QUERY, json!({ "site": code })).await
            }));
        }
        for c in connecting {
            let ws = c.await?.context("connecting a subscriber")?;
            self.readers
                .push(tokio::spawn(read(ws, self.stats.clone(), stop_rx.clone())));
        }
        let got = server
            .wait_metric(
                "vsys_event_subscriptions{topic=\"stock\"}",
                SUBSCRIBERS as f64,
                Duration::from_secs(60),
            )
            .await?;
        ensure!(
            got == SUBSCRIBERS as f64,
            "only {got} of {SUBSCRIBERS} subscriptions registered"
        );
        self.stop = Some(stop);
        self.server = Some(server);
        Ok(())
    }

    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let server = self.server.as_mut().context("setup did not run")?;
        let client = server.clone_client();
        let delivered_before = self.stats.delivered.load(Ordering::Relaxed);
        let lagged_before = self.stats.lagged.load(Ordering::Relaxed);
        self.stats.latencies.lock().await.clear();
        // One change per site per second: a write every 1/sites s, round robin over the sites.
        let sites = self.sites_watched;
        let interval = Duration::from_secs_f64(1.0 / sites as f64);
        let total = ctx.load.warmup + ctx.load.duration;
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        let cpu_server = crate::cpu::process(server.pid()).context("server CPU time")?;
        let cpu_load = crate::cpu::this_process().context("own CPU time")?;
        let mut measuring = false;
        let mut writes = Vec::new();
        let mut n = 0usize;
        while start.elapsed() < total {
            ticker.tick().await;
            if !measuring && start.elapsed() >= ctx.load.warmup {
                measuring = true;
                self.stats
                    .from_micros
                    .store(chrono::Utc::now().timestamp_micros(), Ordering::Relaxed);
                self.stats.recording.store(true, Ordering::Relaxed);
            }
            let site = n % sites;
            n += 1;
            let (client, token, body) = (
                client.clone(),
                self.tokens[site].clone(),
                stock_common::administer_body(&self.sites[site]),
            );
            let (ok, failed) = (ok.clone(), failed.clone());
            writes.push(tokio::spawn(async move {
                let r = client
                    .http
                    .post(format!("{}/graphql", client.base))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let good = match r {
                    Ok(r) => r.bytes().await.is_ok_and(|b| crate::load::body_is_success(&b)),
                    Err(_) => false,
                };
                if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }));
        }
        let scheduled_secs = start.elapsed().as_secs_f64();
        let server_cores =
            (crate::cpu::process(server.pid()).context("server CPU time")? - cpu_server) / scheduled_secs;
        let load_cores = (crate::cpu::this_process().context("own CPU time")? - cpu_load) / scheduled_secs;
        for w in writes {
            w.await?;
        }
        let writes_ok = ok.load(Ordering::Relaxed);
        // Every committed write reaches its site's 10 subscribers (or they are told they lagged).
        let expected = writes_ok * (SUBSCRIBERS / sites) as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        let (delivered, lagged) = loop {
            let d = self.stats.delivered.load(Ordering::Relaxed) - delivered_before;
            let l = self.stats.lagged.load(Ordering::Relaxed) - lagged_before;
            if d >= expected || Instant::now() > deadline {
                break (d, l);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.stats.recording.store(false, Ordering::Relaxed);
        server.check_alive()?;
        let (rss, peak) = server.rss_mib()?;
        let subs = server.metric("vsys_event_subscriptions{topic=\"stock\"}").await?;
        let mut lat = std::mem::take(&mut *self.stats.latencies.lock().await);
        lat.sort_by(f32::total_cmp);
        let failed = failed.load(Ordering::Relaxed);
        if failed > 0 || delivered < expected || lagged > 0 {
            self.notes.push(format!(
                "run {run}: {failed} writes failed; {delivered} of {expected} deliveries; {lagged} lag notices"
            ));
        }
        ensure!(!lat.is_empty(), "no deliveries measured in run {run}");
        Ok(vec![
            Measurement::new(format!("{} p50 commit→client", self.name), percentile(&lat, 0.50), "ms"),
            Measurement::new(format!("{} p99 commit→client", self.name), percentile(&lat, 0.99), "ms"),
            Measurement::new(
                format!("{} max commit→client", self.name),
                f64::from(*lat.last().unwrap_or(&0.0)),
                "ms",
            ),
            Measurement::new(
                format!("{} deliveries", self.name),
                delivered as f64 / scheduled_secs,
                "deliveries/s",
            ),
            Measurement::new(
                format!("{} writes", self.name),
                writes_ok as f64 / scheduled_secs,
                "writes/s",
            ),
            Measurement::new(
                format!("{} missed deliveries", self.name),
                (expected.saturating_sub(delivered)) as f64,
                "deliveries",
            ),
            Measurement::new(format!("{} live subscriptions", self.name), subs, "subscriptions"),
            Measurement::new(format!("{} server CPU", self.name), server_cores, "cores"),
            Measurement::new(format!("{} load generator CPU", self.name), load_cores, "cores"),
            Measurement::new(format!("{} server RSS", self.name), rss, "MiB"),
            Measurement::new(format!("{} server peak RSS", self.name), peak, "MiB"),
        ])
    }
}

impl Scenario for StockSubscribers {
    fn name(&self) -> &'static str {
        self.name
    }

    fn describe(&self) -> &'static str {
        "10,000 stockChanged subscribers spread over N sites, each site changing once per second: commit→client latency, server RSS"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start(ctx))
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, _ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(true);
            }
            for r in self.readers.drain(..) {
                let _ = r.await;
            }
            if let Some(server) = self.server.take() {
                server.stop().await?;
            }
            Ok(())
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        let mut notes = vec![format!(
            "{}: {SUBSCRIBERS} WebSocket subscribers in the load process, each `stockChanged(site)` of one of \
             {sites} sites; writes at a fixed {sites}/s (1 per site per second, open loop) for {:?} warm-up + {:?} measured \
             per run; latency = arrival − the entry's recordedAt (taken in the writing transaction, before commit); {}; server, \
             writer and subscribers share the machine. Targets: p99 ≤ 100 ms, RSS ≤ 512 MiB.",
            self.name,
            ctx.load.warmup,
            ctx.load.duration,
            ctx.storage.label(),
            sites = self.sites_watched
        )];
        notes.extend(self.notes.iter().cloned());
        notes
    }
}
