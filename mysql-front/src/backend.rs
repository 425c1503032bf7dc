//! The session's own connection to the MySQL backend, spoken at the packet
//! level so responses are relayed to the client verbatim (no decode and
//! re-encode of rows, MySQL's exact column metadata, errors with their own
//! codes). The connection negotiates the client's capabilities so every
//! packet means the same on both sides.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse};
use mysql_common::scramble::scramble_native;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use connectors::mysql::{BackendUrl, ManagedServer};

use crate::wire::codes::MyError;
use crate::wire::packet::{FLUSH_AT, PacketIo};

/// Where the backend is; shared by all sessions.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    pub url: BackendUrl,
    /// Set when Lakewave manages the server (it is restarted if it died).
    pub managed: Option<Arc<ManagedServer>>,
}

pub const ER_LOST_BACKEND: u16 = 2013;

/// A session's backend connection, shared between the session and the
/// engine (which reads MySQL through it inside transactions).
pub type SharedBackend = Arc<tokio::sync::Mutex<Option<Backend>>>;

pub fn lost(detail: impl std::fmt::Display) -> MyError {
    MyError::new(ER_LOST_BACKEND, b"HY000", format!("Lost connection to the MySQL backend: {detail}"))
}

pub struct Backend {
    io: PacketIo<OwnedReadHalf, OwnedWriteHalf>,
    /// Status flags of the backend's last response.
    pub status: StatusFlags,
    pub server_version: String,
    /// Prepared statements that live on the backend (client id = backend id).
    pub statements: HashMap<u32, ()>,
    /// The backend's id of this connection (its `CONNECTION_ID()`).
    pub thread_id: u32,
}

/// Result of relaying one command.
pub struct Relayed {
    pub status: StatusFlags,
    pub failed: bool,
}

fn server_error(packet: &[u8]) -> MyError {
    // 0xFF, code (2), '#', state (5), message
    let code = u16::from_le_bytes([packet.get(1).copied().unwrap_or(0), packet.get(2).copied().unwrap_or(0)]);
    let (state, msg) = if packet.get(3) == Some(&b'#') && packet.len() >= 9 {
        let mut s = [0u8; 5];
        s.copy_from_slice(&packet[4..9]);
        (s, &packet[9..])
    } else {
        (*b"HY000", packet.get(3..).unwrap_or_default())
    };
    MyError::new(code, &state, String::from_utf8_lossy(msg))
}

fn lenenc(buf: &mut ParseBuf<'_>) -> Option<u64> {
    buf.checked_eat_lenenc_int()
}

/// Status flags of an OK (0x00 / 0xFE with DEPRECATE_EOF) or EOF packet, and
/// the byte offset where they sit.
fn status_of(packet: &[u8], deprecate_eof: bool) -> Option<(StatusFlags, usize)> {
    match packet.first()? {
        0xFE if !deprecate_eof => {
            let at = 3;
            Some((StatusFlags::from_bits_truncate(u16::from_le_bytes([*packet.get(at)?, *packet.get(at + 1)?])), at))
        }
        0x00 | 0xFE => {
            let mut buf = ParseBuf(&packet[1..]);
            lenenc(&mut buf)?;
            lenenc(&mut buf)?;
            let at = packet.len() - buf.len();
            Some((StatusFlags::from_bits_truncate(u16::from_le_bytes([*packet.get(at)?, *packet.get(at + 1)?])), at))
        }
        _ => None,
    }
}

fn is_terminator(packet: &[u8], deprecate_eof: bool) -> bool {
    packet.first() == Some(&0xFE) && if deprecate_eof { packet.len() < 0xFF_FFFF } else { packet.len() < 9 }
}

impl Backend {
    pub async fn connect(
        config: &BackendConfig,
        client_caps: CapabilityFlags,
        database: Option<&str>,
    ) -> Result<Self, MyError> {
        if let Some(m) = &config.managed {
            let m = m.clone();
            tokio::task::spawn_blocking(move || m.ensure_running())
                .await
                .map_err(lost)?
                .map_err(lost)?;
        }
        let url = &config.url;
        let stream = TcpStream::connect(url.address()).await.map_err(|e| lost(format!("cannot connect to {}: {e}", url.address())))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut io = PacketIo::new(r, w);
        let hello = io.read_packet().await.map_err(lost)?.ok_or_else(|| lost("closed during handshake"))?;
        if hello.first() == Some(&0xFF) {
            return Err(server_error(&hello));
        }
        let hs: HandshakePacket<'_> = ParseBuf(&hello).parse(()).map_err(|e| lost(format!("bad handshake: {e}")))?;
        let server_version = String::from_utf8_lossy(hs.server_version_ref()).into_owned();
        let thread_id = hs.connection_id();
        let wanted = (client_caps
            | CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS)
            - CapabilityFlags::CLIENT_SSL
            - CapabilityFlags::CLIENT_COMPRESS
            - CapabilityFlags::CLIENT_CONNECT_ATTRS;
        let caps = wanted & hs.capabilities();
        for needed in [CapabilityFlags::CLIENT_DEPRECATE_EOF, CapabilityFlags::CLIENT_SESSION_TRACK] {
            if client_caps.contains(needed) && !caps.contains(needed) {
                return Err(lost(format!("the backend ({server_version}) lacks capability {needed:?} the client uses")));
            }
        }
        let nonce = hs.nonce();
        let auth = if url.password.is_empty() {
            Vec::new()
        } else {
            scramble_native(&nonce, url.password.as_bytes()).map(|s| s.to_vec()).unwrap_or_default()
        };
        let db = database.map(|d| d.as_bytes().to_vec());
        let response = HandshakeResponse::new(
            Some(auth),
            (8, 0, 0),
            Some(url.user.as_bytes().to_vec()),
            db,
            Some(mysql_common::packets::AuthPlugin::MysqlNativePassword),
            caps,
            None,
            16 * 1024 * 1024,
        );
        io.capabilities = caps;
        io.write_serialized(&response);
        io.flush().await.map_err(lost)?;
        loop {
            let p = io.read_packet().await.map_err(lost)?.ok_or_else(|| lost("closed during authentication"))?;
            match p.first() {
                Some(0x00) => break,
                Some(0xFF) => return Err(server_error(&p)),
                Some(0xFE) => {
                    // Auth switch: answer for mysql_native_password only.
                    let mut buf = ParseBuf(&p[1..]);
                    let plugin = buf.eat_null_str().to_vec();
                    let data = buf.eat_all();
                    let data = data.strip_suffix(&[0]).unwrap_or(data);
                    if plugin != b"mysql_native_password" {
                        return Err(lost(format!("the backend asks for auth plugin {}", String::from_utf8_lossy(&plugin))));
                    }
                    let answer = if url.password.is_empty() {
                        Vec::new()
                    } else {
                        scramble_native(data, url.password.as_bytes()).map(|s| s.to_vec()).unwrap_or_default()
                    };
                    io.write_packet(&answer);
                    io.flush().await.map_err(lost)?;
                }
                Some(0x01) => {}
                _ => return Err(lost("unexpected packet during authentication")),
            }
        }
        Ok(Self { io, status: StatusFlags::SERVER_STATUS_AUTOCOMMIT, server_version, statements: HashMap::new(), thread_id })
    }

    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }

    fn deprecate_eof(&self) -> bool {
        self.io.capabilities.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    async fn send(&mut self, command: &[u8]) -> Result<(), MyError> {
        self.io.seq = 0;
        self.io.write_packet(command);
        self.io.flush().await.map_err(lost)
    }

    async fn next(&mut self) -> Result<Vec<u8>, MyError> {
        self.io.read_packet().await.map_err(lost)?.ok_or_else(|| lost("the backend closed the connection"))
    }

    /// Sends a command and relays the whole response to the client, packet
    /// by packet. With `more`, the final status gets MORE_RESULTS_EXISTS (the
    /// client's batch goes on after this statement).
    pub async fn relay<R, W>(&mut self, client: &mut PacketIo<R, W>, command: &[u8], more: bool) -> Result<Relayed, MyError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let kind = command.first().copied().unwrap_or(0);
        self.send(command).await?;
        if kind == 0x16 {
            return self.relay_prepare(client).await;
        }
        let deprecate_eof = self.deprecate_eof();
        loop {
            let first = self.next().await?;
            match first.first() {
                Some(0xFF) => {
                    client.write_packet(&first);
                    return Ok(Relayed { status: self.status, failed: true });
                }
                Some(0x00) => {
                    let done = self.finish_packet(client, first, more, deprecate_eof);
                    if done {
                        return Ok(Relayed { status: self.status, failed: false });
                    }
                }
                Some(0xFB) => {
                    // LOAD DATA LOCAL INFILE: the backend names the file; the
                    // client sends its contents, ending with an empty packet;
                    // then the backend's OK or error follows as usual.
                    client.write_packet(&first);
                    client.flush().await.map_err(lost)?;
                    loop {
                        let chunk = client.read_packet().await.map_err(lost)?.ok_or_else(|| lost("the client closed the connection during LOAD DATA LOCAL"))?;
                        self.io.write_packet(&chunk);
                        if chunk.is_empty() || self.io.buffered() >= FLUSH_AT {
                            self.io.flush().await.map_err(lost)?;
                        }
                        if chunk.is_empty() {
                            break;
                        }
                    }
                }
                _ => {
                    // A result set: column count, definitions, [EOF], rows, end.
                    let mut buf = ParseBuf(&first);
                    let columns = lenenc(&mut buf).unwrap_or(0);
                    client.write_packet(&first);
                    for _ in 0..columns {
                        let p = self.next().await?;
                        client.write_packet(&p);
                    }
                    if !deprecate_eof {
                        let p = self.next().await?;
                        client.write_packet(&p);
                    }
                    loop {
                        let p = self.next().await?;
                        if p.first() == Some(&0xFF) {
                            client.write_packet(&p);
                            return Ok(Relayed { status: self.status, failed: true });
                        }
                        if is_terminator(&p, deprecate_eof) {
                            if self.finish_packet(client, p, more, deprecate_eof) {
                                return Ok(Relayed { status: self.status, failed: false });
                            }
                            break;
                        }
                        client.write_packet(&p);
                        if client.buffered() >= FLUSH_AT {
                            client.flush().await.map_err(lost)?;
                        }
                    }
                }
            }
        }
    }

    /// Forwards a final OK/EOF; returns true when no more results follow.
    fn finish_packet<R, W>(&mut self, client: &mut PacketIo<R, W>, mut p: Vec<u8>, more: bool, deprecate_eof: bool) -> bool
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Some((status, at)) = status_of(&p, deprecate_eof) else {
            client.write_packet(&p);
            return true;
        };
        let last = !status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS);
        self.status = status;
        if last && more {
            let patched = (status | StatusFlags::SERVER_MORE_RESULTS_EXISTS).bits().to_le_bytes();
            p[at] = patched[0];
            p[at + 1] = patched[1];
        }
        client.write_packet(&p);
        last
    }

    async fn relay_prepare<R, W>(&mut self, client: &mut PacketIo<R, W>) -> Result<Relayed, MyError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let first = self.next().await?;
        client.write_packet(&first);
        if first.first() != Some(&0x00) || first.len() < 12 {
            return Ok(Relayed { status: self.status, failed: true });
        }
        let id = u32::from_le_bytes([first[1], first[2], first[3], first[4]]);
        let columns = u16::from_le_bytes([first[5], first[6]]);
        let params = u16::from_le_bytes([first[7], first[8]]);
        let eof = !self.deprecate_eof();
        let mut count = u32::from(columns) + u32::from(params);
        if eof {
            count += u32::from(columns > 0) + u32::from(params > 0);
        }
        for _ in 0..count {
            let p = self.next().await?;
            client.write_packet(&p);
        }
        self.statements.insert(id, ());
        Ok(Relayed { status: self.status, failed: false })
    }

    /// Sends a command that has no response (COM_STMT_CLOSE, SEND_LONG_DATA).
    pub async fn send_only(&mut self, command: &[u8]) -> Result<(), MyError> {
        self.send(command).await
    }

    /// Runs a statement for Lakewave itself; returns its rows as text (an
    /// empty list for statements without a result set).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, MyError> {
        let rows = self.query_bytes(sql).await?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_iter().map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())).collect())
            .collect())
    }

    /// Like [`Backend::query`], with values as the raw bytes MySQL sent.
    pub async fn query_bytes(&mut self, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>, MyError> {
        let mut cmd = vec![0x03];
        cmd.extend_from_slice(sql.as_bytes());
        self.send(&cmd).await?;
        let deprecate_eof = self.deprecate_eof();
        let mut rows = Vec::new();
        loop {
            let first = self.next().await?;
            match first.first() {
                Some(0xFF) => return Err(server_error(&first)),
                Some(0x00) => {
                    let (status, _) = status_of(&first, deprecate_eof).unwrap_or((self.status, 0));
                    self.status = status;
                    if !status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
                        return Ok(rows);
                    }
                }
                _ => {
                    let columns = lenenc(&mut ParseBuf(&first)).unwrap_or(0);
                    for _ in 0..columns + u64::from(!deprecate_eof) {
                        self.next().await?;
                    }
                    loop {
                        let p = self.next().await?;
                        if p.first() == Some(&0xFF) {
                            return Err(server_error(&p));
                        }
                        if is_terminator(&p, deprecate_eof) {
                            let (status, _) = status_of(&p, deprecate_eof).unwrap_or((self.status, 0));
                            self.status = status;
                            if !status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
                                return Ok(rows);
                            }
                            break;
                        }
                        let mut buf = ParseBuf(&p);
                        let mut row = Vec::new();
                        while !buf.is_empty() {
                            if buf.0.first() == Some(&0xFB) {
                                buf.skip(1);
                                row.push(None);
                            } else {
                                let v = buf.checked_eat_lenenc_str().ok_or_else(|| lost("malformed row"))?;
                                row.push(Some(v.to_vec()));
                            }
                        }
                        rows.push(row);
                    }
                }
            }
        }
    }
}

/// Reads MySQL tables for the engine through a session's own connection.
#[derive(Debug)]
pub struct SessionConnectionRows(pub SharedBackend);

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({})", self.server_version)
    }
}

#[async_trait::async_trait]
impl connectors::mysql::RowSource for SessionConnectionRows {
    async fn text_rows(&self, sql: &str) -> datafusion::error::Result<connectors::mysql::TextRows> {
        let mut slot = self.0.lock().await;
        let b = slot
            .as_mut()
            .ok_or_else(|| datafusion::error::DataFusionError::External(Box::new(lost("the session's connection is closed"))))?;
        b.query_bytes(sql).await.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }
}
