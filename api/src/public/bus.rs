//! Availability changes for anonymous subscribers (`availabilityChanged`), as public views
//! only. Published after the change committed. Subscribers on this instance get it from an
//! in-process broadcast; with Redis, it is also published on `{prefix}public:availability` and
//! each instance relays what the others published to its own subscribers (messages carry the
//! publishing instance's id, so nobody hears its own change twice).
//!
//! Redis pub/sub keeps nothing: a change published while an instance is reconnecting is not
//! seen by that instance's subscribers (the page refetches when it reconnects; the cache, which
//! decides what searches return, does not depend on this bus).

use std::sync::Arc;
use std::time::Duration;

use domain::public::PublicSite;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

const CAPACITY: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Message {
    origin: u64,
    site: PublicSite,
}

#[derive(Clone)]
pub struct AvailabilityBus {
    tx: broadcast::Sender<Arc<PublicSite>>,
    redis: Option<(redis::aio::ConnectionManager, Arc<str>)>,
    origin: u64,
}

impl AvailabilityBus {
    pub fn local() -> AvailabilityBus {
        AvailabilityBus {
            tx: broadcast::channel(CAPACITY).0,
            redis: None,
            origin: rand::random(),
        }
    }

    /// A bus shared through Redis. Returns once this instance listens to the channel, with the
    /// relay task (abort it on shutdown).
    pub async fn redis(
        client: redis::Client,
        conn: redis::aio::ConnectionManager,
        prefix: &str,
    ) -> anyhow::Result<(AvailabilityBus, JoinHandle<()>)> {
        let channel: Arc<str> = Arc::from(format!("{prefix}public:availability"));
        let bus = AvailabilityBus {
            redis: Some((conn, channel.clone())),
            ..AvailabilityBus::local()
        };
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&*channel).await?;
        let (tx, origin) = (bus.tx.clone(), bus.origin);
        let relay = tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                if let Some(ps) = pubsub.take() {
                    relay(ps, &tx, origin).await;
                    tracing::warn!("availability channel closed; resubscribing");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                match client.get_async_pubsub().await {
                    Ok(mut ps) => match ps.subscribe(&*channel).await {
                        Ok(()) => pubsub = Some(ps),
                        Err(e) => tracing::warn!(error = %e, "cannot subscribe to the availability channel"),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot reach Redis for availability events"),
                }
            }
        });
        Ok((bus, relay))
    }

    /// Announces a committed change.
    pub async fn publish(&self, site: PublicSite) {
        let site = Arc::new(site);
        let _ = self.tx.send(site.clone());
        if let Some((conn, channel)) = &self.redis {
            let msg = Message {
                origin: self.origin,
                site: (*site).clone(),
            };
            let Ok(payload) = serde_json::to_string(&msg) else {
                return;
            };
            let mut conn = conn.clone();
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(&**channel)
                .arg(payload)
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "cannot publish an availability change to other instances");
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PublicSite>> {
        self.tx.subscribe()
    }
}

async fn relay(mut pubsub: redis::aio::PubSub, tx: &broadcast::Sender<Arc<PublicSite>>, origin: u64) {
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        match serde_json::from_str::<Message>(&payload) {
            Ok(m) if m.origin != origin => {
                let _ = tx.send(Arc::new(m.site));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "unreadable availability event"),
        }
    }
}
