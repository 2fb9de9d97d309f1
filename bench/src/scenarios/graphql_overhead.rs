//! `graphql-overhead`: requests/s of the release `vsys serve` answering `{ __typename }`,
//! against a plain axum server that returns the very same response bytes.
//!
//! The ratio isolates what the GraphQL layer (parsing, validation, execution, serialisation,
//! plus whatever middleware `vsys serve` stacks) costs over bare HTTP. Published figures for
//! async-graphql are 0.29-0.34x of plain axum on 2 cores; the target is >= 0.5x.
//!
//! Set-up (untimed): `vsys serve --listen 127.0.0.1:<port>` on a fresh SQLite file, waited for
//! through `GET /healthz`; one `POST /graphql` fetches the reference response bytes and
//! content type; the plain server starts on its own multi-threaded runtime (as many workers
//! as cores, like a separate server process) in this process. Each run drives both with the
//! same closed-loop client (`load::closed_loop`), alternating which goes first. Client and
//! servers share the machine's cores, so absolute figures are lower than on a separate client
//! machine; the ratio is what is compared.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use tokio::sync::oneshot;

use crate::cpu;
use crate::load::{self, CpuProbe, LoadResult};
use crate::process::{ChildGuard, free_port};
use crate::scenario::{BoxFuture, Context, Measurement, Scenario};

/// The request every run sends.
pub const QUERY: &str = r#"{"query":"{ __typename }"}"#;

/// Name of the plain server's runtime threads, so their CPU time can be told apart.
const PLAIN_THREADS: &str = "plain-axum";

/// The in-process plain axum baseline; stops when dropped.
struct PlainServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PlainServer {
    /// Serves `body` with `content_type` for every `POST /graphql`.
    fn start(body: Bytes, content_type: HeaderValue, workers: usize) -> Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<u16>>();
        let thread = std::thread::Builder::new()
            .name(format!("{PLAIN_THREADS}-main"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name(PLAIN_THREADS)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    let app = axum::Router::new().route(
                        "/graphql",
                        axum::routing::post(move |_request: Bytes| {
                            let (body, content_type) = (body.clone(), content_type.clone());
                            async move { ([(header::CONTENT_TYPE, content_type)], body) }
                        }),
                    );
                    let _ = ready_tx.send(Ok(port));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        let port = ready_rx.recv().context("plain server thread died")??;
        Ok(PlainServer {
            url: format!("http://127.0.0.1:{port}/graphql"),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
pub struct GraphqlOverhead {
    server: Option<ChildGuard>,
    graphql_url: String,
    plain: Option<PlainServer>,
    failures: Vec<String>,
}

/// Polls `GET url` until it answers 200 or `timeout` passes (checking the child is alive).
async fn wait_healthy(client: &reqwest::Client, url: &str, child: &mut ChildGuard, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        child.check_alive()?;
        if let Ok(r) = client.get(url).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{url} did not answer 200 within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl GraphqlOverhead {
    async fn start(&mut self, ctx: &Context) -> Result<()> {
        let port = free_port()?;
        let db = ctx.work.join("graphql-overhead.db");
        let mut cmd = Command::new(&ctx.vsys);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
            .current_dir(&ctx.work);
        crate::process::with_personal_keys(&mut cmd);
        let log = ctx.work.join("vsys-serve.log");
        let mut child = ChildGuard::spawn(cmd, "vsys serve", &log)?;
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&client, &format!("{base}/healthz"), &mut child, Duration::from_secs(60))
            .await
            .with_context(|| format!("waiting for vsys serve (log: {})", log.display()))?;
        self.graphql_url = format!("{base}/graphql");

        let resp = client
            .post(&self.graphql_url)
            .header("content-type", "application/json")
            .body(QUERY)
            .send()
            .await
            .context("POST /graphql")?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        let body = resp.bytes().await?;
        ensure!(
            status == reqwest::StatusCode::OK && load::body_is_success(&body),
            "vsys serve answered {{ __typename }} with {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        self.plain = Some(PlainServer::start(
            Bytes::copy_from_slice(&body),
            content_type,
            workers,
        )?);
        self.server = Some(child);
        // The baseline must really answer with the same bytes.
        let plain = client
            .post(&self.plain.as_ref().context("plain server")?.url)
            .body(QUERY)
            .send()
            .await?
            .bytes()
            .await?;
        ensure!(plain == body, "plain server bytes differ from the GraphQL server's");
        Ok(())
    }

    async fn one_run(&mut self, ctx: &Context, run: usize) -> Result<Vec<Measurement>> {
        let plain_url = self.plain.as_ref().context("setup did not run")?.url.clone();
        let pid = self.server.as_ref().context("setup did not run")?.id();
        // Probes: [0] the server under load, [1] the load generator (this process minus the
        // plain server's threads).
        let vsys_cpu = move || cpu::process(pid);
        let plain_cpu = || cpu::threads_named(PLAIN_THREADS);
        let client_cpu = || Some(cpu::this_process()? - cpu::threads_named(PLAIN_THREADS)?);
        let graphql_probes: [CpuProbe<'_>; 2] = [&vsys_cpu, &client_cpu];
        let plain_probes: [CpuProbe<'_>; 2] = [&plain_cpu, &client_cpu];
        let graphql_url = self.graphql_url.clone();
        let (graphql, plain): (LoadResult, LoadResult) = if run % 2 == 1 {
            let g = load::closed_loop(&graphql_url, QUERY, &ctx.load, &graphql_probes).await?;
            (g, load::closed_loop(&plain_url, QUERY, &ctx.load, &plain_probes).await?)
        } else {
            let p = load::closed_loop(&plain_url, QUERY, &ctx.load, &plain_probes).await?;
            (
                load::closed_loop(&graphql_url, QUERY, &ctx.load, &graphql_probes).await?,
                p,
            )
        };
        if let Some(server) = self.server.as_mut() {
            server.check_alive()?;
        }
        for (name, r) in [("graphql", &graphql), ("plain axum", &plain)] {
            if r.failed > 0 {
                self.failures
                    .push(format!("run {run}: {name} had {} failed responses", r.failed));
            }
        }
        ensure!(graphql.ok > 0, "no successful GraphQL responses in run {run}");
        let mut out = vec![Measurement::new(self.name(), graphql.rate(), "req/s").against("plain axum", plain.rate())];
        if let (Some(g), Some(p)) = (graphql.cpu_per_request_us(0), plain.cpu_per_request_us(0)) {
            out.push(
                Measurement::new(format!("{} server CPU per request", self.name()), g, "µs/req")
                    .against("plain axum", p),
            );
        }
        if let (Some(g), Some(p)) = (graphql.cpu_per_request_us(1), plain.cpu_per_request_us(1)) {
            out.push(
                Measurement::new(format!("{} load-generator CPU per request", self.name()), g, "µs/req")
                    .against("same, plain phase", p),
            );
        }
        Ok(out)
    }
}

impl Scenario for GraphqlOverhead {
    fn name(&self) -> &'static str {
        "graphql-overhead"
    }

    fn describe(&self) -> &'static str {
        "requests/s of `vsys serve` for { __typename } (closed loop); baseline: plain axum returning the same bytes"
    }

    fn setup<'a>(&'a mut self, ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.start(ctx))
    }

    fn run<'a>(&'a mut self, ctx: &'a Context, run: usize) -> BoxFuture<'a, Result<Vec<Measurement>>> {
        Box::pin(self.one_run(ctx, run))
    }

    fn teardown<'a>(&'a mut self, _ctx: &'a Context) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.plain = None;
            self.server = None;
            Ok(())
        })
    }

    fn notes(&self, ctx: &Context) -> Vec<String> {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut notes = vec![format!(
            "graphql-overhead: closed loop, {} connections (keep-alive, HTTP/1.1), {:?} warm-up + {:?} measured per server per run; \
             load generator, `vsys serve` (SQLite) and the plain axum server share this machine's {cores} cores. \
             Published async-graphql figures: 0.29-0.34x of plain axum on 2 cores; target >= 0.5x. \
             Because the client's own CPU cost is in both closed-loop figures, the req/s ratio understates the \
             difference; `server CPU per request` (from /proc: the vsys process, the plain server's threads) \
             does not, and plain/graphql of it is the req/s ratio a server-bound machine would see.",
            ctx.load.concurrency, ctx.load.warmup, ctx.load.duration
        )];
        notes.extend(self.failures.iter().cloned());
        notes
    }
}
