//! GraphQL over WebSocket (graphql-transport-ws and the legacy protocol) with liveness.
//!
//! async-graphql's own keep-alive closes a connection when the *client* has sent nothing for a
//! while; listening subscribers (browsers on graphql-ws, which sends no pings by default) send
//! nothing, so they were cut off while healthy. Here the server sends a WebSocket Ping frame
//! every `ping` interval (30 s by default; browsers and WebSocket libraries answer with Pong by
//! themselves) and drops a peer it has heard nothing from — no message, no Pong — for
//! [`SILENT_PINGS`] intervals, so a client that vanished without closing its socket frees its
//! subscriptions too.
//!
//! Must not: authenticate (the caller passes the `connection_init` handler) or know any
//! subscription.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_graphql::Data;
use async_graphql::http::{WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt, future};

/// The default interval between server pings.
pub const DEFAULT_PING: Duration = Duration::from_secs(30);
/// A connection silent (not even answering pings) for this many ping intervals is dropped.
pub const SILENT_PINGS: u32 = 3;

/// The protocol a client asked for in `Sec-WebSocket-Protocol`, if it is one we speak.
pub fn protocol(header: Option<&str>) -> Option<WebSocketProtocols> {
    header?
        .split(',')
        .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
}

/// Serves one connection until either side closes it or the peer falls silent.
pub async fn serve<E, Init, InitFut>(
    socket: WebSocket,
    schema: E,
    protocol: WebSocketProtocols,
    ping_every: Duration,
    on_init: Init,
) where
    E: async_graphql::Executor,
    Init: FnOnce(serde_json::Value) -> InitFut + Send + 'static,
    InitFut: Future<Output = async_graphql::Result<Data>> + Send + 'static,
{
    let started = Instant::now();
    // Milliseconds since `started` at which the peer was last heard from.
    let heard = Arc::new(AtomicU64::new(0));
    let (mut sink, stream) = socket.split();
    let input = {
        let heard = heard.clone();
        stream.take_while(|m| future::ready(m.is_ok())).filter_map(move |m| {
            heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            future::ready(match m {
                Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        })
    };
    let messages = async_graphql::http::WebSocket::new(schema, input, protocol)
        .on_connection_init(on_init)
        .map(|m| match m {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        });
    futures_util::pin_mut!(messages);
    let ping_every = ping_every.max(Duration::from_millis(10));
    let silence_limit = ping_every * SILENT_PINGS;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(m) => {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = ping.tick() => {
                let silent = started.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if silent > silence_limit {
                    tracing::debug!(silent_secs = silent.as_secs(), "dropping a silent WebSocket peer");
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_protocol_we_speak() {
        assert!(matches!(
            protocol(Some("graphql-transport-ws")),
            Some(WebSocketProtocols::GraphQLWS)
        ));
        assert!(matches!(
            protocol(Some("foo, graphql-ws")),
            Some(WebSocketProtocols::SubscriptionsTransportWS)
        ));
        assert!(protocol(Some("mqtt")).is_none());
        assert!(protocol(None).is_none());
    }
}
