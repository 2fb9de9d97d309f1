//! The signature of pushed messages, so a wholesaler can check that a message comes from this
//! system and was not changed or replayed later.
//!
//! Header `X-Vsys-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase hex
//! HMAC-SHA256, keyed with the wholesaler's signing secret, of the bytes `<t>.` followed by the
//! exact request body. A receiver recomputes it over the raw body, compares in constant time,
//! and refuses a timestamp too far from its clock (5 minutes is usual). A resend carries a new
//! timestamp and signature over the same body and the same `Idempotency-Key`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Vsys-Signature";
/// The header carrying the message's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the timestamp is too far from now")]
    Stale,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks a header value against the body, as a receiver should: the timestamp within
/// `tolerance_seconds` of `now`, the HMAC compared in constant time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(SignatureError::Malformed);
    };
    if (now - t).abs() > tolerance_seconds {
        return Err(SignatureError::Stale);
    }
    mac(secret, t, body)
        .verify_slice(&v1)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // HMAC-SHA256("0123456789abcdef", "1700000000.{}"), computed independently with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef`.
        assert_eq!(
            sign(b"0123456789abcdef", 1_700_000_000, b"{}"),
            "t=1700000000,v1=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
    }

    #[test]
    fn verification_table() {
        let secret = b"0123456789abcdef";
        let body = br#"{"a":1}"#;
        let good = sign(secret, 1000, body);
        // (secret, header, body, now, expected)
        type Case<'a> = (&'a [u8], &'a str, &'a [u8], i64, Result<(), SignatureError>);
        let cases: &[Case<'_>] = &[
            (secret, &good, body, 1000, Ok(())),
            (secret, &good, body, 1299, Ok(())),
            (secret, &good, body, 1301, Err(SignatureError::Stale)),
            (secret, &good, br#"{"a":2}"#, 1000, Err(SignatureError::Mismatch)),
            (b"another-secret-0000", &good, body, 1000, Err(SignatureError::Mismatch)),
            (secret, "v1=00", body, 1000, Err(SignatureError::Malformed)),
            (secret, "t=1000,v1=zz", body, 1000, Err(SignatureError::Malformed)),
            (secret, "", body, 1000, Err(SignatureError::Malformed)),
        ];
        for (key, header, b, now, want) in cases {
            assert_eq!(&verify(key, header, b, *now, 300), want, "{header}");
        }
    }
}
