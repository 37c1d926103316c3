//! Internal API keys: `lde_` + 40 random characters, shown once; only the
//! SHA-256 is stored.
//!
//! Checking a key costs a query, so each replica keeps the keys it has
//! checked in a [`KeyCache`] for [`CACHE_TTL`]: a revoked key is refused at
//! once on every replica that hears the revocation (a trigger announces it on
//! `notify::API_KEYS_CHANNEL`) and within the TTL on one that does not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{hash_secret, random_alphanumeric};
use crate::ids::TenantId;

/// How long a replica trusts a key it checked without asking again. Bounds
/// how long a revoked key may still work on a replica whose notification
/// connection is down.
pub const CACHE_TTL: Duration = Duration::from_secs(3);
/// Most keys a replica remembers (a deployment has a handful).
const CACHE_CAPACITY: usize = 4096;
/// `last_used_at` is written at most this often per key.
const LAST_USED_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

pub const KEY_PREFIX: &str = "lde_";
const RANDOM_LEN: usize = 40;

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub display_prefix: String,
    pub tenant_id: OptionalTenant,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A nullable tenant id column (null: the vendor backend's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalTenant(pub Option<TenantId>);

/// True when the presented string has the shape of one of our keys, so a
/// malformed header is refused without a database round trip.
pub fn looks_like_key(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

pub async fn create(
    db: &PgPool,
    name: &str,
    tenant: Option<&TenantId>,
    now: DateTime<Utc>,
) -> sqlx::Result<(ApiKey, SecretString)> {
    let key = format!("{KEY_PREFIX}{}", random_alphanumeric(RANDOM_LEN));
    let record = sqlx::query_as!(
        ApiKey,
        r#"insert into api_keys (id, name, display_prefix, key_hash, tenant_id, created_at)
         values ($1, $2, $3, $4, $5, $6)
         returning id, name, display_prefix, tenant_id as "tenant_id!: OptionalTenant",
                   created_at as "created_at: _", last_used_at as "last_used_at: _", revoked_at as "revoked_at: _""#,
        Uuid::new_v4(),
        name,
        &key[..KEY_PREFIX.len() + 6],
        hash_secret(&key),
        tenant.map(TenantId::as_str),
        now as DateTime<Utc>,
    )
    .fetch_one(db)
    .await?;
    Ok((record, SecretString::from(key)))
}

pub async fn list(db: &PgPool) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as!(
        ApiKey,
        r#"select id, name, display_prefix, tenant_id as "tenant_id!: OptionalTenant",
                  created_at as "created_at: _", last_used_at as "last_used_at: _", revoked_at as "revoked_at: _"
             from api_keys order by created_at, id"#,
    )
    .fetch_all(db)
    .await
}

/// Revokes by id or by the displayed prefix. Returns how many keys it revoked.
pub async fn revoke(db: &PgPool, id_or_prefix: &str, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let id = Uuid::parse_str(id_or_prefix).ok();
    let done = sqlx::query!(
        "update api_keys set revoked_at = $3
          where revoked_at is null and (id = $1 or display_prefix = $2)",
        id,
        id_or_prefix,
        now as DateTime<Utc>,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Who a live key speaks for: what a request needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    pub id: Uuid,
    pub name: String,
    /// `None`: the vendor backend's key (every tenant).
    pub tenant: Option<TenantId>,
}

/// Live keys this replica checked recently, by the SHA-256 of the secret
/// (the secret itself is not kept). Only keys found live are remembered, so
/// a new key works at once; a key leaves on [`KeyCache::evict`] (its
/// revocation was announced), when its entry is older than the TTL, or on
/// [`KeyCache::clear`].
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (KeyScope, Instant)>>,
    /// Bumped by every eviction, so a lookup that raced with a revocation
    /// does not put the revoked key back.
    epoch: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("ttl", &self.ttl)
            .field("len", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new(CACHE_TTL)
    }
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (KeyScope, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, hash: &[u8; 32]) -> Option<KeyScope> {
        let mut entries = self.lock();
        let (scope, stored) = entries.get(hash)?;
        if stored.elapsed() < self.ttl {
            return Some(scope.clone());
        }
        entries.remove(hash);
        None
    }

    fn insert(&self, hash: [u8; 32], scope: KeyScope, epoch: u64) {
        let mut entries = self.lock();
        // Checked under the lock that evictions take too.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CACHE_CAPACITY && !entries.contains_key(&hash) {
            entries.retain(|_, (_, stored)| stored.elapsed() < self.ttl);
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(hash, (scope, Instant::now()));
    }

    /// Forgets key `id` (it was revoked or deleted).
    pub fn evict(&self, id: Uuid) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, (scope, _)| scope.id != id);
    }

    /// Forgets every key (e.g. revocations may have been missed).
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// How many keys are remembered (expired ones until next looked up).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The live key matching the presented secret, from `cache` when it was
/// checked in the last TTL, else from the database (then remembered).
pub async fn authenticate_cached<'e>(
    db: impl sqlx::PgExecutor<'e> + Copy,
    cache: &KeyCache,
    presented: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<KeyScope>> {
    let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    if let Some(scope) = cache.get(&hash) {
        return Ok(Some(scope));
    }
    let epoch = cache.epoch.load(Ordering::Acquire);
    let Some(key) = authenticate(db, presented, now).await? else {
        return Ok(None);
    };
    let scope = KeyScope {
        id: key.id,
        name: key.name,
        tenant: key.tenant_id.0,
    };
    cache.insert(hash, scope.clone(), epoch);
    Ok(Some(scope))
}

/// The live key matching the presented secret, if any (always asks the
/// database; requests go through [`authenticate_cached`]).
pub async fn authenticate<'e>(
    db: impl sqlx::PgExecutor<'e> + Copy,
    presented: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<ApiKey>> {
    let key = sqlx::query_as!(
        ApiKey,
        r#"select id, name, display_prefix, tenant_id as "tenant_id!: OptionalTenant",
                  created_at as "created_at: _", last_used_at as "last_used_at: _", revoked_at as "revoked_at: _"
             from api_keys where key_hash = $1 and revoked_at is null"#,
        hash_secret(presented),
    )
    .fetch_optional(db)
    .await?;
    if let Some(key) = &key {
        // Coarse last-used tracking: at most one write a minute per key,
        // however many replicas see it stale at once.
        if key
            .last_used_at
            .is_none_or(|t| now - t > LAST_USED_GRANULARITY)
        {
            sqlx::query!(
                "update api_keys set last_used_at = $2
                  where id = $1 and (last_used_at is null or last_used_at < $3)",
                key.id,
                now as DateTime<Utc>,
                (now - LAST_USED_GRANULARITY) as DateTime<Utc>,
            )
            .execute(db)
            .await?;
        }
    }
    Ok(key)
}
