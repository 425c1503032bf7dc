//! HeatWave Lakehouse DDL: `CREATE TABLE t (...) ENGINE=lakehouse
//! SECONDARY_ENGINE=RAPID ENGINE_ATTRIBUTE='{"dialect": {...}, "file": [...]}'`.
//!
//! The `dialect` object carries HeatWave's keys (format, field_delimiter,
//! record_delimiter, escape_character, quotation_marks, skip_rows,
//! has_header, encoding, date_format, time_format, timestamp_format,
//! trim_spaces, is_strict_mode, allow_missing_files, compression); they are
//! translated into the reader options the engine uses. Each `file` entry is
//! one of `{"uri"}`, `{"name"}`, `{"prefix"}` or `{"pattern"}` (a regular
//! expression over full paths, resolved to the matching files when the
//! table is created).

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::sql::sqlparser::ast::{CreateTable, CreateTableOptions, Expr, SqlOption};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use serde_json::{Map, Value as Json};

use connectors::{Location, list_local_files};

use connectors::sql::{quote_ident, quote_str};

use crate::ddl::{CreateTablePlan, column_sql, columns_from_sql, now, split_name, value_text};
use crate::error::{LakeError, Result};
use crate::model::{DdlDialect, TableDef};
use crate::provider::location_error;

/// Removes `SECONDARY_ENGINE [=] name` from a statement (sqlparser does not
/// know the clause) and returns the rewritten SQL with the engine name.
/// Statements without the clause come back unchanged.
pub fn strip_secondary_engine(sql: &str) -> (String, Option<String>) {
    let dialect = MySqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return (sql.to_string(), None);
    };
    let is_clause = |t: &Token| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("SECONDARY_ENGINE"));
    if !tokens.iter().any(is_clause) {
        return (sql.to_string(), None);
    }
    let mut out = String::with_capacity(sql.len());
    let mut engine = None;
    let mut i = 0;
    while i < tokens.len() {
        if is_clause(&tokens[i]) {
            let mut j = i + 1;
            while matches!(tokens.get(j), Some(Token::Whitespace(_))) {
                j += 1;
            }
            if matches!(tokens.get(j), Some(Token::Eq)) {
                j += 1;
                while matches!(tokens.get(j), Some(Token::Whitespace(_))) {
                    j += 1;
                }
            }
            match tokens.get(j) {
                Some(Token::Word(w)) => engine = Some(w.value.clone()),
                Some(Token::SingleQuotedString(s)) => engine = Some(s.clone()),
                Some(Token::EOF) | None => return (sql.to_string(), None),
                Some(_) => {}
            }
            // `SECONDARY_ENGINE = NULL` also parses as a word.
            i = j + 1;
            continue;
        }
        out.push_str(&tokens[i].to_string());
        i += 1;
    }
    (out, engine)
}

/// A secondary-engine ALTER TABLE, which the SQL parser does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondaryAlter {
    /// `SECONDARY_ENGINE [=] name`; None for `NULL`.
    Engine(Option<String>),
    Load,
    Unload,
}

/// Recognises `ALTER TABLE [db.]t SECONDARY_ENGINE [=] RAPID|NULL`,
/// `... SECONDARY_LOAD` and `... SECONDARY_UNLOAD`, returning the table as
/// `(database, table)` (lower case) and the operation.
pub fn parse_secondary_alter(sql: &str) -> Option<(Option<String>, String, SecondaryAlter)> {
    let dialect = MySqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    let mut words = tokens.into_iter().filter(|t| {
        !matches!(t, Token::Whitespace(_) | Token::EOF | Token::SemiColon)
    });
    let kw = |t: Option<Token>, k: &str| matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    if !kw(words.next(), "ALTER") || !kw(words.next(), "TABLE") {
        return None;
    }
    let ident = |t: Option<Token>| match t {
        Some(Token::Word(w)) => Some(w.value.to_lowercase()),
        _ => None,
    };
    let first = ident(words.next())?;
    let mut next = words.next();
    let (db, table) = if matches!(next, Some(Token::Period)) {
        let t = ident(words.next())?;
        next = words.next();
        (Some(first), t)
    } else {
        (None, first)
    };
    let Some(Token::Word(op)) = next else { return None };
    if op.quote_style.is_some() {
        return None;
    }
    let op = match op.value.to_uppercase().as_str() {
        "SECONDARY_LOAD" => SecondaryAlter::Load,
        "SECONDARY_UNLOAD" => SecondaryAlter::Unload,
        "SECONDARY_ENGINE" => {
            let mut v = words.next();
            if matches!(v, Some(Token::Eq)) {
                v = words.next();
            }
            match v {
                Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("NULL") && w.quote_style.is_none() => SecondaryAlter::Engine(None),
                Some(Token::Word(w)) => SecondaryAlter::Engine(Some(w.value)),
                Some(Token::SingleQuotedString(s)) => SecondaryAlter::Engine(Some(s)),
                _ => return None,
            }
        }
        _ => return None,
    };
    // Nothing may follow.
    if words.next().is_some() {
        return None;
    }
    Some((db, table, op))
}

/// The `ENGINE` and `ENGINE_ATTRIBUTE` of a MySQL CREATE TABLE.
pub fn engine_of(ct: &CreateTable) -> (Option<String>, Option<String>) {
    let opts: &[SqlOption] = match &ct.table_options {
        CreateTableOptions::Plain(o) | CreateTableOptions::With(o) | CreateTableOptions::Options(o) => o,
        _ => &[],
    };
    let mut engine = None;
    let mut attribute = None;
    for o in opts {
        match o {
            SqlOption::NamedParenthesizedList(l) if l.key.value.eq_ignore_ascii_case("ENGINE") => {
                engine = l.name.as_ref().map(|n| n.value.clone());
            }
            SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("ENGINE") => {
                engine = Some(expr_text(value));
            }
            SqlOption::KeyValue { key, value } if key.value.eq_ignore_ascii_case("ENGINE_ATTRIBUTE") => {
                attribute = Some(expr_text(value));
            }
            _ => {}
        }
    }
    (engine, attribute)
}

fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => value_text(&v.value),
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

fn invalid(msg: impl Into<String>) -> LakeError {
    LakeError::InvalidDefinition(format!("Invalid ENGINE_ATTRIBUTE: {}", msg.into()))
}

fn text_of(v: &Json, key: &str) -> Result<String> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid(format!("\"{key}\" must be a string"))),
    }
}

fn bool_of(v: &Json, key: &str) -> Result<bool> {
    match v {
        Json::Bool(b) => Ok(*b),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Json::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Json::Number(n) if n.as_i64() == Some(0) => Ok(false),
        _ => Err(invalid(format!("\"{key}\" must be true or false"))),
    }
}

fn single_byte(v: &Json, key: &str) -> Result<String> {
    let s = text_of(v, key)?;
    if s.len() != 1 {
        return Err(LakeError::NotSupported(format!(
            "a {key} of {} bytes ({s:?}); one byte is supported",
            s.len()
        )));
    }
    Ok(s)
}

/// Translates the `dialect` object into format and reader options.
fn dialect_options(dialect: &Map<String, Json>) -> Result<(String, BTreeMap<String, String>, bool)> {
    let format = match dialect.get("format") {
        Some(v) => text_of(v, "format")?.to_lowercase(),
        None => "csv".to_string(),
    };
    let mut opts = BTreeMap::new();
    let mut allow_missing = false;
    if format == "csv" {
        // HeatWave's CSV defaults: '|' between fields, no header, '\'
        // escapes (so `\N` is NULL and `\|` a literal '|').
        opts.insert("format.delimiter".into(), "|".into());
        opts.insert("format.has_header".into(), "false".into());
        opts.insert("format.escape".into(), "\\".into());
    }
    let mut skip_rows = 0u64;
    for (key, v) in dialect {
        match key.as_str() {
            "format" => {}
            "field_delimiter" => {
                opts.insert("format.delimiter".into(), single_byte(v, key)?);
            }
            "record_delimiter" => {
                let s = text_of(v, key)?;
                match s.as_str() {
                    "\n" | "\\n" => {}
                    "\r\n" | "\\r\\n" => {}
                    _ if s.len() == 1 => {
                        opts.insert("format.terminator".into(), s);
                    }
                    _ => return Err(LakeError::NotSupported(format!("record_delimiter {s:?}"))),
                }
            }
            "escape_character" => {
                opts.insert("format.escape".into(), single_byte(v, key)?);
            }
            "quotation_marks" => {
                opts.insert("format.quote".into(), single_byte(v, key)?);
            }
            "has_header" => {
                opts.insert("format.has_header".into(), bool_of(v, key)?.to_string());
            }
            "skip_rows" => {
                skip_rows = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| invalid("\"skip_rows\" must be a number"))?;
            }
            "encoding" => {
                let e = text_of(v, key)?.to_lowercase();
                match e.as_str() {
                    "utf8mb4" | "utf8" | "utf-8" | "utf8mb3" => {}
                    "latin1" | "cp1252" | "iso-8859-1" => {
                        opts.insert("format.encoding".into(), "latin1".into());
                    }
                    _ => return Err(LakeError::NotSupported(format!("encoding '{e}' (utf8mb4 or latin1)"))),
                }
            }
            "date_format" | "time_format" | "timestamp_format" => {
                let f = text_of(v, key)?;
                if !f.eq_ignore_ascii_case("auto") {
                    opts.insert(format!("format.{key}"), f);
                }
            }
            "trim_spaces" => {
                if bool_of(v, key)? {
                    opts.insert("format.ignore_leading_whitespace".into(), "true".into());
                    opts.insert("format.ignore_trailing_whitespace".into(), "true".into());
                }
            }
            "is_strict_mode" => {
                // Strict: a bad value or row fails the query, naming file,
                // line and column. Permissive: it reads as NULL, with a
                // warning.
                let strict = bool_of(v, key)?;
                opts.insert("format.bad_rows".into(), if strict { "error" } else { "null" }.into());
            }
            "allow_missing_files" => allow_missing = bool_of(v, key)?,
            "compression" => {
                let c = text_of(v, key)?.to_lowercase();
                let c = match c.as_str() {
                    "gz" => "gzip".to_string(),
                    "bz2" => "bzip2".to_string(),
                    "zst" => "zstd".to_string(),
                    "auto" | "none" | "uncompressed" => continue,
                    _ => c,
                };
                opts.insert("format.compression".into(), c);
            }
            other => return Err(invalid(format!("unknown dialect key \"{other}\""))),
        }
    }
    match skip_rows {
        0 => {}
        1 if opts.get("format.has_header").is_none_or(|h| h != "true") => {
            opts.insert("format.has_header".into(), "true".into());
        }
        n => {
            // Lines before the header (or the data) are skipped.
            opts.insert("format.skip_rows".into(), n.to_string());
        }
    }
    if format == "csv" {
        // HeatWave's text semantics (strict mode by default, MySQL date
        // formats, `\N`) are those of Lakewave's own text reader.
        opts.entry("format.bad_rows".into()).or_insert_with(|| "error".into());
    } else {
        opts.retain(|k, _| k == "format.compression");
    }
    Ok((format, opts, allow_missing))
}

/// Marks a location that is a manifest to expand.
const MANIFEST_MARK: &str = "manifest:";

/// Expands one `file` entry into locations, with the OCI region an
/// object-storage entry names and the pattern that filters its listing.
fn file_locations(
    entry: &Map<String, Json>,
    base: &Path,
    allow_missing: bool,
) -> Result<(Vec<String>, Option<String>, Option<String>)> {
    let allow_missing = match entry.get("allow_missing_files") {
        Some(v) => bool_of(v, "allow_missing_files")?,
        None => allow_missing,
    };
    if let Some(m) = entry.get("manifest") {
        // Expanded into the files it lists when the table is resolved.
        let uri = Location::parse(&text_of(m, "manifest")?, base).map_err(location_error)?.as_str().to_string();
        return Ok((vec![format!("{MANIFEST_MARK}{uri}")], None, None));
    }
    // Where names and prefixes are resolved: a local base directory, an
    // OCI bucket (`oci://bucket@namespace/`), or a pre-authenticated
    // request URL.
    let mut region = None;
    let root: Option<String> = if let Some(par) = entry.get("par") {
        for k in ["bucket", "namespace", "region"] {
            if entry.contains_key(k) {
                return Err(invalid(format!("a \"par\" entry takes no \"{k}\"")));
            }
        }
        let url = text_of(par, "par")?;
        if !connectors::par::is_par_path(url::Url::parse(&url).map(|u| u.path().to_string()).unwrap_or_default().as_str()) {
            return Err(invalid(format!(
                "\"par\" must be a pre-authenticated request URL (https://.../p/<token>/n/<namespace>/b/<bucket>/o/...), not '{}'",
                connectors::par::redact_par_tokens(&url)
            )));
        }
        Some(url)
    } else if ["bucket", "namespace", "region"].iter().any(|k| entry.contains_key(*k)) {
        let get = |k: &str| -> Result<String> {
            entry.get(k).map(|v| text_of(v, k)).transpose()?.filter(|s| !s.is_empty()).ok_or_else(|| {
                invalid("an object storage entry needs \"bucket\", \"namespace\" and \"region\"".to_string())
            })
        };
        let (bucket, namespace) = (get("bucket")?, get("namespace")?);
        region = Some(get("region")?);
        Some(format!("oci://{bucket}@{namespace}/"))
    } else {
        None
    };
    if let Some(v) = entry.get("pattern") {
        let pattern = text_of(v, "pattern")?;
        if let Some(root) = &root {
            // On object storage the pattern filters the listing of the
            // bucket (or of the entry's prefix) when the table is read.
            if root.starts_with("http") {
                return Err(LakeError::NotSupported("\"pattern\" with \"par\"; use \"prefix\"".into()));
            }
            regex::Regex::new(&pattern).map_err(|e| invalid(format!("bad \"pattern\": {e}")))?;
            let prefix = match entry.get("prefix") {
                Some(p) => text_of(p, "prefix")?.trim_start_matches('/').to_string(),
                None => regex_literal_dir(&format!("/{}", pattern.trim_start_matches('^'))).trim_start_matches('/').to_string(),
            };
            let mut loc = format!("{root}{prefix}");
            if !loc.ends_with('/') {
                loc.push('/');
            }
            return Ok((vec![loc], region, Some(pattern)));
        }
        let re = regex::Regex::new(&pattern).map_err(|e| invalid(format!("bad \"pattern\": {e}")))?;
        let dir = match entry.get("prefix") {
            Some(p) => Location::parse(&text_of(p, "prefix")?, base).map_err(location_error)?.as_str().to_string(),
            None => regex_literal_dir(&pattern),
        };
        let mut files = list_local_files(Path::new(&dir), usize::MAX);
        files.retain(|f| re.is_match(f));
        if files.is_empty() && !allow_missing {
            return Err(LakeError::Data(format!("no file under '{dir}' matches the pattern \"{pattern}\"")));
        }
        return Ok((files, region, None));
    }
    let (raw, prefix) = match (entry.get("uri"), entry.get("name"), entry.get("prefix"), &root) {
        (Some(u), _, _, None) => (text_of(u, "uri")?, false),
        (Some(_), _, _, Some(_)) => return Err(invalid("\"uri\" cannot be combined with \"par\" or \"bucket\"")),
        (None, Some(n), _, Some(r)) => (format!("{r}{}", text_of(n, "name")?.trim_start_matches('/')), false),
        (None, None, Some(p), Some(r)) => (format!("{r}{}", text_of(p, "prefix")?.trim_start_matches('/')), true),
        (None, None, None, Some(r)) => (r.clone(), r.ends_with('/')),
        (None, Some(n), _, None) => (text_of(n, "name")?, false),
        (None, None, Some(p), None) => (text_of(p, "prefix")?, true),
        _ => return Err(invalid("each \"file\" entry needs \"uri\", \"name\", \"prefix\", \"pattern\", \"par\" or \"bucket\"")),
    };
    let mut loc = Location::parse(&raw, base).map_err(location_error)?.as_str().to_string();
    if prefix && !loc.ends_with('/') {
        loc.push('/');
    }
    let parsed = Location::parse(&loc, base).map_err(location_error)?;
    if let Err(e) = parsed.check_exists() {
        if allow_missing {
            return Ok((vec![], region, None));
        }
        return Err(location_error(e));
    }
    Ok((vec![loc], region, None))
}

/// The directory part of a regex before its first metacharacter.
fn regex_literal_dir(pattern: &str) -> String {
    let p = pattern.trim_start_matches('^');
    let end = p.find(|c: char| "\\.*+?()[]{}|$^".contains(c)).unwrap_or(p.len());
    let head = &p[..end];
    match head.rfind('/') {
        Some(i) => head[..=i].to_string(),
        None => "/".to_string(),
    }
}

/// A HeatWave-style CREATE TABLE with ENGINE=lakehouse.
pub fn from_create_table(ct: &CreateTable, attribute: &str, base: &Path) -> Result<CreateTablePlan> {
    let (database, name) = split_name(&ct.name)?;
    let doc: Json = serde_json::from_str(attribute)
        .map_err(|e| invalid(format!("not valid JSON ({e})")))?;
    let obj = doc.as_object().ok_or_else(|| invalid("expected a JSON object"))?;
    for key in obj.keys() {
        if key != "dialect" && key != "file" {
            return Err(invalid(format!("unknown key \"{key}\"; expected \"dialect\" and \"file\"")));
        }
    }
    let empty = Map::new();
    let dialect = match obj.get("dialect") {
        Some(Json::Object(d)) => d,
        Some(_) => return Err(invalid("\"dialect\" must be an object")),
        None => &empty,
    };
    let (format, mut options, allow_missing) = dialect_options(dialect)?;
    let files = match obj.get("file") {
        Some(Json::Array(f)) if !f.is_empty() => f,
        _ => return Err(invalid("\"file\" must be a non-empty array")),
    };
    let mut locations = Vec::new();
    for f in files {
        let entry = f.as_object().ok_or_else(|| invalid("each \"file\" entry must be an object"))?;
        let (found, region, pattern) = file_locations(entry, base, allow_missing)?;
        for f in found {
            match f.strip_prefix(MANIFEST_MARK) {
                Some(uri) => {
                    if options.insert(crate::exports::MANIFEST_OPTION.into(), uri.to_string()).is_some() {
                        return Err(LakeError::NotSupported("more than one \"manifest\" entry in one table".into()));
                    }
                    locations.push(uri.to_string());
                }
                None => locations.push(f),
            }
        }
        if let Some(p) = pattern {
            if options.insert("storage.object_pattern".into(), p).is_some() {
                return Err(LakeError::NotSupported("more than one \"pattern\" entry on object storage in one table".into()));
            }
        }
        if let Some(region) = region {
            match options.get("oci.region") {
                Some(r) if r != &region => {
                    return Err(LakeError::NotSupported(format!("object storage entries in two regions ('{r}' and '{region}')")));
                }
                _ => {
                    options.insert("oci.region".into(), region);
                }
            }
        }
    }
    if locations.is_empty() {
        return Err(LakeError::Data("none of the table's files exist".into()));
    }
    let columns = columns_from_sql(&ct.columns)?;
    let def = TableDef {
        name,
        format,
        locations,
        partition_cols: vec![],
        options,
        declared_columns: !columns.is_empty(),
        columns,
        dialect: DdlDialect::HeatWave,
        engine_attribute: Some(attribute.to_string()),
        created_at: now(),
    };
    Ok(CreateTablePlan { database, def, if_not_exists: ct.if_not_exists, or_replace: ct.or_replace })
}

/// The CREATE TABLE of a definition, qualified with its database.
pub fn show_create_in(db: &str, def: &TableDef) -> String {
    let cols: Vec<String> = def.columns.iter().map(column_sql).collect();
    let attr = def.engine_attribute.clone().unwrap_or_default();
    format!(
        "CREATE TABLE {}.{} ({}) ENGINE=lakehouse SECONDARY_ENGINE=RAPID ENGINE_ATTRIBUTE={}",
        quote_ident(db),
        quote_ident(&def.name),
        cols.join(", "),
        quote_str(&attr)
    )
}

pub fn show_create(def: &TableDef) -> Result<String> {
    let cols: Vec<String> = def.columns.iter().map(column_sql).collect();
    let attr = def.engine_attribute.clone().unwrap_or_default();
    Ok(format!(
        "CREATE TABLE {} (\n  {}\n) ENGINE=lakehouse SECONDARY_ENGINE=RAPID ENGINE_ATTRIBUTE={}",
        quote_ident(&def.name),
        cols.join(",\n  "),
        quote_str(&attr)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_secondary_alters() {
        assert_eq!(
            parse_secondary_alter("ALTER TABLE s.T SECONDARY_ENGINE = RAPID;"),
            Some((Some("s".into()), "t".into(), SecondaryAlter::Engine(Some("RAPID".into()))))
        );
        assert_eq!(parse_secondary_alter("alter table `t` secondary_engine NULL"), Some((None, "t".into(), SecondaryAlter::Engine(None))));
        assert_eq!(parse_secondary_alter("ALTER TABLE t SECONDARY_LOAD"), Some((None, "t".into(), SecondaryAlter::Load)));
        assert_eq!(parse_secondary_alter("ALTER TABLE t SECONDARY_UNLOAD"), Some((None, "t".into(), SecondaryAlter::Unload)));
        assert_eq!(parse_secondary_alter("ALTER TABLE t ADD COLUMN x INT"), None);
        assert_eq!(parse_secondary_alter("ALTER TABLE t SECONDARY_LOAD, ADD COLUMN x INT"), None);
    }

    #[test]
    fn object_storage_file_entries() -> Result<()> {
        let base = Path::new("/");
        let entry = |j: Json| j.as_object().cloned().expect("object literal");
        let (locs, region, _) = file_locations(
            &entry(serde_json::json!({"bucket": "sales", "namespace": "acme", "region": "us-ashburn-1", "prefix": "2026/q1"})),
            base,
            false,
        )?;
        assert_eq!((locs, region.as_deref()), (vec!["oci://sales@acme/2026/q1/".to_string()], Some("us-ashburn-1")));
        let (locs, _, _) = file_locations(
            &entry(serde_json::json!({"bucket": "sales", "namespace": "acme", "region": "r", "name": "a.parquet"})),
            base,
            false,
        )?;
        assert_eq!(locs, vec!["oci://sales@acme/a.parquet".to_string()]);
        let par = "https://objectstorage.r.oraclecloud.com/p/TOK/n/acme/b/sales/o/";
        let (locs, region, _) = file_locations(&entry(serde_json::json!({"par": par, "prefix": "2026/"})), base, false)?;
        assert_eq!((locs, region), (vec![format!("{par}2026/")], None));
        let (locs, _, _) = file_locations(&entry(serde_json::json!({"par": format!("{par}x.csv")})), base, false)?;
        assert_eq!(locs, vec![format!("{par}x.csv")]);
        assert!(file_locations(&entry(serde_json::json!({"bucket": "sales", "name": "x"})), base, false).is_err());
        let (locs, _, pattern) = file_locations(
            &entry(serde_json::json!({"bucket": "sales", "namespace": "acme", "region": "r", "pattern": "2026/q[12]/.*\\.csv"})),
            base,
            false,
        )?;
        assert_eq!((locs, pattern.as_deref()), (vec!["oci://sales@acme/2026/".to_string()], Some("2026/q[12]/.*\\.csv")));
        assert!(file_locations(&entry(serde_json::json!({"par": "https://example.com/x.csv"})), base, false).is_err());
        assert!(file_locations(&entry(serde_json::json!({"par": par, "bucket": "b"})), base, false).is_err());
        Ok(())
    }

    #[test]
    fn strips_secondary_engine() {
        let (sql, engine) = strip_secondary_engine(
            "CREATE TABLE t (a INT) ENGINE=lakehouse SECONDARY_ENGINE = RAPID ENGINE_ATTRIBUTE='{}'",
        );
        assert_eq!(engine.as_deref(), Some("RAPID"));
        assert!(!sql.to_uppercase().contains("SECONDARY_ENGINE"));
        assert!(sql.contains("ENGINE_ATTRIBUTE='{}'"));
        let (same, none) = strip_secondary_engine("SELECT 'SECONDARY_ENGINE'");
        assert_eq!((same.as_str(), none), ("SELECT 'SECONDARY_ENGINE'", None));
    }

    #[test]
    fn dialect_keys() -> Result<()> {
        let d: Json = serde_json::json!({"format": "csv", "field_delimiter": ",", "skip_rows": 1, "compression": "gz"});
        let (fmt, opts, _) = dialect_options(d.as_object().expect("object literal"))?;
        assert_eq!(fmt, "csv");
        assert_eq!(opts.get("format.delimiter").map(String::as_str), Some(","));
        assert_eq!(opts.get("format.has_header").map(String::as_str), Some("true"));
        assert_eq!(opts.get("format.compression").map(String::as_str), Some("gzip"));
        let bad: Json = serde_json::json!({"colour": "red"});
        assert!(dialect_options(bad.as_object().expect("object literal")).is_err());
        Ok(())
    }

    #[test]
    fn regex_dir() {
        assert_eq!(regex_literal_dir("^/data/x/part-.*\\.csv$"), "/data/x/");
        assert_eq!(regex_literal_dir("part.*"), "/");
    }
}
