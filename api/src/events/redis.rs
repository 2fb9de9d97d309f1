//! The Redis pub/sub transport: every instance publishes its events to Redis and relays what
//! the others published into its own hub.
//!
//! - Publishing never waits on Redis: events go into a bounded queue that one task drains,
//!   sending them in pipelined batches over a [`ConnectionManager`] (which reconnects). A full
//!   queue (Redis down or far too slow) drops the event and counts it.
//! - Receiving uses one dedicated pub/sub connection per instance, `PSUBSCRIBE <prefix>*`. Its
//!   relay task only parses and hands each message to the hub, whose sends never block, so a
//!   slow WebSocket client can never make this connection fall behind and get dropped by
//!   Redis's `client-output-buffer-limit pubsub`.
//! - When the pub/sub connection ends, every local subscriber is told events may have been
//!   missed, and the relay reconnects with backoff (and tells them again once it is back).
//! - The instance's own events come back from Redis too; they carry its origin id and are
//!   skipped, because they were delivered locally at publish time.
//!
//! Channels are `<prefix><topic>`, e.g. `vsys:events:stock`; the prefix separates deployments
//! (and test servers) sharing one Redis.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSub};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Envelope, EventBus, Hub};

/// Events waiting to be sent to Redis before new ones are dropped.
const OUTBOX: usize = 65_536;
/// Most events sent in one pipelined round trip.
const BATCH: usize = 512;

/// The message on the wire.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// The publishing instance.
    o: String,
    /// Topic.
    t: String,
    /// Routing keys.
    k: Vec<String>,
    /// The event.
    e: serde_json::Value,
}

/// Whether a channel prefix is safe to use in a `PSUBSCRIBE` pattern (no glob characters).
pub fn valid_prefix(prefix: &str) -> bool {
    (1..=64).contains(&prefix.len())
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'))
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Events across instances through Redis.
pub struct RedisBus {
    hub: Hub,
    prefix: String,
    origin: String,
    outbox: mpsc::Sender<(String, String)>,
    _tasks: [AbortOnDrop; 2],
}

async fn subscribe(client: &redis::Client, pattern: &str) -> redis::RedisResult<PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    // Returns once Redis confirmed, so events published after `connect` returns are seen.
    pubsub.psubscribe(pattern).await?;
    Ok(pubsub)
}

impl RedisBus {
    /// Connects the publisher and the subscriber; fails if Redis is not reachable now.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisBus> {
        anyhow::ensure!(
            valid_prefix(prefix),
            "event channel prefix must be 1-64 characters of A-Z a-z 0-9 : _ - ."
        );
        let client = redis::Client::open(url)?;
        let manager = ConnectionManager::new(client.clone()).await?;
        let pattern = format!("{prefix}*");
        let pubsub = subscribe(&client, &pattern).await?;
        let hub = Hub::default();
        let origin = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = mpsc::channel(OUTBOX);
        let publisher = tokio::spawn(publish_loop(manager, rx));
        let relay = tokio::spawn(relay_loop(client, pattern, origin.clone(), hub.clone(), pubsub));
        tracing::info!(%prefix, "events go through Redis pub/sub");
        Ok(RedisBus {
            hub,
            prefix: prefix.to_owned(),
            origin,
            outbox: tx,
            _tasks: [AbortOnDrop(publisher), AbortOnDrop(relay)],
        })
    }
}

impl EventBus for RedisBus {
    fn publish(&self, envelope: Envelope) {
        let envelope = Arc::new(envelope);
        self.hub.deliver(envelope.clone());
        let Some(e) = envelope.to_json() else {
            metrics::counter!("vsys_events_dropped_total", "reason" => "encode").increment(1);
            return;
        };
        let wire = Wire {
            o: self.origin.clone(),
            t: envelope.topic().to_owned(),
            k: envelope.keys().to_vec(),
            e,
        };
        let payload = match serde_json::to_string(&wire) {
            Ok(p) => p,
            Err(_) => {
                metrics::counter!("vsys_events_dropped_total", "reason" => "encode").increment(1);
                return;
            }
        };
        let channel = format!("{}{}", self.prefix, envelope.topic());
        if self.outbox.try_send((channel, payload)).is_err() {
            metrics::counter!("vsys_events_dropped_total", "reason" => "redis_backlog").increment(1);
            tracing::warn!("Redis event queue full; an event did not reach other instances");
        }
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

async fn publish_loop(mut conn: ConnectionManager, mut rx: mpsc::Receiver<(String, String)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.publish(channel, payload).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            metrics::counter!("vsys_events_dropped_total", "reason" => "redis_error").increment(1);
            tracing::warn!(error = %e, "publishing events to Redis failed; other instances missed them");
        }
    }
}

async fn relay_loop(client: redis::Client, pattern: String, origin: String, hub: Hub, first: PubSub) {
    let mut next = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = match next.take() {
            Some(p) => p,
            None => match subscribe(&client, &pattern).await {
                Ok(p) => {
                    tracing::info!("Redis event link restored");
                    hub.interrupt_all();
                    backoff = Duration::from_millis(100);
                    p
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis event link down; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            match serde_json::from_slice::<Wire>(msg.get_payload_bytes()) {
                Ok(w) if w.o == origin => {}
                Ok(w) => hub.deliver(Arc::new(Envelope::from_json(&w.t, w.k, w.e))),
                Err(e) => tracing::warn!(error = %e, "unreadable event on the Redis channel"),
            }
        }
        metrics::counter!("vsys_events_redis_reconnects_total").increment(1);
        tracing::warn!("Redis event link lost; subscribers are told to refetch");
        hub.interrupt_all();
    }
}

#[cfg(test)]
mod tests {
    use super::valid_prefix;

    #[test]
    fn prefixes_cannot_glob() {
        for ok in ["vsys:events:", "t-1234:abc.", "a"] {
            assert!(valid_prefix(ok), "{ok}");
        }
        for bad in ["", "vsys*", "a?", "[x]", "a b", &"x".repeat(65)] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }
}
