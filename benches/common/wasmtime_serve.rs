//! `wasmtime serve` as a baseline: the wasmtime CLI serving a
//! `wasi:http/proxy` component on a free loopback port, a fresh instance per
//! request. Found as `$WASMTIME`, else `wasmtime` on `PATH` (install with
//! `cargo install wasmtime-cli --version 48.0.8 --locked`); without it the
//! caller skips the case with a note.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `wasmtime serve`, killed when dropped.
pub(crate) struct WasmtimeServe {
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wasmtime --version`, or why there is none.
pub(crate) fn version() -> Result<String, String> {
    let out = Command::new(program())
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", program()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn program() -> String {
    std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".to_owned())
}

/// Serves `wasm` with the pooling allocator (as the host does) and waits
/// until it accepts connections (at most 60 s: the first run compiles).
pub(crate) fn start(wasm: &Path) -> anyhow::Result<WasmtimeServe> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = Command::new(program())
        // `-S cli=y`: Rust's std imports wasi:cli, beyond the proxy world.
        .args([
            "serve",
            "-O",
            "pooling-allocator=y",
            "-S",
            "cli=y",
            "--addr",
        ])
        .arg(addr.to_string())
        .arg(wasm)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let serve = WasmtimeServe { addr, child };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "wasmtime serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(serve)
}
