//! Generation counters: how the public response cache knows an answer is stale.
//!
//! Every cached answer records the counters of the areas it read (read *before* the database
//! query); it is served again only while each counter still has that value. A change bumps the
//! counters of its area *after* its commit and *before* the mutation answers, so once a change
//! is acknowledged no cached answer that could predate it is ever served again.
//!
//! Counters (a change bumps the ones marked):
//! - `Epoch` — everything (a site-master import, the daily re-derivation of slot statuses);
//! - `Nation` — searches without a prefecture or municipality (any change);
//! - `Pref(p)` — prefecture-wide searches, single-site lookups and the feed (any change in p);
//! - `Master(p)` — municipality searches in p (site-master changes in p: a site may have moved
//!   between municipalities, and its old one is not known);
//! - `Muni(m)` — municipality searches (any change in m).
//!
//! One instance keeps them in memory. With Redis they live in Redis (`{prefix}g:…`), so every
//! instance sees a bump the moment it is made: a cache hit costs one `MGET`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::codes::{MunicipalityCode, PrefectureCode};
use domain::public::Area;
use redis::AsyncCommands;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GenKey {
    Epoch,
    Nation,
    Pref(PrefectureCode),
    Master(PrefectureCode),
    Muni(MunicipalityCode),
}

impl GenKey {
    fn redis_key(&self, prefix: &str) -> String {
        match self {
            GenKey::Epoch => format!("{prefix}g:e"),
            GenKey::Nation => format!("{prefix}g:n"),
            GenKey::Pref(p) => format!("{prefix}g:p:{p}"),
            GenKey::Master(p) => format!("{prefix}g:s:{p}"),
            GenKey::Muni(m) => format!("{prefix}g:m:{m}"),
        }
    }
}

/// The counters an answer about `area` depends on.
pub fn reads(area: Area) -> Vec<GenKey> {
    match area {
        Area::Nation => vec![GenKey::Epoch, GenKey::Nation],
        Area::Prefecture(p) => vec![GenKey::Epoch, GenKey::Pref(p)],
        Area::Municipality(m) => vec![GenKey::Epoch, GenKey::Muni(m), GenKey::Master(m.prefecture())],
    }
}

/// The counters an availability change in municipality `m` bumps.
pub fn availability_change(m: MunicipalityCode) -> Vec<GenKey> {
    vec![GenKey::Muni(m), GenKey::Pref(m.prefecture()), GenKey::Nation]
}

/// The counters a site-master change (register, change, withdraw) of a site now in `m` bumps.
pub fn site_change(m: MunicipalityCode) -> Vec<GenKey> {
    vec![
        GenKey::Muni(m),
        GenKey::Pref(m.prefecture()),
        GenKey::Master(m.prefecture()),
        GenKey::Nation,
    ]
}

#[derive(Clone)]
pub struct Generations {
    local: Arc<Mutex<HashMap<GenKey, u64>>>,
    redis: Option<(redis::aio::ConnectionManager, Arc<str>)>,
    /// Bumps made here that Redis has not taken yet: while any is pending this instance serves
    /// nothing from its cache (its own readers must never see a pre-change answer).
    pending: Arc<AtomicUsize>,
}

/// A counter value could not be read (Redis unreachable): the answer is neither served from
/// nor stored in the cache.
#[derive(Debug)]
pub struct Unavailable;

impl Generations {
    pub fn local() -> Generations {
        Generations {
            local: Arc::default(),
            redis: None,
            pending: Arc::default(),
        }
    }

    pub fn redis(conn: redis::aio::ConnectionManager, prefix: &str) -> Generations {
        Generations {
            redis: Some((conn, Arc::from(prefix))),
            ..Generations::local()
        }
    }

    /// The current values of `keys`, in order.
    pub async fn current(&self, keys: &[GenKey]) -> Result<Vec<u64>, Unavailable> {
        if self.pending.load(Ordering::Acquire) > 0 {
            return Err(Unavailable);
        }
        match &self.redis {
            None => {
                let map = self.local.lock().unwrap_or_else(|p| p.into_inner());
                Ok(keys.iter().map(|k| map.get(k).copied().unwrap_or(0)).collect())
            }
            Some((conn, prefix)) => {
                let names: Vec<String> = keys.iter().map(|k| k.redis_key(prefix)).collect();
                let mut conn = conn.clone();
                let values: redis::RedisResult<Vec<Option<u64>>> =
                    tokio::time::timeout(Duration::from_millis(500), conn.mget(&names))
                        .await
                        .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timeout"))));
                match values {
                    Ok(v) => Ok(v.into_iter().map(|x| x.unwrap_or(0)).collect()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read cache generations from Redis; not caching");
                        Err(Unavailable)
                    }
                }
            }
        }
    }

    /// Bumps `keys`. Returns once the bump is visible to every reader that can still serve from
    /// a cache; if Redis refuses it, this instance stops serving cached answers and a background
    /// task retries until Redis takes it (other instances' answers expire by the cache's TTL
    /// at the latest).
    pub async fn bump(&self, keys: &[GenKey]) {
        {
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            for k in keys {
                *map.entry(*k).or_insert(0) += 1;
            }
        }
        let Some((conn, prefix)) = &self.redis else { return };
        let names: Vec<String> = keys.iter().map(|k| k.redis_key(prefix)).collect();
        if incr_all(conn.clone(), &names).await.is_ok() {
            return;
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        let (conn, pending) = (conn.clone(), self.pending.clone());
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            while incr_all(conn.clone(), &names).await.is_err() {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            pending.fetch_sub(1, Ordering::AcqRel);
            tracing::info!("cache generations bumped in Redis after a retry");
        });
    }
}

async fn incr_all(mut conn: redis::aio::ConnectionManager, names: &[String]) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for n in names {
        pipe.incr(n, 1u64).ignore();
    }
    let res: redis::RedisResult<()> = tokio::time::timeout(Duration::from_secs(2), pipe.query_async(&mut conn))
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timeout"))));
    if let Err(e) = &res {
        tracing::error!(error = %e, "cannot bump cache generations in Redis");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MunicipalityCode {
        s.parse().expect("m")
    }

    /// Every change that can alter an answer about an area bumps at least one counter that
    /// answer reads; a change elsewhere bumps none of a municipality answer's counters.
    #[test]
    fn changes_reach_every_answer_they_can_alter() {
        let chiyoda = m("131016");
        let shinjuku = m("131041");
        let sapporo = m("011002");
        let tokyo = chiyoda.prefecture();
        let overlap = |a: &[GenKey], b: &[GenKey]| a.iter().any(|k| b.contains(k));
        for change in [availability_change(chiyoda), site_change(chiyoda)] {
            assert!(overlap(&change, &reads(Area::Municipality(chiyoda))));
            assert!(overlap(&change, &reads(Area::Prefecture(tokyo))));
            assert!(overlap(&change, &reads(Area::Nation)));
            assert!(!overlap(&change, &reads(Area::Municipality(sapporo))));
            assert!(!overlap(&change, &reads(Area::Prefecture(sapporo.prefecture()))));
        }
        // Availability in Chiyoda leaves Shinjuku's answers alone …
        assert!(!overlap(
            &availability_change(chiyoda),
            &reads(Area::Municipality(shinjuku))
        ));
        // … but a site-master change in Tokyo may have moved a site out of Shinjuku.
        assert!(overlap(&site_change(chiyoda), &reads(Area::Municipality(shinjuku))));
        for area in [Area::Nation, Area::Prefecture(tokyo), Area::Municipality(chiyoda)] {
            assert!(reads(area).contains(&GenKey::Epoch));
        }
    }

    #[tokio::test]
    async fn local_bumps_are_seen_at_once() {
        let g = Generations::local();
        let keys = reads(Area::Municipality(m("131016")));
        let before = g.current(&keys).await.expect("local");
        g.bump(&availability_change(m("131041"))).await;
        assert_eq!(g.current(&keys).await.expect("local"), before);
        g.bump(&availability_change(m("131016"))).await;
        assert_ne!(g.current(&keys).await.expect("local"), before);
    }
}
