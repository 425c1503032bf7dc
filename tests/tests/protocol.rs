//! Raw protocol robustness: malformed and unexpected packets get MySQL
//! errors (or a closed connection during the handshake), never a crash, and
//! the server keeps serving.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use mysql_async::prelude::Queryable;

use lakewave_tests::TestServer;

async fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.ok()?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((h[3], body))
}

async fn write_packet(s: &mut TcpStream, seq: u8, body: &[u8]) {
    let len = body.len();
    let mut p = vec![(len & 0xFF) as u8, (len >> 8 & 0xFF) as u8, (len >> 16) as u8, seq];
    p.extend_from_slice(body);
    s.write_all(&p).await.expect("write packet");
}

/// Logs in as root with an empty password, by hand.
async fn login(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (_, hello) = read_packet(&mut s).await.expect("handshake packet");
    assert_eq!(hello[0], 10, "protocol version 10");
    // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD | TRANSACTIONS
    let caps: u32 = 0x0000_0200 | 0x0000_8000 | 0x0008_0000 | 0x0000_0001 | 0x0000_2000;
    let mut r = Vec::new();
    r.extend_from_slice(&caps.to_le_bytes());
    r.extend_from_slice(&(16u32 << 20).to_le_bytes());
    r.push(45);
    r.extend_from_slice(&[0u8; 23]);
    r.extend_from_slice(b"root\0");
    r.push(0);
    r.extend_from_slice(b"mysql_native_password\0");
    write_packet(&mut s, 1, &r).await;
    let (_, ok) = read_packet(&mut s).await.expect("auth result");
    assert_eq!(ok[0], 0x00, "login OK, got {ok:?}");
    s
}

/// Sends a command and returns (first byte of the reply, error code if ERR).
async fn command(s: &mut TcpStream, body: &[u8]) -> (u8, Option<u16>) {
    write_packet(s, 0, body).await;
    let (_, reply) = read_packet(s).await.expect("a reply");
    let code = (reply.first() == Some(&0xFF)).then(|| u16::from_le_bytes([reply[1], reply[2]]));
    (reply[0], code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_handshake_does_not_hurt_the_server() {
    let server = TestServer::start().await;
    for junk in [&b"\x01"[..], &b"\xff\xff\xff\xff\xff"[..], &[0u8; 40][..]] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
        read_packet(&mut s).await.expect("handshake packet");
        write_packet(&mut s, 1, junk).await;
        // Either an ERR packet or a closed connection; then nothing more.
        if let Some((_, reply)) = read_packet(&mut s).await {
            assert_eq!(reply[0], 0xFF, "junk login must not succeed: {reply:?}");
        }
    }
    let mut conn = server.conn().await;
    let one: Option<i64> = conn.query_first("SELECT 1").await.expect("server still serves");
    assert_eq!(one, Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_errors_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let mut s = login(server.port).await;
    assert_eq!(command(&mut s, &[0xEE]).await.1, Some(1047), "unknown command");
    assert_eq!(command(&mut s, &[0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0]).await.1, Some(1243), "unknown statement");
    assert_eq!(command(&mut s, &[0x17, 1]).await.1, Some(1210), "truncated execute");
    assert_eq!(command(&mut s, &[0x03, 0xC3, 0x28, 0xFF]).await.1, Some(1064), "invalid UTF-8 query");
    assert_eq!(command(&mut s, &[0x03]).await.1, Some(1065), "empty query");
    assert_eq!(command(&mut s, &[0x02, b'n', b'o']).await.1, Some(1049), "unknown database");
    // Prepare a statement with one parameter, then execute it with a
    // parameter block that is cut short.
    write_packet(&mut s, 0, b"\x16SELECT ? + 1").await;
    let (_, prep) = read_packet(&mut s).await.expect("prepare reply");
    assert_eq!(prep[0], 0x00, "prepare OK: {prep:?}");
    let id = [prep[1], prep[2], prep[3], prep[4]];
    let (params, cols) = (u16::from_le_bytes([prep[7], prep[8]]), u16::from_le_bytes([prep[5], prep[6]]));
    assert_eq!(params, 1);
    // Parameter and column definitions (with EOF packets: no DEPRECATE_EOF).
    for _ in 0..(params + 1 + if cols > 0 { cols + 1 } else { 0 }) {
        read_packet(&mut s).await.expect("definitions");
    }
    let mut exec = vec![0x17];
    exec.extend_from_slice(&id);
    exec.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 8]);
    assert_eq!(command(&mut s, &exec).await.1, Some(1210), "parameter types without values");
    assert_eq!(command(&mut s, &[0x0E]).await.0, 0x00, "COM_PING still answers");
    server.stop().await;
}

type ProcessRow = (u32, String, String, Option<String>, String, u64, String, Option<String>, String);

/// SHOW PROCESSLIST lists every session with what it runs and how far its
/// scans have got; KILL QUERY stops a running statement (error 1317) and
/// the session goes on; KILL ends a session; an unknown id is error 1094.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processlist_and_kill() {
    let server = TestServer::start().await;
    let mut admin = server.conn().await;
    let mut busy = server.conn().await;
    busy.query_drop("CREATE DATABASE work").await.expect("create database");
    busy.query_drop("USE work").await.expect("use");
    let busy_id: u32 = busy.query_first("SELECT CONNECTION_ID()").await.expect("id").expect("a row");
    let long = "SELECT count(*) FROM generate_series(1, 1000000000000)";
    let running = tokio::spawn(async move {
        let r = busy.query_drop(long).await;
        (busy, r)
    });
    // Wait (bounded) until the listing shows the statement running.
    let mut seen: Option<Vec<ProcessRow>> = None;
    for _ in 0..600 {
        let rows: Vec<ProcessRow> = admin.query("SHOW PROCESSLIST").await.expect("processlist");
        if rows.iter().any(|r| r.0 == busy_id && r.4 == "Query") {
            seen = Some(rows);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rows = seen.expect("the running statement never showed in SHOW PROCESSLIST");
    let busy_row = rows.iter().find(|r| r.0 == busy_id).expect("busy session");
    assert_eq!((busy_row.1.as_str(), busy_row.7.as_deref()), ("root", Some(long)), "{busy_row:?}");
    let progress: f64 = busy_row.8.parse().expect("progress is a number");
    assert!((0.0..=100.0).contains(&progress), "{busy_row:?}");
    assert!(rows.iter().any(|r| r.7.as_deref() == Some("SHOW PROCESSLIST")), "{rows:?}");
    // The same sessions through SQL, with MariaDB's columns.
    let sql = format!("SELECT ID, USER, COMMAND, STATE, INFO, PROGRESS, TIME_MS FROM information_schema.PROCESSLIST WHERE ID = {busy_id}");
    let listed: Vec<(u64, String, String, String, Option<String>, f64, f64)> = admin.query(sql).await.expect("information_schema.PROCESSLIST");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (id, user, command, state, info, progress, time_ms) = listed[0].clone();
    assert_eq!((id, user.as_str(), command.as_str(), info.as_deref()), (u64::from(busy_id), "root", "Query", Some(long)));
    // Planned yet or not: the listing may catch it either way.
    assert!(["starting", "executing"].contains(&state.as_str()), "{listed:?}");
    assert!((0.0..=100.0).contains(&progress) && time_ms >= 0.0, "{listed:?}");
    let own: Vec<String> = admin
        .query("SELECT INFO FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE '%PROCESSLIST%'")
        .await
        .expect("information_schema.PROCESSLIST");
    assert_eq!(own.len(), 1, "the listing statement lists itself: {own:?}");

    admin.query_drop(format!("KILL QUERY {busy_id}")).await.expect("kill query");
    let (mut busy, result) = running.await.expect("the statement's task");
    match result {
        Err(mysql_async::Error::Server(e)) => assert_eq!((e.code, e.state.as_str()), (1317, "70100"), "{e:?}"),
        other => panic!("the killed statement ended with {other:?}"),
    }
    let one: Option<i64> = busy.query_first("SELECT 1").await.expect("the session goes on");
    assert_eq!(one, Some(1));

    admin.query_drop(format!("KILL {busy_id}")).await.expect("kill connection");
    assert!(busy.query_drop("SELECT 1").await.is_err(), "the killed session still answers");
    let mut gone = false;
    for _ in 0..600 {
        let rows: Vec<ProcessRow> = admin.query("SHOW PROCESSLIST").await.expect("processlist");
        if !rows.iter().any(|r| r.0 == busy_id) {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the killed session is still listed");
    match admin.query_drop("KILL 999999").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1094, "{e:?}"),
        other => panic!("KILL of an unknown id gave {other:?}"),
    }
    server.stop().await;
}
