//! A real RabbitMQ node for a test: Debian's `rabbitmq-server`, run as a
//! child on free loopback ports in its own temp dir, with the management
//! plugin, and stopped (node and its own `epmd`) when dropped.
//!
//! When the server is not installed the test is skipped with a message,
//! unless `PYOU_REQUIRE_SERVERS=1` (set by `scripts/test`, so CI fails).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// One RabbitMQ node.
pub struct Rabbit {
    dir: tempfile::TempDir,
    /// AMQP port on 127.0.0.1.
    pub port: u16,
    /// Management HTTP port on 127.0.0.1.
    pub management_port: u16,
    dist_port: u16,
    epmd_port: u16,
    child: Option<Child>,
}

/// A free loopback TCP port (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl Rabbit {
    /// Starts a node, or returns `None` (after saying why) when RabbitMQ
    /// is not installed and servers are not required.
    pub fn start() -> Option<Rabbit> {
        if !Path::new(SERVER).exists() {
            if std::env::var("PYOU_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("{SERVER} is missing: install the Debian package rabbitmq-server (scripts/test does)");
            }
            eprintln!("SKIPPED: {SERVER} is not installed (apt-get install rabbitmq-server)");
            return None;
        }
        // A port free when picked may be taken by the time the node binds
        // it (other tests start servers too): then try fresh ones.
        for attempt in 1.. {
            let mut rabbit = Rabbit {
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
                port: free_port(),
                management_port: free_port(),
                dist_port: free_port(),
                epmd_port: free_port(),
                child: None,
            };
            match rabbit.launch() {
                Ok(()) => return Some(rabbit),
                Err(log) if attempt < 3 && port_taken(&log) => {
                    eprintln!("rabbitmq-server: a port was taken meanwhile; trying others");
                    rabbit.stop();
                }
                Err(log) => panic!("{log}"),
            }
        }
        None
    }

    /// The process id of the node's Erlang VM, once it wrote its pid file.
    pub fn vm_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.path("rabbit.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The broker URL (default vhost, guest user).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The management API's base URL.
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }

    /// The broker URL for another user of the default vhost.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("amqp://{user}:{password}@127.0.0.1:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl ARGS` against this node (as an operator would, to
    /// add users and set their permissions), panicking with its output if
    /// it fails.
    pub fn ctl(&self, args: &[&str]) {
        let out = Command::new(Path::new(SERVER).with_file_name("rabbitmqctl"))
            .env("HOME", self.dir.path())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .args(["-n", &format!("pyou{}@localhost", self.port)])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run rabbitmqctl: {e}"));
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        std::fs::write(
            self.path("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nmanagement.tcp.port = {}\n\
                 management.tcp.ip = 127.0.0.1\nloopback_users = none\n",
                self.port, self.management_port
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(self.path("enabled_plugins"), "[rabbitmq_management].\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::File::create(self.path("server.log")).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(SERVER)
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", format!("pyou{}@localhost", self.port))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.path("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.path("log"))
            .env("RABBITMQ_PID_FILE", self.path("rabbit.pid"))
            .env("RABBITMQ_CONFIG_FILE", self.path("rabbitmq"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.path("enabled_plugins"),
            )
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", self.path("plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SERVER}: {e}"));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until both the AMQP and the management ports answer; the
    /// server's log if it exited instead.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let amqp = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            let http = std::net::TcpStream::connect(("127.0.0.1", self.management_port)).is_ok();
            if amqp && http {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.path("server.log")).unwrap_or_default();
                return Err(format!("rabbitmq-server exited ({status}):\n{log}"));
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server did not open its ports in 90 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the node (the Erlang VM by its pid file, then the script) and
    /// its epmd.
    pub fn stop(&mut self) {
        self.stop_node();
        // Each node has its own epmd (ERL_EPMD_PORT): stop it too.
        let _ = Command::new("epmd")
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn stop_node(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = std::fs::read_to_string(self.path("rabbit.pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Path::new(&format!("/proc/{}", pid.trim())).exists() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(self.path("rabbit.pid"));
    }

    /// Stops the node and starts it again on the same ports and data, as a
    /// broker restart does; durable queues and persistent messages survive.
    pub fn restart(&mut self) {
        // epmd stays: the restarted node registers with it again.
        self.stop_node();
        self.launch().unwrap_or_else(|log| panic!("{log}"));
    }
}

/// Whether a server log says a port it was given was in use.
fn port_taken(log: &str) -> bool {
    log.contains("already_used") || log.contains("eaddrinuse")
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.stop();
    }
}
