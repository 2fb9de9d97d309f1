//! Bearer-token authentication: verifying JWTs presented by clients and issuing
//! HS256 development tokens.
//!
//! This module owns:
//! - extracting the token from an `Authorization: Bearer …` header ([`bearer_token`]);
//! - verifying a token's signature, `exp`/`nbf` (30 s leeway), `iss` and `aud`
//!   ([`Authenticator::verify`]) against either a shared HS256 secret or the public
//!   keys of a JWKS (file or `http(s)://` URL, RS256/ES256 only, refetched on an
//!   unknown `kid` at most once per minute so key rotation needs no restart);
//! - issuing HS256 tokens for development and tests ([`issue_hs256`]);
//! - remembering the claims of tokens it verified, by the SHA-256 of the token, so a client
//!   sending the same token again is not verified again while the token is valid
//!   ([`Verified`]).
//!
//! What it must not do:
//! - log, echo or store tokens: no error message, log line or `Debug` output contains
//!   a token (only a vetted algorithm name or a sanitised `kid` may be quoted), and the
//!   memory of verified tokens holds their digests, not the tokens;
//! - know what roles or scopes mean: [`Claims`] are handed back verbatim, and mapping
//!   them to a domain actor (and authorising anything) is done elsewhere.
//!
//! Algorithm policy (the defence against `alg: none` and HS/RS confusion): the
//! token's header `alg` is checked against what the configuration allows *before*
//! any key is chosen. With a JWKS only RS256/ES256 are accepted and the key is taken
//! from the set; otherwise only HS256 with the configured (or development) secret.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Secret used for HS256 when neither `VSYS_JWT_SECRET` nor `VSYS_JWKS` is configured.
pub const DEV_JWT_SECRET: &str = "vsys-development-secret-do-not-use-in-production";
/// Default expected `iss` (`VSYS_JWT_ISSUER`).
pub const DEFAULT_ISSUER: &str = "vsys";
/// Default expected `aud` (`VSYS_JWT_AUDIENCE`).
pub const DEFAULT_AUDIENCE: &str = "vsys";
/// Clock-skew allowance for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Timeout for fetching a JWKS over HTTP.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Minimum time between two fetches of a JWKS URL triggered by unknown key ids.
pub const JWKS_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// RSA keys shorter than this are not loaded from a JWKS.
const MIN_RSA_BITS: usize = 2048;
/// Claims [`Claims`] cannot do without.
const REQUIRED_CLAIMS: [&str; 6] = ["sub", "role", "iss", "aud", "exp", "iat"];
/// JOSE algorithm names an error message may quote (anything else is not echoed).
const KNOWN_ALGS: [&str; 17] = [
    "none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    "ES256K", "EdDSA", "Ed25519", "Ed448",
];

/// Settings, filled from CLI/env by the configuration code.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `VSYS_JWT_SECRET`: enables HS256 with this secret (ignored when a JWKS is configured).
    pub jwt_secret: Option<String>,
    /// `VSYS_JWKS`: path to a JWKS file, or an `http(s)://` URL. Enables RS256/ES256.
    pub jwks: Option<String>,
    /// `VSYS_JWT_ISSUER`: the only accepted `iss`.
    pub issuer: String,
    /// `VSYS_JWT_AUDIENCE`: the audience this server identifies as.
    pub audience: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwks: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
        }
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "[redacted]"))
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// The claims of a verified token, handed back verbatim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    /// e.g. `"MUNICIPALITY"` (its meaning is not this module's business).
    pub role: String,
    /// e.g. `"131016"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iss: String,
    /// The configured audience (a token's `aud` array containing it is normalised to it).
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
}

/// Why a token was refused or keys could not be loaded.
///
/// Messages say what was wrong and never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The `Authorization` header is present but is not `Bearer <token>`.
    #[error("invalid Authorization header: {0}")]
    BadAuthorizationHeader(&'static str),
    /// The token is not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header `alg` is not accepted by this configuration (or for the selected key).
    #[error("token algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("token issuer (iss) is not accepted")]
    WrongIssuer,
    #[error("token audience (aud) does not include this server")]
    WrongAudience,
    /// No key of the JWKS matches the token's `kid` (sanitised), or the token has no
    /// `kid` and the set does not hold exactly one key for its algorithm.
    #[error("{}", match .kid {
        Some(kid) => format!("no key in the key set has kid `{kid}`"),
        None => "token has no kid and the key set has no single key for its algorithm".to_owned(),
    })]
    UnknownKey { kid: Option<String> },
    #[error("token lacks required claim `{0}`")]
    MissingClaim(String),
    #[error("token claim `{0}` has the wrong type")]
    InvalidClaim(String),
    /// The keys could not be loaded (JWKS file/URL unreadable, unparsable, no usable
    /// key, HTTP error) or the secret is unusable. A server-side problem.
    #[error("authentication key source: {0}")]
    KeySource(String),
    /// A token could not be issued.
    #[error("cannot issue token: {0}")]
    Signing(String),
}

impl AuthError {
    /// `true` when the client's credentials are at fault (answer 401); `false` for
    /// server-side key/configuration problems ([`AuthError::KeySource`], [`AuthError::Signing`]).
    pub fn is_credential_error(&self) -> bool {
        !matches!(self, AuthError::KeySource(_) | AuthError::Signing(_))
    }
}

/// Verifies bearer tokens. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    mode: Mode,
    verified: Verified,
}

/// The claims of tokens verified lately, by the SHA-256 of the token. A client sends the same
/// token with every request until it expires (a site's tablet books every dose with it), and
/// verifying it — decoding, parsing and checking the signature — took about a tenth of a
/// single dose's server time with HS256 (RS256/ES256 cost more). A remembered token is
/// answered only while it is unexpired (with the same leeway) and only under the key set that
/// verified it: a refetched JWKS forgets every earlier token ([`JwksStore::generation`]).
/// Anything else is verified in full, so every refusal comes from the full check. Bounded;
/// tokens beyond [`VERIFIED_TOKENS`] evict older ones.
struct Verified(quick_cache::sync::Cache<[u8; 32], (u64, Claims)>);

/// Most tokens remembered by [`Verified`] (a few hundred bytes each).
const VERIFIED_TOKENS: usize = 16_384;

impl Verified {
    fn new() -> Self {
        Verified(quick_cache::sync::Cache::new(VERIFIED_TOKENS))
    }

    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of `token` if it was verified under key set `generation` and is unexpired.
    fn get(&self, digest: &[u8; 32], generation: u64) -> Option<Claims> {
        let (seen, claims) = self.0.get(digest)?;
        let now = jsonwebtoken::get_current_timestamp();
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(i64::MAX);
        let unexpired = i64::try_from(now).is_ok_and(|now| claims.exp >= now.saturating_sub(leeway));
        (seen == generation && unexpired).then_some(claims)
    }

    fn insert(&self, digest: [u8; 32], generation: u64, claims: Claims) {
        self.0.insert(digest, (generation, claims));
    }
}

enum Mode {
    Hmac { key: DecodingKey, development: bool },
    Jwks(JwksStore),
}

struct JwksStore {
    source: JwksSource,
    keys: RwLock<Arc<Vec<VerifyKey>>>,
    /// Counts the key sets fetched (see [`Verified`]).
    generation: AtomicU64,
    /// Time of the last fetch (or fetch attempt); held while refetching.
    last_fetch: tokio::sync::Mutex<Instant>,
    min_refetch_interval: Duration,
}

enum JwksSource {
    File(PathBuf),
    Url { url: reqwest::Url, client: reqwest::Client },
}

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Authenticator");
        d.field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience);
        match &self.inner.mode {
            Mode::Hmac { development, .. } => d.field("mode", &"HS256").field("development_secret", development),
            Mode::Jwks(store) => d
                .field("mode", &"JWKS")
                .field("source", &store.source.describe())
                .field("keys", &store.snapshot().len()),
        };
        d.finish()
    }
}

impl Authenticator {
    /// Loads the JWKS (file or URL) if configured. If neither a secret nor a JWKS is
    /// configured, HS256 with [`DEV_JWT_SECRET`] is used (the caller logs a loud
    /// warning; see [`Authenticator::uses_development_secret`]). If both are
    /// configured the JWKS wins and HS256 tokens are refused.
    pub async fn new(settings: &AuthSettings) -> Result<Self, AuthError> {
        Self::with_refetch_interval(settings, JWKS_MIN_REFETCH_INTERVAL).await
    }

    async fn with_refetch_interval(settings: &AuthSettings, min_refetch_interval: Duration) -> Result<Self, AuthError> {
        let mode = match (&settings.jwks, &settings.jwt_secret) {
            (Some(jwks), secret) => {
                if secret.is_some() {
                    tracing::warn!(
                        "both a JWT secret and a JWKS are configured: the secret is ignored, \
                         only RS256/ES256 tokens signed with a JWKS key are accepted"
                    );
                }
                let source = JwksSource::parse(jwks)?;
                let keys = source.load().await?;
                tracing::info!(
                    source = %source.describe(),
                    keys = keys.len(),
                    "loaded JWKS for token verification"
                );
                Mode::Jwks(JwksStore {
                    source,
                    keys: RwLock::new(Arc::new(keys)),
                    generation: AtomicU64::new(0),
                    last_fetch: tokio::sync::Mutex::new(Instant::now()),
                    min_refetch_interval,
                })
            }
            (None, Some(secret)) => {
                if secret.is_empty() {
                    return Err(AuthError::KeySource("the JWT secret is empty".to_owned()));
                }
                Mode::Hmac {
                    key: DecodingKey::from_secret(secret.as_bytes()),
                    development: false,
                }
            }
            (None, None) => Mode::Hmac {
                key: DecodingKey::from_secret(DEV_JWT_SECRET.as_bytes()),
                development: true,
            },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                mode,
                verified: Verified::new(),
            }),
        })
    }

    /// `true` when tokens are verified with the public [`DEV_JWT_SECRET`].
    pub fn uses_development_secret(&self) -> bool {
        matches!(self.inner.mode, Mode::Hmac { development: true, .. })
    }

    /// Verifies signature, `exp` (leeway 30 s; also `nbf` when present), `iss`, `aud`
    /// and returns the claims.
    ///
    /// Accepts only HS256 when a secret (or the development default) is in force and
    /// no JWKS is configured; RS256/ES256 with a key from the JWKS selected by `kid`
    /// (a token without `kid` uses the set's only key of its algorithm). Any other
    /// header `alg` (`none`, HS256 with a JWKS, RS256 with a secret, …) is refused
    /// with [`AuthError::UnsupportedAlgorithm`] before any key is used.
    ///
    /// With a JWKS URL, an unknown `kid` triggers one refetch of the set (at most once
    /// per 60 s), so key rotation works without restarts.
    ///
    /// A token verified before under the same key set and still unexpired is answered from
    /// memory ([`Verified`]).
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let generation = match &self.inner.mode {
            Mode::Hmac { .. } => 0,
            Mode::Jwks(store) => store.generation.load(Ordering::Acquire),
        };
        let digest = Verified::digest(token);
        if let Some(claims) = self.inner.verified.get(&digest, generation) {
            return Ok(claims);
        }
        let claims = self.verify_in_full(token).await?;
        self.inner.verified.insert(digest, generation, claims.clone());
        Ok(claims)
    }

    async fn verify_in_full(&self, token: &str) -> Result<Claims, AuthError> {
        let header = parse_header(token)?;
        let (alg, key) = match &self.inner.mode {
            Mode::Hmac { key, .. } => {
                if header.alg != "HS256" {
                    return Err(unsupported_alg(&header.alg));
                }
                (Algorithm::HS256, key.clone())
            }
            Mode::Jwks(store) => {
                let alg = match header.alg.as_str() {
                    "RS256" => Algorithm::RS256,
                    "ES256" => Algorithm::ES256,
                    other => return Err(unsupported_alg(other)),
                };
                (alg, store.select(alg, header.kid.as_deref()).await?)
            }
        };

        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| map_jwt_error(&e, alg))?;
        claims_from_value(data.claims, &self.inner.audience)
    }
}

impl JwksStore {
    fn snapshot(&self) -> Arc<Vec<VerifyKey>> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Picks the key for `alg`/`kid`, refetching a JWKS URL once if it is unknown.
    async fn select(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        match find_key(&self.snapshot(), alg, kid) {
            Err(AuthError::UnknownKey { .. }) if matches!(self.source, JwksSource::Url { .. }) => {
                self.refetch_if_due().await;
                find_key(&self.snapshot(), alg, kid)
            }
            other => other,
        }
    }

    async fn refetch_if_due(&self) {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.elapsed() < self.min_refetch_interval {
            return;
        }
        *last_fetch = Instant::now();
        match self.source.load().await {
            Ok(keys) => {
                tracing::info!(
                    source = %self.source.describe(),
                    keys = keys.len(),
                    "refetched JWKS after an unknown key id"
                );
                *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS refetch failed; keeping the current key set");
            }
        }
    }
}

fn find_key(keys: &[VerifyKey], alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
    match kid {
        Some(kid) => {
            let mut with_kid = keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
            if with_kid.peek().is_none() {
                return Err(AuthError::UnknownKey {
                    kid: Some(sanitize_kid(kid)),
                });
            }
            match with_kid.find(|k| k.alg == alg) {
                Some(k) => Ok(k.key.clone()),
                None => Err(AuthError::UnsupportedAlgorithm(format!(
                    "{} for the key with kid `{}`",
                    alg_name(alg),
                    sanitize_kid(kid)
                ))),
            }
        }
        None => {
            let mut candidates = keys.iter().filter(|k| k.alg == alg);
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => Ok(k.key.clone()),
                _ => Err(AuthError::UnknownKey { kid: None }),
            }
        }
    }
}

impl JwksSource {
    fn parse(jwks: &str) -> Result<Self, AuthError> {
        let trimmed = jwks.trim();
        if trimmed.is_empty() {
            return Err(AuthError::KeySource("the JWKS location is empty".to_owned()));
        }
        let lower = trimmed.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Ok(JwksSource::File(PathBuf::from(trimmed)));
        }
        let url = reqwest::Url::parse(trimmed).map_err(|e| AuthError::KeySource(format!("invalid JWKS URL: {e}")))?;
        if url.scheme() == "http" && !is_loopback(&url) {
            tracing::warn!(
                url = %redact_url(&url),
                "JWKS is fetched over plain HTTP: use https outside local development"
            );
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .build()
            .map_err(|e| AuthError::KeySource(format!("cannot build HTTP client: {e}")))?;
        Ok(JwksSource::Url { url, client })
    }

    fn describe(&self) -> String {
        match self {
            JwksSource::File(path) => path.display().to_string(),
            JwksSource::Url { url, .. } => redact_url(url),
        }
    }

    async fn load(&self) -> Result<Vec<VerifyKey>, AuthError> {
        let text = match self {
            JwksSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| AuthError::KeySource(format!("cannot read JWKS file {}: {e}", path.display())))?,
            JwksSource::Url { url, client } => fetch_jwks(client, url).await?,
        };
        parse_jwks(&text, &self.describe())
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &reqwest::Url) -> Result<String, AuthError> {
    let shown = redact_url(url);
    let fail = |what: String| AuthError::KeySource(format!("cannot fetch JWKS from {shown}: {what}"));
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP status {status}")));
    }
    if response.content_length().is_some_and(|len| len > MAX_JWKS_BYTES as u64) {
        return Err(fail(format!("document larger than {MAX_JWKS_BYTES} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.without_url().to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err(fail(format!("document larger than {MAX_JWKS_BYTES} bytes")));
        }
    }
    String::from_utf8(body).map_err(|_| fail("document is not UTF-8".to_owned()))
}

/// Parses a JWK Set, keeping the RS256/ES256 signature keys and skipping (with a
/// warning) everything else. Fails if no usable key remains.
fn parse_jwks(text: &str, origin: &str) -> Result<Vec<VerifyKey>, AuthError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let set: RawSet =
        serde_json::from_str(text).map_err(|e| AuthError::KeySource(format!("{origin} is not a JWK Set: {e}")))?;
    let mut keys = Vec::new();
    for (index, raw) in set.keys.into_iter().enumerate() {
        match usable_key(raw) {
            Ok(key) => keys.push(key),
            Err(reason) => tracing::warn!(origin, index, reason, "skipping JWKS key"),
        }
    }
    if keys.is_empty() {
        return Err(AuthError::KeySource(format!(
            "{origin} contains no usable RS256/ES256 signature key"
        )));
    }
    Ok(keys)
}

fn usable_key(raw: Value) -> Result<VerifyKey, String> {
    let jwk: Jwk = serde_json::from_value(raw).map_err(|e| format!("unparsable JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key (use != sig)".to_owned());
    }
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RS256) | None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256) | None, AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (Some(alg), _) => {
            return Err(format!("algorithm {alg} is not accepted (RS256/ES256 only)"));
        }
        (None, _) => return Err("key type is not RSA or EC P-256".to_owned()),
    };
    if let AlgorithmParameters::RSA(p) = &jwk.algorithm {
        let n = URL_SAFE_NO_PAD
            .decode(&p.n)
            .map_err(|_| "RSA modulus is not base64url")?;
        let bits = n
            .iter()
            .position(|b| *b != 0)
            .map_or(0, |first| (n.len() - first) * 8 - n[first].leading_zeros() as usize);
        if bits < MIN_RSA_BITS {
            return Err(format!("RSA key has {bits} bits, at least {MIN_RSA_BITS} are required"));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
    // Builds the verifier once: rejects EC points that are not on the curve.
    jsonwebtoken::crypto::verify("", b"", &key, alg).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// Issues an HS256 development token (used by `vsys token issue` and tests).
/// `iat` is now and `exp` is now + `ttl` (a negative `ttl` yields an expired token).
pub fn issue_hs256(
    secret: &str,
    issuer: &str,
    audience: &str,
    sub: &str,
    role: &str,
    scope: Option<&str>,
    ttl: chrono::Duration,
) -> Result<String, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::Signing("the secret is empty".to_owned()));
    }
    let iat = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        role: role.to_owned(),
        scope: scope.map(str::to_owned),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        exp: iat.saturating_add(ttl.num_seconds()),
        iat,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Signing(e.to_string()))
}

/// Extracts the token from an `Authorization` header value: `Bearer <token>` (scheme
/// case-insensitive). `Ok(None)` when the header is absent; an error when it is
/// present but empty, of another scheme, or not a single token68 value.
pub fn bearer_token(header: Option<&str>) -> Result<Option<&str>, AuthError> {
    let Some(value) = header else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(AuthError::BadAuthorizationHeader("the header is empty"));
    }
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::BadAuthorizationHeader("expected the Bearer scheme"));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::BadAuthorizationHeader("the bearer token is missing"));
    }
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(AuthError::BadAuthorizationHeader(
            "the bearer token contains characters that are not allowed",
        ));
    }
    Ok(Some(token))
}

/// The parts of a JOSE header this module looks at before choosing a key.
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

fn parse_header(token: &str) -> Result<TokenHeader, AuthError> {
    if token.is_empty() {
        return Err(AuthError::Malformed("the token is empty"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed("the token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("a JWT has exactly three dot-separated parts"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed("the header or payload part is empty"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("the header is not base64url"))?;
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(AuthError::Malformed("the header is not a JSON object"));
    };
    if map.contains_key("crit") {
        return Err(AuthError::Malformed("critical header parameters are not supported"));
    }
    let alg = match map.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(AuthError::Malformed("the header has no alg")),
    };
    let kid = match map.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed("the header kid is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

fn unsupported_alg(alg: &str) -> AuthError {
    let shown = KNOWN_ALGS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(alg))
        .map_or_else(|| "(unrecognised)".to_owned(), |_| alg.to_owned());
    AuthError::UnsupportedAlgorithm(shown)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::HS256 => "HS256",
        _ => "(other)",
    }
}

/// A `kid` is quoted in errors only if it is short and plainly printable.
fn sanitize_kid(kid: &str) -> String {
    if kid.len() <= 64 && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
        kid.to_owned()
    } else {
        "(not shown)".to_owned()
    }
}

fn map_jwt_error(error: &jsonwebtoken::errors::Error, alg: Algorithm) -> AuthError {
    match error.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::UnsupportedAlgorithm(alg_name(alg).to_owned())
        }
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            AuthError::KeySource("the selected verification key is unusable".to_owned())
        }
        ErrorKind::Base64(_) => AuthError::Malformed("a part is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => AuthError::Malformed("the payload is not a JSON object"),
        _ => AuthError::Malformed("the token could not be decoded"),
    }
}

/// Turns the verified payload into [`Claims`], naming the first missing or mistyped claim.
fn claims_from_value(mut payload: Value, audience: &str) -> Result<Claims, AuthError> {
    let Some(obj) = payload.as_object_mut() else {
        return Err(AuthError::Malformed("the payload is not a JSON object"));
    };
    for name in REQUIRED_CLAIMS {
        if obj.get(name).is_none_or(Value::is_null) {
            return Err(AuthError::MissingClaim(name.to_owned()));
        }
    }
    // `aud` may be an array (RFC 7519); signature validation already checked it
    // contains our audience.
    if let Some(Value::Array(items)) = obj.get("aud") {
        if !items.iter().any(|item| item.as_str() == Some(audience)) {
            return Err(AuthError::WrongAudience);
        }
        obj.insert("aud".to_owned(), Value::String(audience.to_owned()));
    }
    for name in ["sub", "role", "iss", "aud"] {
        if !obj[name].is_string() {
            return Err(AuthError::InvalidClaim(name.to_owned()));
        }
    }
    for name in ["exp", "iat"] {
        if obj[name].as_i64().is_none() {
            return Err(AuthError::InvalidClaim(name.to_owned()));
        }
    }
    if obj.get("scope").is_some_and(|s| !(s.is_null() || s.is_string())) {
        return Err(AuthError::InvalidClaim("scope".to_owned()));
    }
    serde_json::from_value(payload).map_err(|_| AuthError::InvalidClaim("(claims)".to_owned()))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The URL without credentials, query or fragment, for messages and logs.
fn redact_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use serde_json::json;

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/jwt/");
    const SECRET: &str = "unit-test-secret-0123456789abcdef";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }

    fn fixture_path(name: &str) -> String {
        format!("{FIXTURES}{name}")
    }

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).expect("rsa fixture")
    }

    fn ec_key() -> EncodingKey {
        EncodingKey::from_ec_pem(&fixture("ec-private.pem")).expect("ec fixture")
    }

    fn ec_wrong_key() -> EncodingKey {
        EncodingKey::from_ec_pem(&fixture("ec-wrong-private.pem")).expect("ec-wrong fixture")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// Valid claims for the default settings; `null` in `changes` removes a claim.
    fn claims_with(changes: Value) -> Value {
        let mut claims = json!({
            "sub": "user-1",
            "role": "MUNICIPALITY",
            "scope": "131016",
            "iss": "vsys",
            "aud": "vsys",
            "iat": now(),
            "exp": now() + 300,
        });
        let map = claims.as_object_mut().unwrap();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                map.remove(name);
            } else {
                map.insert(name.clone(), value.clone());
            }
        }
        claims
    }

    fn valid_claims() -> Value {
        claims_with(json!({}))
    }

    fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    fn hs(secret: &str, claims: &Value) -> String {
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(secret.as_bytes()),
            None,
            claims,
        )
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// A token with an arbitrary header and an empty signature.
    fn unsigned(header: Value, claims: &Value) -> String {
        format!("{}.{}.", b64(&header), b64(claims))
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Valid,
        Fails(&'static str),
    }
    use Expect::{Fails, Valid};

    /// Exhaustive on purpose: a new variant must be added here (and so to the leak test).
    fn variant(error: &AuthError) -> &'static str {
        match error {
            AuthError::BadAuthorizationHeader(_) => "BadAuthorizationHeader",
            AuthError::Malformed(_) => "Malformed",
            AuthError::UnsupportedAlgorithm(_) => "UnsupportedAlgorithm",
            AuthError::BadSignature => "BadSignature",
            AuthError::Expired => "Expired",
            AuthError::NotYetValid => "NotYetValid",
            AuthError::WrongIssuer => "WrongIssuer",
            AuthError::WrongAudience => "WrongAudience",
            AuthError::UnknownKey { .. } => "UnknownKey",
            AuthError::MissingClaim(_) => "MissingClaim",
            AuthError::InvalidClaim(_) => "InvalidClaim",
            AuthError::KeySource(_) => "KeySource",
            AuthError::Signing(_) => "Signing",
        }
    }

    /// Neither the Display nor the Debug of `error` may contain `token` or a
    /// substantial part of it.
    fn assert_no_leak(error: &AuthError, token: &str) {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(token.is_empty() || !text.contains(token), "{text:?} leaks the token");
            for part in token.split('.').filter(|part| part.len() >= 12) {
                assert!(!text.contains(part), "{text:?} leaks a token part");
            }
        }
    }

    async fn run_table(auth: &Authenticator, cases: Vec<(&str, String, Expect)>) {
        let mut failures = Vec::new();
        for (name, token, expect) in &cases {
            let got = auth.verify(token).await;
            if let Err(error) = &got {
                assert_no_leak(error, token);
            }
            let ok = match (&got, expect) {
                (Ok(_), Valid) => true,
                (Err(error), Fails(want)) => variant(error) == *want,
                _ => false,
            };
            if !ok {
                failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    fn secret_settings() -> AuthSettings {
        AuthSettings {
            jwt_secret: Some(SECRET.to_owned()),
            ..AuthSettings::default()
        }
    }

    fn jwks_settings(location: String) -> AuthSettings {
        AuthSettings {
            jwks: Some(location),
            ..AuthSettings::default()
        }
    }

    fn fixture_jwks() -> Value {
        serde_json::from_slice(&fixture("jwks.json")).unwrap()
    }

    fn jwks_only(kids: &[&str]) -> String {
        let mut set = fixture_jwks();
        set["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|key| kids.contains(&key["kid"].as_str().unwrap()));
        set.to_string()
    }

    fn temp_file(name: &str, contents: &str) -> String {
        let path = std::env::temp_dir().join(format!("vsys-auth-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    #[tokio::test]
    async fn hs256_table() {
        let auth = Authenticator::new(&secret_settings()).await.unwrap();
        assert!(!auth.uses_development_secret());
        let valid = hs(SECRET, &valid_claims());
        let mut tampered: Vec<&str> = valid.split('.').collect();
        let other_payload = b64(&claims_with(json!({"role": "NATIONAL"})));
        tampered[1] = &other_payload;
        let tampered = tampered.join(".");
        let rsa = sign(Algorithm::RS256, &rsa_key(), None, &valid_claims());
        let hs512 = sign(
            Algorithm::HS512,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            None,
            &valid_claims(),
        );
        let with_crit = {
            let mut header = Header::new(Algorithm::HS256);
            header.crit = Some(vec!["exp".to_owned()]);
            jsonwebtoken::encode(&header, &valid_claims(), &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
        };

        let c = |changes: Value| hs(SECRET, &claims_with(changes));
        #[rustfmt::skip]
        let cases = vec![
            ("valid", valid.clone(), Valid),
            ("valid without scope", c(json!({"scope": null})), Valid),
            ("aud array containing us", c(json!({"aud": ["x", "vsys"]})), Valid),
            ("expired within leeway", c(json!({"exp": now() - 10})), Valid),
            ("nbf within leeway", c(json!({"nbf": now() + 10})), Valid),
            ("wrong secret", hs("another-secret", &valid_claims()), Fails("BadSignature")),
            ("tampered payload", tampered, Fails("BadSignature")),
            ("expired", c(json!({"exp": now() - 120})), Fails("Expired")),
            ("nbf in future", c(json!({"nbf": now() + 300})), Fails("NotYetValid")),
            ("wrong iss", c(json!({"iss": "someone-else"})), Fails("WrongIssuer")),
            ("wrong aud", c(json!({"aud": "other-api"})), Fails("WrongAudience")),
            ("aud array without us", c(json!({"aud": ["a", "b"]})), Fails("WrongAudience")),
            ("missing role", c(json!({"role": null})), Fails("MissingClaim")),
            ("missing iat", c(json!({"iat": null})), Fails("MissingClaim")),
            ("missing exp", c(json!({"exp": null})), Fails("MissingClaim")),
            ("missing iss", c(json!({"iss": null})), Fails("MissingClaim")),
            ("missing sub", c(json!({"sub": null})), Fails("MissingClaim")),
            // jsonwebtoken counts an unparsable required `exp` as absent.
            ("exp not a number", c(json!({"exp": "tomorrow"})), Fails("MissingClaim")),
            ("iat not a number", c(json!({"iat": "today"})), Fails("InvalidClaim")),
            ("role not a string", c(json!({"role": 7})), Fails("InvalidClaim")),
            ("scope not a string", c(json!({"scope": 131016})), Fails("InvalidClaim")),
            ("alg none", unsigned(json!({"alg": "none", "typ": "JWT"}), &valid_claims()), Fails("UnsupportedAlgorithm")),
            ("alg None", unsigned(json!({"alg": "None"}), &valid_claims()), Fails("UnsupportedAlgorithm")),
            ("alg NONE", unsigned(json!({"alg": "NONE"}), &valid_claims()), Fails("UnsupportedAlgorithm")),
            ("RS256 when only HS256", rsa, Fails("UnsupportedAlgorithm")),
            ("HS512", hs512, Fails("UnsupportedAlgorithm")),
            ("alg missing", unsigned(json!({"typ": "JWT"}), &valid_claims()), Fails("Malformed")),
            ("crit header", with_crit, Fails("Malformed")),
            ("empty", String::new(), Fails("Malformed")),
            ("not a jwt", "not-a-jwt".to_owned(), Fails("Malformed")),
            ("two parts", valid.rsplit_once('.').unwrap().0.to_owned(), Fails("Malformed")),
            ("four parts", format!("{valid}.x"), Fails("Malformed")),
            ("header not base64", format!("!!!.{}", valid.split_once('.').unwrap().1), Fails("Malformed")),
            ("header not json", format!("bm9wZQ.{}", valid.split_once('.').unwrap().1), Fails("Malformed")),
            ("too long", format!("{valid}{}", "A".repeat(MAX_TOKEN_LEN)), Fails("Malformed")),
        ];
        run_table(&auth, cases).await;
    }

    #[tokio::test]
    async fn issued_token_round_trips_to_the_same_claims() {
        let auth = Authenticator::new(&secret_settings()).await.unwrap();
        let token = issue_hs256(
            SECRET,
            "vsys",
            "vsys",
            "user-9",
            "MUNICIPALITY",
            Some("131016"),
            chrono::Duration::minutes(5),
        )
        .unwrap();
        let claims = auth.verify(&token).await.unwrap();
        assert_eq!(claims.sub, "user-9");
        assert_eq!(claims.role, "MUNICIPALITY");
        assert_eq!(claims.scope.as_deref(), Some("131016"));
        assert_eq!((claims.iss.as_str(), claims.aud.as_str()), ("vsys", "vsys"));
        assert_eq!(claims.exp - claims.iat, 300);
        assert!((claims.iat - now()).abs() <= 5);

        let unscoped = issue_hs256(
            SECRET,
            "vsys",
            "vsys",
            "u",
            "NATIONAL",
            None,
            chrono::Duration::hours(1),
        )
        .unwrap();
        let payload = URL_SAFE_NO_PAD.decode(unscoped.split('.').nth(1).unwrap()).unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert!(payload.get("scope").is_none(), "absent scope is not serialised");
        assert_eq!(auth.verify(&unscoped).await.unwrap().scope, None);

        let expired = issue_hs256(
            SECRET,
            "vsys",
            "vsys",
            "u",
            "NATIONAL",
            None,
            chrono::Duration::minutes(-5),
        )
        .unwrap();
        assert_eq!(auth.verify(&expired).await, Err(AuthError::Expired));

        let custom = AuthSettings {
            jwt_secret: Some(SECRET.to_owned()),
            jwks: None,
            issuer: "https://idp.example".to_owned(),
            audience: "vaccines".to_owned(),
        };
        let custom = Authenticator::new(&custom).await.unwrap();
        let token = issue_hs256(
            SECRET,
            "https://idp.example",
            "vaccines",
            "u",
            "NATIONAL",
            None,
            chrono::Duration::minutes(1),
        )
        .unwrap();
        assert!(custom.verify(&token).await.is_ok());
        assert_eq!(auth.verify(&token).await, Err(AuthError::WrongIssuer));

        assert!(matches!(
            issue_hs256("", "vsys", "vsys", "u", "r", None, chrono::Duration::minutes(1)),
            Err(AuthError::Signing(_))
        ));
    }

    #[tokio::test]
    async fn development_secret_is_the_fallback_only() {
        let dev = Authenticator::new(&AuthSettings::default()).await.unwrap();
        assert!(dev.uses_development_secret());
        let token = hs(DEV_JWT_SECRET, &valid_claims());
        assert!(dev.verify(&token).await.is_ok());
        assert_eq!(
            dev.verify(&hs(SECRET, &valid_claims())).await,
            Err(AuthError::BadSignature)
        );

        let configured = Authenticator::new(&secret_settings()).await.unwrap();
        assert!(!configured.uses_development_secret());
        assert_eq!(configured.verify(&token).await, Err(AuthError::BadSignature));

        let jwks = Authenticator::new(&jwks_settings(fixture_path("jwks.json")))
            .await
            .unwrap();
        assert!(!jwks.uses_development_secret());
        assert!(matches!(
            jwks.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm(_))
        ));

        let empty = AuthSettings {
            jwt_secret: Some(String::new()),
            ..AuthSettings::default()
        };
        assert!(matches!(Authenticator::new(&empty).await, Err(AuthError::KeySource(_))));
        let debug = format!("{:?}{:?}", secret_settings(), configured);
        assert!(!debug.contains(SECRET), "Debug must not show the secret: {debug}");
    }

    #[tokio::test]
    async fn jwks_file_table() {
        let auth = Authenticator::new(&jwks_settings(fixture_path("jwks.json")))
            .await
            .unwrap();
        let claims = valid_claims();
        let rsa_pem = fixture("rsa-public.pem");
        let ec_pem = fixture("ec-public.pem");
        // The classic confusion attack: HMAC keyed with the server's public key bytes.
        let forged_rsa = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(&rsa_pem),
            Some("rsa-1"),
            &claims,
        );
        let forged_ec = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(&ec_pem),
            Some("ec-1"),
            &claims,
        );
        let es = |kid: Option<&str>, claims: &Value| sign(Algorithm::ES256, &ec_key(), kid, claims);
        let rs = |kid: Option<&str>, claims: &Value| sign(Algorithm::RS256, &rsa_key(), kid, claims);
        #[rustfmt::skip]
        let cases = vec![
            ("RS256 kid rsa-1", rs(Some("rsa-1"), &claims), Valid),
            ("ES256 kid ec-1", es(Some("ec-1"), &claims), Valid),
            ("RS256 without kid", rs(None, &claims), Valid),
            ("ES256 without kid", es(None, &claims), Valid),
            ("ES256 wrong key", sign(Algorithm::ES256, &ec_wrong_key(), Some("ec-1"), &claims), Fails("BadSignature")),
            ("ES256 wrong key no kid", sign(Algorithm::ES256, &ec_wrong_key(), None, &claims), Fails("BadSignature")),
            ("unknown kid", es(Some("ec-9"), &claims), Fails("UnknownKey")),
            ("ES256 with the RSA kid", es(Some("rsa-1"), &claims), Fails("UnsupportedAlgorithm")),
            ("RS256 with the EC kid", rs(Some("ec-1"), &claims), Fails("UnsupportedAlgorithm")),
            ("HS256 keyed with RSA public PEM", forged_rsa, Fails("UnsupportedAlgorithm")),
            ("HS256 keyed with EC public PEM", forged_ec, Fails("UnsupportedAlgorithm")),
            ("HS256 with a secret", hs(SECRET, &claims), Fails("UnsupportedAlgorithm")),
            ("PS256 with the RSA key", sign(Algorithm::PS256, &rsa_key(), Some("rsa-1"), &claims), Fails("UnsupportedAlgorithm")),
            ("RS512 with the RSA key", sign(Algorithm::RS512, &rsa_key(), Some("rsa-1"), &claims), Fails("UnsupportedAlgorithm")),
            ("alg none with kid", unsigned(json!({"alg": "none", "kid": "rsa-1"}), &claims), Fails("UnsupportedAlgorithm")),
            ("RS256 expired", rs(Some("rsa-1"), &claims_with(json!({"exp": now() - 600}))), Fails("Expired")),
            ("ES256 wrong aud", es(Some("ec-1"), &claims_with(json!({"aud": "x"}))), Fails("WrongAudience")),
            ("ES256 wrong iss", es(Some("ec-1"), &claims_with(json!({"iss": "x"}))), Fails("WrongIssuer")),
        ];
        run_table(&auth, cases).await;

        // A secret configured alongside a JWKS does not re-enable HS256.
        let both = AuthSettings {
            jwt_secret: Some(SECRET.to_owned()),
            ..jwks_settings(fixture_path("jwks.json"))
        };
        let both = Authenticator::new(&both).await.unwrap();
        assert!(matches!(
            both.verify(&hs(SECRET, &claims)).await,
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        let ok = sign(Algorithm::ES256, &ec_key(), Some("ec-1"), &claims);
        let verified = both.verify(&ok).await.unwrap();
        assert_eq!(verified.role, "MUNICIPALITY");
        assert_eq!(verified.scope.as_deref(), Some("131016"));
    }

    #[test]
    fn fixture_jwks_matches_the_private_keys() {
        let set = fixture_jwks();
        let rsa = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
        let AlgorithmParameters::RSA(rsa) = rsa.algorithm else {
            panic!("not RSA")
        };
        assert_eq!(set["keys"][0]["kid"], "rsa-1");
        assert_eq!(set["keys"][0]["n"], rsa.n.as_str());
        assert_eq!(set["keys"][0]["e"], rsa.e.as_str());
        let ec = Jwk::from_encoding_key(&ec_key(), Algorithm::ES256).unwrap();
        let AlgorithmParameters::EllipticCurve(ec) = ec.algorithm else {
            panic!("not EC")
        };
        assert_eq!(set["keys"][1]["kid"], "ec-1");
        assert_eq!(set["keys"][1]["x"], ec.x.as_str());
        assert_eq!(set["keys"][1]["y"], ec.y.as_str());
        for text in [set.to_string(), String::from_utf8(fixture("jwks.json")).unwrap()] {
            assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        }
    }

    #[tokio::test]
    async fn jwks_key_selection_and_filtering() {
        // Two ES256 keys: a token without kid is ambiguous, with kid it is fine.
        let mut wrong = Jwk::from_encoding_key(&ec_wrong_key(), Algorithm::ES256).unwrap();
        wrong.common.key_id = Some("ec-2".to_owned());
        let mut set = fixture_jwks();
        set["keys"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::to_value(&wrong).unwrap());
        let path = temp_file("two-ec.json", &set.to_string());
        let auth = Authenticator::new(&jwks_settings(path.clone())).await.unwrap();
        let claims = valid_claims();
        #[rustfmt::skip]
        let cases = vec![
            ("ES256 no kid, two EC keys", sign(Algorithm::ES256, &ec_key(), None, &claims), Fails("UnknownKey")),
            ("ES256 kid ec-2", sign(Algorithm::ES256, &ec_wrong_key(), Some("ec-2"), &claims), Valid),
            ("ES256 kid ec-1", sign(Algorithm::ES256, &ec_key(), Some("ec-1"), &claims), Valid),
            ("ec-1 token claimed as ec-2", sign(Algorithm::ES256, &ec_key(), Some("ec-2"), &claims), Fails("BadSignature")),
            ("RS256 no kid, one RSA key", sign(Algorithm::RS256, &rsa_key(), None, &claims), Valid),
        ];
        run_table(&auth, cases).await;
        std::fs::remove_file(path).ok();

        // Symmetric, encryption, foreign-algorithm and broken keys are never loaded.
        let mut set = fixture_jwks();
        let keys = set["keys"].as_array_mut().unwrap();
        let mut enc = keys[1].clone();
        enc["kid"] = json!("ec-enc");
        enc["use"] = json!("enc");
        let mut off_curve = keys[1].clone();
        off_curve["kid"] = json!("ec-bad");
        off_curve["y"] = off_curve["x"].clone();
        let mut ps = keys[0].clone();
        ps["kid"] = json!("rsa-ps");
        ps["alg"] = json!("PS256");
        let secret_b64 = URL_SAFE_NO_PAD.encode(SECRET);
        keys.push(json!({"kty": "oct", "kid": "hmac", "alg": "HS256", "k": secret_b64}));
        keys.push(enc);
        keys.push(off_curve);
        keys.push(ps);
        let n_1024_bits = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        keys.push(json!({"kty": "RSA", "kid": "rsa-small", "alg": "RS256", "n": n_1024_bits, "e": "AQAB"}));
        keys.push(json!({"kty": "weird"}));
        let path = temp_file("mixed.json", &set.to_string());
        let auth = Authenticator::new(&jwks_settings(path.clone())).await.unwrap();
        let Mode::Jwks(store) = &auth.inner.mode else {
            panic!("JWKS mode")
        };
        let mut kids: Vec<_> = store.snapshot().iter().filter_map(|k| k.kid.clone()).collect();
        kids.sort();
        assert_eq!(kids, ["ec-1", "rsa-1"]);
        let hmac = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Some("hmac"),
            &claims,
        );
        assert!(matches!(
            auth.verify(&hmac).await,
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        let rs_with_hmac_kid = sign(Algorithm::RS256, &rsa_key(), Some("hmac"), &claims);
        assert!(matches!(
            auth.verify(&rs_with_hmac_kid).await,
            Err(AuthError::UnknownKey { .. })
        ));
        std::fs::remove_file(path).ok();
    }

    #[tokio::test]
    async fn jwks_load_failures_are_key_source_errors() {
        let only_oct = temp_file(
            "only-oct.json",
            &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}).to_string(),
        );
        let not_json = temp_file("not-json.json", "this is not json");
        let no_keys = temp_file("no-keys.json", r#"{"keys": []}"#);
        for location in [
            fixture_path("does-not-exist.json"),
            only_oct.clone(),
            not_json.clone(),
            no_keys.clone(),
            "   ".to_owned(),
            "https://".to_owned(),
        ] {
            match Authenticator::new(&jwks_settings(location.clone())).await {
                Err(AuthError::KeySource(message)) => assert!(!message.is_empty()),
                other => panic!("{location}: expected KeySource, got {other:?}"),
            }
        }
        for path in [only_oct, not_json, no_keys] {
            std::fs::remove_file(path).ok();
        }
    }

    #[derive(Clone)]
    struct JwksServer {
        body: Arc<Mutex<String>>,
        hits: Arc<AtomicUsize>,
    }

    async fn serve_jwks(State(server): State<JwksServer>) -> impl axum::response::IntoResponse {
        server.hits.fetch_add(1, Ordering::SeqCst);
        let body = server.body.lock().unwrap().clone();
        ([(header::CONTENT_TYPE, "application/json")], body)
    }

    /// Serves `body` at `/jwks.json` (and a 500 at `/broken`) on 127.0.0.1:0.
    async fn start_jwks_server(body: String) -> (String, JwksServer) {
        let server = JwksServer {
            body: Arc::new(Mutex::new(body)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route("/broken", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, server)
    }

    #[tokio::test]
    async fn jwks_over_http() {
        let jwks = String::from_utf8(fixture("jwks.json")).unwrap();
        let (base, server) = start_jwks_server(jwks).await;
        let auth = Authenticator::new(&jwks_settings(format!("{base}/jwks.json")))
            .await
            .unwrap();
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);
        let claims = valid_claims();
        #[rustfmt::skip]
        let cases = vec![
            ("RS256", sign(Algorithm::RS256, &rsa_key(), Some("rsa-1"), &claims), Valid),
            ("ES256", sign(Algorithm::ES256, &ec_key(), Some("ec-1"), &claims), Valid),
            ("ES256 wrong key", sign(Algorithm::ES256, &ec_wrong_key(), Some("ec-1"), &claims), Fails("BadSignature")),
            ("HS256", hs(SECRET, &claims), Fails("UnsupportedAlgorithm")),
        ];
        run_table(&auth, cases).await;

        for path in ["/broken", "/missing"] {
            match Authenticator::new(&jwks_settings(format!("{base}{path}"))).await {
                Err(AuthError::KeySource(message)) => {
                    assert!(message.contains("HTTP status"), "{message}")
                }
                other => panic!("{path}: expected KeySource, got {other:?}"),
            }
        }
        // Nothing listens on port 9 of loopback (discard): connection refused.
        assert!(matches!(
            Authenticator::new(&jwks_settings("http://127.0.0.1:9/jwks.json".to_owned())).await,
            Err(AuthError::KeySource(_))
        ));
    }

    #[tokio::test]
    async fn jwks_url_refetches_on_unknown_kid_at_most_once_per_interval() {
        let ec_token = sign(Algorithm::ES256, &ec_key(), Some("ec-1"), &valid_claims());

        // Rotation: the IdP starts serving ec-1 after we loaded the set.
        let (base, server) = start_jwks_server(jwks_only(&["rsa-1"])).await;
        let settings = jwks_settings(format!("{base}/jwks.json"));
        let auth = Authenticator::with_refetch_interval(&settings, Duration::ZERO)
            .await
            .unwrap();
        *server.body.lock().unwrap() = jwks_only(&["rsa-1", "ec-1"]);
        assert!(auth.verify(&ec_token).await.is_ok());
        assert_eq!(server.hits.load(Ordering::SeqCst), 2, "one refetch for the unknown kid");
        assert!(auth.verify(&ec_token).await.is_ok());
        assert_eq!(server.hits.load(Ordering::SeqCst), 2, "known kid: no refetch");
        let unknown = sign(Algorithm::ES256, &ec_key(), Some("ec-9"), &valid_claims());
        assert!(matches!(auth.verify(&unknown).await, Err(AuthError::UnknownKey { .. })));
        assert_eq!(server.hits.load(Ordering::SeqCst), 3, "exactly one refetch per attempt");
        // A failing refetch keeps the current keys.
        *server.body.lock().unwrap() = "garbage".to_owned();
        assert!(matches!(auth.verify(&unknown).await, Err(AuthError::UnknownKey { .. })));
        assert!(auth.verify(&ec_token).await.is_ok());

        // Rate limit: with the real interval, the initial load counts as the last fetch.
        let (base, server) = start_jwks_server(jwks_only(&["rsa-1"])).await;
        let auth = Authenticator::new(&jwks_settings(format!("{base}/jwks.json")))
            .await
            .unwrap();
        *server.body.lock().unwrap() = jwks_only(&["rsa-1", "ec-1"]);
        for _ in 0..3 {
            assert!(matches!(
                auth.verify(&ec_token).await,
                Err(AuthError::UnknownKey { .. })
            ));
        }
        assert_eq!(server.hits.load(Ordering::SeqCst), 1, "no refetch within 60 s");

        // A JWKS file is never re-read.
        let auth = Authenticator::with_refetch_interval(
            &jwks_settings(temp_file("rsa-only.json", &jwks_only(&["rsa-1"]))),
            Duration::ZERO,
        )
        .await
        .unwrap();
        assert!(matches!(
            auth.verify(&ec_token).await,
            Err(AuthError::UnknownKey { .. })
        ));
    }

    /// A remembered token is answered only under the key set that verified it: once the set
    /// is refetched without its key, the token is refused like any token of an unknown key.
    #[tokio::test]
    async fn a_refetched_key_set_forgets_tokens_verified_before() {
        let rsa_token = sign(Algorithm::RS256, &rsa_key(), Some("rsa-1"), &valid_claims());
        let ec_token = sign(Algorithm::ES256, &ec_key(), Some("ec-1"), &valid_claims());
        let (base, server) = start_jwks_server(jwks_only(&["rsa-1"])).await;
        let auth = Authenticator::with_refetch_interval(&jwks_settings(format!("{base}/jwks.json")), Duration::ZERO)
            .await
            .unwrap();
        assert!(auth.verify(&rsa_token).await.is_ok());
        assert!(auth.verify(&rsa_token).await.is_ok(), "remembered");
        // The IdP rotates rsa-1 out; the next unknown kid refetches the set.
        *server.body.lock().unwrap() = jwks_only(&["ec-1"]);
        assert!(auth.verify(&ec_token).await.is_ok());
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
        assert!(matches!(
            auth.verify(&rsa_token).await,
            Err(AuthError::UnknownKey { .. })
        ));
    }

    /// The pure rule of a remembered token: unexpired (with the verifier's leeway) and of the
    /// same key set, or verified again in full.
    #[test]
    fn a_remembered_token_is_answered_while_unexpired_under_its_key_set() {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
        let leeway = i64::try_from(LEEWAY_SECS).unwrap();
        let claims = |exp: i64| Claims {
            exp,
            ..serde_json::from_value(claims_with(json!({}))).unwrap()
        };
        #[rustfmt::skip]
        let cases = [
            // (exp, generation stored, generation now, answered)
            (now + 600,        3, 3, true),
            (now - leeway + 5, 3, 3, true),
            (now - leeway - 5, 3, 3, false),
            (now + 600,        3, 4, false),
        ];
        for (i, (exp, stored, current, answered)) in cases.into_iter().enumerate() {
            let verified = Verified::new();
            let digest = Verified::digest(&format!("token-{i}"));
            verified.insert(digest, stored, claims(exp));
            assert_eq!(verified.get(&digest, current).is_some(), answered, "case {i}");
            assert!(verified.get(&Verified::digest("another"), current).is_none());
        }
    }

    #[test]
    fn bearer_header_parsing() {
        type Case = (Option<&'static str>, Result<Option<&'static str>, ()>);
        let cases: Vec<Case> = vec![
            (None, Ok(None)),
            (Some("Bearer abc.def.ghi"), Ok(Some("abc.def.ghi"))),
            (Some("bearer abc.def.ghi"), Ok(Some("abc.def.ghi"))),
            (Some("BEARER   abc  "), Ok(Some("abc"))),
            (Some("  Bearer\tabc"), Ok(Some("abc"))),
            (Some("Bearer a-b_c~d+e/f=="), Ok(Some("a-b_c~d+e/f=="))),
            (Some(""), Err(())),
            (Some("   "), Err(())),
            (Some("Bearer"), Err(())),
            (Some("Bearer   "), Err(())),
            (Some("Bearer =="), Err(())),
            (Some("Basic dXNlcjpwYXNz"), Err(())),
            (Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"), Err(())),
            (Some("Bearereyabc"), Err(())),
            (Some("Bearer abc def"), Err(())),
            (Some("Bearer abc,def"), Err(())),
            (Some("Bearer abc\"def"), Err(())),
        ];
        for (input, want) in cases {
            let got = bearer_token(input);
            match (&got, want) {
                (Ok(token), Ok(expected)) => assert_eq!(*token, expected, "{input:?}"),
                (Err(error @ AuthError::BadAuthorizationHeader(_)), Err(())) => {
                    let text = error.to_string();
                    let token = input.unwrap().trim();
                    let token = token.split_once(' ').map_or(token, |(_, rest)| rest).trim();
                    if !token.is_empty() && token.len() > 3 {
                        assert!(!text.contains(token), "{text:?} echoes the header");
                    }
                }
                _ => panic!("{input:?}: expected {want:?}, got {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn errors_never_contain_the_token() {
        let auth = Authenticator::new(&jwks_settings(fixture_path("jwks.json")))
            .await
            .unwrap();
        let real = sign(Algorithm::RS256, &rsa_key(), Some("rsa-1"), &valid_claims());
        // Attacker-chosen header values that are (parts of) a token are not echoed.
        let hostile = [
            unsigned(json!({"alg": real.clone()}), &valid_claims()),
            unsigned(json!({"alg": "RS256", "kid": real.clone()}), &valid_claims()),
            unsigned(
                json!({"alg": "ES256", "kid": real.split('.').nth(1).unwrap()}),
                &valid_claims(),
            ),
            unsigned(json!({"alg": "RS256", "kid": "line\nbreak"}), &valid_claims()),
        ];
        for token in &hostile {
            let error = auth.verify(token).await.unwrap_err();
            assert_no_leak(&error, token);
            assert_no_leak(&error, &real);
            assert!(!error.to_string().contains('\n'));
        }
        // Every variant's message, with a token-looking value in every field a
        // message can carry, still does not contain a token.
        let every = [
            AuthError::BadAuthorizationHeader("expected the Bearer scheme"),
            AuthError::Malformed("the token is empty"),
            unsupported_alg(&real),
            unsupported_alg("none"),
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongIssuer,
            AuthError::WrongAudience,
            AuthError::UnknownKey {
                kid: Some(sanitize_kid(&real)),
            },
            AuthError::UnknownKey { kid: None },
            AuthError::MissingClaim("role".to_owned()),
            AuthError::InvalidClaim("exp".to_owned()),
            AuthError::KeySource("cannot read JWKS file x".to_owned()),
            AuthError::Signing("the secret is empty".to_owned()),
        ];
        for error in &every {
            assert!(!error.to_string().is_empty(), "{}", variant(error));
            assert_no_leak(error, &real);
        }
        assert_eq!(
            unsupported_alg("none").to_string(),
            "token algorithm none is not accepted"
        );
        assert!(!AuthError::KeySource(String::new()).is_credential_error());
        assert!(AuthError::Expired.is_credential_error());
    }

    #[test]
    fn url_redaction_and_loopback() {
        let url = reqwest::Url::parse("https://user:pw@idp.example/keys?token=abc#x").unwrap();
        assert_eq!(redact_url(&url), "https://idp.example/keys");
        for (url, loopback) in [
            ("http://127.0.0.1:8080/j", true),
            ("http://localhost/j", true),
            ("http://[::1]:1/j", true),
            ("http://keycloak:8080/j", false),
        ] {
            assert_eq!(is_loopback(&reqwest::Url::parse(url).unwrap()), loopback, "{url}");
        }
    }
}
