//! `mysql://user:password@host:port/db` backend addresses. The password is
//! kept out of `Debug` and `Display` so it never reaches logs.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct BackendUrl {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid MySQL backend URL '{0}': expected mysql://user[:password]@host[:port][/database]")]
pub struct BadBackendUrl(pub String);

impl BackendUrl {
    pub fn parse(text: &str) -> Result<Self, BadBackendUrl> {
        let redacted = redact(text);
        let bad = || BadBackendUrl(redacted.clone());
        let url = url::Url::parse(text).map_err(|_| bad())?;
        if url.scheme() != "mysql" && url.scheme() != "mariadb" {
            return Err(bad());
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = if url.username().is_empty() { "root".to_string() } else { decode(url.username()) };
        let password = url.password().map(decode).unwrap_or_default();
        let host = url.host_str().ok_or_else(bad)?.to_string();
        let database = url.path().trim_start_matches('/').to_string();
        Ok(Self {
            user,
            password,
            host,
            port: url.port().unwrap_or(3306),
            database: (!database.is_empty()).then_some(database),
        })
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The URL with its password replaced, for messages.
pub fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => text.to_string(),
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mysql://{}@{}:{}/{}", self.user, self.host, self.port, self.database.as_deref().unwrap_or(""))
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hides_the_password() {
        let u = BackendUrl::parse("mysql://app:s3cr%40t@db.local:3310/shop").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str(), u.port), ("app", "s3cr@t", 3310));
        assert_eq!(u.database.as_deref(), Some("shop"));
        assert!(!format!("{u} {u:?}").contains("s3cr"));
        let e = BackendUrl::parse("postgres://app:hunter2@x/").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
