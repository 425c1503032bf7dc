//! The durable catalog: one JSON document in the data directory, replaced
//! atomically on every change (write a temporary file, fsync it, rename it
//! over the old one, fsync the directory). A change is acknowledged only after
//! the rename is durable, so a crash at any point leaves either the old or
//! the new catalog, never a torn one, and never loses an acknowledged change.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::error::{LakeError, Result};
use crate::model::{CatalogState, DatabaseDef, SecondaryDef, TableDef};

const CATALOG_FILE: &str = "catalog.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug)]
pub struct Catalog {
    dir: PathBuf,
    /// Readers see the last committed state.
    state: RwLock<CatalogState>,
    /// Serialises writers so each change is computed on the latest state.
    write_lock: Mutex<()>,
}

fn storage_err(path: &Path, source: std::io::Error) -> LakeError {
    LakeError::Storage { path: path.display().to_string(), source }
}

impl Catalog {
    /// Opens (or creates) the catalog in `dir`. Leftover temporary files from
    /// an interrupted write are ignored and removed.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| storage_err(dir, e))?;
        let path = dir.join(CATALOG_FILE);
        let tmp = dir.join(format!("{CATALOG_FILE}.tmp"));
        if tmp.exists() {
            let _ = fs::remove_file(&tmp);
        }
        let state = match fs::read(&path) {
            Ok(bytes) => {
                let state: CatalogState = serde_json::from_slice(&bytes).map_err(|e| {
                    LakeError::InvalidDefinition(format!(
                        "catalog file {} is unreadable: {e}",
                        path.display()
                    ))
                })?;
                if state.format_version > FORMAT_VERSION {
                    return Err(LakeError::InvalidDefinition(format!(
                        "catalog file {} has format {} but this build reads up to {}",
                        path.display(),
                        state.format_version,
                        FORMAT_VERSION
                    )));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogState {
                format_version: FORMAT_VERSION,
                ..Default::default()
            },
            Err(e) => return Err(storage_err(&path, e)),
        };
        Ok(Self { dir: dir.to_path_buf(), state: RwLock::new(state), write_lock: Mutex::new(()) })
    }

    pub fn snapshot(&self) -> CatalogState {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CatalogState> {
        // A poisoned lock only means a panic happened while holding it; the
        // state itself is replaced wholesale, so it is still consistent.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn database_names(&self) -> Vec<String> {
        self.read().databases.keys().cloned().collect()
    }

    pub fn database_exists(&self, db: &str) -> bool {
        self.read().databases.contains_key(db)
    }

    pub fn table_names(&self, db: &str) -> Option<Vec<String>> {
        self.read().databases.get(db).map(|d| d.tables.keys().cloned().collect())
    }

    pub fn table(&self, db: &str, table: &str) -> Option<TableDef> {
        self.read().databases.get(db).and_then(|d| d.tables.get(table)).cloned()
    }

    /// Applies `change` to a copy of the state, persists it, then publishes it.
    /// Returns whatever `change` returned.
    pub fn update<T>(&self, change: impl FnOnce(&mut CatalogState) -> Result<T>) -> Result<T> {
        let _guard = self.writer();
        let mut next = self.read().clone();
        let out = change(&mut next)?;
        next.format_version = FORMAT_VERSION;
        self.persist(&next)?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(out)
    }

    fn persist(&self, state: &CatalogState) -> Result<()> {
        let path = self.dir.join(CATALOG_FILE);
        let tmp = self.dir.join(format!("{CATALOG_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| LakeError::InvalidDefinition(format!("catalog encoding failed: {e}")))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| storage_err(&tmp, e))?;
        file.write_all(&bytes).map_err(|e| storage_err(&tmp, e))?;
        file.sync_all().map_err(|e| storage_err(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| storage_err(&path, e))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| storage_err(&self.dir, e))?;
        Ok(())
    }

    pub fn create_database(&self, db: &str, if_not_exists: bool) -> Result<bool> {
        self.update(|s| {
            if s.databases.contains_key(db) {
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(LakeError::DatabaseExists(db.to_string()))
                };
            }
            s.databases.insert(db.to_string(), DatabaseDef::default());
            Ok(true)
        })
    }

    /// Drops a database and returns how many tables it held.
    pub fn drop_database(&self, db: &str, if_exists: bool) -> Result<Option<usize>> {
        self.update(|s| match s.databases.remove(db).inspect(|_| s.secondary.retain(|d| d.db != db)) {
            Some(d) => Ok(Some(d.tables.len())),
            None if if_exists => Ok(None),
            None => Err(LakeError::UnknownDatabase(db.to_string())),
        })
    }

    /// Adds a table; `replace` overwrites an existing one. Returns false when
    /// the table existed and `if_not_exists` asked to keep it.
    pub fn create_table(
        &self,
        db: &str,
        def: TableDef,
        if_not_exists: bool,
        replace: bool,
    ) -> Result<bool> {
        self.update(|s| {
            let database = s
                .databases
                .get_mut(db)
                .ok_or_else(|| LakeError::UnknownDatabase(db.to_string()))?;
            if database.tables.contains_key(&def.name) && !replace {
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(LakeError::TableExists(def.name.clone()))
                };
            }
            database.tables.insert(def.name.clone(), def);
            Ok(true)
        })
    }

    pub fn secondary(&self, db: &str, table: &str) -> Option<SecondaryDef> {
        self.read().secondary.iter().find(|d| d.db == db && d.table == table).cloned()
    }

    pub fn secondary_all(&self) -> Vec<SecondaryDef> {
        self.read().secondary.clone()
    }

    /// Marks a table for a secondary engine (`Some`) or clears the mark.
    pub fn set_secondary(&self, db: &str, table: &str, engine: Option<&str>) -> Result<()> {
        self.update(|s| {
            s.secondary.retain(|d| !(d.db == db && d.table == table));
            if let Some(engine) = engine {
                s.secondary.push(SecondaryDef { db: db.into(), table: table.into(), engine: engine.into(), loaded: false });
            }
            Ok(())
        })
    }

    /// Records whether a marked table is loaded (restarts reload it).
    pub fn set_loaded(&self, db: &str, table: &str, loaded: bool) -> Result<()> {
        if self.secondary(db, table).is_none_or(|d| d.loaded == loaded) {
            return Ok(());
        }
        self.update(|s| {
            for d in s.secondary.iter_mut().filter(|d| d.db == db && d.table == table) {
                d.loaded = loaded;
            }
            Ok(())
        })
    }

    pub fn drop_table(&self, db: &str, table: &str, if_exists: bool) -> Result<bool> {
        self.update(|s| {
            s.secondary.retain(|d| !(d.db == db && d.table == table));
            let removed = s.databases.get_mut(db).and_then(|d| d.tables.remove(table));
            match removed {
                Some(_) => Ok(true),
                None if if_exists => Ok(false),
                None => Err(LakeError::UnknownTable { db: db.to_string(), table: table.to_string() }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnDef, DdlDialect};

    fn table(name: &str) -> TableDef {
        TableDef {
            name: name.into(),
            format: "parquet".into(),
            locations: vec!["/tmp/x/".into()],
            partition_cols: vec![],
            options: Default::default(),
            columns: vec![ColumnDef {
                name: "a".into(),
                data_type: "Int32".into(),
                nullable: true,
                mysql_type: None,
                distinct: None,
            }],
            declared_columns: false,
            dialect: DdlDialect::DataFusion,
            engine_attribute: None,
            created_at: 0,
        }
    }

    #[test]
    fn changes_survive_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| storage_err(Path::new("tmp"), e))?;
        let cat = Catalog::open(dir.path())?;
        assert!(cat.create_database("db", false)?);
        assert!(!cat.create_database("db", true)?);
        assert!(matches!(cat.create_database("db", false), Err(LakeError::DatabaseExists(_))));
        assert!(cat.create_table("db", table("t1"), false, false)?);
        assert!(cat.create_table("db", table("t2"), false, false)?);
        assert!(cat.drop_table("db", "t1", false)?);
        drop(cat);
        let cat = Catalog::open(dir.path())?;
        assert_eq!(cat.table_names("db"), Some(vec!["t2".to_string()]));
        assert!(matches!(
            cat.create_table("nope", table("t"), false, false),
            Err(LakeError::UnknownDatabase(_))
        ));
        Ok(())
    }

    #[test]
    fn torn_temporary_file_is_ignored() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| storage_err(Path::new("tmp"), e))?;
        let cat = Catalog::open(dir.path())?;
        cat.create_database("db", false)?;
        drop(cat);
        fs::write(dir.path().join("catalog.json.tmp"), b"{\"format_ver")
            .map_err(|e| storage_err(dir.path(), e))?;
        let cat = Catalog::open(dir.path())?;
        assert!(cat.database_exists("db"));
        Ok(())
    }
}
