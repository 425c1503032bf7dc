//! The connection phase: initial handshake, authentication (with an auth
//! switch when the client starts with another plugin), and the parsing of
//! COM_CHANGE_USER.
//!
//! Until users and grants exist, the server accepts what a fresh MySQL
//! install accepts: `root` with an empty password, from loopback only. TLS is
//! not advertised without a certificate, so clients that prefer TLS fall back
//! to plain connections.

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};

use super::codes::{ER_ACCESS_DENIED, MyError};
use super::packet::{PacketError, PacketIo};

pub const NATIVE_PASSWORD: &str = "mysql_native_password";
/// utf8mb4_general_ci, known to every client generation.
pub const DEFAULT_COLLATION: u8 = 45;

/// Capabilities the server offers; the session uses the intersection with
/// the client's.
pub fn server_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LOCAL_FILES
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_NO_SCHEMA
        | CapabilityFlags::CLIENT_ODBC
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_INTERACTIVE
        | CapabilityFlags::CLIENT_IGNORE_SIGPIPE
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_RESERVED
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_SESSION_TRACK
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
}

/// What the client told us during the handshake.
#[derive(Debug, Clone)]
pub struct ClientHello {
    pub user: String,
    pub database: Option<String>,
    pub capabilities: CapabilityFlags,
    pub collation: u8,
    pub attributes: Vec<(String, String)>,
}

/// Why a connection did not get through the handshake.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client went away or sent garbage; nothing more to say to it.
    Io(PacketError),
    /// An ERR packet has been written; close after flushing.
    Refused(MyError),
}

impl From<PacketError> for HandshakeError {
    fn from(e: PacketError) -> Self {
        HandshakeError::Io(e)
    }
}

fn scramble() -> [u8; 20] {
    let mut rng = rand::rng();
    let mut s = [0u8; 20];
    for b in &mut s {
        // Printable, non-NUL bytes, as MySQL generates them.
        *b = rng.random_range(0x21..0x7F);
    }
    s
}

fn access_denied(user: &str, host: &str, with_password: bool) -> MyError {
    MyError::new(
        ER_ACCESS_DENIED,
        b"28000",
        format!(
            "Access denied for user '{user}'@'{host}' (using password: {})",
            if with_password { "YES" } else { "NO" }
        ),
    )
}

/// Checks credentials: only `root` with an empty password exists.
pub fn check_credentials(user: &str, auth_response: &[u8], host: &str) -> Result<(), MyError> {
    if user == "root" && auth_response.is_empty() {
        Ok(())
    } else {
        Err(access_denied(user, host, !auth_response.is_empty()))
    }
}

fn malformed() -> HandshakeError {
    HandshakeError::Io(PacketError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "malformed handshake response",
    )))
}

/// Runs the connection phase up to (not including) the final OK.
pub async fn accept<R, W>(
    io: &mut PacketIo<R, W>,
    connection_id: u32,
    server_version: &str,
    host: &str,
) -> Result<ClientHello, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let nonce = scramble();
    let mut scramble_2 = nonce[8..].to_vec();
    scramble_2.push(0);
    let hello = HandshakePacket::new(
        10,
        server_version.as_bytes(),
        connection_id,
        nonce[..8].try_into().map_err(|_| malformed())?,
        Some(scramble_2),
        server_capabilities(),
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(NATIVE_PASSWORD.as_bytes()),
    );
    io.seq = 0;
    io.write_serialized(&hello);
    io.flush().await.map_err(PacketError::Io)?;

    let packet = io.read_packet().await?.ok_or_else(malformed)?;
    if packet.len() == 32 {
        // An SSLRequest: the client insists on TLS, which is not configured.
        let e = MyError::new(2026, b"HY000", "TLS is not configured on this server; connect without SSL (ssl-mode=DISABLED or PREFERRED)");
        return Err(HandshakeError::Refused(e));
    }
    let response: HandshakeResponse<'_> = ParseBuf(&packet).parse(()).map_err(|_| malformed())?;
    let capabilities = response.capabilities() & server_capabilities();
    let user = String::from_utf8_lossy(response.user()).into_owned();
    let database = response
        .db_name()
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned());
    let plugin = response
        .auth_plugin()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        .unwrap_or_else(|| NATIVE_PASSWORD.to_string());
    let mut auth = response.scramble_buf().to_vec();
    let attributes = response
        .connect_attributes()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let collation = response.collation();
    io.capabilities = capabilities;

    if plugin != NATIVE_PASSWORD && !auth.is_empty() {
        // The client answered for another plugin; ask again for ours.
        io.write_serialized(&AuthSwitchRequest::new(NATIVE_PASSWORD.as_bytes(), {
            let mut d = nonce.to_vec();
            d.push(0);
            d
        }));
        io.flush().await.map_err(PacketError::Io)?;
        auth = io.read_packet().await?.ok_or_else(malformed)?;
    }
    check_credentials(&user, &auth, host).map_err(HandshakeError::Refused)?;
    Ok(ClientHello { user, database, capabilities, collation, attributes })
}

/// COM_CHANGE_USER's fields (after the command byte).
#[derive(Debug)]
pub struct ChangeUser {
    pub user: String,
    pub auth: Vec<u8>,
    pub database: Option<String>,
    pub collation: Option<u16>,
}

pub fn parse_change_user(body: &[u8], caps: CapabilityFlags) -> Option<ChangeUser> {
    let mut buf = ParseBuf(body);
    if body.is_empty() {
        return None;
    }
    let user = buf.eat_null_str();
    let auth = if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
        buf.checked_eat_u8_str()?
    } else {
        buf.eat_null_str()
    };
    let database = buf.eat_null_str();
    let collation = buf.checked_eat_u16_le();
    Some(ChangeUser {
        user: String::from_utf8_lossy(user).into_owned(),
        auth: auth.to_vec(),
        database: (!database.is_empty()).then(|| String::from_utf8_lossy(database).into_owned()),
        collation,
    })
}
