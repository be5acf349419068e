//! A guest's stderr, captured without ever failing a write.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A guest's stderr: keeps the last `cap` bytes written and drops the rest,
/// so it is always ready and never full (a full pipe would make the guest's
/// next write fail, and Rust's `eprintln!` panics on that).
#[derive(Clone)]
pub(super) struct TailPipe {
    cap: usize,
    tail: Arc<Mutex<VecDeque<u8>>>,
}

impl TailPipe {
    pub(super) fn new(cap: usize) -> Self {
        TailPipe {
            cap,
            tail: Arc::new(Mutex::new(VecDeque::with_capacity(cap))),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut tail = self.tail.lock();
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        let over = (tail.len() + bytes.len()).saturating_sub(self.cap);
        tail.drain(..over);
        tail.extend(bytes);
    }

    pub(super) fn contents(&self) -> Vec<u8> {
        self.tail.lock().iter().copied().collect()
    }

    pub(super) fn clear(&self) {
        self.tail.lock().clear();
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// How much a guest may hand over in one write; any amount is accepted.
const STDERR_WRITE: usize = 64 * 1024;

impl OutputStream for TailPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(STDERR_WRITE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TailPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for TailPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
