//! Naming the file behind a read error. Scans report decoder errors without
//! saying which file they came from; when a query fails that way, each file
//! of the tables it read is scanned alone until the failing one is found, so
//! the error can name the file (and, for CSV, the line). This runs only on
//! the error path.

use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::model::TableDef;
use crate::provider;

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
    let files = provider::files_of(state, def).await.unwrap_or_default();
    for file in files {
        let mut single = def.clone();
        single.locations = vec![file.clone()];
        // Partition values come from the directory names of the full table.
        single.partition_cols.clear();
        single.columns.retain(|c| !def.partition_cols.contains(&c.name));
        let Ok(table) = provider::build(state, &single, None) else { continue };
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
