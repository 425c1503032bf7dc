//! Building DataFusion table providers for external tables.
//!
//! At `CREATE` time [`resolve`] infers what the user left out (schema,
//! partition columns, compression from file suffixes) and checks that the
//! location exists; the result is stored in the catalog. Afterwards [`build`]
//! turns a stored definition into a listing table without touching the
//! files, so a restart never depends on storage being reachable.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionState;

use connectors::{Location, LocationError, list_local_files, stores};

use crate::error::{LakeError, Result};
use crate::model::{ColumnDef, TableDef};

/// Formats a table can be stored as.
pub const FORMATS: [&str; 4] = ["parquet", "csv", "json", "avro"];

/// Namespaces of table options: the file format's, and the object store's.
const OPTION_NAMESPACES: [&str; 7] = ["format.", "aws.", "azure.", "gcp.", "oci.", "storage.", "aurora."];

/// Compression suffixes recognised on file names, with the option value.
pub(crate) const COMPRESSION_SUFFIXES: [(&str, &str); 4] =
    [(".gz", "gzip"), (".bz2", "bzip2"), (".zst", "zstd"), (".xz", "xz")];

pub(crate) fn location_error(e: LocationError) -> LakeError {
    match e {
        LocationError::UnsupportedScheme { .. } => LakeError::NotSupported(e.to_string()),
        LocationError::NotFound(_) => LakeError::Data(e.to_string()),
        LocationError::Invalid { .. } => LakeError::InvalidDefinition(e.to_string()),
    }
}

fn file_format(state: &SessionState, def: &TableDef) -> Result<Arc<dyn FileFormat>> {
    file_format_for(state, def, None)
}

/// The file format of a table; `table` names it in read statistics.
fn file_format_for(state: &SessionState, def: &TableDef, table: Option<&TableReference>) -> Result<Arc<dyn FileFormat>> {
    if let Some(k) = def.options.keys().find(|k| !OPTION_NAMESPACES.iter().any(|ns| k.starts_with(ns))) {
        return Err(LakeError::InvalidDefinition(format!(
            "unknown option '{k}' (options are format.*, aws.*, azure.*, gcp.*, oci.*, storage.* or aurora.table)"
        )));
    }
    if crate::text::wanted(def) {
        let options = crate::text::TextOptions::from_table(def)?;
        let name = table.map_or_else(|| def.name.clone(), |t| t.to_string());
        let stats = state.config().get_extension::<crate::text::ReadStats>();
        return Ok(Arc::new(crate::text::TextFormat::new(options, name, stats)));
    }
    let factory = state.get_file_format_factory(&def.format).ok_or_else(|| {
        LakeError::NotSupported(format!(
            "file format '{}' (supported: {})",
            def.format,
            FORMATS.join(", ")
        ))
    })?;
    // Storage options (aws.*, azure.*, ...) configure the store, not the format.
    let mut options: HashMap<String, String> =
        def.options.iter().filter(|(k, _)| k.starts_with("format.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    // The CSV reader matches NULL markers by regex; `null_value` is the
    // user-facing literal form of the same thing.
    if let Some(marker) = def.options.get("format.null_value")
        && !def.options.contains_key("format.null_regex") && def.format == "csv" {
            options.insert("format.null_regex".into(), format!("^{}$", regex::escape(marker)));
        }
    factory.create(state, &options).map_err(|e| {
        LakeError::InvalidDefinition(format!("invalid options for {} table: {e}", def.format))
    })
}

/// The file suffix a prefix location is filtered by (`.csv.gz`, `.parquet`).
fn extension_for(format: &dyn FileFormat) -> String {
    let ext = match format.compression_type() {
        Some(c) => format.get_ext_with_compression(&c).unwrap_or_else(|_| format.get_ext()),
        None => format.get_ext(),
    };
    format!(".{ext}")
}

/// The listing URL of each location. Remote locations get their object
/// store registered in the session's runtime. Tables that configure their
/// own store (credentials, endpoint, timeouts) register it under a key of
/// their own, so two tables on one bucket with different credentials each
/// read with theirs. `table` scopes the listing cache (None: not cached).
fn listing_urls(state: &SessionState, def: &TableDef, table: Option<&TableReference>) -> Result<Vec<(Location, ListingTableUrl)>> {
    def.locations
        .iter()
        .map(|raw| {
            let loc = Location::parse(raw, Path::new("/")).map_err(location_error)?;
            let invalid = |e: &dyn std::fmt::Display| LakeError::InvalidDefinition(format!("Invalid location '{raw}': {e}"));
            let url = if loc.is_remote() {
                let store_loc = stores::store_location(raw, &def.options).map_err(store_error)?;
                let store = stores::build_store(&store_loc, &def.options).map_err(store_error)?;
                let text = registry_url(&store_loc, def);
                let url = match stores::split_glob(&text) {
                    Some((base, glob)) => {
                        let base = url::Url::parse(base).map_err(|e| invalid(&e))?;
                        let glob = glob::Pattern::new(glob).map_err(|e| invalid(&e))?;
                        ListingTableUrl::try_new(base, Some(glob)).map_err(|e| invalid(&e))?
                    }
                    None => ListingTableUrl::parse(&text).map_err(|e| invalid(&e))?,
                };
                state.runtime_env().register_object_store(url.object_store().as_ref(), store);
                url
            } else {
                ListingTableUrl::parse(loc.listing_form()).map_err(|e| invalid(&e))?
            };
            let url = match table {
                Some(t) => url.with_table_ref(t.clone()),
                None => url,
            };
            Ok((loc, url))
        })
        .collect()
}

/// Marks the registry keys of stores configured by a table's own options.
const STORE_KEY_MARK: char = '~';

/// The URL a remote location is listed under: its own, or, when the table
/// configures its store, the same URL with a key derived from those options
/// appended to the bucket (`s3://bucket~1a2b3c4d/path`). Only the registry
/// sees the key: the store itself is built for the real bucket.
fn registry_url(loc: &stores::StoreLocation, def: &TableDef) -> String {
    use std::hash::{Hash, Hasher};
    let store_options: Vec<(&String, &String)> =
        def.options.iter().filter(|(k, _)| !k.starts_with("format.")).collect();
    let text = loc.url.as_str().to_string();
    if (store_options.is_empty() && loc.implied.is_empty()) || !matches!(loc.url.scheme(), "s3" | "az" | "abfs" | "abfss" | "gs") {
        return text;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    store_options.hash(&mut h);
    loc.implied.hash(&mut h);
    let host = loc.url.host_str().unwrap_or_default();
    let scheme_end = text.find("://").map_or(0, |i| i + 3);
    let host_at = text[scheme_end..].find(host).map_or(scheme_end, |i| i + scheme_end);
    format!("{}{STORE_KEY_MARK}{:08x}{}", &text[..host_at + host.len()], h.finish() as u32, &text[host_at + host.len()..])
}

/// The store URL users see for a registry URL (the key removed).
fn shown_store_url(url: &str) -> String {
    match url.find(STORE_KEY_MARK) {
        Some(i) => {
            let rest = &url[i..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..i], &rest[end..])
        }
        None => url.to_string(),
    }
}

/// How long a table's listings are reused: `storage.list_cache_ttl`
/// seconds, else a minute for object stores and nothing for local files.
pub(crate) fn list_cache_ttl(def: &TableDef) -> Result<std::time::Duration> {
    match def.options.get("storage.list_cache_ttl") {
        Some(v) => crate::listing::parse_ttl(v).ok_or_else(|| {
            LakeError::InvalidDefinition(format!("Invalid storage option 'storage.list_cache_ttl': '{v}' is not a number of seconds"))
        }),
        None if def.locations.iter().any(|l| stores::is_remote(l)) => Ok(crate::listing::DEFAULT_REMOTE_TTL),
        None => Ok(std::time::Duration::ZERO),
    }
}

/// The store and path prefix of a definition's first location (its store
/// registered in the session's runtime).
pub(crate) async fn store_of(
    state: &SessionState,
    def: &TableDef,
) -> Result<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)> {
    let urls = listing_urls(state, def, None)?;
    let (_, url) = urls.first().ok_or_else(|| LakeError::InvalidDefinition("a location is needed".into()))?;
    let store = state.runtime_env().object_store(url)?;
    Ok((store, url.prefix().clone()))
}

pub(crate) fn store_error(e: stores::StoreError) -> LakeError {
    LakeError::InvalidDefinition(e.to_string())
}

/// Checks that a remote location names something, and turns a location
/// written without its trailing `/` into a prefix when it names a
/// "directory" rather than an object.
async fn check_remote(state: &SessionState, loc: &Location, url: &ListingTableUrl) -> Result<Option<String>> {
    use futures::StreamExt;
    let store = state.runtime_env().object_store(url)?;
    let not_found = || LakeError::Data(format!("Can't find file: '{}' (errno: 2 - No such file or directory)", loc.as_str()));
    let remote_error = |e: object_store::Error| LakeError::Data(format!("cannot read '{}': {e}", loc.as_str()));
    if loc.is_collection() {
        return match store.list(Some(url.prefix())).next().await {
            Some(Ok(_)) => Ok(None),
            Some(Err(object_store::Error::NotFound { .. })) | None => Err(not_found()),
            Some(Err(e)) => Err(remote_error(e)),
        };
    }
    use object_store::ObjectStoreExt;
    match store.head(url.prefix()).await {
        Ok(_) => Ok(None),
        Err(object_store::Error::NotFound { .. }) => {
            let dir = object_store::path::Path::from(format!("{}/", url.prefix()).as_str());
            match store.list(Some(&dir)).next().await {
                Some(Ok(_)) => Ok(Some(format!("{}/", loc.as_str()))),
                Some(Err(object_store::Error::NotFound { .. })) | None => Err(not_found()),
                Some(Err(e)) => Err(remote_error(e)),
            }
        }
        Err(e) => Err(remote_error(e)),
    }
}

/// A location naming the start of file names rather than a file or a
/// folder (`unload/venue_`, as Redshift's `UNLOAD ... TO '.../venue_'`
/// writes `venue_0000_part_00`) becomes a glob over the names it starts;
/// with a manifest beside the parts (`venue_manifest`), over those that
/// continue with a digit, so the manifest is not read as data.
async fn name_prefix_glob(state: &SessionState, def: &TableDef, raw: &str) -> Result<Option<String>> {
    if raw.contains(['*', '?', '[']) || raw.ends_with('/') {
        return Ok(None);
    }
    let Some((parent, stem)) = raw.rsplit_once('/') else { return Ok(None) };
    if stem.is_empty() || parent.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = if stores::is_remote(raw) {
        use object_store::ObjectStoreExt;
        let mut probe = def.clone();
        probe.locations = vec![raw.to_string()];
        let Ok((store, path)) = store_of(state, &probe).await else { return Ok(None) };
        if store.head(&path).await.is_ok() {
            return Ok(None);
        }
        let mut dir = probe.clone();
        dir.locations = vec![format!("{parent}/")];
        let Ok((store, dir_path)) = store_of(state, &dir).await else { return Ok(None) };
        match store.list_with_delimiter(Some(&dir_path)).await {
            Ok(listed) => {
                if listed.common_prefixes.iter().any(|p| p.filename() == Some(stem)) {
                    return Ok(None);
                }
                listed.objects.iter().filter_map(|o| o.location.filename().map(str::to_string)).collect()
            }
            Err(_) => return Ok(None),
        }
    } else {
        if Path::new(raw).exists() {
            return Ok(None);
        }
        match std::fs::read_dir(parent) {
            Ok(entries) => entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect(),
            Err(_) => return Ok(None),
        }
    };
    let matching: Vec<&String> = names.iter().filter(|n| n.starts_with(stem) && n.as_str() != stem).collect();
    if matching.is_empty() {
        return Ok(None);
    }
    let manifest = matching.iter().any(|n| n.strip_prefix(stem) == Some("manifest"));
    Ok(Some(format!("{raw}{}*", if manifest { "[0-9]" } else { "" })))
}

/// Whether any location is a glob (its files are taken as the pattern
/// says, without a suffix filter).
fn has_glob(def: &TableDef) -> bool {
    def.locations.iter().any(|l| l.contains(['*', '?', '[']))
}

fn listing_options(
    format: Arc<dyn FileFormat>,
    def: &TableDef,
    collection: bool,
    partition_types: &[(String, DataType)],
) -> ListingOptions {
    // Prefixes are filtered by suffix so stray files (_SUCCESS, README) are
    // skipped; explicit files and globs are taken as written.
    let ext = if collection && !has_glob(def) {
        def.options.get(FILE_SUFFIX).cloned().unwrap_or_else(|| extension_for(format.as_ref()))
    } else {
        String::new()
    };
    ListingOptions::new(format)
        .with_file_extension(ext)
        .with_table_partition_cols(partition_types.to_vec())
}

/// The files a stored definition reads, listed exactly as its scans list
/// them (same prefixes, globs and suffix filter), as absolute paths.
pub(crate) async fn files_of(state: &SessionState, def: &TableDef) -> Result<Vec<String>> {
    Ok(files_with_meta(state, def).await?.into_iter().map(|(path, _)| path).collect())
}

/// [`files_of`] with each file's size, ETag and modification time, listed
/// afresh (not from the listing cache).
pub(crate) async fn files_with_meta(state: &SessionState, def: &TableDef) -> Result<Vec<(String, object_store::ObjectMeta)>> {
    use futures::TryStreamExt;
    let urls = listing_urls(state, def, None)?;
    let collection = urls.iter().any(|(l, _)| l.is_collection());
    let options = listing_options(file_format(state, def)?, def, collection, &[]);
    let mut files = Vec::new();
    for (_, url) in &urls {
        let store = state.runtime_env().object_store(url)?;
        let mut listed: Vec<(String, object_store::ObjectMeta)> = url
            .list_all_files(state, store.as_ref(), &options.file_extension)
            .await?
            .map_ok(|meta| {
                let path = match url.scheme() {
                    "file" => format!("/{}", meta.location),
                    _ => format!("{}{}", shown_store_url(url.object_store().as_str()), meta.location),
                };
                (path, meta)
            })
            .try_collect()
            .await?;
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        files.extend(listed);
    }
    Ok(files)
}

/// A definition reading one file of a table: its file columns only
/// (partition values come from the full table's directory names), the
/// file read as written whatever its suffix.
pub(crate) fn single_file(def: &TableDef, path: &str) -> TableDef {
    let mut single = def.clone();
    single.locations = vec![path.to_string()];
    single.partition_cols.clear();
    single.columns.retain(|c| !def.partition_cols.contains(&c.name));
    single.options.remove(FILE_SUFFIX);
    single
}

/// The rows of one file of a table, with the table's schema: partition
/// columns take the values the file's path gives them.
pub(crate) fn file_frame(state: &SessionState, def: &TableDef, path: &str) -> Result<datafusion::dataframe::DataFrame> {
    use datafusion::logical_expr::{cast, ident, lit};
    use datafusion::scalar::ScalarValue;
    let provider = build(state, &single_file(def, path), None)?;
    let schema = def.schema()?;
    let values: HashMap<&str, &str> = path
        .split('/')
        .filter_map(|seg| seg.split_once('='))
        .filter(|(k, _)| def.partition_cols.iter().any(|p| p == k))
        .collect();
    let exprs: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            if def.partition_cols.contains(f.name()) {
                let value = values.get(f.name().as_str()).map(|v| ScalarValue::Utf8(Some((*v).to_string()))).unwrap_or(ScalarValue::Utf8(None));
                cast(lit(value), f.data_type().clone()).alias(f.name())
            } else {
                ident(f.name())
            }
        })
        .collect();
    let ctx = datafusion::prelude::SessionContext::new_with_state(state.clone());
    Ok(ctx.read_table(provider)?.select(exprs)?)
}

/// Up to 1000 names of the files the locations hold, to guess from.
async fn sample_names(state: &SessionState, locations: &[(Location, ListingTableUrl)]) -> Vec<String> {
    use futures::StreamExt;
    let mut names: Vec<String> = Vec::new();
    for (loc, url) in locations {
        if !loc.is_collection() {
            names.push(loc.as_str().to_string());
        } else if loc.is_remote() {
            if let Ok(store) = state.runtime_env().object_store(url) {
                let mut listed = store.list(Some(url.prefix())).take(1000);
                while let Some(Ok(meta)) = listed.next().await {
                    names.push(meta.location.to_string());
                }
            }
        } else {
            names.extend(list_local_files(&loc.literal_prefix(), 1000));
        }
    }
    names
}

/// The suffix the files under a prefix must have (`storage.file_suffix`);
/// by default the format's (`.csv`, `.csv.gz`).
const FILE_SUFFIX: &str = "storage.file_suffix";

/// Whether a file name is data, not a marker (`_SUCCESS`, `.crc`) or a
/// Redshift UNLOAD manifest.
fn is_data_file(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    !base.starts_with(['_', '.']) && !base.ends_with("manifest")
}

/// Files without the format's suffix, as Redshift UNLOAD writes them
/// (`venue_0000_part_00.gz`): a prefix holding no file with the format's
/// suffix but other data files reads those, by their compression suffix,
/// or all of them. With a manifest beside them, the manifest is the way.
fn choose_file_suffix(def: &mut TableDef, names: &[String], format_suffix: &str) -> Result<()> {
    let data: Vec<&String> = names.iter().filter(|n| is_data_file(n)).collect();
    if data.is_empty() || data.iter().any(|n| n.ends_with(format_suffix)) {
        return Ok(());
    }
    let compressed = def.options.get("format.compression").and_then(|c| COMPRESSION_SUFFIXES.iter().find(|(_, codec)| codec == c));
    let suffix = match compressed {
        Some((suffix, _)) if data.iter().all(|n| n.ends_with(suffix)) => suffix.to_string(),
        _ => {
            if let Some(m) = names.iter().find(|n| n.ends_with("manifest")) {
                return Err(LakeError::InvalidDefinition(format!(
                    "the files under '{}' have no '{format_suffix}' suffix and a manifest lies beside them: \
                     use OPTIONS ('manifest' '{m}'), or 'storage.file_suffix' to say which files to read",
                    def.locations[0]
                )));
            }
            String::new()
        }
    };
    def.options.insert(FILE_SUFFIX.into(), suffix);
    Ok(())
}

/// Guesses `format.compression` from file suffixes when the user gave none.
fn detect_compression(def: &mut TableDef, names: &[String]) {
    if def.options.contains_key("format.compression") || def.format == "parquet" || def.format == "avro" {
        return;
    }
    let data_files: Vec<&String> = names.iter().filter(|n| is_data_file(n)).collect();
    for (suffix, codec) in COMPRESSION_SUFFIXES {
        if !data_files.is_empty() && data_files.iter().all(|n| n.ends_with(suffix)) {
            def.options.insert("format.compression".into(), codec.into());
            return;
        }
    }
}

/// Completes a definition drafted from DDL: checks the locations, detects
/// compression, infers partition columns and, when no columns were declared,
/// the schema. `declared` carries declared columns (partition columns may be
/// among them).
pub async fn resolve(state: &SessionState, def: &mut TableDef) -> Result<()> {
    if !FORMATS.contains(&def.format.as_str()) {
        return Err(LakeError::NotSupported(format!(
            "file format '{}' (supported: {})",
            def.format,
            FORMATS.join(", ")
        )));
    }
    crate::exports::resolve_table_option(state, def).await?;
    crate::exports::resolve_manifest(state, def).await?;
    if let Some(k) = def.options.keys().find(|k| k.starts_with("aurora.")) {
        return Err(LakeError::InvalidDefinition(format!("unknown option '{k}' (the Aurora export option is {})", crate::exports::TABLE_OPTION)));
    }
    list_cache_ttl(def)?;
    for i in 0..def.locations.len() {
        if let Some(glob) = name_prefix_glob(state, def, &def.locations[i].clone()).await? {
            def.locations[i] = glob;
        }
    }
    let mut urls = listing_urls(state, def, None)?;
    let mut changed = false;
    for (i, (loc, url)) in urls.iter().enumerate() {
        loc.check_exists().map_err(location_error)?;
        if loc.is_remote()
            && let Some(prefix) = check_remote(state, loc, url).await?
        {
            def.locations[i] = prefix;
            changed = true;
        }
    }
    if changed {
        urls = listing_urls(state, def, None)?;
    }
    let names = sample_names(state, &urls).await;
    detect_compression(def, &names);
    let format = file_format(state, def)?;
    let collection = urls.iter().any(|(l, _)| l.is_collection());
    if collection && !has_glob(def) && !def.options.contains_key(FILE_SUFFIX) {
        choose_file_suffix(def, &names, &extension_for(format.as_ref()))?;
    }
    let probe = listing_options(format, def, collection, &[]);

    // Partition columns: as declared, else as found in the directory names.
    if def.partition_cols.is_empty() && collection {
        def.partition_cols = probe
            .infer_partitions(state, &urls[0].1)
            .await
            .map_err(|e| data_error(def, e))?;
    }

    if def.declared_columns {
        for p in &def.partition_cols {
            if !def.columns.iter().any(|c| &c.name == p) {
                return Err(LakeError::InvalidDefinition(format!(
                    "partition column '{p}' is not among the declared columns"
                )));
            }
        }
        // Partition columns go last, as the listing table produces them.
        let (mut files, parts): (Vec<_>, Vec<_>) =
            def.columns.drain(..).partition(|c| !def.partition_cols.contains(&c.name));
        files.extend(parts);
        def.columns = files;
        if def.format != "parquet" {
            return Ok(());
        }
        // Declared columns allow a location without files yet: its text
        // columns stay text.
        let mut samples = Vec::with_capacity(urls.len());
        for (_, url) in &urls {
            let Ok(sample) = sample_files(state, &probe, url).await else { return Ok(()) };
            samples.push(sample);
        }
        return choose_dictionary_columns(state, def, &samples).await;
    }

    // The files sampled to infer the schema, kept for the choice of
    // dictionary columns.
    let mut samples = Vec::with_capacity(urls.len());
    let mut inferred: Option<SchemaRef> = None;
    for (loc, url) in &urls {
        let (store, files) = sample_files(state, &probe, url).await.map_err(|e| data_error(def, e))?;
        let schema = probe.format.infer_schema(state, &store, &files).await.map_err(|e| data_error(def, e))?;
        samples.push((store, files));
        match &inferred {
            None => inferred = Some(schema),
            Some(first) if first.fields() != schema.fields() => {
                return Err(LakeError::Data(format!(
                    "the files at '{}' have a different schema than those at '{}'",
                    loc.as_str(),
                    def.locations[0]
                )));
            }
            Some(_) => {}
        }
    }
    let file_schema = inferred.ok_or_else(|| {
        LakeError::InvalidDefinition("an external table needs at least one location".into())
    })?;
    let mut columns: Vec<ColumnDef> = file_schema
        .fields()
        .iter()
        .filter(|f| !def.partition_cols.contains(f.name()))
        .map(|f| ColumnDef {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: true,
            mysql_type: None,
            distinct: None,
        })
        .collect();
    for p in &def.partition_cols {
        columns.push(ColumnDef {
            name: p.clone(),
            data_type: partition_type().to_string(),
            nullable: false,
            mysql_type: None,
            distinct: None,
        });
    }
    def.columns = columns;
    if def.format == "csv" && !crate::text::wanted(def) {
        def.columns = fixed_point_columns(state, def).await?;
    }
    choose_dictionary_columns(state, def, &samples).await
}

/// Rows of a text table read to decide whether its number columns are
/// fixed-point.
pub const DECIMAL_SAMPLE_ROWS: usize = 100_000;

/// Columns of a text table inferred as floating point that hold only
/// fixed-point numbers (`0.06`, `-12.50`, no exponent) become
/// DECIMAL(p, s) with the precision and scale the values need, as a
/// database would declare them: summing `0.07` as a double drifts, and
/// `BETWEEN 0.06 - 0.01 AND 0.06 + 0.01` then loses rows.
async fn fixed_point_columns(state: &SessionState, def: &TableDef) -> Result<Vec<ColumnDef>> {
    use datafusion::arrow::array::{Array, AsArray};
    let float = DataType::Float64.to_string();
    let candidates: Vec<usize> = def
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.data_type == float && !def.partition_cols.contains(&c.name))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Ok(def.columns.clone());
    }
    let mut text = def.clone();
    for &i in &candidates {
        text.columns[i].data_type = DataType::Utf8.to_string();
    }
    let provider = build(state, &text, None)?;
    let ctx = datafusion::prelude::SessionContext::new_with_state(state.clone());
    let names: Vec<&str> = candidates.iter().map(|&i| def.columns[i].name.as_str()).collect();
    let batches = ctx
        .read_table(provider)
        .and_then(|df| df.select_columns(&names))
        .and_then(|df| df.limit(0, Some(DECIMAL_SAMPLE_ROWS)))
        .map_err(|e| data_error(def, e))?
        .collect()
        .await
        .map_err(|e| data_error(def, e))?;
    let mut columns = def.columns.clone();
    for (k, &i) in candidates.iter().enumerate() {
        let values = batches.iter().flat_map(|b| {
            let col = b.column(k).as_string::<i32>();
            (0..col.len()).filter(move |&r| col.is_valid(r)).map(move |r| col.value(r))
        });
        if let Some((precision, scale)) = fixed_point(values) {
            columns[i].data_type = DataType::Decimal128(precision, scale).to_string();
        }
    }
    Ok(columns)
}

/// The DECIMAL precision and scale that hold every value, if all are
/// fixed-point numbers with a fractional part somewhere (integers were
/// already inferred as such).
fn fixed_point<'a>(values: impl Iterator<Item = &'a str>) -> Option<(u8, i8)> {
    let (mut int_digits, mut scale, mut seen) = (1usize, 0usize, false);
    for v in values {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        seen = true;
        let body = v.strip_prefix(['+', '-']).unwrap_or(v);
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        int_digits = int_digits.max(whole.trim_start_matches('0').len());
        scale = scale.max(fraction.len());
    }
    let precision = int_digits + scale;
    (seen && scale > 0 && precision <= 38).then_some((precision as u8, scale as i8))
}

/// Files read to infer a schema: tables of thousands of files are created
/// in the time of a few dozen reads, not thousands.
pub const SCHEMA_SAMPLE_FILES: usize = 64;

/// Files of a location and their store.
type Sample = (Arc<dyn object_store::ObjectStore>, Vec<object_store::ObjectMeta>);

/// Up to [`SCHEMA_SAMPLE_FILES`] files of a location, spread over its
/// sorted listing (the first and last included): a table's schema is
/// inferred from them (merged as DataFusion merges the schemas of all
/// files), and its dictionary columns chosen.
async fn sample_files(state: &SessionState, probe: &ListingOptions, url: &ListingTableUrl) -> datafusion::error::Result<Sample> {
    use futures::TryStreamExt;
    let store = state.runtime_env().object_store(url)?;
    let mut files: Vec<object_store::ObjectMeta> =
        url.list_all_files(state, store.as_ref(), &probe.file_extension).await?.try_collect().await?;
    files.retain(|f| f.size > 0);
    if files.is_empty() {
        return datafusion::common::plan_err!(
            "No files found at {url}. Cannot infer a schema from an empty location; add data files or declare the columns."
        );
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    if files.len() > SCHEMA_SAMPLE_FILES {
        let step = (files.len() - 1) as f64 / (SCHEMA_SAMPLE_FILES - 1) as f64;
        files = (0..SCHEMA_SAMPLE_FILES).map(|i| files[((i as f64 * step).round() as usize).min(files.len() - 1)].clone()).collect();
    }
    Ok((store, files))
}

/// Declares as dictionaries the text columns of a Parquet table that the
/// sampled files store with small dictionaries ([`crate::parquet_dict`]),
/// with their estimated numbers of distinct values. Inferring the schema
/// read (and cached) the same footers. A footer that cannot be read leaves
/// the columns as text: the choice only makes reads faster.
async fn choose_dictionary_columns(state: &SessionState, def: &mut TableDef, samples: &[Sample]) -> Result<()> {
    use crate::parquet_dict::SampledFile;
    use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
    use futures::StreamExt;
    if def.format != "parquet" {
        return Ok(());
    }
    let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
    let mut sampled = Vec::new();
    let concurrency = state.config_options().execution.meta_fetch_concurrency.get();
    for (store, files) in samples {
        // Each on its own task: the footer decoder can panic on a damaged
        // file (a length past the file's start), which would end the
        // statement here; the file is reported when it is read.
        let fetches = files.iter().cloned().map(|file| {
            let (store, cache) = (Arc::clone(store), Arc::clone(&cache));
            tokio::spawn(async move {
                let footer =
                    DFParquetMetadata::new(store.as_ref(), &file).with_file_metadata_cache(Some(cache)).fetch_metadata().await;
                footer.map(|footer| SampledFile { store, location: file.location, footer })
            })
        });
        let results: Vec<_> = futures::stream::iter(fetches).buffer_unordered(concurrency).collect().await;
        for footer in results {
            match footer {
                Ok(Ok(f)) => sampled.push(f),
                Ok(Err(e)) => {
                    tracing::debug!("text columns of {} stay text: {}", def.name, e.strip_backtrace());
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!("text columns of {} stay text: footer read failed: {e}", def.name);
                    return Ok(());
                }
            }
        }
    }
    let schema = def.file_schema()?;
    let footers: Vec<_> = sampled.iter().map(|f| Arc::clone(&f.footer)).collect();
    let chosen = crate::parquet_dict::dictionary_columns(&footers, &schema);
    // The sample is the whole table when no location had more files than
    // were sampled.
    let whole = samples.iter().all(|(_, files)| files.len() < SCHEMA_SAMPLE_FILES);
    // `LAKEWAVE_DISTINCT_COUNTS=off` in the server's environment leaves
    // new tables without counts, for comparisons.
    let counts = if crate::switched_off("LAKEWAVE_DISTINCT_COUNTS") {
        vec![None; chosen.len()]
    } else {
        crate::parquet_dict::distinct_counts(&sampled, &chosen, whole).await
    };
    for c in def.columns.iter_mut() {
        if let Some(i) = chosen.iter().position(|name| name == &c.name) {
            c.data_type = crate::parquet_dict::dictionary_type().to_string();
            c.distinct = counts[i];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fixed_point;

    #[test]
    fn fixed_point_numbers_become_decimals() {
        assert_eq!(fixed_point(["0.06", "0.07", "-12.5", "", "100"].into_iter()), Some((5, 2)));
        assert_eq!(fixed_point(["1e300", "0.5"].into_iter()), None);
        assert_eq!(fixed_point(["NaN"].into_iter()), None);
        assert_eq!(fixed_point(["1", "2"].into_iter()), None, "integers stay integers");
        assert_eq!(fixed_point(["0.000001", "123456789012345678901234567890.5"].into_iter()), Some((36, 6)));
        assert_eq!(fixed_point(std::iter::empty()), None);
    }

    /// Two files of five row groups: `kind` has the same 30 values in every
    /// row group, `day` one value per row group, `name` is unique.
    #[tokio::test]
    async fn dictionary_columns_get_distinct_counts_that_scans_report() {
        use std::sync::Arc;
        use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::common::stats::Precision;
        use datafusion::execution::session_state::SessionStateBuilder;
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::file::properties::WriterProperties;
        use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

        const GROUP: i64 = 1000;
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("day", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        for file in 0..2i64 {
            let props = WriterProperties::builder().set_max_row_group_row_count(Some(GROUP as usize)).build();
            let out = std::fs::File::create(dir.path().join(format!("{file}.parquet"))).unwrap();
            let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).unwrap();
            let rows = (file * 5 * GROUP)..((file + 1) * 5 * GROUP);
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.clone())),
                    Arc::new(StringArray::from_iter_values(rows.clone().map(|v| format!("kind {:02}", v % 30)))),
                    Arc::new(StringArray::from_iter_values(rows.clone().map(|v| format!("day {}", v / GROUP)))),
                    Arc::new(StringArray::from_iter_values(rows.map(|v| format!("name {v:08}")))),
                ],
            )
            .unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
        let state = SessionStateBuilder::new().with_default_features().build();
        let location = format!("{}/", dir.path().display());
        let mut def = crate::model::TableDef::external("t", "parquet", vec![location], Default::default());
        super::resolve(&state, &mut def).await.unwrap();
        let column = |name: &str| def.columns.iter().find(|c| c.name == name).unwrap().clone();
        // The same values in every row group: counted.
        assert_eq!(column("kind").distinct, Some(30));
        // Eight of ten row groups read, each a value of its own: the table
        // may have any number, none is given.
        assert_eq!(column("day").data_type, crate::parquet_dict::dictionary_type().to_string());
        assert_eq!(column("day").distinct, None);
        // Not a dictionary column.
        assert_eq!(column("name").distinct, None);

        let table = super::build(&state, &def, None).unwrap();
        let scan = table.scan(&state, None, &[], None).await.unwrap();
        let stats = StatisticsContext::new().compute(scan.as_ref(), &StatisticsArgs::new()).unwrap();
        assert_eq!(stats.num_rows, Precision::Exact(10 * GROUP as usize));
        assert_eq!(stats.column_statistics[1].distinct_count, Precision::Inexact(30));
        assert_eq!(stats.column_statistics[2].distinct_count, Precision::Absent);
        let rows = datafusion::physical_plan::collect(scan, state.task_ctx()).await.unwrap();
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 10 * GROUP as usize);
    }
}

/// Partition values are strings, dictionary-encoded as DataFusion does.
fn partition_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

fn data_error(def: &TableDef, e: datafusion::error::DataFusionError) -> LakeError {
    LakeError::Data(format!(
        "cannot read {} data at '{}': {}",
        def.format,
        def.locations.join("', '"),
        e.strip_backtrace()
    ))
}

/// Builds the provider for a stored definition, without any I/O.
/// `table` scopes the listing cache (None: listings are not cached).
pub fn build(state: &SessionState, def: &TableDef, table: Option<&TableReference>) -> Result<Arc<dyn TableProvider>> {
    match csv_null_marker(def).filter(|_| !crate::text::wanted(def)) {
        Some(marker) => with_null_marker(state, def, &marker, table),
        None => build_listing(state, def, table),
    }
}

/// The NULL marker of a CSV table, when it is not the empty field.
fn csv_null_marker(def: &TableDef) -> Option<String> {
    (def.format == "csv").then(|| def.options.get("format.null_value").cloned()).flatten().filter(|m| !m.is_empty())
}

/// DataFusion's CSV reader applies `null_regex` only while inferring, not
/// while reading. Tables with a NULL marker therefore read every file column
/// as text and convert it in a projection: the marker (and, for non-text
/// columns, the empty field) becomes NULL, anything else is cast.
fn with_null_marker(
    state: &SessionState,
    def: &TableDef,
    marker: &str,
    table: Option<&TableReference>,
) -> Result<Arc<dyn TableProvider>> {
    use datafusion::catalog::view::ViewTable;
    use datafusion::catalog::default_table_source::provider_as_source;
    use datafusion::logical_expr::{LogicalPlanBuilder, cast, ident, lit, when};
    use datafusion::scalar::ScalarValue;

    let mut text = def.clone();
    for c in text.columns.iter_mut() {
        if !def.partition_cols.contains(&c.name) {
            c.data_type = DataType::Utf8.to_string();
            c.nullable = true;
        }
    }
    let raw = build_listing(state, &text, table)?;
    let schema = def.schema()?;
    let mut exprs = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let c = ident(f.name());
        let e = if def.partition_cols.contains(f.name()) {
            c
        } else {
            let null = lit(ScalarValue::try_from(f.data_type()).map_err(LakeError::Engine)?);
            let is_null = if matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                c.clone().eq(lit(marker))
            } else {
                c.clone().eq(lit(marker)).or(c.clone().eq(lit("")))
            };
            when(is_null, null).otherwise(cast(c, f.data_type().clone())).map_err(LakeError::Engine)?
        };
        exprs.push(e.alias(f.name()));
    }
    let plan = LogicalPlanBuilder::scan(def.name.clone(), provider_as_source(raw), None)
        .and_then(|b| b.project(exprs))
        .and_then(|b| b.build())
        .map_err(LakeError::Engine)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

fn build_listing(state: &SessionState, def: &TableDef, table: Option<&TableReference>) -> Result<Arc<dyn TableProvider>> {
    let urls = listing_urls(state, def, table)?;
    let format = file_format_for(state, def, table)?;
    let schema = def.schema()?;
    let partition_types: Vec<(String, DataType)> = def
        .partition_cols
        .iter()
        .map(|p| {
            schema
                .field_with_name(p)
                .map(|f| (p.clone(), f.data_type().clone()))
                .map_err(|e| LakeError::InvalidDefinition(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let collection = urls.iter().any(|(l, _)| l.is_collection());
    let options = listing_options(format, def, collection, &partition_types);
    let file_fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| !def.partition_cols.contains(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    let config = ListingTableConfig::new_with_multi_paths(urls.into_iter().map(|(_, u)| u).collect())
        .with_listing_options(options)
        .with_schema(Arc::new(Schema::new(file_fields)));
    let table = ListingTable::try_new(config)?
        .with_cache(state.runtime_env().cache_manager.get_file_statistic_cache());
    let counts: Vec<(usize, usize)> =
        def.columns.iter().enumerate().filter_map(|(i, c)| Some((i, usize::try_from(c.distinct?).ok()?))).collect();
    if counts.is_empty() {
        return Ok(Arc::new(table));
    }
    Ok(Arc::new(WithDistinctCounts { table: Arc::new(table), counts }))
}

/// A listing table whose scans carry the numbers of distinct values
/// estimated when the table was created (`ColumnDef::distinct`): Parquet
/// writers seldom store them, and without them an equality on a text
/// column is estimated to keep a fifth of the rows, whether the column has
/// three values or three hundred.
#[derive(Debug)]
struct WithDistinctCounts {
    table: Arc<dyn TableProvider>,
    /// (column of the table's schema, distinct values).
    counts: Vec<(usize, usize)>,
}

impl WithDistinctCounts {
    /// `scan` with the counts in its table statistics, for the columns that
    /// have none, at most the table's row count.
    fn counted(&self, scan: &datafusion::datasource::physical_plan::FileScanConfig) -> Option<datafusion::datasource::physical_plan::FileScanConfig> {
        use datafusion::common::stats::Precision;
        use datafusion::datasource::physical_plan::FileScanConfigBuilder;
        let mut stats = scan.statistics();
        let rows = stats.num_rows.get_value().copied();
        let mut changed = false;
        for &(i, n) in &self.counts {
            let Some(column) = stats.column_statistics.get_mut(i) else { continue };
            if column.distinct_count == Precision::Absent {
                column.distinct_count = Precision::Inexact(rows.map_or(n, |r| n.min(r.max(1))));
                changed = true;
            }
        }
        changed.then(|| FileScanConfigBuilder::from(scan.clone()).with_statistics(stats).build())
    }
}

#[async_trait::async_trait]
impl TableProvider for WithDistinctCounts {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn constraints(&self) -> Option<&datafusion::common::Constraints> {
        self.table.constraints()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.table.table_type()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.table.get_table_definition()
    }

    fn get_column_default(&self, column: &str) -> Option<&datafusion::prelude::Expr> {
        self.table.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let plan = self.table.scan(state, projection, filters, limit).await?;
        crate::scan_split::rewrite_parquet_scans(plan, |scan| self.counted(scan))
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn datafusion::catalog::Session,
        args: datafusion::catalog::ScanArgs<'a>,
    ) -> datafusion::error::Result<datafusion::catalog::ScanResult> {
        let plan = self.table.scan_with_args(state, args).await?.into_inner();
        Ok(crate::scan_split::rewrite_parquet_scans(plan, |scan| self.counted(scan))?.into())
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::prelude::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.table.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<datafusion::common::Statistics> {
        self.table.statistics()
    }
}
