//! Object stores behind table locations: S3 and S3-compatible stores (MinIO,
//! Ceph, R2, OCI Object Storage through its S3 endpoint), Azure Blob / ADLS
//! Gen2, Google Cloud Storage and plain HTTP(S) files.
//!
//! A table's options configure its store: `aws.*` (`aws.region`,
//! `aws.endpoint`, `aws.access_key_id`, `aws.secret_access_key`,
//! `aws.session_token`, `aws.allow_http`, `aws.virtual_hosted_style_request`,
//! `aws.skip_signature`), `azure.*` (`azure.account_name`,
//! `azure.account_key`, `azure.sas_token`, `azure.use_emulator`, ...),
//! `gcp.*` (`gcp.service_account_path`, ...), `oci.region` for `oci://`
//! locations, and `storage.timeout` / `storage.max_retries` for any store.
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
        let implied = vec![
            ("aws.endpoint".into(), oci_endpoint(namespace, &region)),
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

/// The request timeout (`storage.timeout`, seconds) and retry policy
/// (`storage.max_retries`). The timeout is applied as a client config key so
/// the client settings a builder read from the environment (AWS_ALLOW_HTTP)
/// are kept.
fn client_settings(options: &BTreeMap<String, String>) -> Result<(Option<String>, RetryConfig), StoreError> {
    let mut retry = RetryConfig::default();
    let timeout = match options.get("storage.timeout") {
        Some(t) => {
            let secs: f64 = t.trim_end_matches('s').parse().map_err(|_| StoreError::Option {
                key: "storage.timeout".into(),
                reason: format!("'{t}' is not a number of seconds"),
            })?;
            Some(format!("{}ms", (secs * 1000.0) as u64))
        }
        None => None,
    };
    if let Some(n) = options.get("storage.max_retries") {
        retry.max_retries = n.parse().map_err(|_| StoreError::Option {
            key: "storage.max_retries".into(),
            reason: format!("'{n}' is not a count"),
        })?;
    }
    retry.retry_timeout = Duration::from_secs(120);
    Ok((timeout, retry))
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
    let url = &location.url;
    let shown = url.as_str().to_string();
    let build_error = |e: object_store::Error| StoreError::Build { location: shown.clone(), reason: e.to_string() };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str()).with_retry(retry);
            if let Some(t) = &timeout {
                b = b.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), t);
            }
            for (k, v) in prefixed(all.iter(), "aws.") {
                let key = AmazonS3ConfigKey::from_str(&format!("aws_{k}"))
                    .or_else(|_| AmazonS3ConfigKey::from_str(&k))
                    .map_err(|e| StoreError::Option { key: format!("aws.{k}"), reason: e.to_string() })?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(build_error)?)
        }
        "az" | "abfs" | "abfss" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str()).with_retry(retry);
            if let Some(t) = &timeout {
                b = b.with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), t);
            }
            for (k, v) in prefixed(all.iter(), "azure.") {
                let key = AzureConfigKey::from_str(&format!("azure_storage_{k}"))
                    .or_else(|_| AzureConfigKey::from_str(&format!("azure_{k}")))
                    .or_else(|_| AzureConfigKey::from_str(&k))
                    .map_err(|e| StoreError::Option { key: format!("azure.{k}"), reason: e.to_string() })?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(build_error)?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str()).with_retry(retry);
            if let Some(t) = &timeout {
                b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), t);
            }
            for (k, v) in prefixed(all.iter(), "gcp.") {
                let key = GoogleConfigKey::from_str(&format!("google_{k}"))
                    .or_else(|_| GoogleConfigKey::from_str(&k))
                    .map_err(|e| StoreError::Option { key: format!("gcp.{k}"), reason: e.to_string() })?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(build_error)?)
        }
        "http" | "https" => {
            let base = format!("{}://{}", url.scheme(), url.authority());
            let mut client = ClientOptions::new().with_allow_http(url.scheme() == "http");
            if let Some(t) = &timeout {
                client = client.with_config(ClientConfigKey::Timeout, t);
            }
            Arc::new(HttpBuilder::new().with_url(base).with_client_options(client).with_retry(retry).build().map_err(build_error)?)
        }
        other => return Err(invalid(url.as_str(), format!("unsupported scheme '{other}'"))),
    };
    Ok(store)
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
    fn secrets_are_recognised() {
        for k in ["aws.secret_access_key", "aws.session_token", "azure.account_key", "azure.sas_token", "aws.access_key_id"] {
            assert!(is_secret_option(k), "{k}");
        }
        for k in ["aws.region", "aws.endpoint", "format.has_header", "aws.skip_signature"] {
            assert!(!is_secret_option(k), "{k}");
        }
    }
}
