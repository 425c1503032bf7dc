//! Parsing and normalising table locations.
//!
//! A location is one object, a prefix (trailing `/`, or an existing
//! directory), or a glob (`*`, `?`, `[` in the last segments). Locations are
//! normalised once, at `CREATE` time, into the form stored in the catalog:
//! absolute filesystem paths for local data.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error("Invalid location '{location}': {reason}")]
    Invalid { location: String, reason: String },
    #[error(
        "Unsupported location scheme '{scheme}' in '{location}': locations are local paths, file://, \
         s3://, oci://, az://, abfss://, gs:// or http(s):// URLs"
    )]
    UnsupportedScheme { scheme: String, location: String },
    #[error("Can't find file: '{0}' (errno: 2 - No such file or directory)")]
    NotFound(String),
}

/// A normalised location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute local path, possibly ending in `/` (a prefix) or holding
    /// glob characters (a pattern).
    Local(String),
    /// A URL read through an object store (see `stores`).
    Remote(String),
}

const GLOB_CHARS: [char; 3] = ['*', '?', '['];

impl Location {
    /// Parses what a user wrote. Relative paths are resolved against `base`.
    pub fn parse(raw: &str, base: &Path) -> Result<Self, LocationError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(LocationError::Invalid {
                location: raw.into(),
                reason: "the location is empty".into(),
            });
        }
        if let Some(rest) = raw.strip_prefix("file://") {
            // file:///abs/path or file://localhost/abs/path
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(LocationError::Invalid {
                    location: raw.into(),
                    reason: "a file:// URL needs an absolute path (file:///dir/file)".into(),
                });
            }
            return Ok(Location::Local(normalise_path(&percent_decode(path))));
        }
        if crate::stores::is_remote(raw) {
            return Ok(Location::Remote(raw.to_string()));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(LocationError::UnsupportedScheme {
                scheme: scheme.to_string(),
                location: raw.to_string(),
            });
        }
        let path = Path::new(raw);
        let abs = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
        let mut text = normalise_path(&abs.to_string_lossy());
        if raw.ends_with('/') && !text.ends_with('/') {
            text.push('/');
        }
        Ok(Location::Local(text))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Location::Local(p) | Location::Remote(p) => p,
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }

    /// Whether the location holds glob characters.
    pub fn is_glob(&self) -> bool {
        self.as_str().contains(GLOB_CHARS)
    }

    /// Whether the location names a set of objects (a prefix or a glob)
    /// rather than one object.
    pub fn is_collection(&self) -> bool {
        match self {
            Location::Local(p) => p.ends_with('/') || self.is_glob() || Path::new(p).is_dir(),
            Location::Remote(u) => u.ends_with('/') || self.is_glob(),
        }
    }

    /// The longest leading part without glob characters: the directory that
    /// must exist for the location to make sense.
    pub fn literal_prefix(&self) -> PathBuf {
        let p = self.as_str();
        match p.find(GLOB_CHARS) {
            None => PathBuf::from(p),
            Some(i) => {
                let head = &p[..i];
                PathBuf::from(&head[..head.rfind('/').map(|j| j + 1).unwrap_or(0)])
            }
        }
    }

    /// Fails with a MySQL-style "Can't find file" when the literal part of a
    /// local location does not exist.
    pub fn check_exists(&self) -> Result<(), LocationError> {
        if self.is_remote() {
            // Checked against the store when the table is resolved.
            return Ok(());
        }
        let prefix = self.literal_prefix();
        if prefix.exists() {
            Ok(())
        } else {
            Err(LocationError::NotFound(prefix.display().to_string()))
        }
    }

    /// The form handed to DataFusion's listing table: a directory gets a
    /// trailing `/` so it is listed rather than read as one file.
    pub fn listing_form(&self) -> String {
        let p = self.as_str();
        if !self.is_remote() && !p.ends_with('/') && !self.is_glob() && Path::new(p).is_dir() {
            format!("{p}/")
        } else {
            p.to_string()
        }
    }
}

/// Files under a local directory, recursively, sorted; at most `limit`.
pub fn list_local_files(dir: &Path, limit: usize) -> Vec<String> {
    fn walk(dir: &Path, limit: usize, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if out.len() >= limit {
                return;
            }
            if p.is_dir() {
                walk(&p, limit, out);
            } else {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, limit, &mut out);
    out
}

/// Removes `.` and resolves `..` lexically, keeping a trailing `/`.
fn normalise_path(p: &str) -> String {
    let trailing = p.ends_with('/') && p.len() > 1;
    let mut parts: Vec<String> = Vec::new();
    for comp in Path::new(p).components() {
        match comp {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if trailing && out != "/" {
        out.push('/');
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_forms() {
        let base = Path::new("/srv/data");
        assert_eq!(Location::parse("/a/b.parquet", base).unwrap().as_str(), "/a/b.parquet");
        assert_eq!(Location::parse("file:///a/b%20c/", base).unwrap().as_str(), "/a/b c/");
        assert_eq!(Location::parse("rel/x.csv", base).unwrap().as_str(), "/srv/data/rel/x.csv");
        assert_eq!(Location::parse("/a/./b/../c/", base).unwrap().as_str(), "/a/c/");
        let glob = Location::parse("/d/2026-*/part-*.parquet", base).unwrap();
        assert!(glob.is_glob());
        assert_eq!(glob.literal_prefix(), PathBuf::from("/d/"));
    }

    #[test]
    fn rejects_other_schemes_and_empty() {
        let base = Path::new("/");
        assert!(matches!(
            Location::parse("ftp://host/x", base),
            Err(LocationError::UnsupportedScheme { .. })
        ));
        assert!(matches!(Location::parse("  ", base), Err(LocationError::Invalid { .. })));
        assert!(matches!(
            Location::parse("/definitely/not/here/x.csv", base).unwrap().check_exists(),
            Err(LocationError::NotFound(_))
        ));
    }
}
