//! The listing cache: what each external table's prefixes and globs held
//! the last time they were listed, so queries on tables of many files do not
//! list the store every time.
//!
//! Entries are scoped to a table (DataFusion keys them by the table and its
//! base path) and live for the table's `storage.list_cache_ttl` seconds:
//! 60 by default for object stores, 0 (list on every query) for local
//! files. `REFRESH TABLE t` (or `FLUSH TABLES t`) drops a table's entries at
//! once; dropping or re-creating a table does too. Listings that are not
//! tied to a table (checks at `CREATE` time) are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use datafusion::common::TableReference;
use datafusion::execution::cache::cache_manager::CachedFileList;
use datafusion::execution::cache::{Cache, CacheEntryInfo, CacheKey, CacheValue, TableScopedPath};

/// Default time a remote table's listing is reused.
pub const DEFAULT_REMOTE_TTL: Duration = Duration::from_secs(60);

/// Memory the cache may hold; the oldest listings go first beyond it.
/// About 200 bytes a file: room for a few hundred thousand files.
pub const DEFAULT_LIMIT: usize = 64 * 1024 * 1024;

struct Entry {
    files: CachedFileList,
    size: usize,
    stored: Instant,
    expires: Instant,
    hits: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TableScopedPath, Entry>,
    used: usize,
}

impl Inner {
    /// Removes an entry and its bytes from the count.
    fn take(&mut self, key: &TableScopedPath) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.used -= e.size;
        Some(e)
    }

    /// Removes the entries a predicate picks.
    fn take_where(&mut self, pick: impl Fn(&TableScopedPath) -> bool) -> usize {
        let keys: Vec<TableScopedPath> = self.entries.keys().filter(|k| pick(k)).cloned().collect();
        keys.iter().filter(|k| self.take(k).is_some()).count()
    }
}

/// A listing cache with a time-to-live per table.
pub struct ListCache {
    inner: Mutex<Inner>,
    ttls: RwLock<HashMap<TableReference, Duration>>,
    limit: Mutex<usize>,
    /// Listings stored (each one a list call on the store); for status.
    listed: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ListCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListCache").field("entries", &self.len()).finish()
    }
}

impl Default for ListCache {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            ttls: RwLock::default(),
            limit: Mutex::new(DEFAULT_LIMIT),
            listed: Default::default(),
        }
    }
}

impl ListCache {
    /// The reference under which a table's listings are cached.
    pub fn table_ref(db: &str, table: &str) -> TableReference {
        TableReference::partial(db, table)
    }

    /// Sets how long a table's listings are reused (zero: never cached).
    pub fn set_ttl(&self, table: TableReference, ttl: Duration) {
        self.ttls.write().unwrap_or_else(|p| p.into_inner()).insert(table, ttl);
    }

    fn ttl(&self, table: Option<&TableReference>) -> Duration {
        table
            .and_then(|t| self.ttls.read().unwrap_or_else(|p| p.into_inner()).get(t).copied())
            .unwrap_or(Duration::ZERO)
    }

    /// Drops what is cached for a table (all its locations).
    pub fn invalidate(&self, table: &TableReference) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take_where(|k| k.table.as_ref() == Some(table))
    }

    /// Drops what is cached for a database's tables, or one of them, and
    /// forgets their TTLs (the names may come back as other tables).
    pub fn invalidate_scope(&self, db: &str, table: Option<&str>) -> usize {
        let mine = |t: &TableReference| t.schema() == Some(db) && table.is_none_or(|x| t.table() == x);
        self.ttls.write().unwrap_or_else(|p| p.into_inner()).retain(|t, _| !mine(t));
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take_where(|k| k.table.as_ref().is_some_and(mine))
    }

    /// How many listings have been stored since start (each one listed the
    /// store).
    pub fn listings(&self) -> u64 {
        self.listed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn evict_to(inner: &mut Inner, limit: usize) {
        while inner.used > limit {
            let Some(oldest) = inner.entries.iter().min_by_key(|(_, e)| e.stored).map(|(k, _)| k.clone()) else { break };
            inner.take(&oldest);
        }
    }
}

impl Cache<TableScopedPath, CachedFileList> for ListCache {
    fn get(&self, key: &TableScopedPath) -> Option<CachedFileList> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match inner.entries.get_mut(key) {
            Some(e) if e.expires > now => {
                e.hits += 1;
                Some(e.files.clone())
            }
            Some(_) => {
                inner.take(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: &TableScopedPath, value: CachedFileList) -> Option<CachedFileList> {
        self.listed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ttl = self.ttl(key.table.as_ref());
        if ttl.is_zero() {
            return None;
        }
        let size = key.size() + value.size();
        let limit = *self.limit.lock().unwrap_or_else(|p| p.into_inner());
        if size > limit {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let old = inner.take(key);
        inner.entries.insert(key.clone(), Entry { files: value, size, stored: now, expires: now + ttl, hits: 0 });
        inner.used += size;
        Self::evict_to(&mut inner, limit);
        old.map(|e| e.files)
    }

    fn remove(&self, k: &TableScopedPath) -> Option<CachedFileList> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take(k).map(|e| e.files)
    }

    fn contains_key(&self, k: &TableScopedPath) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entries.get(k).is_some_and(|e| e.expires > Instant::now())
    }

    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).entries.len()
    }

    fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.entries.clear();
        inner.used = 0;
    }

    fn name(&self) -> String {
        "LakewaveListCache".into()
    }

    fn cache_limit(&self) -> usize {
        *self.limit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update_cache_limit(&self, limit: usize) {
        *self.limit.lock().unwrap_or_else(|p| p.into_inner()) = limit;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::evict_to(&mut inner, limit);
    }

    fn cache_ttl(&self) -> Option<Duration> {
        // The time-to-live is per table.
        None
    }

    fn update_cache_ttl(&self, _ttl: Option<Duration>) {}

    fn drop_table_entries(&self, table_ref: &TableReference) -> datafusion::common::Result<()> {
        self.invalidate(table_ref);
        Ok(())
    }

    fn list_entries(&self) -> datafusion::common::HashMap<TableScopedPath, CacheEntryInfo<CachedFileList>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .entries
            .iter()
            .map(|(k, e)| {
                let info = CacheEntryInfo { value: e.files.clone(), size_bytes: e.size, hits: e.hits, expires: None };
                (k.clone(), info)
            })
            .collect()
    }
}

/// Parses a `storage.list_cache_ttl` value: seconds, `0` to list on every
/// query.
pub fn parse_ttl(text: &str) -> Option<Duration> {
    connectors::stores::parse_seconds(text.trim())
}

/// A shared handle, as the runtime's cache manager takes it.
pub type SharedListCache = Arc<ListCache>;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(table: Option<TableReference>, path: &str) -> TableScopedPath {
        TableScopedPath { table, path: object_store::path::Path::from(path) }
    }

    #[test]
    fn caches_per_table_with_ttl_and_invalidation() {
        let cache = ListCache::default();
        let t = ListCache::table_ref("db", "t");
        let files = CachedFileList::new(vec![]);
        // Without a TTL (not table-scoped, or zero) nothing is kept.
        cache.put(&key(None, "a"), files.clone());
        assert!(cache.get(&key(None, "a")).is_none());
        cache.set_ttl(t.clone(), Duration::from_secs(60));
        cache.put(&key(Some(t.clone()), "a"), files.clone());
        assert!(cache.get(&key(Some(t.clone()), "a")).is_some());
        assert_eq!(cache.invalidate(&t), 1);
        assert!(cache.get(&key(Some(t.clone()), "a")).is_none());
        cache.set_ttl(t.clone(), Duration::ZERO);
        cache.put(&key(Some(t.clone()), "a"), files);
        assert!(cache.get(&key(Some(t), "a")).is_none(), "a zero TTL lists every time");
        assert_eq!(parse_ttl("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_ttl("-1"), None);
    }
}
