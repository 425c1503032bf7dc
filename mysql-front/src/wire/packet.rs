//! Packet framing: 3-byte length, 1-byte sequence id, payload; payloads of
//! 16 MiB - 1 or more are split and reassembled. Writes are buffered and
//! flushed per response (or when the buffer grows large while streaming).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::BufMutExt;
use mysql_common::packets::{ErrPacket, ServerError, SqlState};
use mysql_common::proto::MySerialize;

const MAX_CHUNK: usize = 0xFF_FFFF;
/// Flush threshold while streaming rows.
pub const FLUSH_AT: usize = 256 * 1024;

pub struct PacketIo<R, W> {
    reader: R,
    writer: W,
    pub seq: u8,
    out: Vec<u8>,
    /// Largest packet accepted from the client (max_allowed_packet).
    pub max_packet: usize,
    pub capabilities: CapabilityFlags,
}

#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("Got a packet bigger than 'max_allowed_packet' bytes")]
    TooLarge,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> PacketIo<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            reader,
            writer,
            seq: 0,
            out: Vec::with_capacity(16 * 1024),
            max_packet: 64 * 1024 * 1024,
            capabilities: CapabilityFlags::empty(),
        }
    }

    /// Reads one logical packet. `Ok(None)` means the client closed the
    /// connection cleanly between packets.
    pub async fn read_packet(&mut self) -> Result<Option<Vec<u8>>, PacketError> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            match self.reader.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && payload.is_empty() => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
            let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            self.seq = header[3].wrapping_add(1);
            if payload.len() + len > self.max_packet {
                return Err(PacketError::TooLarge);
            }
            let start = payload.len();
            payload.resize(start + len, 0);
            self.reader.read_exact(&mut payload[start..]).await?;
            if len < MAX_CHUNK {
                return Ok(Some(payload));
            }
        }
    }

    /// Appends one packet to the output buffer.
    pub fn write_packet(&mut self, payload: &[u8]) {
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_CHUNK);
            self.out.extend_from_slice(&[(n & 0xFF) as u8, (n >> 8 & 0xFF) as u8, (n >> 16) as u8, self.seq]);
            self.out.extend_from_slice(&rest[..n]);
            self.seq = self.seq.wrapping_add(1);
            rest = &rest[n..];
            if n < MAX_CHUNK {
                break;
            }
        }
    }

    /// Builds a packet in place with `fill` (avoids a copy for rows).
    pub fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.out.len();
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        fill(&mut self.out);
        let len = self.out.len() - start - 4;
        if len >= MAX_CHUNK {
            let payload = self.out.split_off(start + 4);
            self.out.truncate(start);
            self.write_packet(&payload);
            return;
        }
        self.out[start] = (len & 0xFF) as u8;
        self.out[start + 1] = (len >> 8 & 0xFF) as u8;
        self.out[start + 2] = (len >> 16) as u8;
        self.out[start + 3] = self.seq;
        self.seq = self.seq.wrapping_add(1);
    }

    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 4 * FLUSH_AT {
                self.out.shrink_to(64 * 1024);
            }
        }
        self.writer.flush().await
    }

    pub fn write_serialized(&mut self, packet: &impl MySerialize) {
        let mut buf = Vec::new();
        packet.serialize(&mut buf);
        self.write_packet(&buf);
    }

    /// An OK packet (header 0x00), or with `eof_header` the 0xFE form that
    /// ends a result set when CLIENT_DEPRECATE_EOF is on.
    pub fn write_ok(&mut self, ok: &OkInfo<'_>, eof_header: bool) {
        let caps = self.capabilities;
        self.write_with(|b| {
            b.push(if eof_header { 0xFE } else { 0x00 });
            b.put_lenenc_int(ok.affected_rows);
            b.put_lenenc_int(ok.last_insert_id);
            let mut status = ok.status;
            if ok.session_state.is_some() {
                status |= StatusFlags::SERVER_SESSION_STATE_CHANGED;
            }
            b.extend_from_slice(&status.bits().to_le_bytes());
            b.extend_from_slice(&ok.warnings.to_le_bytes());
            if caps.contains(CapabilityFlags::CLIENT_SESSION_TRACK) {
                b.put_lenenc_str(ok.info.as_bytes());
                if let Some(state) = ok.session_state {
                    b.put_lenenc_str(state);
                }
            } else if !ok.info.is_empty() {
                // Documented as string<EOF>, but servers send (and clients
                // parse) a length-encoded string.
                b.put_lenenc_str(ok.info.as_bytes());
            }
        });
    }

    /// The classic EOF packet (used when CLIENT_DEPRECATE_EOF is off).
    pub fn write_eof(&mut self, status: StatusFlags, warnings: u16) {
        self.write_with(|b| {
            b.push(0xFE);
            b.extend_from_slice(&warnings.to_le_bytes());
            b.extend_from_slice(&status.bits().to_le_bytes());
        });
    }

    /// An error packet. Tokens of pre-authenticated request URLs and URL
    /// signatures never leave in a message, whatever produced it.
    pub fn write_err(&mut self, code: u16, state: &[u8; 5], msg: &str) {
        let msg = connectors::stores::redact_text(msg);
        let err = ErrPacket::Error(ServerError::new(code, Some(SqlState::new(*state)), msg.as_bytes()));
        let mut buf = Vec::new();
        err.serialize(&mut buf);
        self.write_packet(&buf);
    }
}

/// Fields of an OK packet.
#[derive(Debug, Default)]
pub struct OkInfo<'a> {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: StatusFlags,
    pub warnings: u16,
    pub info: &'a str,
    /// Encoded session-state-change entries (CLIENT_SESSION_TRACK).
    pub session_state: Option<&'a [u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_large_packets() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (cr, cw) = tokio::io::split(client);
        let (sr, sw) = tokio::io::split(server);
        let mut a = PacketIo::new(cr, cw);
        let mut b = PacketIo::new(sr, sw);
        let big = vec![7u8; MAX_CHUNK + 10];
        let writer = tokio::spawn(async move {
            a.write_packet(&big);
            a.write_packet(b"");
            a.flush().await.map(|_| a)
        });
        let first = b.read_packet().await.ok().flatten().map(|p| p.len());
        assert_eq!(first, Some(MAX_CHUNK + 10));
        let second = b.read_packet().await.ok().flatten().map(|p| p.len());
        assert_eq!(second, Some(0));
        assert!(writer.await.is_ok());
    }

    #[tokio::test]
    async fn rejects_oversized_and_handles_eof() {
        let (client, server) = tokio::io::duplex(1024);
        let (sr, sw) = tokio::io::split(server);
        let mut b = PacketIo::new(sr, sw);
        b.max_packet = 8;
        let (_cr, mut cw) = tokio::io::split(client);
        cw.write_all(&[100, 0, 0, 0]).await.ok();
        assert!(matches!(b.read_packet().await, Err(PacketError::TooLarge)));
        drop(cw);
    }
}
