//! The event bus: committed changes fanned out to subscriptions, within this process and, with
//! Redis, across every instance sharing it.
//!
//! Owns: the [`Event`] trait (what can travel), the [`EventBus`] trait and its two transports
//! ([`InProcessBus`], the default, and [`redis::RedisBus`] with `REDIS_URL`), and [`Events`],
//! the handle resolvers use. Must not: know GraphQL or any domain rule; and nobody publishes
//! before their transaction committed (a rolled-back change is never announced: publish with
//! the value a successful domain call returned, never before it returns).
//!
//! How to put your own events on it:
//! ```text
//! #[derive(Serialize, Deserialize)]
//! struct OrderChanged { order: i64, municipality: MunicipalityCode }
//! impl Event for OrderChanged {
//!     const TOPIC: &'static str = "order";
//!     fn keys(&self) -> Vec<String> { vec![format!("municipality:{}", self.municipality)] }
//! }
//! events.publish(OrderChanged { .. });                          // after commit
//! let stream = events.subscribe::<OrderChanged>("municipality:131016");
//! // stream: Stream<Item = Result<Arc<OrderChanged>, Missed>>
//! ```
//! Delivery is at most once and best effort, in publish order per instance. A subscriber that
//! falls more than its channel's capacity behind, or whose instance lost its Redis link for a
//! while, gets a [`Missed`] item and should refetch what it shows.

mod hub;
pub mod redis;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use hub::{Envelope, EventStream, Hub, HubStats};

/// A change that can travel on the bus. One Rust type per topic.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Names the Redis channel (`<prefix><TOPIC>`) and the metric label.
    const TOPIC: &'static str;

    /// The routing keys subscribers can listen on, e.g. `site:1311010019`,
    /// `municipality:131016`, `prefecture:13`, `nation`.
    fn keys(&self) -> Vec<String>;

    /// How many events a subscriber of `key` may fall behind before it is told it lagged.
    /// Channels are allocated per key with this many slots, so keep narrow keys small.
    fn capacity(_key: &str) -> usize {
        256
    }
}

/// Why a subscriber may not have seen every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// It fell this many events behind its channel and they were dropped for it.
    Lagged(u64),
    /// The instance's link to the other instances was interrupted; events published elsewhere
    /// meanwhile were not seen.
    Interrupted,
}

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missed::Lagged(n) => write!(f, "fell behind by {n} changes; refetch"),
            Missed::Interrupted => f.write_str("changes may have been missed (event link interrupted); refetch"),
        }
    }
}

/// A transport: how an envelope reaches every instance's [`Hub`].
pub trait EventBus: Send + Sync + 'static {
    /// Hands a committed event to the bus. Must not wait on subscribers or the network.
    fn publish(&self, envelope: Envelope);
    /// This instance's local fan-out.
    fn hub(&self) -> &Hub;
}

/// One process: an event goes straight to the local hub.
#[derive(Default)]
pub struct InProcessBus {
    hub: Hub,
}

impl EventBus for InProcessBus {
    fn publish(&self, envelope: Envelope) {
        self.hub.deliver(Arc::new(envelope));
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

/// The handle resolvers and services use; cheap to clone.
#[derive(Clone)]
pub struct Events {
    bus: Arc<dyn EventBus>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new(Arc::new(InProcessBus::default()))
    }
}

impl Events {
    pub fn new(bus: Arc<dyn EventBus>) -> Self {
        Events { bus }
    }

    /// Announces a committed change. Call it only with what a successful (committed) domain
    /// call returned.
    pub fn publish<E: Event>(&self, event: E) {
        metrics::counter!("vsys_events_published_total", "topic" => E::TOPIC).increment(1);
        self.bus.publish(Envelope::typed(Arc::new(event)));
    }

    /// The events of one routing key of `E`'s topic, from now on.
    pub fn subscribe<E: Event>(&self, key: &str) -> EventStream<E> {
        self.bus.hub().subscribe::<E>(key)
    }

    pub fn stats(&self) -> HubStats {
        self.bus.hub().stats()
    }

    /// The hub's gauges in Prometheus text format. They are rendered per server rather than
    /// through the process-wide recorder, so each instance (and each test server) reports its
    /// own subscriptions.
    pub fn render_gauges(&self, websocket_connections: i64) -> String {
        let s = self.stats();
        let mut out = String::from(
            "# HELP vsys_event_subscriptions Live event subscriptions on this instance.\n\
             # TYPE vsys_event_subscriptions gauge\n",
        );
        for (topic, n) in &s.subscriptions {
            out.push_str(&format!("vsys_event_subscriptions{{topic=\"{topic}\"}} {n}\n"));
        }
        out.push_str(&format!(
            "# HELP vsys_event_channels Routing keys with at least one subscriber on this instance.\n\
             # TYPE vsys_event_channels gauge\nvsys_event_channels {}\n\
             # HELP vsys_websocket_connections Open GraphQL WebSocket connections on this instance.\n\
             # TYPE vsys_websocket_connections gauge\nvsys_websocket_connections {websocket_connections}\n",
            s.channels
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Ping {
        n: u32,
        area: String,
    }

    impl Event for Ping {
        const TOPIC: &'static str = "ping";
        fn keys(&self) -> Vec<String> {
            vec![format!("area:{}", self.area), "all".into()]
        }
        fn capacity(_key: &str) -> usize {
            2
        }
    }

    #[tokio::test]
    async fn events_reach_only_their_keys_and_laggards_are_told() {
        let events = Events::default();
        let mut a = events.subscribe::<Ping>("area:a");
        let mut all = events.subscribe::<Ping>("all");
        assert_eq!(events.stats().channels, 2);
        events.publish(Ping { n: 1, area: "b".into() });
        events.publish(Ping { n: 2, area: "a".into() });
        assert_eq!(a.next().await.map(|r| r.map(|p| p.n)), Some(Ok(2)));
        assert_eq!(all.next().await.map(|r| r.map(|p| p.n)), Some(Ok(1)));
        assert_eq!(all.next().await.map(|r| r.map(|p| p.n)), Some(Ok(2)));
        for n in 3..=6 {
            events.publish(Ping { n, area: "a".into() });
        }
        // Capacity 2: four more events overtake the subscriber by two.
        assert_eq!(a.next().await, Some(Err(Missed::Lagged(2))));
        assert_eq!(a.next().await.map(|r| r.map(|p| p.n)), Some(Ok(5)));
        events.bus.hub().interrupt_all();
        assert_eq!(all.next().await.map(|r| r.map(|p| p.n)), Some(Err(Missed::Lagged(3))));
        assert_eq!(all.next().await.map(|r| r.map(|p| p.n)), Some(Ok(6)));
        assert_eq!(all.next().await.map(|r| r.map(|p| p.n)), Some(Err(Missed::Interrupted)));
        drop(a);
        assert_eq!(events.stats().channels, 1);
        assert_eq!(events.stats().subscriptions, vec![("ping", 1)]);
        let mut again = events.subscribe::<Ping>("all");
        drop(all);
        assert_eq!(events.stats().subscriptions, vec![("ping", 1)]);
        assert_eq!(events.stats().channels, 1, "the channel stays while someone listens");
        events.bus.hub().interrupt_all();
        assert_eq!(
            again.next().await.map(|r| r.map(|p| p.n)),
            Some(Err(Missed::Interrupted))
        );
        drop(again);
        assert_eq!(
            events.stats(),
            HubStats {
                subscriptions: vec![("ping", 0)],
                channels: 0
            }
        );
    }

    #[test]
    fn relayed_json_is_decoded_once_for_its_type() {
        let env = Envelope::from_json("ping", vec!["all".into()], serde_json::json!({ "n": 7, "area": "x" }));
        assert_eq!(env.get::<Ping>().map(|p| p.n), Some(7));
        let bad = Envelope::from_json("ping", vec!["all".into()], serde_json::json!({ "n": "seven" }));
        assert!(bad.get::<Ping>().is_none());
    }
}
