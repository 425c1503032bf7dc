//! `REFRESH TABLE t` and `FLUSH TABLES [t, ...]`: forget what is cached
//! about external tables' files, so the next query lists their locations
//! again (files added, changed or removed since show up at once).
//! `REFRESH TABLE` also brings a table's copy in the secondary engine up to
//! date, reading only the files added or changed since it was loaded.

use super::{Response, Session};
use crate::wire::codes::*;

/// What a refresh statement names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refresh {
    /// `REFRESH TABLE a, db.b`: these tables (lake tables only).
    Tables(Vec<(Option<String>, String)>),
    /// `FLUSH TABLES a, b`: these tables, wherever they are.
    Flush(Vec<(Option<String>, String)>),
    /// `FLUSH TABLES`: everything.
    FlushAll,
}

/// Recognises the statements; anything else (`FLUSH TABLES WITH READ
/// LOCK`, `FLUSH PRIVILEGES`) is None.
pub(super) fn parse_refresh(sql: &str) -> Option<Refresh> {
    let text = super::strip_leading_comments(sql).trim().trim_end_matches(';').trim();
    let mut words = text.splitn(3, char::is_whitespace);
    let verb = words.next()?.to_lowercase();
    let object = words.next()?.to_lowercase();
    let rest = words.next().unwrap_or("").trim();
    if !matches!(object.as_str(), "table" | "tables") {
        return None;
    }
    match verb.as_str() {
        "refresh" => Some(Refresh::Tables(name_list(rest)?)),
        "flush" if rest.is_empty() => Some(Refresh::FlushAll),
        "flush" => {
            let lower = rest.to_lowercase();
            if lower.starts_with("with ") || lower.contains(" with read lock") || lower.ends_with("for export") {
                return None;
            }
            Some(Refresh::Flush(name_list(rest)?))
        }
        _ => None,
    }
}

/// `a, db.b, `c d`` as (database, table) pairs; None if malformed.
fn name_list(text: &str) -> Option<Vec<(Option<String>, String)>> {
    let mut out = Vec::new();
    let mut parts: Vec<String> = vec![String::new()];
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let finish = |parts: &mut Vec<String>, out: &mut Vec<(Option<String>, String)>| -> Option<()> {
        let names: Vec<String> = parts.drain(..).map(|p| p.trim().to_string()).collect();
        match names.as_slice() {
            [t] if !t.is_empty() => out.push((None, t.clone())),
            [d, t] if !d.is_empty() && !t.is_empty() => out.push((Some(d.clone()), t.clone())),
            _ => return None,
        }
        parts.push(String::new());
        Some(())
    };
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                chars.next();
                parts.last_mut()?.push('`');
            }
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            ',' if !quoted => finish(&mut parts, &mut out)?,
            c if c.is_whitespace() && !quoted => {}
            c => parts.last_mut()?.push(c),
        }
    }
    if quoted {
        return None;
    }
    finish(&mut parts, &mut out)?;
    Some(out)
}

impl Session {
    /// Answers a refresh statement when it concerns lake tables; None lets
    /// it go on (to the backend, for MySQL tables).
    pub(super) async fn refresh_statement(&mut self, sql: &str) -> Result<Option<Response>, MyError> {
        let Some(refresh) = parse_refresh(sql) else { return Ok(None) };
        let current = self.database();
        let resolve = |(db, t): (Option<String>, String)| -> Result<(String, String), MyError> {
            let db = db.or_else(|| current.clone()).ok_or_else(|| MyError::from(lakehouse::LakeError::NoDatabaseSelected))?;
            Ok((db.to_lowercase(), t))
        };
        match refresh {
            Refresh::FlushAll => {
                self.lake.refresh_all();
                // With a backend, MySQL flushes its tables too.
                Ok((!self.has_backend()).then(Response::ok))
            }
            Refresh::Tables(names) => {
                self.warnings.clear();
                let mut info = Vec::new();
                for name in names {
                    let (db, t) = resolve(name)?;
                    self.lake.refresh_table(&db, &t)?;
                    if let Some(report) = self.lake.refresh_loaded_copy(&db, &t).await? {
                        info.push(format!("{db}.{t}: {}", lakehouse::secondary::describe(&report)));
                    }
                }
                Ok(Some(Response::Ok { affected: 0, info: info.join("; ") }))
            }
            Refresh::Flush(names) => {
                let mut other = None;
                for name in names {
                    let (db, t) = resolve(name)?;
                    if self.lake.table(&db, &t).is_some() {
                        self.lake.refresh_table(&db, &t)?;
                    } else if other.is_none() {
                        other = Some((db, t));
                    }
                }
                match other {
                    // MySQL tables among them: the backend flushes those.
                    Some(_) if self.has_backend() => Ok(None),
                    Some((db, t)) => {
                        Err(MyError::new(ER_NO_SUCH_TABLE, S_42S02, format!("Table '{db}.{t}' doesn't exist")))
                    }
                    None => Ok(Some(Response::ok())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_refresh_and_flush() {
        assert_eq!(parse_refresh("REFRESH TABLE t"), Some(Refresh::Tables(vec![(None, "t".into())])));
        assert_eq!(
            parse_refresh("refresh tables `my db`.`a``b`, c ;"),
            Some(Refresh::Tables(vec![(Some("my db".into()), "a`b".into()), (None, "c".into())]))
        );
        assert_eq!(parse_refresh("FLUSH TABLES"), Some(Refresh::FlushAll));
        assert_eq!(parse_refresh("flush table s3.people"), Some(Refresh::Flush(vec![(Some("s3".into()), "people".into())])));
        assert_eq!(parse_refresh("FLUSH TABLES WITH READ LOCK"), None);
        assert_eq!(parse_refresh("FLUSH TABLES t1 WITH READ LOCK"), None);
        assert_eq!(parse_refresh("FLUSH PRIVILEGES"), None);
        assert_eq!(parse_refresh("REFRESH TABLE"), None);
        assert_eq!(parse_refresh("REFRESH TABLE a..b"), None);
    }
}
