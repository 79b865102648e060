//! The answer with no upstream (SPEC §4): one HTTP request, a short page naming the node
//! and the certificate, close.
//!
//! The handshake is driven here rather than by tokio-rustls so the connection costs the
//! fewest segments: under TLS 1.3 the session tickets rustls queues when the client's
//! Finished arrives are held back and leave in one write with the answer and close_notify.
//! Each segment on loopback or a LAN costs both ends a trip through the TCP stack.

use std::io::{Read, Write};

use rustls::ServerConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Choice, Serving, HANDSHAKE_TIMEOUT};
use crate::tls::index::Matched;

/// The longest request head read before answering anyway.
const MAX_HEAD: usize = 8192;

/// Why a connection ended before the answer.
#[derive(Debug)]
pub(super) enum Ended {
    /// The handshake did not complete: failed (bad message, timeout, peer gone).
    Handshake,
    /// The handshake completed; the rest (request, answer) did not.
    AfterHandshake,
}

/// Completes the handshake on `conn` (the ClientHello already in), counts it through
/// `handshaken`, reads the request head and answers.
pub(super) async fn serve(
    mut conn: ServerConnection,
    mut tcp: TcpStream,
    serving: &Serving,
    choice: &Choice,
    sni: Option<&str>,
    handshaken: impl FnOnce(),
) -> Result<(), Ended> {
    let mut buf = vec![0u8; 4096];
    let handshake = async {
        loop {
            // Under TLS 1.3 the server's flight goes out while handshaking; what is queued
            // once the handshake is done (tickets) waits for the answer. TLS 1.2 ends with
            // the server's Finished, which must go now.
            if conn.wants_write()
                && (conn.is_handshaking()
                    || conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3))
            {
                flush(&mut conn, &mut tcp).await?;
            }
            if !conn.is_handshaking() {
                return Ok::<(), std::io::Error>(());
            }
            receive(&mut conn, &mut tcp, &mut buf).await?;
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(())) => handshaken(),
        Ok(Err(_)) | Err(_) => return Err(Ended::Handshake),
    }

    let mut head = Vec::new();
    let mut plain = [0u8; 2048];
    let read_head = async {
        loop {
            match conn.reader().read(&mut plain) {
                Ok(0) => return,
                Ok(n) => {
                    head.extend_from_slice(&plain[..n]);
                    if head.len() >= MAX_HEAD || head.windows(4).any(|w| w == b"\r\n\r\n") {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if receive(&mut conn, &mut tcp, &mut buf).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    };
    // A client that never sends a request still gets the page when the time is up.
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head).await;

    let resp = answer(serving, choice, sni);
    if conn.writer().write_all(resp.as_bytes()).is_ok() {
        conn.send_close_notify();
    }
    let sent = flush(&mut conn, &mut tcp).await;
    let _ = tcp.shutdown().await;
    sent.map_err(|_| Ended::AfterHandshake)
}

/// Reads what the peer sent into `conn` and processes it; an error (or the peer's EOF during
/// the handshake) ends the connection, after sending any alert rustls queued.
async fn receive(
    conn: &mut ServerConnection,
    tcp: &mut TcpStream,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let n = tcp.read(buf).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut chunk = &buf[..n];
    while !chunk.is_empty() {
        conn.read_tls(&mut chunk)?;
        if let Err(e) = conn.process_new_packets() {
            let _ = flush(conn, tcp).await;
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
    }
    Ok(())
}

/// Everything rustls has queued, in one write.
async fn flush(conn: &mut ServerConnection, tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4096);
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    tcp.write_all(&out).await
}

/// The response: status, headers naming node and certificate, a three-line body.
fn answer(serving: &Serving, choice: &Choice, sni: Option<&str>) -> String {
    let cert = choice.name.as_deref().unwrap_or("the node certificate");
    let how = match choice.matched {
        Some(Matched::Exact) => "exact name",
        Some(Matched::Wildcard) => "wildcard",
        Some(Matched::Default) => "cluster default",
        None => "no default set",
    };
    let body = format!(
        "certraft node {}\nsni: {}\ncertificate: {cert} ({how})\n",
        serving.node_id,
        sni.unwrap_or("(none)")
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\nx-certraft-node: {}\r\nx-certraft-certificate: {cert}\r\n\r\n{body}",
        body.len(),
        serving.node_id
    )
}
