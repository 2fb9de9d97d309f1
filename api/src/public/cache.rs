//! The response cache for anonymous reads: whole response bodies, keyed by the normalized
//! request, each remembering the generation counters it was computed under (see
//! [`super::generations`]). A hit re-reads those counters and is served only if none moved;
//! the TTL is a safety net for writes that bypass the API (a `vsys sites import` run next to a
//! live server, a manual SQL fix), never the mechanism that keeps answers fresh.
//!
//! Must not: cache an answer with errors, or one that read data without recording its
//! counters (resolvers call [`Deps::depend`] before their query).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::generations::{GenKey, Generations};

/// What a request's resolvers read, recorded as they run.
#[derive(Clone, Default)]
pub struct Deps(Arc<Mutex<DepsInner>>);

#[derive(Default)]
struct DepsInner {
    read: Vec<(GenKey, u64)>,
    uncacheable: bool,
}

impl Deps {
    /// Records the current counters of `keys`; call it *before* reading the data they guard.
    pub async fn depend(&self, gens: &Generations, keys: &[GenKey]) {
        let values = gens.current(keys).await;
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match values {
            Ok(v) => inner.read.extend(keys.iter().copied().zip(v)),
            Err(_) => inner.uncacheable = true,
        }
    }

    /// The counters read, or `None` if the answer must not be cached.
    fn take(&self) -> Option<Vec<(GenKey, u64)>> {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (!inner.uncacheable).then(|| inner.read.clone())
    }
}

struct Entry {
    body: Bytes,
    deps: Vec<(GenKey, u64)>,
    stored: Instant,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Arc<Entry>> for Weight {
    fn weight(&self, key: &String, val: &Arc<Entry>) -> u64 {
        (key.len() + val.body.len() + val.deps.len() * 24 + 64) as u64
    }
}

/// How a request was answered, reported in the `x-vsys-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    /// Not cacheable (errors, a counter unreadable, or the cache is off).
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

#[derive(Clone)]
pub struct ResponseCache {
    entries: Option<Arc<quick_cache::sync::Cache<String, Arc<Entry>, Weight>>>,
    ttl: Duration,
}

impl ResponseCache {
    /// `max_bytes == 0` turns the cache off.
    pub fn new(max_bytes: usize, ttl: Duration) -> ResponseCache {
        let entries = (max_bytes > 0).then(|| {
            // Typical answers (a page of 20 sites) are a few KiB.
            let estimated = (max_bytes / 4096).max(16);
            Arc::new(quick_cache::sync::Cache::with_weighter(
                estimated,
                max_bytes as u64,
                Weight,
            ))
        });
        ResponseCache { entries, ttl }
    }

    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// A still-valid answer for `key`.
    pub async fn get(&self, gens: &Generations, key: &str) -> Option<Bytes> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(key)?;
        if entry.stored.elapsed() > self.ttl {
            entries.remove(key);
            return None;
        }
        let keys: Vec<GenKey> = entry.deps.iter().map(|(k, _)| *k).collect();
        let now = gens.current(&keys).await.ok()?;
        if now.iter().zip(&entry.deps).all(|(n, (_, then))| n == then) {
            Some(entry.body.clone())
        } else {
            entries.remove(key);
            None
        }
    }

    /// Stores an answer computed with `deps`; returns whether it was stored.
    pub fn put(&self, key: String, body: Bytes, deps: &Deps) -> bool {
        let (Some(entries), Some(read)) = (self.entries.as_ref(), deps.take()) else {
            return false;
        };
        entries.insert(
            key,
            Arc::new(Entry {
                body,
                deps: read,
                stored: Instant::now(),
            }),
        );
        true
    }
}

/// A GraphQL document with insignificant tokens removed: whitespace, commas and comments
/// outside strings collapse, so the same query typed differently shares one cache entry.
/// Strings (including block strings) are kept byte for byte.
pub fn normalize_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    let mut chars = q.chars().peekable();
    // Whether a separator is pending between two tokens.
    let mut gap = false;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '+';
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => gap = true,
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' || d == '\r' {
                        break;
                    }
                }
                gap = true;
            }
            '"' => {
                if gap && out.chars().last().is_some_and(word) {
                    out.push(' ');
                }
                gap = false;
                out.push('"');
                let block = chars.peek() == Some(&'"') && {
                    let mut look = chars.clone();
                    look.next();
                    look.next() == Some('"')
                };
                if block {
                    out.push_str("\"\"");
                    chars.next();
                    chars.next();
                    let mut quotes = 0;
                    for d in chars.by_ref() {
                        out.push(d);
                        quotes = if d == '"' { quotes + 1 } else { 0 };
                        if quotes == 3 && !out.ends_with("\\\"\"\"") {
                            break;
                        }
                    }
                } else {
                    let mut escaped = false;
                    for d in chars.by_ref() {
                        out.push(d);
                        if escaped {
                            escaped = false;
                        } else if d == '\\' {
                            escaped = true;
                        } else if d == '"' || d == '\n' {
                            break;
                        }
                    }
                }
            }
            _ => {
                if gap && word(c) && out.chars().last().is_some_and(|l| word(l) || l == '"') {
                    out.push(' ');
                }
                gap = false;
                out.push(c);
            }
        }
    }
    out
}

/// JSON with object keys sorted at every level, whatever the map type in use.
pub fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insignificant_tokens_collapse_and_strings_stay() {
        let cases = [
            ("{ a }", "{a}"),
            (
                "query Q($x: Int) {\n  a(x: $x) # why\n  b\n}",
                "query Q($x:Int){a(x:$x)b}",
            ),
            ("{ a, b, c }", "{a b c}"),
            ("{ a(t: \"x  y, # z\") }", "{a(t:\"x  y, # z\")}"),
            ("{ a(t: \"q\\\"  \") b }", "{a(t:\"q\\\"  \")b}"),
            ("{ a(t: \"\"\"x  \"\" y\"\"\") }", "{a(t:\"\"\"x  \"\" y\"\"\")}"),
            ("{ a(n: -1.5e3) }", "{a(n:-1.5e3)}"),
            ("query  Q  { a }", "query Q{a}"),
            ("{ ...F } fragment F on T { a }", "{...F}fragment F on T{a}"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_query(input), want, "{input}");
        }
        // Different strings never collapse into one key.
        assert_ne!(normalize_query("{a(t:\"x y\")}"), normalize_query("{a(t:\"x  y\")}"));
        assert_ne!(normalize_query("{ab}"), normalize_query("{a b}"));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut a = String::new();
        canonical_json(&json!({ "b": [1, { "d": 1, "c": 2 }], "a": null }), &mut a);
        assert_eq!(a, r#"{"a":null,"b":[1,{"c":2,"d":1}]}"#);
    }

    #[tokio::test]
    async fn entries_die_when_a_counter_moves_or_the_ttl_passes() {
        let gens = Generations::local();
        let cache = ResponseCache::new(1 << 20, Duration::from_secs(60));
        let m: domain::codes::MunicipalityCode = "131016".parse().expect("m");
        let deps = Deps::default();
        deps.depend(
            &gens,
            &super::super::generations::reads(domain::public::Area::Municipality(m)),
        )
        .await;
        assert!(cache.put("k".into(), Bytes::from_static(b"v"), &deps));
        assert_eq!(cache.get(&gens, "k").await.as_deref(), Some(&b"v"[..]));
        gens.bump(&super::super::generations::availability_change(m)).await;
        assert_eq!(cache.get(&gens, "k").await, None);

        let short = ResponseCache::new(1 << 20, Duration::ZERO);
        let deps = Deps::default();
        assert!(short.put("k".into(), Bytes::from_static(b"v"), &deps));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(short.get(&gens, "k").await, None);

        let off = ResponseCache::new(0, Duration::from_secs(60));
        assert!(!off.put("k".into(), Bytes::from_static(b"v"), &Deps::default()));
    }
}
