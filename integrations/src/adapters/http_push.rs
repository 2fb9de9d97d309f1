//! HTTP push: each order is POSTed as JSON to the wholesaler's endpoint, signed (see
//! [`crate::signing`]) and carrying its idempotency key.
//!
//! Body (UTF-8 JSON; the same bytes on every resend of a message):
//! `{"type":"order.created","idempotencyKey":"order.created:12-1312020017","customerCode":"C-001","order":{…}}`
//! where `order` is the `order.created` payload documented in the README.
//!
//! Answers: 2xx with an empty body or a JSON object is receipt (its optional string field
//! `reference` is kept as the wholesaler's reference); 2xx with anything else is an unreadable
//! answer and parks the message for an operator; 408, 429 and 5xx, timeouts and connection
//! failures are retried; any other status (4xx, redirects) parks the message.

use std::time::Duration;

use chrono::Utc;
use domain::dispatch::Claimed;
use domain::wholesaler::{AdapterConfig, AdapterKind};
use futures_util::StreamExt;
use reqwest::StatusCode;

use super::{Adapter, Attempt, BoxFuture};
use crate::signing::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign};

/// Most bytes of a partner's answer kept in `last_error`.
const SNIPPET: usize = 200;

pub struct HttpPush {
    client: reqwest::Client,
    concurrency: usize,
}

impl HttpPush {
    /// `timeout`: the longest a partner may take to answer one message.
    pub fn new(timeout: Duration, concurrency: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("vsys-outbox/1")
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpPush {
            client,
            concurrency: concurrency.max(1),
        }
    }

    async fn push_nth(&self, i: usize, m: &Claimed) -> (usize, Attempt) {
        (i, self.push(m).await)
    }

    async fn push(&self, m: &Claimed) -> Attempt {
        let AdapterConfig::HttpPush { endpoint, secret } = &m.adapter else {
            return Attempt::Permanent("not an HTTP_PUSH wholesaler".into());
        };
        let body = match body(m) {
            Ok(b) => b,
            Err(e) => return Attempt::Permanent(e),
        };
        let signature = sign(secret.as_bytes(), Utc::now().timestamp(), &body);
        let sent = self
            .client
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, &m.idempotency_key)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Attempt::Transient("timed out waiting for the wholesaler".into()),
            Err(e) if e.is_connect() => return Attempt::Transient("could not connect to the wholesaler".into()),
            Err(_) => return Attempt::Transient("the request to the wholesaler failed".into()),
        };
        let status = resp.status();
        let text = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Attempt::Transient("timed out reading the wholesaler's answer".into()),
            Err(_) => return Attempt::Transient("the wholesaler's answer broke off".into()),
        };
        classify(status, &text)
    }
}

/// The request body of a message: deterministic, so every resend carries the same bytes.
pub fn body(m: &Claimed) -> Result<Vec<u8>, String> {
    let order: serde_json::Value =
        serde_json::from_str(&m.payload).map_err(|_| "UNDELIVERABLE: the stored payload is not JSON".to_owned())?;
    let envelope = serde_json::json!({
        "type": domain::order::TOPIC_ORDER_CREATED,
        "idempotencyKey": m.idempotency_key,
        "customerCode": m.customer_code.as_str(),
        "order": order,
    });
    serde_json::to_vec(&envelope).map_err(|_| "UNDELIVERABLE: the body cannot be encoded".to_owned())
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]);
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// What an answer means (pure; table-tested).
pub fn classify(status: StatusCode, body: &[u8]) -> Attempt {
    if status.is_success() {
        let trimmed = body.trim_ascii();
        if trimmed.is_empty() {
            return Attempt::Delivered {
                acknowledged: true,
                reference: None,
            };
        }
        return match serde_json::from_slice::<serde_json::Value>(trimmed) {
            Ok(serde_json::Value::Object(o)) => Attempt::Delivered {
                acknowledged: true,
                reference: o
                    .get("reference")
                    .and_then(|r| r.as_str())
                    .map(|r| r.chars().take(128).collect()),
            },
            _ => Attempt::Permanent(format!(
                "HTTP {}: unreadable acknowledgement (expected empty or a JSON object): {}",
                status.as_u16(),
                snippet(body)
            )),
        };
    }
    let code = status.as_u16();
    let message = format!("HTTP {code}: {}", snippet(body));
    if status.is_server_error() || code == 408 || code == 429 {
        Attempt::Transient(message)
    } else {
        Attempt::Permanent(message)
    }
}

impl Adapter for HttpPush {
    fn kind(&self) -> AdapterKind {
        AdapterKind::HttpPush
    }

    fn deliver<'a>(&'a self, batch: &'a [Claimed]) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            // Futures built first, then polled a few at a time (a closure returning an async
            // block here would not be `Send` for every lifetime).
            let pushes: Vec<_> = batch.iter().enumerate().map(|(i, m)| self.push_nth(i, m)).collect();
            let mut results: Vec<(usize, Attempt)> = futures_util::stream::iter(pushes)
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            results.sort_by_key(|(i, _)| *i);
            results.into_iter().map(|(_, a)| a).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(reference: Option<&str>) -> Attempt {
        Attempt::Delivered {
            acknowledged: true,
            reference: reference.map(Into::into),
        }
    }

    #[test]
    fn answers_are_classified() {
        let s = |c: u16| StatusCode::from_u16(c).expect("status");
        let cases: &[(u16, &str, &str)] = &[
            (200, "", "delivered"),
            (204, "", "delivered"),
            (200, "  {}  ", "delivered"),
            (201, r#"{"reference":"W-1"}"#, "delivered W-1"),
            (200, "<html>oops</html>", "permanent"),
            (200, "[1,2]", "permanent"),
            (400, "bad customer code", "permanent"),
            (404, "", "permanent"),
            (409, "", "permanent"),
            (301, "", "permanent"),
            (408, "", "transient"),
            (429, "", "transient"),
            (500, "boom", "transient"),
            (503, "", "transient"),
        ];
        for (code, body, want) in cases {
            let got = classify(s(*code), body.as_bytes());
            let kind = match &got {
                Attempt::Delivered { reference: None, .. } => "delivered".to_owned(),
                Attempt::Delivered { reference: Some(r), .. } => format!("delivered {r}"),
                Attempt::Transient(_) => "transient".to_owned(),
                Attempt::Permanent(_) => "permanent".to_owned(),
            };
            assert_eq!(kind, *want, "{code} {body:?}: {got:?}");
        }
        assert_eq!(classify(s(200), br#"{"reference":"W-1"}"#), delivered(Some("W-1")));
        match classify(s(400), &[b'x'; 1000]) {
            Attempt::Permanent(m) => assert!(m.len() < 260, "answers are clipped: {}", m.len()),
            other => panic!("{other:?}"),
        }
    }
}
