//! One client connection: the handshake, then the command loop. Each command
//! gets exactly one response; errors become ERR packets and the connection
//! keeps serving. Only I/O failures or COM_QUIT end it.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, Command, StatusFlags};
use mysql_common::io::{BufMutExt, ParseBuf};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::prepared::PreparedStatement;
use crate::server::ServerContext;
use crate::session::{Response, Session};
use crate::split::split_statements;
use crate::wire::codes::*;
use crate::wire::handshake::{self, HandshakeError, check_credentials, parse_change_user};
use crate::wire::packet::{OkInfo, PacketError, PacketIo};
use crate::wire::resultset::{ColumnInfo, RowFormat, stream_result, write_end};

const LOCAL_STMT_BASE: u32 = 0x4000_0000;

pub struct Connection<R, W> {
    io: PacketIo<R, W>,
    session: Session,
    statements: HashMap<u32, PreparedStatement>,
    next_stmt_id: u32,
    /// Collation for text columns in results.
    collation: u16,
    multi_statements: bool,
}

fn status(session: &Session) -> StatusFlags {
    if let Some(st) = session.backend.try_lock().ok().and_then(|b| b.as_ref().map(|b| b.status)) {
        return st & (StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_STATUS_IN_TRANS);
    }
    let mut s = StatusFlags::empty();
    if session.autocommit() {
        s |= StatusFlags::SERVER_STATUS_AUTOCOMMIT;
    }
    if session.in_transaction {
        s |= StatusFlags::SERVER_STATUS_IN_TRANS;
    }
    s
}

/// Runs a connection to completion.
pub async fn serve<R, W>(reader: R, writer: W, ctx: ServerContext, id: u32, host: String)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut io = PacketIo::new(reader, writer);
    let hello = match handshake::accept(&mut io, id, &ctx.version, &host).await {
        Ok(h) => h,
        Err(HandshakeError::Refused(e)) => {
            io.write_err(e.code, &e.state, &e.message);
            let _ = io.flush().await;
            tracing::info!(id, host, "connection refused: {}", e.message);
            return;
        }
        Err(HandshakeError::Io(e)) => {
            tracing::debug!(id, "handshake failed: {e}");
            return;
        }
    };
    let mut session = Session::new(id, hello.user.clone(), host.clone(), ctx.lake.clone(), ctx.new_vars(), ctx.version.clone());
    // Listed in SHOW PROCESSLIST until the connection ends.
    let _listed = ctx.processes.register(id, &hello.user, &host);
    session.processes = Some(Arc::clone(&ctx.processes));
    if let Some(config) = &ctx.backend {
        session.attach_backend(config.clone(), hello.capabilities);
    }
    let collation = if matches!(hello.collation, 45 | 46 | 224..=255 | 33 | 83 | 192..=215) { u16::from(hello.collation) } else { 45 };
    let mut conn = Connection {
        multi_statements: hello.capabilities.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS),
        io,
        session,
        statements: HashMap::new(),
        // Backend statement ids are small; local ones start high so the two
        // never collide.
        next_stmt_id: LOCAL_STMT_BASE,
        collation,
    };
    if let Some(db) = hello.database
        && let Err(e) = conn.session.use_database(&db) {
            conn.io.write_err(e.code, &e.state, &e.message);
            let _ = conn.io.flush().await;
            return;
        }
    conn.session.schema_changed = false;
    ctx.processes.end(id, conn.session.database());
    conn.ok(0, "");
    if conn.io.flush().await.is_err() {
        return;
    }
    tracing::debug!(id, user = hello.user, "session started");
    conn.run(&ctx).await;
    tracing::debug!(id, "session ended");
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    fn ok(&mut self, affected: u64, info: &str) {
        self.ok_with(affected, info, StatusFlags::empty());
    }

    fn ok_with(&mut self, affected: u64, info: &str, extra: StatusFlags) {
        let tracked = self.schema_state();
        let ok = OkInfo {
            affected_rows: affected,
            last_insert_id: 0,
            status: status(&self.session) | extra,
            warnings: self.session.warnings.len().min(u16::MAX as usize) as u16,
            info,
            session_state: tracked.as_deref(),
        };
        self.io.write_ok(&ok, false);
    }

    /// SESSION_TRACK_SCHEMA entry when the database changed.
    fn schema_state(&mut self) -> Option<Vec<u8>> {
        if !self.session.schema_changed || !self.io.capabilities.contains(CapabilityFlags::CLIENT_SESSION_TRACK) {
            return None;
        }
        self.session.schema_changed = false;
        let db = self.session.database().unwrap_or_default();
        let mut data = Vec::new();
        data.put_lenenc_str(db.as_bytes());
        let mut entry = vec![0x01];
        entry.put_lenenc_str(&data);
        Some(entry)
    }

    fn err(&mut self, e: &MyError) {
        self.io.write_err(e.code, &e.state, &e.message);
    }

    async fn run(&mut self, ctx: &ServerContext) {
        let mut shutdown = ctx.shutdown.clone();
        let switch = ctx.processes.switch(self.session.id).unwrap_or_default();
        loop {
            if *shutdown.borrow() || switch.connection_killed() {
                return;
            }
            let read = tokio::select! {
                r = self.io.read_packet() => r,
                _ = shutdown.changed() => return,
                _ = switch.closed.notified() => return,
            };
            let packet = match read {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(PacketError::TooLarge) => {
                    self.err(&MyError::new(ER_NET_PACKET_TOO_LARGE, b"08S01", "Got a packet bigger than 'max_allowed_packet' bytes"));
                    let _ = self.io.flush().await;
                    return;
                }
                Err(PacketError::Io(e)) => {
                    tracing::debug!(id = self.session.id, "read failed: {e}");
                    return;
                }
            };
            let Some((&cmd, body)) = packet.split_first() else {
                self.err(&MyError::new(ER_UNKNOWN_COM, b"08S01", "Unknown command"));
                if self.io.flush().await.is_err() {
                    return;
                }
                continue;
            };
            crate::server::count_question();
            let keep_going = self.command(cmd, body).await;
            if self.io.flush().await.is_err() || !keep_going {
                return;
            }
        }
    }

    /// Handles one command; false ends the connection.
    async fn command(&mut self, cmd: u8, body: &[u8]) -> bool {
        let Some(command) = command_of(cmd) else {
            self.err(&MyError::new(ER_UNKNOWN_COM, b"08S01", "Unknown command"));
            return true;
        };
        match command {
            Command::COM_QUIT => return false,
            Command::COM_PING => self.ok(0, ""),
            Command::COM_INIT_DB if self.session.has_backend() => {
                let db = String::from_utf8_lossy(body).to_string();
                if self.relay(&packet_of(cmd, body), false).await
                    && let Err(e) = self.session.adopt_database(&db) {
                        tracing::warn!("database {db} accepted by the backend but not here: {e}");
                    }
            }
            Command::COM_INIT_DB => {
                let db = String::from_utf8_lossy(body).to_string();
                match self.session.use_database(&db) {
                    Ok(()) => self.ok(0, ""),
                    Err(e) => self.err(&e),
                }
            }
            Command::COM_QUERY => {
                let sql = crate::split::decode_query(body);
                self.query(&sql).await;
            }
            Command::COM_FIELD_LIST => self.field_list(body),
            Command::COM_STMT_PREPARE if self.session.wants_backend(&crate::split::decode_query(body)) => {
                self.relay(&packet_of(cmd, body), false).await;
            }
            Command::COM_STMT_PREPARE => self.prepare(&crate::split::decode_query(body)).await,
            Command::COM_STMT_EXECUTE | Command::COM_STMT_RESET if self.backend_stmt(body) => {
                self.relay(&packet_of(cmd, body), false).await;
            }
            Command::COM_STMT_CLOSE | Command::COM_STMT_SEND_LONG_DATA if self.backend_stmt(body) => {
                let close = command == Command::COM_STMT_CLOSE;
                let shared = self.session.backend.clone();
                let mut slot = shared.lock().await;
                if let Some(b) = slot.as_mut() {
                    if close && body.len() >= 4 {
                        b.statements.remove(&u32::from_le_bytes([body[0], body[1], body[2], body[3]]));
                    }
                    if b.send_only(&packet_of(cmd, body)).await.is_err() {
                        *slot = None;
                    }
                }
            }
            Command::COM_STMT_EXECUTE => self.execute(body).await,
            Command::COM_STMT_CLOSE => {
                if body.len() >= 4 {
                    let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    self.statements.remove(&id);
                }
            }
            Command::COM_STMT_RESET => match self.stmt(body) {
                Ok(id) => {
                    if let Some(s) = self.statements.get_mut(&id) {
                        s.long_data.clear();
                    }
                    self.ok(0, "")
                }
                Err(e) => self.err(&e),
            },
            Command::COM_STMT_SEND_LONG_DATA => {
                // No response, even on error (as in MySQL).
                if body.len() >= 6 {
                    let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                    let param = u16::from_le_bytes([body[4], body[5]]);
                    if let Some(s) = self.statements.get_mut(&id) {
                        s.long_data.entry(param).or_default().extend_from_slice(&body[6..]);
                    }
                }
            }
            Command::COM_SET_OPTION => {
                match body {
                    [0, 0, ..] => self.multi_statements = true,
                    [1, 0, ..] => self.multi_statements = false,
                    _ => {
                        self.err(&MyError::new(ER_UNKNOWN_COM, b"08S01", "Unknown option"));
                        return true;
                    }
                }
                self.io.write_eof(status(&self.session), 0);
            }
            Command::COM_RESET_CONNECTION => {
                // A fresh backend connection is the backend's own reset.
                self.session.drop_backend().await;
                self.session.reset();
                self.statements.clear();
                self.ok(0, "");
            }
            Command::COM_CHANGE_USER => match parse_change_user(body, self.io.capabilities) {
                Some(change) => match check_credentials(&change.user, &change.auth, &self.session.host) {
                    Ok(()) => {
                        self.session.drop_backend().await;
                        self.session.reset();
                        self.statements.clear();
                        self.session.user = change.user;
                        if let Some(c) = change.collation {
                            self.collation = c;
                        }
                        match change.database.map(|d| self.session.use_database(&d)) {
                            Some(Err(e)) => self.err(&e),
                            _ => self.ok(0, ""),
                        }
                    }
                    Err(e) => {
                        self.err(&e);
                        return true;
                    }
                },
                None => self.err(&MyError::new(ER_UNKNOWN_COM, b"08S01", "Malformed COM_CHANGE_USER")),
            },
            Command::COM_STATISTICS => {
                let text = format!(
                    "Uptime: {}  Threads: {}  Questions: {}  Open tables: 0",
                    crate::server::uptime_secs(),
                    crate::server::connected(),
                    crate::server::questions()
                );
                self.io.write_packet(text.as_bytes());
            }
            Command::COM_PROCESS_KILL => self.err(&MyError::new(ER_NOT_SUPPORTED_YET, S_42000, "This version of Lakewave doesn't yet support 'KILL'")),
            _ => self.err(&MyError::new(ER_UNKNOWN_COM, b"08S01", "Unknown command")),
        }
        true
    }

    fn stmt(&self, body: &[u8]) -> Result<u32, MyError> {
        if body.len() < 4 {
            return Err(MyError::new(ER_WRONG_ARGUMENTS, S_HY000, "Incorrect arguments to mysqld_stmt_execute"));
        }
        let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        if !self.statements.contains_key(&id) {
            return Err(MyError::new(ER_UNKNOWN_STMT_HANDLER, S_HY000, format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute")));
        }
        Ok(id)
    }

    /// COM_QUERY, possibly with several statements.
    async fn query(&mut self, sql: &str) {
        let parts: Vec<String> = if self.multi_statements {
            split_statements(sql).into_iter().map(str::to_string).collect()
        } else {
            vec![sql.to_string()]
        };
        if parts.is_empty() {
            self.err(&MyError::new(ER_EMPTY_QUERY, S_42000, "Query was empty"));
            return;
        }
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let more = if i < last { StatusFlags::SERVER_MORE_RESULTS_EXISTS } else { StatusFlags::empty() };
            tracing::debug!(id = self.session.id, sql = %connectors::stores::redact_statement(part), "query");
            if !self.run_statement(part, RowFormat::Text, more).await {
                return;
            }
            if self.io.flush().await.is_err() {
                return;
            }
        }
    }

    /// Runs a statement and writes its response, listed in SHOW PROCESSLIST
    /// meanwhile; false if it was an error.
    async fn run_statement(&mut self, sql: &str, format: RowFormat, more: StatusFlags) -> bool {
        if let Some(list) = &self.session.processes {
            list.begin(self.session.id, self.session.database(), connectors::stores::redact_statement(sql));
        }
        let result = self.session.execute(sql).await;
        let answered = self.respond(result, format, more).await;
        if let Some(list) = &self.session.processes {
            list.end(self.session.id, self.session.database());
        }
        answered
    }

    /// Writes a statement's response; false if it was an error (which stops
    /// a multi-statement batch).
    async fn respond(&mut self, result: Result<Response, MyError>, format: RowFormat, more: StatusFlags) -> bool {
        match result {
            Ok(Response::Ok { affected, info }) => {
                self.session.absorb_read_warnings();
                self.ok_with(affected, &info, more);
                true
            }
            Ok(Response::Rows { cols, stream }) => {
                let st = status(&self.session) | more;
                let pending = self.session.read_warnings();
                let before = self.session.warnings.len() as u64;
                let warnings = move || (before + pending.as_ref().map_or(0, |w| w.count())).min(u16::MAX as u64) as u16;
                let result = stream_result(&mut self.io, &cols, self.collation, stream, format, st, &warnings).await;
                self.session.absorb_read_warnings();
                match result {
                    Ok(_) => true,
                    Err(e) => {
                        self.err(&e);
                        false
                    }
                }
            }
            Ok(Response::Backend(sql)) => {
                let mut cmd = Vec::with_capacity(sql.len() + 1);
                cmd.push(0x03);
                cmd.extend_from_slice(sql.as_bytes());
                self.relay(&cmd, more.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS)).await
            }
            Err(e) => {
                tracing::debug!(id = self.session.id, "error: {e}");
                self.err(&e);
                false
            }
        }
    }

    /// Relays a command to the backend and its response to the client;
    /// false if it failed.
    async fn relay(&mut self, cmd: &[u8], more: bool) -> bool {
        if let Err(e) = self.session.ensure_backend().await {
            self.err(&e);
            return false;
        }
        let shared = self.session.backend.clone();
        let mut slot = shared.lock().await;
        let Some(backend) = slot.as_mut() else { return false };
        match backend.relay(&mut self.io, cmd, more).await {
            Ok(r) => {
                self.session.in_transaction = r.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS);
                !r.failed
            }
            Err(e) => {
                // The connection is gone; the next statement reconnects.
                *slot = None;
                self.session.in_transaction = false;
                self.err(&e);
                false
            }
        }
    }

    /// Whether a statement id belongs to the backend.
    fn backend_stmt(&self, body: &[u8]) -> bool {
        body.len() >= 4
            && self.session.backend.try_lock().is_ok_and(|slot| {
                slot.as_ref().is_some_and(|b| b.statements.contains_key(&u32::from_le_bytes([body[0], body[1], body[2], body[3]])))
            })
    }

    fn field_list(&mut self, body: &[u8]) {
        let mut buf = ParseBuf(body);
        let table = String::from_utf8_lossy(buf.eat_null_str()).to_lowercase();
        let Some(db) = self.session.database() else {
            self.err(&MyError::from(lakehouse::LakeError::NoDatabaseSelected));
            return;
        };
        match crate::show::table_columns(&self.session.lake, &db, &table) {
            Ok(cols) => {
                for c in cols {
                    let ty = c.arrow_type().unwrap_or(datafusion::arrow::datatypes::DataType::Utf8);
                    let info = ColumnInfo {
                        name: c.name.clone(),
                        org_name: c.name.clone(),
                        table: table.clone(),
                        org_table: table.clone(),
                        schema: db.clone(),
                        ty: lakehouse::types::mysql_type_of(&ty),
                        nullable: c.nullable,
                    };
                    let mut p = info.packet(self.collation);
                    // COM_FIELD_LIST definitions carry a trailing default value.
                    p.put_lenenc_int(0);
                    self.io.write_packet(&p);
                }
                write_end(&mut self.io, status(&self.session), 0);
            }
            Err(e) => self.err(&e),
        }
    }

    async fn prepare(&mut self, sql: &str) {
        let mut stmt = PreparedStatement::new(sql.trim());
        if crate::split::is_blank(sql) {
            self.err(&MyError::new(ER_EMPTY_QUERY, S_42000, "Query was empty"));
            return;
        }
        // Learn the result columns by planning with NULL parameters; a
        // statement that cannot be planned that way reports them at execute.
        if is_query(sql) {
            match self.session.execute(&stmt.with_nulls()).await {
                Ok(Response::Rows { cols, .. }) => stmt.columns = cols,
                Ok(_) => {}
                Err(e) if e.code == ER_PARSE || e.code == ER_NO_SUCH_TABLE || e.code == ER_NO_DB || e.code == ER_BAD_FIELD => {
                    self.err(&e);
                    return;
                }
                Err(_) => {}
            }
        }
        let id = self.next_stmt_id;
        self.next_stmt_id = self.next_stmt_id.wrapping_add(1).max(LOCAL_STMT_BASE);
        let params = stmt.num_params();
        let cols = stmt.columns.clone();
        self.io.write_with(|b| {
            b.push(0x00);
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&(cols.len() as u16).to_le_bytes());
            b.extend_from_slice(&(params as u16).to_le_bytes());
            b.push(0);
            b.extend_from_slice(&0u16.to_le_bytes());
        });
        let st = status(&self.session);
        let deprecate_eof = self.io.capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF);
        if params > 0 {
            let param = ColumnInfo {
                name: "?".into(),
                org_name: String::new(),
                table: String::new(),
                org_table: String::new(),
                schema: String::new(),
                ty: lakehouse::types::mysql_type_of(&datafusion::arrow::datatypes::DataType::Utf8),
                nullable: true,
            };
            for _ in 0..params {
                self.io.write_packet(&param.packet(self.collation));
            }
            if !deprecate_eof {
                self.io.write_eof(st, 0);
            }
        }
        if !cols.is_empty() {
            for c in &cols {
                self.io.write_packet(&c.packet(self.collation));
            }
            if !deprecate_eof {
                self.io.write_eof(st, 0);
            }
        }
        self.statements.insert(id, stmt);
    }

    async fn execute(&mut self, body: &[u8]) {
        let id = match self.stmt(body) {
            Ok(id) => id,
            Err(e) => return self.err(&e),
        };
        // stmt id (4), flags (1), iteration count (4)
        let rest = body.get(9..).unwrap_or_default();
        let sql = match self.statements.get_mut(&id).map(|s| s.bind(rest)) {
            Some(Ok(sql)) => sql,
            Some(Err(e)) => return self.err(&e),
            None => return,
        };
        self.run_statement(&sql, RowFormat::Binary, StatusFlags::empty()).await;
    }
}

fn is_query(sql: &str) -> bool {
    let s = crate::session::strip_leading_comments(sql).trim_start().to_lowercase();
    s.starts_with("select") || s.starts_with("with") || s.starts_with('(') || s.starts_with("values")
}


fn packet_of(cmd: u8, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(body.len() + 1);
    p.push(cmd);
    p.extend_from_slice(body);
    p
}

/// The commands this server answers, by their wire byte.
fn command_of(byte: u8) -> Option<Command> {
    use Command::*;
    [
        COM_QUIT, COM_INIT_DB, COM_QUERY, COM_FIELD_LIST, COM_STATISTICS, COM_PROCESS_KILL, COM_PING,
        COM_CHANGE_USER, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE,
        COM_STMT_RESET, COM_SET_OPTION, COM_RESET_CONNECTION,
    ]
    .into_iter()
    .find(|c| *c as u8 == byte)
}
