//! Per-client rate limiting of anonymous traffic (GCRA, `governor`): each client address may
//! make `rate` requests per second with bursts of `burst`; beyond that it gets `429 Too Many
//! Requests` with `Retry-After` (whole seconds) and a GraphQL-shaped error body with code
//! `RATE_LIMITED`, before any work is done for it.
//!
//! The client is the TCP peer, or — only with `--trust-forwarded-for`, behind a proxy that sets
//! it — the last address in `X-Forwarded-For` (the one the trusted proxy appended; earlier ones
//! are client-supplied). IPv6 clients are limited per /64, the block one subscriber usually
//! holds. Limits are per instance: N instances behind a balancer allow up to N× as much.
//!
//! The private WebSocket endpoint authenticates in `connection_init`, after the upgrade, so its
//! upgrade cannot tell a signed-in dashboard from an anonymous scraper: counting every upgrade
//! would throttle a whole office behind one NAT address. Instead the upgrade is free and an
//! anonymous or failed `connection_init` is [`RateLimit::charge`]d to the address: over budget,
//! the connection is closed with `RATE_LIMITED` before anything runs for it. (Refusing the
//! address's later upgrades too would save only the handshake, and would lock out the
//! signed-in users sharing that address.)

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Which requests a layer limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every request (public routes).
    All,
    /// Requests without an `Authorization` header (the private GraphQL endpoint: signed-in
    /// callers are identified and not throttled here).
    Anonymous,
}

#[derive(Clone)]
pub struct RateLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    trust_forwarded_for: bool,
}

impl RateLimit {
    /// `rate_per_second <= 0` turns limiting off.
    pub fn new(rate_per_second: f64, burst: u32, trust_forwarded_for: bool) -> RateLimit {
        let limiter = (rate_per_second > 0.0)
            .then(|| Quota::with_period(Duration::from_secs_f64(1.0 / rate_per_second)))
            .flatten()
            .map(|q| q.allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN)))
            .map(|q| Arc::new(RateLimiter::keyed(q)));
        RateLimit {
            limiter,
            trust_forwarded_for,
        }
    }

    /// Forgets clients that have been quiet long enough to be back at a full burst (call
    /// periodically so the table does not grow with every address ever seen).
    pub fn sweep(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// `Err(wait)` when `client` must wait before its next request.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.limiter else { return Ok(()) };
        l.check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(l.clock().now()))
    }

    /// Counts one anonymous or failed WebSocket `connection_init` against `client`'s budget;
    /// `Err(wait)` when that was over it.
    pub fn charge(&self, client: IpAddr) -> Result<(), Duration> {
        self.check(client)
    }

    pub fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let forwarded = self
            .trust_forwarded_for
            .then(|| headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').map(str::trim).find(|s| !s.is_empty()))
            .and_then(|s| s.parse::<IpAddr>().ok());
        forwarded.or(peer.map(|p| p.ip())).map(client_key)
    }
}

/// The unit limited: an IPv4 address, or an IPv6 /64 (IPv4-mapped IPv6 counts as IPv4).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The 429 answer.
pub fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    metrics::counter!("vsys_public_rate_limited_total").increment(1);
    let body = serde_json::json!({ "errors": [{
        "message": format!("too many requests from your address; retry after {secs} s"),
        "extensions": { "code": crate::error::code::RATE_LIMITED }
    }] });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The middleware: `from_fn_with_state((limit, scope), limit_requests)`.
pub async fn limit_requests(State((limit, scope)): State<(RateLimit, Scope)>, req: Request, next: Next) -> Response {
    if !limit.enabled() || (scope == Scope::Anonymous && req.headers().contains_key(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let Some(client) = limit.client(req.headers(), peer) else {
        return next.run(req).await;
    };
    match limit.check(client) {
        Ok(()) => next.run(req).await,
        Err(wait) => too_many(wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_with_a_wait() {
        let l = RateLimit::new(0.5, 3, false);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).expect_err("fourth in a burst of 3");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(2), "{wait:?}");
        assert!(l.check(b).is_ok(), "another client has its own budget");
        assert!(RateLimit::new(0.0, 1, false).check(a).is_ok(), "0 turns limiting off");
    }

    #[test]
    fn clients_are_keyed_by_address_or_v6_block() {
        let l = RateLimit::new(1.0, 1, false);
        let peer: SocketAddr = "10.0.0.9:4000".parse().expect("addr");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7, 203.0.113.5"));
        assert_eq!(
            l.client(&h, Some(peer)),
            Some("10.0.0.9".parse().expect("ip")),
            "not trusted"
        );
        let trusting = RateLimit::new(1.0, 1, true);
        assert_eq!(
            trusting.client(&h, Some(peer)),
            Some("203.0.113.5".parse().expect("ip")),
            "the proxy's own entry, not the client-supplied one"
        );
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1".parse().expect("ip")),
            "2001:db8:1:2::".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().expect("ip")),
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn refusals_say_when_to_come_back() {
        let r = too_many(Duration::from_millis(1500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(too_many(Duration::from_millis(10)).headers()[header::RETRY_AFTER], "1");
    }
}
