//! A MongoDB wire-protocol server for the tests: the one `scripts/start-mongo`
//! started (`PYOU_TEST_MONGO_URI`), or one a test starts, stops and restarts
//! itself (`PYOU_TEST_MONGOD`, the server command). Without them a test
//! prints why it skips, unless `PYOU_REQUIRE_SERVERS=1` (as in
//! `scripts/test` and CI), where it fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parallel_you_core::store::Checked;
use parallel_you_host::store::MongoStore;

/// How long a started server may take to open its port.
const START_WAIT: Duration = Duration::from_secs(20);
/// How long a stopping server may take to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(15);

fn required() -> bool {
    std::env::var("PYOU_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

fn env_or_skip(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                !required(),
                "{test}: {var} is not set and PYOU_REQUIRE_SERVERS=1: run the tests through scripts/test, or eval \"$(scripts/start-mongo)\" first"
            );
            eprintln!(
                "SKIPPED {test}: {var} is not set (eval \"$(scripts/start-mongo)\" to run the MongoDB tests)"
            );
            None
        }
    }
}

/// The shared test server's URI, or `None` when the test must skip.
pub fn server_uri(test: &str) -> Option<String> {
    env_or_skip("PYOU_TEST_MONGO_URI", test)
}

/// A database name no other test uses, so tests run in parallel.
pub fn fresh_db() -> String {
    format!(
        "pyou_test_{}",
        parallel_you_core::envelope::new_id().to_lowercase()
    )
}

/// `uri` with `db` as its database.
pub fn uri_with_db(uri: &str, db: &str) -> String {
    format!("{}/{db}", uri.trim_end_matches('/'))
}

/// A store on a fresh database of the shared server.
pub async fn fresh_store(uri: &str) -> Checked<MongoStore> {
    MongoStore::connect(uri, Some(&fresh_db()))
        .await
        .unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
}

/// Drops the store's database: tests leave nothing behind.
pub async fn drop_db(store: &Checked<MongoStore>) {
    if let Err(e) = store.backend().database().drop().await {
        eprintln!("could not drop test database: {e}");
    }
}

/// A server owned by one test, on its own port and storage dir, which it
/// can stop and start again on the same port with the same data.
pub struct OwnServer {
    command: PathBuf,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnServer {
    /// Starts one, or `None` when the test must skip.
    pub fn start(test: &str) -> Option<OwnServer> {
        let command = PathBuf::from(env_or_skip("PYOU_TEST_MONGOD", test)?);
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("free port: {e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut server = OwnServer {
            command,
            addr,
            dir,
            child: None,
        };
        server.run();
        Some(server)
    }

    /// Its URI.
    pub fn uri(&self) -> String {
        format!("mongodb://{}", self.addr)
    }

    /// Starts the server process and waits for its port.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap_or_else(|e| panic!("server log: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(&self.command)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .arg("--storage-path")
            .arg(self.dir.path().join("data"))
            .args(["--log-level", "WARNING"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.command.display()));
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < START_WAIT {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        self.stop();
        panic!(
            "the server did not open {} in {START_WAIT:?}: {log}",
            self.addr
        );
    }

    /// Stops the server (SIGTERM, then SIGKILL past a bounded wait).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_WAIT {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
