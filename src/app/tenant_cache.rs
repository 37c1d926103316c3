//! What this replica read recently about each tenant and reads on every
//! environment call and job: its settings once it is ready for environments
//! (`tenants::ready`), and its LaunchDarkly connection (the sealed token the
//! workers call with). Kept for [`TENANT_CACHE_TTL`] at most.
//!
//! Every change to a tenant, its connection or its settings, whatever made
//! it, is announced on `notify::TENANTS_CHANNEL` by a trigger (migration
//! 0008) in the transaction that makes it, and every replica then forgets
//! that tenant; the replica that made the change forgets it at once, after
//! its commit. The TTL bounds how stale an entry can be on a replica whose
//! notification connection is down (on reconnecting it forgets everything).
//! The same epoch rule as the API key cache (`store::api_keys::KeyCache`)
//! keeps a read that raced a change from putting the old row back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ids::TenantId;
use crate::store::connections::Connection;
use crate::store::settings::TenantSettings;

/// How long an entry is trusted without a notification.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(3);
/// Most tenants remembered; past it, expired entries go, then all.
const CAPACITY: usize = 20_000;

#[derive(Debug, Clone, Default)]
struct Entry {
    /// The settings, read while the tenant was ready for environments.
    ready: Option<(TenantSettings, Instant)>,
    connection: Option<(Connection, Instant)>,
}

#[derive(Debug, Default)]
pub struct TenantCache {
    entries: Mutex<HashMap<TenantId, Entry>>,
    /// Bumped by every eviction: a value read before it is not kept.
    epoch: AtomicU64,
}

fn fresh<T: Clone>(slot: &Option<(T, Instant)>) -> Option<T> {
    slot.as_ref()
        .filter(|(_, at)| at.elapsed() < TENANT_CACHE_TTL)
        .map(|(value, _)| value.clone())
}

impl TenantCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken before reading what will be remembered.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The tenant's settings, if it was found ready for environments within
    /// the TTL and nothing about it changed since.
    pub fn ready(&self, tenant: &TenantId) -> Option<TenantSettings> {
        fresh(&self.lock().get(tenant)?.ready)
    }

    /// The tenant's connection row, as [`ready`](Self::ready).
    pub fn connection(&self, tenant: &TenantId) -> Option<Connection> {
        fresh(&self.lock().get(tenant)?.connection)
    }

    fn remember(&self, tenant: &TenantId, epoch: u64, set: impl FnOnce(&mut Entry)) {
        let mut entries = self.lock();
        // Checked under the lock that evictions take too.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(tenant) {
            entries.retain(|_, e| fresh(&e.ready).is_some() || fresh(&e.connection).is_some());
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        set(entries.entry(tenant.clone()).or_default());
    }

    /// Remembers settings read (since `epoch`) from a ready tenant.
    pub fn remember_ready(&self, tenant: &TenantId, settings: &TenantSettings, epoch: u64) {
        let settings = settings.clone();
        self.remember(tenant, epoch, |e| {
            e.ready = Some((settings, Instant::now()));
        });
    }

    /// Remembers a connection row read since `epoch`.
    pub fn remember_connection(&self, tenant: &TenantId, connection: &Connection, epoch: u64) {
        let connection = connection.clone();
        self.remember(tenant, epoch, |e| {
            e.connection = Some((connection, Instant::now()));
        });
    }

    /// Forgets one tenant (it, its connection or its settings changed).
    pub fn evict(&self, tenant: &str) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|id, _| id.as_str() != tenant);
    }

    /// Forgets every tenant (changes may have been missed).
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::DateTime;

    use super::*;

    fn settings(project: &str) -> TenantSettings {
        TenantSettings {
            project_key: project.to_owned(),
            source_environment_key: "staging".to_owned(),
            name_template: "Preview {id}".to_owned(),
            color: "417505".to_owned(),
            default_ttl_seconds: None,
            key_prefix: "eph".to_owned(),
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_entry_is_kept_until_its_tenant_changes_and_a_read_that_raced_the_change_is_not_kept() {
        let cache = TenantCache::default();
        let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
        let epoch = cache.epoch();
        cache.remember_ready(&a, &settings("one"), epoch);
        cache.remember_ready(&b, &settings("one"), epoch);
        assert_eq!(
            cache.ready(&a).map(|s| s.project_key).as_deref(),
            Some("one")
        );

        // A read that began before a's change finishes after it: dropped.
        let before = cache.epoch();
        cache.evict("a");
        assert!(cache.ready(&a).is_none());
        assert!(cache.ready(&b).is_some(), "only the changed tenant goes");
        cache.remember_ready(&a, &settings("stale"), before);
        assert!(cache.ready(&a).is_none(), "the stale read was kept");
        cache.remember_ready(&a, &settings("two"), cache.epoch());
        assert_eq!(
            cache.ready(&a).map(|s| s.project_key).as_deref(),
            Some("two")
        );

        cache.clear();
        assert!(cache.ready(&a).is_none() && cache.ready(&b).is_none());
    }
}
