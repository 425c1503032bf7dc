//! Object stores behind table locations: S3 and S3-compatible stores (MinIO,
//! Ceph, R2, OCI Object Storage through its S3 endpoint), Azure Blob / ADLS
//! Gen2, Google Cloud Storage and plain HTTP(S) files.
//!
//! A table's options configure its store: `aws.*` (`aws.region`,
//! `aws.endpoint`, `aws.access_key_id`, `aws.secret_access_key`,
//! `aws.session_token`, `aws.allow_http`, `aws.virtual_hosted_style_request`,
//! `aws.skip_signature`), `azure.*` (`azure.account_name`,
//! `azure.account_key`, `azure.sas_token`, `azure.use_emulator`, ...),
//! `gcp.*` (`gcp.service_account_path`, ...), `oci.region` (and
//! `oci.endpoint`, or `LAKEWAVE_OCI_ENDPOINT`, for a private endpoint) for
//! `oci://` locations, and `storage.timeout`, `storage.max_retries` and
//! `storage.list_cache_ttl` for any store.
//! What a table leaves out comes from the process environment as each
//! cloud's SDK reads it (`AWS_*` including `AWS_ENDPOINT_URL` and
//! `AWS_ALLOW_HTTP`, `AZURE_*`, `GOOGLE_*`).
//!
//! Secret options never leave the catalog: [`is_secret_option`] tells which
//! to redact wherever definitions are shown.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{ClientConfigKey, ClientOptions, RetryConfig};
use url::Url;

/// URL schemes read through an object store.
pub const REMOTE_SCHEMES: [&str; 11] = ["s3", "s3a", "oci", "az", "azure", "abfs", "abfss", "gs", "gcs", "http", "https"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("Invalid location '{location}': {reason}")]
    Invalid { location: String, reason: String },
    #[error("Invalid storage option '{key}': {reason}")]
    Option { key: String, reason: String },
    #[error("Cannot configure the object store for '{location}': {reason}")]
    Build { location: String, reason: String },
}

/// Whether a location is read through an object store.
pub fn is_remote(raw: &str) -> bool {
    raw.split_once("://").is_some_and(|(scheme, _)| REMOTE_SCHEMES.contains(&scheme.to_lowercase().as_str()))
}

/// Whether an option holds a secret (redacted wherever definitions show).
pub fn is_secret_option(key: &str) -> bool {
    let k = key.to_lowercase();
    ["secret", "password", "token", "sas", "account_key", "access_key", "credential", "service_account_key", "signature"]
        .iter()
        .any(|m| k.contains(m))
        && !k.ends_with("skip_signature")
}

/// The text shown in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Any text with the secrets that can appear in URLs replaced: tokens of
/// OCI pre-authenticated requests, and the signature, credential and token
/// parameters of signed URLs (Azure SAS `sig=`, AWS presigned
/// `X-Amz-Signature=`, ...). Logs and error messages pass through it.
pub fn redact_text(text: &str) -> std::borrow::Cow<'_, str> {
    let par = crate::par::redact_par_tokens(text);
    const PARAMS: [&str; 5] = ["sig=", "X-Amz-Signature=", "X-Amz-Credential=", "X-Amz-Security-Token=", "x-amz-security-token="];
    if !PARAMS.iter().any(|p| par.contains(p)) {
        return par;
    }
    let mut out = par.into_owned();
    for p in PARAMS {
        let mut from = 0;
        while let Some(k) = out[from..].find(p) {
            let start = from + k + p.len();
            let preceded = from + k == 0 || matches!(out.as_bytes()[from + k - 1], b'?' | b'&' | b' ' | b'"' | b'\'');
            let end = out[start..].find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace()).map_or(out.len(), |e| start + e);
            if preceded && end > start {
                out.replace_range(start..end, REDACTED);
                from = start + REDACTED.len();
            } else {
                from = start;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// SQL text with secrets replaced, for logs, process lists and error
/// messages that quote statements: the value after a secret option's name
/// (`'aws.secret_access_key' '...'`, `'azure.sas_token' = '...'`) and the
/// token of OCI pre-authenticated request URLs (`/p/<token>/n/...`).
pub fn redact_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    mask(sql, &secret_spans(sql))
}

/// A statement as logs and process lists show it: secrets of table
/// definitions and signed URLs' tokens masked ([`redact_sql`],
/// [`redact_text`]), and passwords (`IDENTIFIED BY '...'`, `PASSWORD('...')`,
/// `SET PASSWORD = '...'`).
pub fn redact_statement(sql: &str) -> String {
    let sql = redact_sql(&redact_text(sql)).into_owned();
    let lower = sql.to_lowercase();
    let mut spans = Vec::new();
    for keyword in ["identified by", "password"] {
        let mut from = 0;
        while let Some(at) = lower[from..].find(keyword) {
            let mut i = from + at + keyword.len();
            from = i;
            let bytes = lower.as_bytes();
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'=' | b'(') {
                i += 1;
            }
            if lower[i..].starts_with("password") {
                i += "password".len();
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'(') {
                    i += 1;
                }
            }
            let Some(&quote) = bytes.get(i).filter(|q| matches!(q, b'\'' | b'"')) else { continue };
            let start = i + 1;
            let end = lower[start..].find(quote as char).map_or(lower.len(), |e| start + e);
            if spans.last().is_none_or(|s: &std::ops::Range<usize>| s.end <= start) {
                spans.push(start..end);
            }
            from = end;
        }
    }
    spans.sort_by_key(|s| s.start);
    mask(&sql, &spans).into_owned()
}

/// `text` with each of the (ordered, disjoint) byte ranges replaced by
/// [`REDACTED`].
pub fn mask<'a>(text: &'a str, spans: &[std::ops::Range<usize>]) -> std::borrow::Cow<'a, str> {
    if spans.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        out.push_str(&text[at..span.start]);
        out.push_str(REDACTED);
        at = span.end;
    }
    out.push_str(&text[at..]);
    std::borrow::Cow::Owned(out)
}

/// Byte ranges of the secrets in SQL text (inside their quotes), in order.
pub fn secret_spans(sql: &str) -> Vec<std::ops::Range<usize>> {
    let lower = sql.to_lowercase();
    let mut spans = Vec::new();
    if !["secret", "password", "token", "sas", "key", "credential", "signature", "/p/"].iter().any(|m| lower.contains(m)) {
        return spans;
    }
    let bytes = sql.as_bytes();
    let mut i = 0;
    // Whether the last literal named a secret option and only separators
    // followed it.
    let mut previous_secret = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'\'' && c != b'"' {
            // `'key' 'value'`, `'key' = 'value'`, `"key": "value"` (JSON),
            // `'key', 'value'` (JSON_OBJECT arguments).
            if !(c.is_ascii_whitespace() || c == b'=' || c == b':' || c == b',') {
                previous_secret = false;
            }
            i += 1;
            continue;
        }
        // A literal, with doubled quotes or backslash escapes inside.
        let quote = c;
        let mut j = i + 1;
        while j < bytes.len() {
            if bytes[j] == b'\\' {
                j += 2;
                continue;
            }
            if bytes[j] == quote {
                if bytes.get(j + 1) == Some(&quote) {
                    j += 2;
                    continue;
                }
                break;
            }
            j += 1;
        }
        let inner = (i + 1)..j.min(bytes.len());
        if previous_secret {
            spans.push(inner);
            previous_secret = false;
        } else {
            let text = &sql[inner.clone()];
            previous_secret = is_secret_option(text);
            spans.extend(crate::par::par_token_spans(text).into_iter().map(|t| inner.start + t.start..inner.start + t.end));
        }
        i = j + 1;
    }
    spans
}

fn invalid(location: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid { location: location.to_string(), reason: reason.into() }
}

/// A location as object_store reads it: the URL with `oci://` mapped to its
/// S3-compatible form, and store settings that mapping implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    pub url: Url,
    /// Settings the location implies (an OCI endpoint), applied before the
    /// table's own options.
    pub implied: Vec<(String, String)>,
}

/// Maps what the user wrote to the URL object_store lists and reads.
pub fn store_location(raw: &str, options: &BTreeMap<String, String>) -> Result<StoreLocation, StoreError> {
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| invalid(raw, "not a URL"))?;
    let scheme = scheme.to_lowercase();
    if scheme == "oci" {
        // oci://bucket@namespace/prefix -> the namespace's S3-compatible endpoint.
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (bucket, namespace) =
            authority.split_once('@').ok_or_else(|| invalid(raw, "an oci:// location is oci://bucket@namespace/path"))?;
        if bucket.is_empty() || namespace.is_empty() {
            return Err(invalid(raw, "an oci:// location is oci://bucket@namespace/path"));
        }
        let region = options
            .get("oci.region")
            .cloned()
            .or_else(|| std::env::var("OCI_REGION").ok())
            .ok_or_else(|| invalid(raw, "an oci:// location needs the region: OPTIONS ('oci.region' 'us-ashburn-1') or OCI_REGION"))?;
        let url = Url::parse(&format!("s3://{bucket}/{path}")).map_err(|e| invalid(raw, e.to_string()))?;
        // A private endpoint (or a test server) instead of the public one.
        let endpoint = options
            .get("oci.endpoint")
            .cloned()
            .or_else(|| std::env::var("LAKEWAVE_OCI_ENDPOINT").ok())
            .unwrap_or_else(|| oci_endpoint(namespace, &region));
        let implied = vec![
            ("aws.endpoint".into(), endpoint),
            ("aws.region".into(), region),
            ("aws.virtual_hosted_style_request".into(), "false".into()),
        ];
        return Ok(StoreLocation { url, implied });
    }
    let normalised = match scheme.as_str() {
        "s3a" => format!("s3://{rest}"),
        "gcs" => format!("gs://{rest}"),
        "azure" => format!("az://{rest}"),
        _ => format!("{scheme}://{rest}"),
    };
    let url = Url::parse(&normalised).map_err(|e| invalid(raw, e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(raw, "the URL names no bucket, container or host"));
    }
    Ok(StoreLocation { url, implied: vec![] })
}

/// OCI Object Storage's S3-compatible endpoint for a namespace and region.
pub fn oci_endpoint(namespace: &str, region: &str) -> String {
    format!("https://{namespace}.compat.objectstorage.{region}.oraclecloud.com")
}

/// Options of the `storage.` namespace.
pub const STORAGE_OPTIONS: [&str; 5] =
    ["storage.timeout", "storage.max_retries", "storage.list_cache_ttl", "storage.object_pattern", "storage.file_suffix"];

/// The timeout (`storage.timeout`, seconds, for each request) and retry
/// policy (`storage.max_retries`, with exponential backoff on throttling,
/// 5xx answers, timeouts and dropped connections). One operation gives up
/// after about `timeout × (max_retries + 1)`, so a failing or unreachable
/// store ends a query with an error rather than a hang. The timeout is
/// applied as a client config key so the client settings a builder read
/// from the environment (AWS_ALLOW_HTTP) are kept.
fn client_settings(options: &BTreeMap<String, String>) -> Result<(Option<Duration>, RetryConfig), StoreError> {
    if let Some(k) = options.keys().find(|k| k.starts_with("oci.") && !["oci.region", "oci.endpoint"].contains(&k.as_str())) {
        return Err(StoreError::Option { key: k.clone(), reason: "unknown option (OCI options are oci.region and oci.endpoint)".into() });
    }
    if let Some(k) = options.keys().find(|k| k.starts_with("storage.") && !STORAGE_OPTIONS.contains(&k.as_str())) {
        return Err(StoreError::Option { key: k.clone(), reason: format!("unknown option (storage options are {})", STORAGE_OPTIONS.join(", ")) });
    }
    let mut retry = RetryConfig { retry_timeout: Duration::from_secs(120), ..RetryConfig::default() };
    let timeout = match options.get("storage.timeout") {
        Some(t) => Some(parse_seconds(t).filter(|d| !d.is_zero()).ok_or_else(|| StoreError::Option {
            key: "storage.timeout".into(),
            reason: format!("'{t}' is not a number of seconds"),
        })?),
        None => None,
    };
    if let Some(n) = options.get("storage.max_retries") {
        retry.max_retries = n.parse().map_err(|_| StoreError::Option {
            key: "storage.max_retries".into(),
            reason: format!("'{n}' is not a count"),
        })?;
    }
    if let Some(t) = timeout {
        retry.retry_timeout = t * (retry.max_retries as u32 + 1);
    }
    Ok((timeout, retry))
}

/// A number of seconds as options give it (`30`, `2.5`, `30s`); None if it
/// is not one or is negative.
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim_end_matches('s').parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Options with a given prefix (`aws.`), without it.
fn prefixed<'a>(options: impl Iterator<Item = (&'a String, &'a String)>, prefix: &'a str) -> impl Iterator<Item = (String, &'a String)> {
    options.filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest.to_string(), v)))
}

/// Builds the store a location is read through, from the environment, the
/// location's implied settings and the table's options.
pub fn build_store(location: &StoreLocation, options: &BTreeMap<String, String>) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let mut all: BTreeMap<String, String> = location.implied.iter().cloned().collect();
    for (k, v) in options {
        all.insert(k.clone(), v.clone());
    }
    let (timeout, retry) = client_settings(&all)?;
    // The client configuration's form of the timeout.
    let timeout_ms = timeout.map(|t| format!("{}ms", t.as_millis()));
    let url = &location.url;
    let shown = url.as_str().to_string();
    let build_error = |e: object_store::Error| StoreError::Build { location: shown.clone(), reason: e.to_string() };
    // Errors name objects as scheme://bucket/key.
    let store_url = format!("{}://{}", url.scheme(), url.authority());
    // HeatWave's `pattern` entries: a regex over object names, anchored as
    // HeatWave anchors it (the whole name).
    let pattern = match all.get("storage.object_pattern") {
        Some(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| StoreError::Option {
            key: "storage.object_pattern".into(),
            reason: format!("not a regular expression: {e}"),
        })?),
        None => None,
    };
    let described = |inner: Arc<dyn ObjectStore>, source: Source| -> Arc<dyn ObjectStore> {
        Arc::new(Described { inner, url: store_url.clone(), source, pattern: pattern.clone() })
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str()).with_retry(retry);
            if let Some(t) = &timeout_ms {
                b = b.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), t);
            }
            let mut profile = None;
            for (k, v) in prefixed(all.iter(), "aws.") {
                if k == "profile" {
                    profile = Some(v.clone());
                    continue;
                }
                let key = AmazonS3ConfigKey::from_str(&format!("aws_{k}"))
                    .or_else(|_| AmazonS3ConfigKey::from_str(&k))
                    .map_err(|e| StoreError::Option { key: format!("aws.{k}"), reason: e.to_string() })?;
                b = b.with_config(key, v);
            }
            // Keys given to the table (or a request not to sign) are used as
            // they are; anything else goes through the SDK's default chain.
            let static_keys = all.contains_key("aws.access_key_id") || all.get("aws.skip_signature").is_some_and(|v| v == "true");
            let source = if static_keys {
                Source::Fixed("the table's aws.access_key_id and aws.secret_access_key options".to_string())
            } else {
                let chain = crate::aws::AwsChain::shared(profile.as_deref());
                b = b.with_credentials(chain.clone());
                Source::Chain(chain)
            };
            described(Arc::new(b.build().map_err(build_error)?), source)
        }
        "az" | "abfs" | "abfss" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str()).with_retry(retry);
            if let Some(t) = &timeout_ms {
                b = b.with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), t);
            }
            for (k, v) in prefixed(all.iter(), "azure.") {
                let key = AzureConfigKey::from_str(&format!("azure_storage_{k}"))
                    .or_else(|_| AzureConfigKey::from_str(&format!("azure_{k}")))
                    .or_else(|_| AzureConfigKey::from_str(&k))
                    .map_err(|e| StoreError::Option { key: format!("azure.{k}"), reason: e.to_string() })?;
                b = b.with_config(key, v);
            }
            let source = azure_source(&all);
            described(Arc::new(b.build().map_err(build_error)?), source.into())
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str()).with_retry(retry);
            if let Some(t) = &timeout_ms {
                b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), t);
            }
            for (k, v) in prefixed(all.iter(), "gcp.") {
                let key = GoogleConfigKey::from_str(&format!("google_{k}"))
                    .or_else(|_| GoogleConfigKey::from_str(&k))
                    .map_err(|e| StoreError::Option { key: format!("gcp.{k}"), reason: e.to_string() })?;
                b = b.with_config(key, v);
            }
            let source = if all.keys().any(|k| k.starts_with("gcp.service_account")) {
                "the table's gcp.service_account options".to_string()
            } else {
                "Google credentials from the environment (GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS or instance metadata)".to_string()
            };
            described(Arc::new(b.build().map_err(build_error)?), source.into())
        }
        "http" | "https" => {
            if pattern.is_some() {
                return Err(StoreError::Option { key: "storage.object_pattern".into(), reason: "not supported on HTTP(S) locations".into() });
            }
            let base = format!("{}://{}", url.scheme(), url.authority());
            let mut client = ClientOptions::new().with_allow_http(url.scheme() == "http");
            if let Some(t) = &timeout_ms {
                client = client.with_config(ClientConfigKey::Timeout, t);
            }
            let max_retries = retry.max_retries;
            let http: Arc<dyn ObjectStore> =
                Arc::new(HttpBuilder::new().with_url(&base).with_client_options(client).with_retry(retry).build().map_err(build_error)?);
            // Plain files are read as they are; OCI pre-authenticated
            // request prefixes are listed through OCI's JSON listing.
            let par = crate::par::ParStore::new(base.clone(), http, timeout, max_retries)
                .map_err(|reason| StoreError::Build { location: shown.clone(), reason })?;
            Arc::new(par)
        }
        other => return Err(invalid(url.as_str(), format!("unsupported scheme '{other}'"))),
    };
    Ok(store)
}

/// Which Azure credentials a table's store uses, in words.
fn azure_source(all: &BTreeMap<String, String>) -> String {
    let env = |k: &str| std::env::var(k).is_ok();
    if all.contains_key("azure.account_key") {
        "the table's azure.account_key".into()
    } else if all.contains_key("azure.sas_token") || all.contains_key("azure.sas_key") {
        "the table's azure.sas_token".into()
    } else if all.get("azure.use_emulator").is_some_and(|v| v == "true") || env("AZURE_STORAGE_USE_EMULATOR") {
        "the storage emulator's account key".into()
    } else if env("AZURE_STORAGE_ACCOUNT_KEY") || env("AZURE_STORAGE_ACCESS_KEY") {
        "the account key in AZURE_STORAGE_ACCOUNT_KEY".into()
    } else if env("AZURE_STORAGE_SAS_KEY") || env("AZURE_STORAGE_SAS_TOKEN") {
        "the SAS token in AZURE_STORAGE_SAS_KEY".into()
    } else {
        "Azure credentials from the environment (client secret, workload identity or managed identity)".into()
    }
}

/// Names the credentials a store signs with, for error messages; never a
/// secret.
#[derive(Clone)]
enum Source {
    Fixed(String),
    Chain(Arc<crate::aws::AwsChain>),
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        Source::Fixed(s)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Fixed(s) => f.write_str(s),
            Source::Chain(c) => f.write_str(&c.describe()),
        }
    }
}

/// A cloud store as a table sees it: access errors say which credentials
/// were refused, and listings hold only the objects whose name matches the
/// table's `storage.object_pattern`, when it has one.
struct Described {
    inner: Arc<dyn ObjectStore>,
    url: String,
    source: Source,
    pattern: Option<regex::Regex>,
}

impl std::fmt::Debug for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.inner)
    }
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

/// The service's error code in an S3-style XML error body.
fn error_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(&text[start..end])
}

impl Described {
    fn map(&self, e: object_store::Error) -> object_store::Error {
        use object_store::Error as E;
        let text = e.to_string();
        if text.contains("incorrectly configured region") || text.contains("PermanentRedirect") || text.contains("AuthorizationHeaderMalformed") {
            return E::Generic {
                store: "S3",
                source: format!(
                    "{} answered that the bucket is in another region than the one requests were signed for: set the table's \
                     'aws.region' (or AWS_REGION) to the bucket's region",
                    self.url
                )
                .into(),
            };
        }
        let denied = matches!(e, E::PermissionDenied { .. } | E::Unauthenticated { .. })
            || text.contains("403 Forbidden")
            || text.contains("401 Unauthorized");
        if !denied {
            return e;
        }
        let status = if text.contains("401") { "401" } else { "403" };
        let code = error_code(&text).map(|c| format!(" {c}")).unwrap_or_default();
        let path = match &e {
            E::PermissionDenied { path, .. } | E::Unauthenticated { path, .. } => path.clone(),
            _ => String::new(),
        };
        E::PermissionDenied {
            path: format!("{}/{path}", self.url.trim_end_matches('/')),
            source: format!(
                "access denied (HTTP {status}{code}); the request was signed with {}: check that these credentials are valid and may read this object",
                self.source
            )
            .into(),
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for Described {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await.map_err(|e| self.map(e))
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await.map_err(|e| self.map(e))
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await.map_err(|e| self.map(e))
    }

    async fn get_ranges(
        &self,
        location: &object_store::path::Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await.map_err(|e| self.map(e))
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::StreamExt;
        let me = Described { inner: self.inner.clone(), url: self.url.clone(), source: self.source.clone(), pattern: None };
        let pattern = self.pattern.clone();
        self.inner
            .list(prefix)
            .filter(move |r| {
                let keep = match (r, &pattern) {
                    (Ok(m), Some(p)) => p.is_match(m.location.as_ref()),
                    _ => true,
                };
                futures::future::ready(keep)
            })
            .map(move |r| r.map_err(|e| me.map(e)))
            .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await.map_err(|e| self.map(e))?;
        if let Some(p) = &self.pattern {
            result.objects.retain(|m| p.is_match(m.location.as_ref()));
        }
        Ok(result)
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await.map_err(|e| self.map(e))
    }
}

/// Splits a URL at its first glob segment: the listing base and the glob
/// matched below it (as DataFusion does for local paths).
pub fn split_glob(url: &str) -> Option<(&str, &str)> {
    let start = url.find("://").map(|i| i + 3)?;
    let first = url[start..].find(['*', '?', '['])? + start;
    let sep = url[..first].rfind('/')?;
    (sep >= start).then(|| (&url[..=sep], &url[sep + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_shown_without_passwords_or_tokens() {
        let shown = redact_statement("CREATE USER u IDENTIFIED BY 'hunter2'");
        assert!(!shown.contains("hunter2") && shown.contains("IDENTIFIED BY"), "{shown}");
        let shown = redact_statement("SET PASSWORD FOR u = PASSWORD('s3cret'), x = 'kept'");
        assert!(!shown.contains("s3cret") && shown.contains("'kept'"), "{shown}");
        let shown = redact_statement("ALTER USER u IDENTIFIED BY PASSWORD \"abc\"");
        assert!(!shown.contains("abc"), "{shown}");
        let shown = redact_statement("SELECT * FROM t WHERE url = 'https://a.blob.core.windows.net/c/f?sv=1&sig=TOPSECRETSIG'");
        assert!(!shown.contains("TOPSECRETSIG"), "{shown}");
    }

    #[test]
    fn maps_oci_to_its_s3_endpoint() {
        let mut opts = BTreeMap::new();
        opts.insert("oci.region".to_string(), "us-ashburn-1".to_string());
        let loc = store_location("oci://sales@acme/exports/2026/", &opts).unwrap();
        assert_eq!(loc.url.as_str(), "s3://sales/exports/2026/");
        assert!(loc.implied.contains(&("aws.endpoint".into(), "https://acme.compat.objectstorage.us-ashburn-1.oraclecloud.com".into())));
        assert!(store_location("oci://sales/exports/", &opts).is_err());
        assert!(store_location("oci://sales@acme/x", &BTreeMap::new()).is_err() || std::env::var("OCI_REGION").is_ok());
    }

    #[test]
    fn normalises_schemes_and_splits_globs() {
        let opts = BTreeMap::new();
        assert_eq!(store_location("s3a://b/k", &opts).unwrap().url.as_str(), "s3://b/k");
        assert_eq!(store_location("gcs://b/k", &opts).unwrap().url.as_str(), "gs://b/k");
        assert!(store_location("s3:///k", &opts).is_err());
        assert_eq!(split_glob("s3://b/d/2026-*/part-*.parquet"), Some(("s3://b/d/", "2026-*/part-*.parquet")));
        assert_eq!(split_glob("s3://b/d/x.parquet"), None);
        assert!(is_remote("S3://b/x") && is_remote("abfss://c@a.dfs.core.windows.net/p") && !is_remote("/tmp/x"));
    }

    #[test]
    fn configures_gcs_and_azure_from_options() {
        let opts = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let gs = store_location("gs://bucket/data/", &BTreeMap::new()).unwrap();
        let ok = opts(&[("gcp.base_url", "http://127.0.0.1:1"), ("gcp.skip_signature", "true"), ("storage.timeout", "3")]);
        assert!(build_store(&gs, &ok).is_ok());
        assert!(matches!(build_store(&gs, &opts(&[("gcp.colour", "red")])), Err(StoreError::Option { .. })));
        assert!(matches!(build_store(&gs, &opts(&[("storage.timeout", "soon")])), Err(StoreError::Option { .. })));
        assert!(matches!(build_store(&gs, &opts(&[("storage.colour", "red")])), Err(StoreError::Option { .. })));
        let az = store_location("abfss://lake@acct.dfs.core.windows.net/p/", &BTreeMap::new()).unwrap();
        assert_eq!(az.url.host_str(), Some("acct.dfs.core.windows.net"));
        assert!(build_store(&az, &opts(&[("azure.account_key", "a2V5"), ("azure.endpoint", "http://127.0.0.1:1/acct")])).is_ok());
        let oci = opts(&[("oci.region", "eu-frankfurt-1"), ("oci.endpoint", "http://127.0.0.1:9")]);
        let loc = store_location("oci://b@ns/k", &oci).unwrap();
        assert!(loc.implied.contains(&("aws.endpoint".into(), "http://127.0.0.1:9".into())));
        assert!(matches!(build_store(&loc, &opts(&[("oci.colour", "red")])), Err(StoreError::Option { .. })));
    }

    #[test]
    fn explains_access_and_region_errors() {
        let store = Described {
            inner: Arc::new(object_store::memory::InMemory::new()),
            url: "s3://sales".into(),
            source: Source::Fixed("the table's keys".into()),
            pattern: None,
        };
        let e = store.map(object_store::Error::Generic {
            store: "S3",
            source: "Received redirect without LOCATION, this normally indicates an incorrectly configured region".into(),
        });
        assert!(e.to_string().contains("set the table's 'aws.region'"), "{e}");
        let e = store.map(object_store::Error::Generic {
            store: "S3",
            source: "Client error with status 403 Forbidden: <Error><Code>AccessDenied</Code></Error>".into(),
        });
        let text = e.to_string();
        assert!(text.contains("HTTP 403 AccessDenied") && text.contains("the table's keys"), "{text}");
        let e = store.map(object_store::Error::NotFound { path: "x".into(), source: "gone".into() });
        assert!(matches!(e, object_store::Error::NotFound { .. }));
    }

    #[test]
    fn redacts_secrets_in_text() {
        let t = "GET https://acct.blob.core.windows.net/c/x?sv=2022&sig=AbC%2Bd&se=1 and X-Amz-Signature=deadbeef";
        let shown = redact_text(t);
        assert!(!shown.contains("AbC") && !shown.contains("deadbeef") && shown.contains("sv=2022"), "{shown}");
        assert_eq!(redact_text("design=x&sig="), "design=x&sig=");
    }

    #[test]
    fn redacts_secrets_in_sql() {
        let sql = "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 's3://b/k' OPTIONS ('aws.region' 'x', \
                   'aws.secret_access_key' 'S3CR3T', 'azure.sas_token' = \"sv=1&sig=ABC\", 'format.delimiter' ';')";
        let shown = redact_sql(sql);
        assert!(!shown.contains("S3CR3T") && !shown.contains("sig=ABC"), "{shown}");
        assert!(shown.contains("'aws.region' 'x'") && shown.contains("'format.delimiter' ';'"), "{shown}");
        assert!(shown.contains("'aws.secret_access_key' '<redacted>'"), "{shown}");
        let call = "CALL sys.aurora_export_import('s3://b/x', 'db', JSON_OBJECT('aws.region', 'r', 'aws.secret_access_key', 'S3CR3T'))";
        assert!(!redact_sql(call).contains("S3CR3T") && redact_sql(call).contains("'aws.region', 'r'"), "{}", redact_sql(call));
        let par = r#"ENGINE_ATTRIBUTE='{"file": [{"par": "https://objectstorage.r.oraclecloud.com/p/T0K3N/n/ns/b/b/o/x.csv"}]}'"#;
        let shown = redact_sql(par);
        assert!(!shown.contains("T0K3N") && shown.contains("/p/<redacted>/n/ns/b/b/o/x.csv"), "{shown}");
        assert_eq!(redact_sql("SELECT 'héllo' FROM t"), "SELECT 'héllo' FROM t");
        assert_eq!(redact_sql("SELECT 'key', 'héllo'"), "SELECT 'key', 'héllo'");
    }

    #[test]
    fn secrets_are_recognised() {
        for k in ["aws.secret_access_key", "aws.session_token", "azure.account_key", "azure.sas_token", "aws.access_key_id"] {
            assert!(is_secret_option(k), "{k}");
        }
        for k in ["aws.region", "aws.endpoint", "format.has_header", "aws.skip_signature"] {
            assert!(!is_secret_option(k), "{k}");
        }
    }
}
