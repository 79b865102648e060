//! After the handshake: relay the decrypted stream to the configured `upstream` over TCP.
//!
//! Both directions run concurrently with tokio's `copy_bidirectional` (bounded buffers, so a
//! slow side applies backpressure to the other; a FIN from one side is passed on as a write
//! shutdown — half-close — while the other direction keeps flowing). The connection closes
//! when both directions are done, or when neither has moved a byte for the idle timeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Where and how to proxy.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port`.
    pub addr: String,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// ALPN protocols offered to clients (what the upstream speaks), e.g. `h2`, `http/1.1`.
    pub alpn: Vec<String>,
}

/// Counts progress on a stream: the time of the last byte read or written.
struct Activity<S> {
    inner: S,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Activity<S> {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a proxied connection ended early (for the log; never carries payload bytes).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream {addr} refused or is unreachable: {detail}")]
    Connect { addr: String, detail: String },
    #[error("upstream {addr} did not accept the connection within {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("relay failed: {0}")]
    Io(std::io::Error),
}

/// Relays `client` to the upstream until both sides are done. On a failed upstream connect
/// the client connection is closed cleanly (TLS close_notify, then FIN).
pub async fn relay<C>(mut client: C, upstream: &Upstream) -> Result<(u64, u64), ProxyError>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let up =
        match tokio::time::timeout(upstream.connect_timeout, TcpStream::connect(&upstream.addr))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = client.shutdown().await;
                return Err(ProxyError::Connect {
                    addr: upstream.addr.clone(),
                    detail: e.to_string(),
                });
            }
            Err(_) => {
                let _ = client.shutdown().await;
                return Err(ProxyError::ConnectTimeout {
                    addr: upstream.addr.clone(),
                    timeout: upstream.connect_timeout,
                });
            }
        };
    let _ = up.set_nodelay(true);
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Activity {
        inner: client,
        epoch,
        last: last.clone(),
    };
    let mut b = Activity {
        inner: up,
        epoch,
        last: last.clone(),
    };
    let idle = upstream.idle_timeout;
    let watchdog = async {
        loop {
            let since = epoch.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            let since = Duration::from_millis(since);
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut a, &mut b) => r.map_err(ProxyError::Io),
        _ = watchdog => Err(ProxyError::Idle(idle)),
    }
}
