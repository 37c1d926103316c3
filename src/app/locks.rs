//! Per-tenant in-process locks for token refresh (see `connections`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ids::TenantId;

/// Per-tenant in-process locks for token refresh.
#[derive(Debug, Default)]
pub struct RefreshLocks {
    locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl RefreshLocks {
    pub(crate) fn for_tenant(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds so the map does not grow with every tenant ever seen.
        if map.len() > 1024 {
            map.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        map.entry(tenant.clone()).or_default().clone()
    }
}
