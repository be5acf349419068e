//! A cap on open connections, so slow or idle clients cannot take every
//! file descriptor: before it, 1,013 half-sent requests locked `/healthz`
//! out (the process ran out of descriptors and stopped accepting).
//!
//! Each accepted connection holds a permit for as long as its stream lives
//! (through a WebSocket upgrade too); past the cap a new connection is
//! closed at once and counted. Half-sent requests are ended by the header
//! and first-request timeouts in `Gateway::serve`, which give the permits
//! back.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept for everything that is not a client connection: the
/// store, the bus, the handlers folder, logs.
const RESERVED_FDS: u64 = 256;

/// Open connections and the cap on them.
#[derive(Debug)]
pub(crate) struct ConnectionCap {
    permits: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
}

impl ConnectionCap {
    /// A cap of `max`, lowered to what the process's descriptor limit
    /// allows (after raising its soft limit towards the hard one).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.min(descriptor_room()).max(1);
        ConnectionCap {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refused: AtomicU64::new(0),
        }
    }

    /// The cap in force.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Connections closed at once because the cap was reached.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Connections to let in on this machine: the soft descriptor limit
/// (raised to the hard limit first) less [`RESERVED_FDS`].
#[cfg(unix)]
fn descriptor_room() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    match limit.current {
        Some(soft) => usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX),
        None => usize::MAX,
    }
}

#[cfg(not(unix))]
fn descriptor_room() -> usize {
    usize::MAX
}

/// The acceptor: takes a permit or closes the connection.
#[derive(Debug, Clone)]
pub(crate) struct CappedAcceptor<A> {
    inner: A,
    cap: Arc<ConnectionCap>,
}

impl<A> CappedAcceptor<A> {
    pub(crate) fn new(inner: A, cap: Arc<ConnectionCap>) -> Self {
        CappedAcceptor { inner, cap }
    }
}

impl<A, I, S> Accept<I, S> for CappedAcceptor<A>
where
    A: Accept<I, S> + Clone + Send + 'static,
    A::Future: Send,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Capped<A::Stream>;
    type Service = A::Service;
    type Future = futures::future::BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let permit = self.cap.permits.clone().try_acquire_owned();
        let inner = self.inner.clone();
        let cap = self.cap.clone();
        Box::pin(async move {
            let Ok(permit) = permit else {
                cap.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    max = cap.max,
                    "too many open connections; closing a new one"
                );
                return Err(io::Error::other("too many open connections"));
            };
            let (stream, service) = inner.accept(stream, service).await?;
            Ok((
                Capped {
                    inner: stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A stream that holds its connection's permit.
#[derive(Debug)]
pub(crate) struct Capped<I> {
    inner: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Capped<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Capped<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
