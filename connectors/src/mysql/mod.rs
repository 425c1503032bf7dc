//! The MySQL side of Lakewave: where the backend server is ([`BackendUrl`])
//! and, when none is given, a private MariaDB/MySQL instance managed in the
//! data directory ([`managed::ManagedServer`]).

pub mod binlog;
pub mod managed;
pub mod pushdown;
pub mod snapshot;
pub mod table;
pub mod url;

pub use managed::{ManagedServer, find_server_binary};
pub use pushdown::{MySqlAwareQueryPlanner, MySqlSubtreePushdown};
pub use table::{InfoRows, MySqlSource, MySqlTable, PushdownLog, RowSource, SessionRows, TextRows};
pub use snapshot::{BinlogPosition, Snapshot};
pub use url::BackendUrl;
