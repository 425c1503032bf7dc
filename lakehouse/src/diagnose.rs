//! Naming the file behind a read error. Scans report decoder errors without
//! saying which file they came from; when a query fails that way, each file
//! of the tables it read is scanned alone until the failing one is found, so
//! the error can name the file (and, for CSV, the line). This runs only on
//! the error path.

use std::path::Path;

use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use connectors::{Location, list_local_files};

use crate::model::TableDef;
use crate::provider;

/// Files a definition reads, in order (local locations only).
fn files_of(def: &TableDef) -> Vec<String> {
    let mut out = Vec::new();
    for raw in &def.locations {
        let Ok(loc) = Location::parse(raw, Path::new("/")) else { continue };
        if !loc.is_collection() {
            out.push(loc.as_str().to_string());
            continue;
        }
        let found = list_local_files(&loc.literal_prefix(), usize::MAX);
        let pattern = loc.is_glob().then(|| {
            let prefix = loc.literal_prefix().to_string_lossy().into_owned();
            let rest = loc.as_str()[prefix.len()..].to_string();
            (prefix, rest)
        });
        for f in found {
            let base = f.rsplit('/').next().unwrap_or(&f);
            if base.starts_with(['_', '.']) {
                continue;
            }
            let keep = match &pattern {
                Some((prefix, glob)) => glob_match(glob, &f[prefix.len()..]),
                None => true,
            };
            if keep {
                out.push(f);
            }
        }
    }
    out
}

/// `*` and `?` glob matching where `*` may cross directories.
fn glob_match(glob: &str, text: &str) -> bool {
    fn go(g: &[u8], t: &[u8]) -> bool {
        match g.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|i| go(&g[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && go(&g[1..], &t[1..]),
            Some(c) => !t.is_empty() && t[0] == *c && go(&g[1..], &t[1..]),
        }
    }
    go(glob.as_bytes(), text.as_bytes())
}

/// The CSV decoder reports field-count errors by physical line, but value
/// errors by data record (counted after the header); users count lines.
fn physical_lines(message: &str, def: &TableDef) -> String {
    let header = def.options.get("format.has_header").is_some_and(|v| v == "true");
    if def.format != "csv" || !header || !message.contains("Error while parsing value") {
        return message.to_string();
    }
    let Some(i) = message.find("line ") else { return message.to_string() };
    let digits: String = message[i + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
    match digits.parse::<u64>() {
        Ok(n) => format!("{}line {}{}", &message[..i], n + 1, &message[i + 5 + digits.len()..]),
        Err(_) => message.to_string(),
    }
}

/// Scans each file of `def` alone; returns "file '<path>': <error>" for the
/// first that fails.
pub async fn locate(state: &SessionState, def: &TableDef) -> Option<String> {
    for file in files_of(def) {
        let mut single = def.clone();
        single.locations = vec![file.clone()];
        // Partition values come from the directory names of the full table.
        single.partition_cols.clear();
        single.columns.retain(|c| !def.partition_cols.contains(&c.name));
        let Ok(table) = provider::build(state, &single) else { continue };
        let ctx = SessionContext::new_with_state(state.clone());
        let failure = match ctx.read_table(table) {
            Err(e) => Some(e),
            Ok(df) => match df.execute_stream().await {
                Err(e) => Some(e),
                Ok(mut stream) => {
                    let mut failure = None;
                    while let Some(batch) = stream.next().await {
                        if let Err(e) = batch {
                            failure = Some(e);
                            break;
                        }
                    }
                    failure
                }
            },
        };
        if let Some(e) = failure {
            let msg = physical_lines(&e.strip_backtrace(), def);
            return Some(format!("file '{file}': {msg}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_cross_directories() {
        assert!(glob_match("2026-*/part-*.parquet", "2026-01/part-0.parquet"));
        assert!(!glob_match("2026-*/part-*.parquet", "2025-12/part-0.parquet"));
    }
}
