//! Protection of My Number at rest: AES-256-GCM encryption with the key id stored beside the
//! ciphertext (so keys can rotate: new data is sealed with the current key, old data opens
//! with the key it names), and a keyed hash (HMAC-SHA256) for lookup without decrypting.
//!
//! Built on `ring` (already in the build through rustls). Keys come from configuration as
//! `id:base64` pairs; nothing here logs, formats or returns the plaintext except
//! [`PersonalKeys::open`], whose caller must be allowed to read it.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::codes::MyNumber;

/// Why keys could not be loaded or a value could not be sealed or opened. Messages never hold
/// key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("personal data keys: {0}")]
    Config(String),
    #[error("the data was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the sealed data does not open with its key (damaged, or moved from another record)")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// A sealed value as stored: the key id and `nonce ‖ ciphertext ‖ tag` in base64.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The configured keys: encryption keys by id (the first configured is current) and the
/// lookup-hash key.
pub struct PersonalKeys {
    current: String,
    keys: HashMap<String, LessSafeKey>,
    lookup: hmac::Key,
    rng: SystemRandom,
}

impl fmt::Debug for PersonalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("PersonalKeys")
            .field("current", &self.current)
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

fn key_bytes(what: &str, b64: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = B64
        .decode(b64.trim())
        .map_err(|_| KeyError::Config(format!("{what} is not base64")))?;
    if bytes.len() != 32 {
        return Err(KeyError::Config(format!(
            "{what} must be 32 bytes, got {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

impl PersonalKeys {
    /// `encryption` is `id:base64[,id:base64…]` (32-byte keys; the first is current, the others
    /// only open older data); `lookup` is a base64 32-byte HMAC key. The lookup key cannot
    /// rotate without rehashing every person (`lookup_hash` values are compared as stored).
    pub fn parse(encryption: &str, lookup: &str) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        let mut current = None;
        for (i, pair) in encryption
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let (id, b64) = pair
                .split_once(':')
                .ok_or_else(|| KeyError::Config(format!("key {} must be written id:base64", i + 1)))?;
            let id = id.trim();
            if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(KeyError::Config(format!(
                    "key {} has an id that is not 1-32 letters, digits, - or _",
                    i + 1
                )));
            }
            let bytes = key_bytes(&format!("key {id}"), b64)?;
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyError::Config(format!("key {id}")))?;
            if keys.insert(id.to_owned(), LessSafeKey::new(unbound)).is_some() {
                return Err(KeyError::Config(format!("key id {id} appears twice")));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or_else(|| KeyError::Config("no encryption key configured".into()))?;
        let lookup = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes("the lookup key", lookup)?);
        Ok(PersonalKeys {
            current,
            keys,
            lookup,
            rng: SystemRandom::new(),
        })
    }

    /// The id new data is sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Encrypts `plaintext` with the current key. `context` (e.g. the person's id) is bound
    /// to the ciphertext as associated data: a blob copied to another record does not open.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Sealed, KeyError> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| KeyError::UnknownKey(self.current.clone()))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut in_out,
        )
        .map_err(|_| KeyError::Random)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&in_out);
        Ok(Sealed {
            key_id: self.current.clone(),
            blob: B64.encode(blob),
        })
    }

    /// Decrypts a sealed value with the key it names.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, KeyError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| KeyError::UnknownKey(sealed.key_id.clone()))?;
        let raw = B64.decode(&sealed.blob).map_err(|_| KeyError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(KeyError::Open);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Open)?;
        let mut in_out = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| KeyError::Open)?;
        Ok(plain.to_vec())
    }

    /// Seals a My Number.
    pub fn seal_my_number(&self, n: &MyNumber, context: &str) -> Result<Sealed, KeyError> {
        self.seal(n.expose().as_bytes(), context)
    }

    /// Opens a sealed My Number.
    pub fn open_my_number(&self, sealed: &Sealed, context: &str) -> Result<MyNumber, KeyError> {
        let plain = self.open(sealed, context)?;
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|s| MyNumber::parse(s).ok())
            .ok_or(KeyError::Open)
    }

    /// The lookup hash of a My Number: HMAC-SHA256 under the lookup key, hex. Equal numbers
    /// give equal hashes; without the key the hash reveals nothing (the 10¹¹ possible numbers
    /// could be enumerated against a plain hash, not against a keyed one).
    pub fn lookup_hash(&self, n: &MyNumber) -> String {
        let tag = hmac::sign(&self.lookup, n.expose().as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(byte: u8) -> String {
        B64.encode([byte; 32])
    }

    fn keys(spec: &str) -> PersonalKeys {
        PersonalKeys::parse(spec, &b64(9)).expect("valid keys")
    }

    fn number() -> MyNumber {
        "123456789018".parse().expect("valid")
    }

    #[test]
    fn seals_and_opens_and_binds_the_context() {
        let k = keys(&format!("k1:{}", b64(1)));
        let sealed = k.seal_my_number(&number(), "person:1").expect("seal");
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.blob.contains("123456789018"));
        assert_eq!(k.open_my_number(&sealed, "person:1"), Ok(number()));
        // Moved to another record: refused.
        assert_eq!(k.open_my_number(&sealed, "person:2"), Err(KeyError::Open));
        // Two seals of the same value differ (fresh nonce each time).
        assert_ne!(k.seal_my_number(&number(), "person:1").expect("seal").blob, sealed.blob);
        // A flipped bit is detected.
        let mut raw = B64.decode(&sealed.blob).expect("b64");
        raw[NONCE_LEN] ^= 1;
        let damaged = Sealed {
            key_id: "k1".into(),
            blob: B64.encode(raw),
        };
        assert_eq!(k.open_my_number(&damaged, "person:1"), Err(KeyError::Open));
    }

    #[test]
    fn keys_rotate_old_data_still_opens() {
        let old = keys(&format!("k1:{}", b64(1)));
        let sealed_old = old.seal_my_number(&number(), "p").expect("seal");
        let rotated = keys(&format!("k2:{}, k1:{}", b64(2), b64(1)));
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(rotated.open_my_number(&sealed_old, "p"), Ok(number()));
        let sealed_new = rotated.seal_my_number(&number(), "p").expect("seal");
        assert_eq!(sealed_new.key_id, "k2");
        assert_eq!(
            old.open_my_number(&sealed_new, "p"),
            Err(KeyError::UnknownKey("k2".into()))
        );
    }

    #[test]
    fn lookup_hash_is_keyed_and_stable() {
        let a = keys(&format!("k1:{}", b64(1)));
        let b = PersonalKeys::parse(&format!("k1:{}", b64(1)), &b64(8)).expect("valid");
        let h = a.lookup_hash(&number());
        assert_eq!(h.len(), 64);
        assert_eq!(h, a.lookup_hash(&number()));
        assert_ne!(h, b.lookup_hash(&number()));
        assert_ne!(h, a.lookup_hash(&"000000000000".parse().expect("valid")));
    }

    #[test]
    fn bad_configuration_is_refused_without_echoing_keys() {
        let secret = b64(1);
        let cases = [
            (String::new(), "no encryption key configured"),
            (secret.clone(), "must be written id:base64"),
            (format!("k1:{}", B64.encode([1u8; 16])), "must be 32 bytes, got 16"),
            ("k1:not base64!".to_owned(), "is not base64"),
            (format!("k 1:{secret}"), "has an id that is not"),
            (format!("k1:{secret},k1:{secret}"), "appears twice"),
        ];
        for (spec, reason) in cases {
            let e = PersonalKeys::parse(&spec, &b64(9)).expect_err(&spec);
            assert!(e.to_string().contains(reason), "{spec}: {e}");
            assert!(!e.to_string().contains(&secret), "{e} echoes the key");
        }
        assert!(PersonalKeys::parse(&format!("k1:{secret}"), "short").is_err());
        let debug = format!("{:?}", keys(&format!("k1:{secret}")));
        assert!(!debug.contains(&secret), "{debug}");
    }
}
