//! OCI Object Storage pre-authenticated requests (PARs).
//!
//! A PAR URL carries its own authorisation:
//! `https://objectstorage.<region>.oraclecloud.com/p/<token>/n/<namespace>/b/<bucket>/o/<object>`
//! (or the `<namespace>.objectstorage.<region>.oci.customer-oci.com` form).
//! An object PAR is read like any HTTP file. A bucket or prefix PAR that
//! allows listing ends in `/o/` (or `/o/<prefix>/`): a GET on it returns a
//! JSON page of objects (`{"objects": [{"name", "size", "timeModified",
//! "etag"}], "nextStartWith": ...}`) and each object is read at
//! `<PAR>/<object name>`. [`ParStore`] lists that way and reads through
//! object_store's HTTP client.
//!
//! The token is a bearer secret: [`crate::stores::redact_sql`] and
//! [`redact_par_tokens`] keep it out of logs, definitions and errors.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ListResult, ObjectMeta, ObjectStore, PutPayload, PutResult};


/// Whether a URL path has the shape of a PAR (`/p/<token>/n/<ns>/b/<bucket>/o/...`).
pub fn is_par_path(path: &str) -> bool {
    par_base(path.trim_start_matches('/')).is_some()
}

/// The `p/<token>/n/<ns>/b/<bucket>/o` part of a store path and the object
/// name (or name prefix) after it.
fn par_base(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.splitn(8, '/').collect();
    if parts.len() < 7 || parts[0] != "p" || parts[2] != "n" || parts[4] != "b" || parts[6] != "o" {
        return None;
    }
    if [parts[1], parts[3], parts[5]].iter().any(|s| s.is_empty()) {
        return None;
    }
    let base_len = parts[..7].iter().map(|p| p.len()).sum::<usize>() + 6;
    let rest = path.get(base_len..).unwrap_or("").trim_start_matches('/');
    Some((&path[..base_len], rest))
}

/// Byte ranges of the tokens of PAR paths in `text`: `p/<token>/n/` at the
/// start of the text or after a character that cannot be part of a path
/// segment name (`/`, `[`, space, quote, ...).
pub fn par_token_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    if !text.contains("p/") || !text.contains("/n/") {
        return spans;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(k) = text[i..].find("p/") {
        let at = i + k;
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || matches!(bytes[at - 1], b'_' | b'-' | b'.' | b'%'));
        let token_start = at + 2;
        let token_len = text[token_start..].find('/').unwrap_or(0);
        if boundary && token_len > 0 && text[token_start + token_len..].starts_with("/n/") {
            spans.push(token_start..token_start + token_len);
            i = token_start + token_len;
        } else {
            i = token_start;
        }
    }
    spans
}

/// Text with the token of every PAR path in it replaced.
pub fn redact_par_tokens(text: &str) -> std::borrow::Cow<'_, str> {
    crate::stores::mask(text, &par_token_spans(text))
}

/// An HTTP(S) store: reads through object_store's HTTP client, and lists
/// PAR prefixes through OCI's JSON listing (other HTTP locations are single
/// files).
#[derive(Debug)]
pub struct ParStore {
    /// `scheme://host`
    origin: String,
    http: Arc<dyn ObjectStore>,
    client: reqwest::Client,
    max_retries: usize,
}

impl std::fmt::Display for ParStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParStore({})", self.origin)
    }
}

fn generic(e: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::Generic { store: "OCI PAR", source: redact_par_tokens(&e.to_string()).into_owned().into() }
}

impl ParStore {
    pub fn new(origin: String, http: Arc<dyn ObjectStore>, timeout: Option<Duration>, max_retries: usize) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder();
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Self { origin, http, client, max_retries })
    }

    /// One page of a PAR listing.
    async fn page(&self, base: &str, prefix: &str, start: Option<&str>) -> object_store::Result<(Vec<ObjectMeta>, Option<String>)> {
        let mut url = url::Url::parse(&format!("{}/{base}/", self.origin)).map_err(generic)?;
        {
            let mut q = url.query_pairs_mut();
            if !prefix.is_empty() {
                q.append_pair("prefix", prefix);
            }
            if let Some(s) = start {
                q.append_pair("start", s);
            }
            q.append_pair("fields", "name,size,timeModified,etag");
        }
        let mut attempt = 0;
        let response = loop {
            let result = self.client.get(url.clone()).send().await;
            let retry = match &result {
                Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
                Err(e) => e.is_timeout() || e.is_connect() || e.is_request(),
            };
            if !retry || attempt >= self.max_retries {
                break result.map_err(generic)?;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
        };
        let status = response.status();
        let shown = format!("{}/{}/", self.origin, redact_par_tokens(base));
        if status.as_u16() == 404 {
            return Err(object_store::Error::NotFound {
                path: shown,
                source: "the pre-authenticated request does not exist, has expired, or does not allow listing".into(),
            });
        }
        if !status.is_success() {
            return Err(generic(format!("listing {shown} answered HTTP {status}")));
        }
        let bytes = response.bytes().await.map_err(generic)?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(generic)?;
        let mut out = Vec::new();
        for o in body.get("objects").and_then(|v| v.as_array()).into_iter().flatten() {
            let Some(name) = o.get("name").and_then(|v| v.as_str()) else { continue };
            if name.ends_with('/') {
                continue;
            }
            let size = o.get("size").and_then(|v| v.as_u64()).unwrap_or(0);
            let last_modified = o
                .get("timeModified")
                .and_then(|v| v.as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default();
            let e_tag = o.get("etag").and_then(|v| v.as_str()).map(str::to_string);
            let location = Path::parse(format!("{base}/{name}")).map_err(|e| generic(e.to_string()))?;
            out.push(ObjectMeta { location, last_modified, size, e_tag, version: None });
        }
        let next = body.get("nextStartWith").and_then(|v| v.as_str()).map(str::to_string);
        Ok((out, next))
    }
}

#[async_trait::async_trait]
impl ObjectStore for ParStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: object_store::PutOptions) -> object_store::Result<PutResult> {
        Err(object_store::Error::NotImplemented { operation: "write".into(), implementer: "OCI PAR".into() })
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        Err(object_store::Error::NotImplemented { operation: "write".into(), implementer: "OCI PAR".into() })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.http.get_opts(location, options).await.map_err(|e| match e {
            object_store::Error::NotFound { path, source } => {
                object_store::Error::NotFound { path: redact_par_tokens(&path).into_owned(), source: redact_par_tokens(&source.to_string()).into_owned().into() }
            }
            other => generic(other),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> object_store::Result<Vec<bytes::Bytes>> {
        self.http.get_ranges(location, ranges).await.map_err(generic)
    }

    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        locations
            .map(|_| Err(object_store::Error::NotImplemented { operation: "delete".into(), implementer: "OCI PAR".into() }))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let text = prefix.map(|p| p.as_ref().to_string()).unwrap_or_default();
        let Some((base, name_prefix)) = par_base(&text).map(|(b, n)| (b.to_string(), n.to_string())) else {
            // Not a PAR: plain HTTP(S) locations are single files, and a
            // web server has no listing to offer.
            return futures::stream::empty().boxed();
        };
        // The store is per table; its pages are fetched lazily.
        let me = ParStore { origin: self.origin.clone(), http: self.http.clone(), client: self.client.clone(), max_retries: self.max_retries };
        // A prefix that is a "directory" lists what is under it.
        let name_prefix = if name_prefix.is_empty() || name_prefix.ends_with('/') { name_prefix } else { format!("{name_prefix}/") };
        futures::stream::try_unfold((Some(None::<String>), me, base, name_prefix), |(state, me, base, prefix)| async move {
            let Some(start) = state else { return Ok(None) };
            let (objects, next) = me.page(&base, &prefix, start.as_deref()).await?;
            let state = next.map(Some);
            Ok(Some((futures::stream::iter(objects.into_iter().map(Ok)), (state, me, base, prefix))))
        })
        .map(|r: object_store::Result<_>| match r {
            Ok(s) => s.boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        use futures::TryStreamExt;
        let objects: Vec<ObjectMeta> = self.list(prefix).try_collect().await?;
        let depth = prefix.map(|p| p.parts().count()).unwrap_or(0);
        let mut dirs = std::collections::BTreeSet::new();
        let mut files = Vec::new();
        for o in objects {
            let parts: Vec<_> = o.location.parts().collect();
            if parts.len() > depth + 1 {
                dirs.insert(Path::from_iter(parts[..depth + 1].iter().cloned()));
            } else {
                files.push(o);
            }
        }
        Ok(ListResult { common_prefixes: dirs.into_iter().collect(), objects: files })
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: object_store::CopyOptions) -> object_store::Result<()> {
        Err(object_store::Error::NotImplemented { operation: "copy".into(), implementer: "OCI PAR".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_and_redacts_par_urls() {
        assert!(is_par_path("/p/AbC-123/n/acme/b/sales/o/2026/part-0.parquet"));
        assert!(is_par_path("p/AbC/n/acme/b/sales/o/"));
        assert!(!is_par_path("/p/AbC/n/acme/b/sales/x/"));
        assert!(!is_par_path("/files/a.csv"));
        assert_eq!(par_base("p/T/n/ns/b/bk/o/dir/a.csv"), Some(("p/T/n/ns/b/bk/o", "dir/a.csv")));
        assert_eq!(par_base("p/T/n/ns/b/bk/o"), Some(("p/T/n/ns/b/bk/o", "")));
        let url = "https://objectstorage.us-ashburn-1.oraclecloud.com/p/S3CR3T-T0K3N/n/acme/b/sales/o/x.csv";
        let shown = redact_par_tokens(url);
        assert_eq!(shown, "https://objectstorage.us-ashburn-1.oraclecloud.com/p/<redacted>/n/acme/b/sales/o/x.csv");
        assert_eq!(redact_par_tokens("s3://b/p/q"), "s3://b/p/q");
        assert_eq!(redact_par_tokens("[[p/T0K/n/ns/b/x/o/a, p/T0K/n/ns/b/x/o/b]]"), "[[p/<redacted>/n/ns/b/x/o/a, p/<redacted>/n/ns/b/x/o/b]]");
        assert_eq!(redact_par_tokens("map/x/n/y"), "map/x/n/y");
    }
}
