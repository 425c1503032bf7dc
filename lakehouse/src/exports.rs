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
    let probe = TableDef::external("export", "parquet", vec![root.clone()], options.clone());
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

/// The option naming a Redshift UNLOAD manifest (`OPTIONS ('manifest'
/// '<uri>')`, or HeatWave's `{"manifest": "<uri>"}` file entry).
pub const MANIFEST_OPTION: &str = "format.manifest";

/// Resolves a manifest: the table reads exactly the files it lists, and,
/// when it was written with `MANIFEST VERBOSE` and the table declares no
/// columns, with the schema it gives.
/// Files whose size differs from the manifest's `meta.content_length` were
/// cut short or rewritten since the UNLOAD: the table is refused rather than
/// read with rows missing.
async fn check_lengths(state: &SessionState, def: &TableDef, uri: &str, files: &[String], lengths: &[Option<u64>]) -> Result<()> {
    use futures::StreamExt;
    let checks: Vec<_> = files
        .iter()
        .zip(lengths)
        .filter_map(|(f, l)| l.map(|l| (f.clone(), l)))
        .map(|(file, expected)| check_length(state.clone(), def.clone(), uri.to_string(), file, expected))
        .collect();
    let results: Vec<Result<()>> = futures::stream::iter(checks).buffered(16).collect().await;
    results.into_iter().collect()
}

async fn check_length(state: SessionState, mut probe: TableDef, uri: String, file: String, expected: u64) -> Result<()> {
    use object_store::ObjectStoreExt;
    probe.locations = vec![file.clone()];
    let (store, path) = crate::provider::store_of(&state, &probe).await?;
    match store.head(&path).await {
        Ok(meta) if meta.size == expected => Ok(()),
        Ok(meta) => Err(LakeError::Data(format!(
            "the manifest '{uri}' gives '{file}' {expected} bytes, but it has {}: the unload is incomplete or the file was replaced",
            meta.size
        ))),
        Err(object_store::Error::NotFound { .. }) => Err(LakeError::Data(format!(
            "Can't find file: '{file}' (errno: 2 - No such file or directory), listed in the manifest '{uri}'"
        ))),
        Err(e) => Err(LakeError::Data(format!("cannot read '{file}', listed in the manifest '{uri}': {e}"))),
    }
}

pub async fn resolve_manifest(state: &SessionState, def: &mut TableDef) -> Result<()> {
    let Some(uri) = def.options.remove(MANIFEST_OPTION) else { return Ok(()) };
    let uri = Location::parse(&uri, Path::new("/")).map_err(crate::provider::location_error)?.as_str().to_string();
    let mut probe = def.clone();
    probe.locations = vec![uri.clone()];
    let (store, path) = crate::provider::store_of(state, &probe).await?;
    let bytes = {
        use object_store::ObjectStoreExt;
        let got = store.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                LakeError::Data(format!("Can't find file: '{uri}' (errno: 2 - No such file or directory)"))
            }
            other => LakeError::Data(format!("cannot read the manifest '{uri}': {other}")),
        })?;
        got.bytes().await.map_err(|e| LakeError::Data(format!("cannot read the manifest '{uri}': {e}")))?
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| LakeError::Data(format!("the manifest '{uri}' is not valid JSON: {e}")))?;
    let entries = doc
        .get("entries")
        .and_then(|e| e.as_array())
        .ok_or_else(|| LakeError::Data(format!("the manifest '{uri}' has no \"entries\" array")))?;
    let mut files = Vec::with_capacity(entries.len());
    let mut lengths = Vec::with_capacity(entries.len());
    for e in entries {
        lengths.push(e.pointer("/meta/content_length").and_then(|n| n.as_u64()));
        let url = e
            .get("url")
            .and_then(|u| u.as_str())
            .ok_or_else(|| LakeError::Data(format!("an entry of the manifest '{uri}' has no \"url\"")))?;
        // Entries name objects by URL; relative names are under the
        // manifest's folder.
        let url = if url.contains("://") || url.starts_with('/') {
            url.to_string()
        } else {
            format!("{}{url}", &uri[..uri.rfind('/').map_or(0, |i| i + 1)])
        };
        files.push(Location::parse(&url, Path::new("/")).map_err(crate::provider::location_error)?.as_str().to_string());
    }
    if files.is_empty() {
        return Err(LakeError::Data(format!("the manifest '{uri}' lists no files")));
    }
    check_lengths(state, def, &uri, &files, &lengths).await?;
    def.locations = files;
    if !def.declared_columns
        && let Some(elements) = doc.pointer("/schema/elements").and_then(|e| e.as_array())
    {
        let mut columns = Vec::new();
        for el in elements {
            let name = el.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
            let ty = el.get("type").cloned().unwrap_or_default();
            let mysql = redshift_type(&ty).ok_or_else(|| LakeError::NotSupported(format!("the Redshift type {ty} of column '{name}' in '{uri}'")))?;
            columns.push((name, mysql));
        }
        def.columns = columns
            .into_iter()
            .map(|(name, mysql)| {
                let data_type = arrow_of_mysql(&mysql).map(|t| t.to_string());
                data_type.map(|data_type| crate::model::ColumnDef { name, data_type, nullable: true, mysql_type: Some(mysql.to_lowercase()), distinct: None })
            })
            .collect::<Result<_>>()?;
        def.declared_columns = true;
    }
    Ok(())
}

/// The Arrow type a MySQL column type (as text) is read as.
fn arrow_of_mysql(mysql: &str) -> Result<datafusion::arrow::datatypes::DataType> {
    use datafusion::sql::sqlparser::{dialect::MySqlDialect, parser::Parser};
    let sql = Parser::new(&MySqlDialect {})
        .try_with_sql(mysql)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| LakeError::InvalidDefinition(format!("column type '{mysql}': {e}")))?;
    crate::types::arrow_type_for_sql(&sql)
}

/// The MySQL type of a Redshift column type as `MANIFEST VERBOSE` writes it
/// (`{"base": "numeric", "precision": 12, "scale": 2}`).
fn redshift_type(ty: &serde_json::Value) -> Option<String> {
    let base = ty.get("base")?.as_str()?.to_lowercase();
    let n = |k: &str| ty.get(k).and_then(|v| v.as_u64());
    Some(match base.as_str() {
        "smallint" | "int2" => "SMALLINT".into(),
        "integer" | "int" | "int4" => "INT".into(),
        "bigint" | "int8" => "BIGINT".into(),
        "numeric" | "decimal" => format!("DECIMAL({},{})", n("precision").unwrap_or(18), n("scale").unwrap_or(0)),
        "real" | "float4" => "FLOAT".into(),
        "double precision" | "float8" | "float" => "DOUBLE".into(),
        "boolean" | "bool" => "BOOLEAN".into(),
        "character varying" | "varchar" | "character" | "char" | "bpchar" | "text" => match n("max_length") {
            Some(l) => format!("VARCHAR({l})"),
            None => "TEXT".into(),
        },
        "date" => "DATE".into(),
        "timestamp without time zone" | "timestamp" => "DATETIME(6)".into(),
        "timestamp with time zone" | "timestamptz" => "TIMESTAMP(6)".into(),
        "time without time zone" | "time" => "TIME(6)".into(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redshift_types() {
        let t = |j: serde_json::Value| redshift_type(&j);
        assert_eq!(t(serde_json::json!({"base": "numeric", "precision": 12, "scale": 2})).as_deref(), Some("DECIMAL(12,2)"));
        assert_eq!(t(serde_json::json!({"base": "character varying", "max_length": 30})).as_deref(), Some("VARCHAR(30)"));
        assert_eq!(t(serde_json::json!({"base": "timestamp without time zone"})).as_deref(), Some("DATETIME(6)"));
        assert_eq!(t(serde_json::json!({"base": "geometry"})), None);
    }

    #[test]
    fn import_names_avoid_clashes() {
        let t = |d: &str, s: &str, n: &str| ExportedTable { database: d.into(), schema: s.into(), table: n.into(), location: String::new() };
        let names = import_names(&[t("shop", "shop", "orders"), t("pg", "public", "items"), t("pg", "audit", "items")]);
        assert_eq!(names, vec!["orders", "public_items", "audit_items"]);
    }
}
