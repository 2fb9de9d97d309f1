//! What the stock scenarios share: a release `vsys serve` on a fresh database, development
//! tokens, sites with stock, a GraphQL WebSocket subscriber, and reading the server's own
//! figures (`/metrics`, its RSS).
//!
//! Must not: time anything (scenarios do), or reach into the server other than over HTTP,
//! WebSocket and `/proc`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::process::{ChildGuard, free_port, psql, with_database};
use crate::scenario::{Context, Storage};

/// The JWT secret of the servers the stock scenarios start.
pub const SECRET: &str = "bench-secret-stock-scenarios";
pub const MUNICIPALITY: &str = "131016";
pub const LOT: &str = "BENCH01";

pub fn token(role: &str, scope: Option<&str>) -> Result<String> {
    Ok(api::auth::issue_hs256(
        SECRET,
        "vsys",
        "vsys",
        "bench",
        role,
        scope,
        chrono::Duration::hours(12),
    )?)
}

/// The `i`-th bench site's code (Tokyo, 医科, district 20, number `i`).
pub fn site_code(i: usize) -> Result<String> {
    ensure!(i < 10_000, "at most 10,000 bench sites");
    Ok(domain::codes::SiteCode::with_check_digit(&format!("13120{i:04}"))?.to_string())
}

/// A release `vsys serve` on its own database, killed (and its database dropped) at drop or
/// [`Server::stop`].
pub struct Server {
    child: Option<ChildGuard>,
    pub base: String,
    pub http: reqwest::Client,
    pub database_url: String,
    /// PostgreSQL: (admin URL, database) to drop.
    pg: Option<(String, String)>,
}

impl Server {
    pub async fn start(ctx: &Context, name: &str, storage: &Storage) -> Result<Server> {
        let (database_url, pg) = match storage {
            Storage::Sqlite => (
                format!("sqlite://{}?mode=rwc", ctx.work.join(format!("{name}.db")).display()),
                None,
            ),
            Storage::Postgres { admin_url } => {
                let db = format!("bench_{}_{}", name.replace('-', "_"), std::process::id());
                psql(admin_url, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
                psql(admin_url, &format!("CREATE DATABASE {db}")).await?;
                (with_database(admin_url, &db)?, Some((admin_url.clone(), db)))
            }
        };
        let port = free_port()?;
        let mut cmd = Command::new(&ctx.vsys);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &database_url)
            .env("VSYS_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            // Subscribers open their WebSocket before they authenticate (the token comes in
            // `connection_init`), so the upgrade counts as anonymous traffic; 10,000 of them
            // from one address are not what the per-address limit is for.
            .env("VSYS_PUBLIC_RATE_LIMIT", "0")
            .env_remove("REDIS_URL")
            .current_dir(&ctx.work);
        crate::process::with_personal_keys(&mut cmd);
        let log = ctx.work.join(format!("{name}-serve.log"));
        let mut child = ChildGuard::spawn(cmd, "vsys serve", &log)?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let start = Instant::now();
        loop {
            child.check_alive().with_context(|| format!("log: {}", log.display()))?;
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                break;
            }
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "vsys serve did not start (log: {})",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Server {
            child: Some(child),
            base,
            http,
            database_url,
            pg,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, ChildGuard::id)
    }

    /// Fails if the server died.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.as_mut() {
            Some(c) => c.check_alive(),
            None => bail!("server stopped"),
        }
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base)
    }

    pub fn ws_addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// One series of this server's `/metrics`.
    pub async fn metric(&self, series: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0))
    }

    /// Polls `/metrics` until `series` equals `want`; returns the last value seen.
    pub async fn wait_metric(&self, series: &str, want: f64, timeout: Duration) -> Result<f64> {
        let start = Instant::now();
        loop {
            let v = self.metric(series).await?;
            if v == want || start.elapsed() > timeout {
                return Ok(v);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server process's resident memory and its peak, in MiB.
    pub fn rss_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib = |key: &str| -> Result<f64> {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .with_context(|| format!("{key} in /proc/<pid>/status"))
        };
        Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
    }

    /// Registers `n` Chiyoda clinics (base sites handling comirnaty) and books `vials` of one
    /// lot at each, `concurrency` requests at a time.
    pub async fn seed_sites(&self, n: usize, vials: u64, concurrency: usize) -> Result<Vec<String>> {
        let national = token("NATIONAL", None)?;
        let codes: Vec<String> = (0..n).map(site_code).collect::<Result<_>>()?;
        let expiry = (domain::stock::today_in_japan() + chrono::Duration::days(300)).to_string();
        let server = Arc::new(self.clone_client());
        for chunk in codes.chunks(concurrency.max(1)) {
            let mut tasks = Vec::new();
            for code in chunk {
                let (server, national, code, expiry) = (server.clone(), national.clone(), code.clone(), expiry.clone());
                tasks.push(tokio::spawn(async move {
                    let input = json!({
                        "code": code, "name": format!("ベンチ診療所{code}"), "nameKana": "ﾍﾞﾝﾁ", "kind": "CLINIC",
                        "municipality": MUNICIPALITY, "postalCode": "100-0001", "address": "東京都千代田区千代田1-1",
                        "phone": "03-1234-5678", "coldChain": { "role": "BASE", "freezerClass": "ULTRA_COLD" },
                        "delivery": { "receivingDays": ["MON"] }, "products": ["comirnaty"]
                    });
                    server
                        .ok(&national, "mutation($input: RegisterSiteInput!) { registerSite(input: $input) { code } }", json!({ "input": input }))
                        .await?;
                    let site = token("SITE", Some(&code))?;
                    server
                        .ok(
                            &site,
                            "mutation($input: RecordReceiptInput!) { recordReceipt(input: $input) { onHand } }",
                            json!({ "input": { "site": code, "product": "comirnaty", "lot": LOT, "expiryDate": expiry, "quantity": vials } }),
                        )
                        .await?;
                    Ok::<_, anyhow::Error>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
        }
        Ok(codes)
    }

    /// A handle for other tasks: same address and client, no process ownership.
    pub fn clone_client(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: self.http.clone(),
        }
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn stop(mut self) -> Result<()> {
        self.child = None;
        if let Some((admin, db)) = self.pg.take() {
            psql(&admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
        }
        Ok(())
    }
}

/// An HTTP handle to a server, for spawned tasks.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Result<Value> {
        let body: Value = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?;
        if let Some(e) = body.get("errors") {
            bail!("GraphQL error: {e}");
        }
        Ok(body["data"].clone())
    }
}

pub const ADMINISTER: &str = "mutation($input: StockUseInput!) { recordAdministered(input: $input) { onHand } }";

/// The body of one ADMINISTERED entry of 1 vial at `site`.
pub fn administer_body(site: &str) -> String {
    json!({ "query": ADMINISTER, "variables": { "input": { "site": site, "product": "comirnaty", "lot": LOT, "quantity": 1 } } })
        .to_string()
}

/// A graphql-transport-ws connection that passed `connection_init`.
pub type Ws = WebSocketStream<TcpStream>;

/// Connects, authenticates and starts one subscription.
pub async fn subscribe(addr: &str, token: &str, query: &str, variables: Value) -> Result<Ws> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    ws.send(Message::Text(init.to_string().into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t)?;
                if v["type"] == "connection_ack" {
                    break;
                }
                bail!("expected connection_ack, got {v}");
            }
            Some(Ok(_)) => continue,
            other => bail!("connection closed before ack: {other:?}"),
        }
    }
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
    ws.send(Message::Text(sub.to_string().into())).await?;
    Ok(ws)
}

/// The process's open-file limit (soft).
pub fn open_file_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
    })
}
