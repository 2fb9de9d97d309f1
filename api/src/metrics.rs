//! Prometheus metrics: GraphQL requests and latencies by operation, HTTP requests by route and
//! status, and database pool use. Labels never carry personal data or free text: operation
//! names are accepted only as short identifiers, and only the first few hundred distinct ones.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextRequest, NextSubscribe,
};
use async_graphql::{Response, async_trait::async_trait};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide recorder (one per process, shared by every server a test starts).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (never in `vsys`); then metrics go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

const MAX_OPERATION_LABELS: usize = 256;

/// Maps a client-chosen operation name to a bounded label set.
fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name.filter(|n| n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) else {
        return if name.is_none() {
            "anonymous".into()
        } else {
            "other".into()
        };
    };
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.contains(name) || (seen.len() < MAX_OPERATION_LABELS && seen.insert(name.to_owned())) {
        name.to_owned()
    } else {
        "other".into()
    }
}

/// The GraphQL extension: error codes on every error, and per-operation metrics.
pub struct GraphqlObservability;

impl ExtensionFactory for GraphqlObservability {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GraphqlObservability)
    }
}

#[async_trait]
impl Extension for GraphqlObservability {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut resp = next.run(ctx).await;
        resp.errors.iter_mut().for_each(crate::error::ensure_code);
        resp
    }

    /// Subscriptions do not pass through `request`: give their errors codes here.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut resp| {
                resp.errors.iter_mut().for_each(crate::error::ensure_code);
                resp
            })
            .boxed()
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let start = Instant::now();
        let resp = next.run(ctx, operation_name).await;
        let op = operation_label(operation_name);
        let outcome = if resp.errors.is_empty() { "ok" } else { "error" };
        metrics::counter!("vsys_graphql_requests_total", "operation" => op.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("vsys_graphql_request_duration_seconds", "operation" => op)
            .record(start.elapsed().as_secs_f64());
        resp
    }
}

/// HTTP middleware: request count and latency by route and status, and one log line per request
/// (method, route, status, time — never the query string, body or headers).
pub async fn http_layer(req: Request, next: Next) -> axum::response::Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    metrics::counter!("vsys_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("vsys_http_request_duration_seconds", "route" => route.clone()).record(elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "http request");
    resp
}

/// Renders the metrics, refreshing the pool gauges and the dose writer's queue and priority
/// first.
pub fn render(store: &domain::store::Store) -> String {
    let db = store.db();
    metrics::gauge!("vsys_dose_calls_waiting").set(store.doses_waiting() as f64);
    if let Some(nice) = store.dose_writer_nice() {
        metrics::gauge!("vsys_dose_writer_nice").set(f64::from(nice));
    }
    let (size, idle) = crate::db::pool_stats(db);
    metrics::gauge!("vsys_db_pool_connections").set(f64::from(size));
    metrics::gauge!("vsys_db_pool_idle_connections").set(idle as f64);
    metrics::gauge!("vsys_db_pool_in_use_connections").set(f64::from(size).max(idle as f64) - idle as f64);
    handle().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("ListSites")), "ListSites");
        assert_eq!(operation_label(Some("山田太郎")), "other");
        assert_eq!(operation_label(Some(&"x".repeat(65))), "other");
        for i in 0..(MAX_OPERATION_LABELS + 10) {
            operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(operation_label(Some("BrandNewOperationName")), "other");
        assert_eq!(operation_label(Some("ListSites")), "ListSites");
    }
}
