//! The local fan-out: one bounded broadcast channel per (topic, routing key) that somebody
//! listens on, created by the first subscriber and removed with the last. An event is sent to
//! the channels of its keys only (a site's change reaches that site's subscribers, its
//! municipality's, its prefecture's and the nation's), so delivering costs a few map lookups,
//! not a pass over every subscriber.
//!
//! Sending never waits: a subscriber that does not keep up is overtaken in its channel and told
//! how many events it missed (`Missed::Lagged`) instead of slowing the writer or its
//! neighbours. Must not: know any event type, GraphQL or Redis.

use std::any::Any;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::{Event, Missed};

type Decoded = Option<Arc<dyn Any + Send + Sync>>;

/// One event on its way to subscribers: its topic, routing keys and value. Built from a typed
/// value (published here) or from JSON (relayed from another instance, decoded once, on first
/// use, for all local subscribers).
pub struct Envelope {
    topic: Box<str>,
    keys: Vec<String>,
    json: Option<serde_json::Value>,
    value: OnceLock<Decoded>,
    /// Encodes a typed value (only a transport that leaves the process needs it).
    encode: Option<fn(&(dyn Any + Send + Sync)) -> Option<serde_json::Value>>,
    /// A marker telling every subscriber that events may have been lost (the cross-instance
    /// link was interrupted); carries no event.
    gap: bool,
}

impl Envelope {
    pub fn typed<E: Event>(event: Arc<E>) -> Envelope {
        let keys = event.keys();
        let value: Arc<dyn Any + Send + Sync> = event;
        Envelope {
            topic: E::TOPIC.into(),
            keys,
            json: None,
            value: OnceLock::from(Some(value)),
            encode: Some(|v| v.downcast_ref::<E>().and_then(|e| serde_json::to_value(e).ok())),
            gap: false,
        }
    }

    pub fn from_json(topic: &str, keys: Vec<String>, json: serde_json::Value) -> Envelope {
        Envelope {
            topic: topic.into(),
            keys,
            json: Some(json),
            value: OnceLock::new(),
            encode: None,
            gap: false,
        }
    }

    fn gap() -> Envelope {
        Envelope {
            topic: "".into(),
            keys: Vec::new(),
            json: None,
            value: OnceLock::from(None),
            encode: None,
            gap: true,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The event as JSON, for a transport that leaves the process.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        if let Some(j) = &self.json {
            return Some(j.clone());
        }
        let value = self.value.get()?.as_ref()?;
        (self.encode?)(value.as_ref())
    }

    /// The event as `E`, decoding relayed JSON once; `None` if it is not an `E`.
    pub fn get<E: Event>(&self) -> Option<Arc<E>> {
        let decoded = self.value.get_or_init(|| {
            let json = self.json.clone()?;
            match serde_json::from_value::<E>(json) {
                Ok(e) => Some(Arc::new(e) as Arc<dyn Any + Send + Sync>),
                Err(err) => {
                    tracing::warn!(topic = %self.topic, error = %err, "undecodable event dropped");
                    None
                }
            }
        });
        decoded.clone()?.downcast::<E>().ok()
    }
}

type Channels = HashMap<Box<str>, HashMap<String, broadcast::Sender<Arc<Envelope>>>>;

#[derive(Default)]
struct Inner {
    channels: RwLock<Channels>,
    /// Live subscriptions per topic.
    subscriptions: RwLock<HashMap<&'static str, i64>>,
}

/// The local fan-out (cheap to clone; clones share their channels).
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// What a hub holds right now, for `/metrics` and the tests that check nothing leaks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Live subscriptions per topic.
    pub subscriptions: Vec<(&'static str, i64)>,
    /// Channels (topic × key) with at least one subscriber.
    pub channels: usize,
}

impl Hub {
    /// Sends an envelope to the channels of its keys. Never blocks.
    pub fn deliver(&self, env: Arc<Envelope>) {
        let channels = self.inner.channels.read().unwrap_or_else(|p| p.into_inner());
        let Some(by_key) = channels.get(env.topic()) else {
            return;
        };
        for key in env.keys() {
            if let Some(tx) = by_key.get(key) {
                // An error means every receiver went away meanwhile; the last one's drop
                // removes the channel.
                let _ = tx.send(env.clone());
            }
        }
    }

    /// Tells every subscriber that events may have been lost.
    pub fn interrupt_all(&self) {
        let gap = Arc::new(Envelope::gap());
        let channels = self.inner.channels.read().unwrap_or_else(|p| p.into_inner());
        for tx in channels.values().flat_map(|m| m.values()) {
            let _ = tx.send(gap.clone());
        }
    }

    /// Listens on one key of `E`'s topic.
    pub fn subscribe<E: Event>(&self, key: &str) -> EventStream<E> {
        let rx = {
            let mut channels = self.inner.channels.write().unwrap_or_else(|p| p.into_inner());
            let by_key = channels.entry(E::TOPIC.into()).or_default();
            match by_key.get(key) {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = broadcast::channel(E::capacity(key).max(1));
                    by_key.insert(key.to_owned(), tx);
                    rx
                }
            }
        };
        *self
            .inner
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(E::TOPIC)
            .or_default() += 1;
        EventStream {
            rx: Some(BroadcastStream::new(rx)),
            hub: self.inner.clone(),
            key: key.to_owned(),
            _event: std::marker::PhantomData,
        }
    }

    pub fn stats(&self) -> HubStats {
        let mut subscriptions: Vec<_> = self
            .inner
            .subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(t, n)| (*t, *n))
            .collect();
        subscriptions.sort();
        let channels = self
            .inner
            .channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(HashMap::len)
            .sum();
        HubStats {
            subscriptions,
            channels,
        }
    }
}

/// A subscription: the events of one key of `E`'s topic, or notice of what was missed. Dropping
/// it (when the client unsubscribes or its socket closes) frees its place in the channel and,
/// for the last subscriber of a key, the channel itself.
pub struct EventStream<E: Event> {
    rx: Option<BroadcastStream<Arc<Envelope>>>,
    hub: Arc<Inner>,
    key: String,
    _event: std::marker::PhantomData<fn() -> E>,
}

impl<E: Event> Stream for EventStream<E> {
    type Item = Result<Arc<E>, Missed>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match Pin::new(&mut *rx).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(n)))) => {
                    metrics::counter!("vsys_events_lagged_total", "topic" => E::TOPIC).increment(1);
                    return Poll::Ready(Some(Err(Missed::Lagged(n))));
                }
                Poll::Ready(Some(Ok(env))) if env.gap => return Poll::Ready(Some(Err(Missed::Interrupted))),
                Poll::Ready(Some(Ok(env))) => {
                    if let Some(e) = env.get::<E>() {
                        return Poll::Ready(Some(Ok(e)));
                    }
                }
            }
        }
    }
}

impl<E: Event> Drop for EventStream<E> {
    fn drop(&mut self) {
        // The receiver goes first, so the count below no longer includes it.
        self.rx = None;
        {
            let mut channels = self.hub.channels.write().unwrap_or_else(|p| p.into_inner());
            if let Some(by_key) = channels.get_mut(E::TOPIC) {
                if by_key.get(&self.key).is_some_and(|tx| tx.receiver_count() == 0) {
                    by_key.remove(&self.key);
                }
                if by_key.is_empty() {
                    channels.remove(E::TOPIC);
                }
            }
        }
        if let Some(n) = self
            .hub
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(E::TOPIC)
        {
            *n -= 1;
        }
    }
}
