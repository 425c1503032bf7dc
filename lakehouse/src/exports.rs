//! Aurora and RDS snapshot exports, read where they lie.
//!
//! An export is a folder tree on object storage (or disk):
//! `<export root>/<database>/<schema>.<table>/<partition>/part-*.gz.parquet`,
//! with `export_info_<id>.json` and `export_tables_info_<id>_*.json` at the
//! root (for MySQL the schema is the database's name again). A table over
//! one exported table is an external table on its folder; Lakewave finds the
//! folder from the root:
//!
//! - `CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '<export root>'
//!   OPTIONS ('aurora.table' 'db.table')` (or `'db.schema.table'`), and
//! - `CALL sys.aurora_export_import('<export root>', 'target_db'[, JSON_OBJECT(<store options>)])`
//!   creates one external table per exported table in `target_db`.

use std::path::Path;

use datafusion::execution::context::SessionState;

use connectors::Location;

use crate::error::{LakeError, Result};
use crate::model::TableDef;

/// One exported table: its database, schema and table names and the folder
/// holding its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedTable {
    pub database: String,
    pub schema: String,
    pub table: String,
    pub location: String,
}

/// The option naming the exported table a definition reads.
pub const TABLE_OPTION: &str = "aurora.table";

fn root_with_slash(root: &str) -> String {
    if root.ends_with('/') { root.to_string() } else { format!("{root}/") }
}

/// Lists an export: checks its `export_info_*.json` and returns its tables.
pub async fn export_tables(state: &SessionState, root: &str, options: &std::collections::BTreeMap<String, String>) -> Result<Vec<ExportedTable>> {
    let root = root_with_slash(Location::parse(root, Path::new("/")).map_err(crate::provider::location_error)?.as_str());
    let probe = TableDef {
        name: "export".into(),
        format: "parquet".into(),
        locations: vec![root.clone()],
        partition_cols: vec![],
        options: options.clone(),
        columns: vec![],
        declared_columns: false,
        dialect: crate::model::DdlDialect::DataFusion,
        engine_attribute: None,
        created_at: 0,
    };
    let (store, prefix) = crate::provider::store_of(state, &probe).await?;
    let failed = |e: object_store::Error| LakeError::Data(format!("cannot list the export at '{root}': {e}"));
    let top = store.list_with_delimiter(Some(&prefix)).await.map_err(failed)?;
    let is_export = top.objects.iter().any(|o| o.location.filename().is_some_and(|f| f.starts_with("export_info_") && f.ends_with(".json")));
    if !is_export {
        return Err(LakeError::Data(format!(
            "'{root}' is not an Aurora or RDS snapshot export: it holds no export_info_*.json"
        )));
    }
    let mut tables = Vec::new();
    for db_dir in &top.common_prefixes {
        let Some(database) = db_dir.filename().map(str::to_string) else { continue };
        let inner = store.list_with_delimiter(Some(db_dir)).await.map_err(failed)?;
        for table_dir in &inner.common_prefixes {
            let Some(dir) = table_dir.filename() else { continue };
            let Some((schema, table)) = dir.split_once('.') else { continue };
            tables.push(ExportedTable {
                database: database.clone(),
                schema: schema.to_string(),
                table: table.to_string(),
                location: format!("{root}{database}/{dir}/"),
            });
        }
    }
    tables.sort_by(|a, b| (&a.database, &a.schema, &a.table).cmp(&(&b.database, &b.schema, &b.table)));
    Ok(tables)
}

/// Resolves `aurora.table` in a definition: its location becomes the
/// exported table's folder and the option goes (it has done its work).
pub async fn resolve_table_option(state: &SessionState, def: &mut TableDef) -> Result<()> {
    let Some(wanted) = def.options.remove(TABLE_OPTION) else { return Ok(()) };
    if def.locations.len() != 1 {
        return Err(LakeError::InvalidDefinition(format!("'{TABLE_OPTION}' needs exactly one location: the export's root")));
    }
    let parts: Vec<&str> = wanted.split('.').collect();
    let (database, schema, table) = match parts.as_slice() {
        [d, t] => (*d, *d, *t),
        [d, s, t] => (*d, *s, *t),
        _ => {
            return Err(LakeError::InvalidDefinition(format!(
                "'{TABLE_OPTION}' is 'database.table' or 'database.schema.table', not '{wanted}'"
            )));
        }
    };
    let store_options = def.options.iter().filter(|(k, _)| !k.starts_with("format.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let tables = export_tables(state, &def.locations[0], &store_options).await?;
    let found = tables.iter().find(|t| t.database == database && t.schema == schema && t.table == table).ok_or_else(|| {
        let names: Vec<String> = tables.iter().take(20).map(|t| format!("{}.{}.{}", t.database, t.schema, t.table)).collect();
        LakeError::Data(format!("the export at '{}' has no table '{wanted}' (it has: {})", def.locations[0], names.join(", ")))
    })?;
    def.locations = vec![found.location.clone()];
    Ok(())
}

/// The name an imported table gets in the target database: the table's
/// own, or `schema_table` when two schemas export the same name.
pub fn import_names(tables: &[ExportedTable]) -> Vec<String> {
    tables
        .iter()
        .map(|t| {
            let clashes = tables.iter().filter(|o| o.table == t.table).count() > 1;
            if clashes { format!("{}_{}", t.schema, t.table) } else { t.table.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names_avoid_clashes() {
        let t = |d: &str, s: &str, n: &str| ExportedTable { database: d.into(), schema: s.into(), table: n.into(), location: String::new() };
        let names = import_names(&[t("shop", "shop", "orders"), t("pg", "public", "items"), t("pg", "audit", "items")]);
        assert_eq!(names, vec!["orders", "public_items", "audit_items"]);
    }
}
