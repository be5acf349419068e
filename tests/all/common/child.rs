//! A `pyou` (or any) child process as the CLI tests drive it: killed when
//! dropped, its stdout and stderr lines read on threads of their own.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process, killed when dropped.
pub struct Child {
    child: std::process::Child,
    /// Its stdout, line by line.
    pub out: mpsc::Receiver<String>,
    /// Its stderr, line by line.
    pub err: mpsc::Receiver<String>,
}

fn lines(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Child {
    /// Starts `command` with piped stdout and stderr.
    pub fn spawn(mut command: Command) -> Child {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        let out = lines(child.stdout.take().expect("piped"));
        let err = lines(child.stderr.take().expect("piped"));
        Child { child, out, err }
    }

    /// The next stdout line within `within`.
    pub fn line(&self, within: Duration) -> String {
        self.out
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no line within {within:?}: {e}"))
    }

    /// The first stderr line containing `text`, within `within`.
    pub fn said(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no {text:?} on stderr within {within:?}: {e}"),
            }
        }
    }

    /// Every stdout line until the process ends (it must within `within`).
    pub fn finish(mut self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        while self.child.try_wait().expect("waits").is_none() {
            assert!(Instant::now() < deadline, "still running after {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.out.try_iter().collect()
    }
}

impl Child {
    /// Asks the process to stop (SIGTERM) and waits for it, at most
    /// `within`: whether it exited successfully by then.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST /api/<key with / for .>?wait=10000` of `body` on the gateway at
/// `addr` (`http://…`): its JSON answer.
pub async fn post_wait(addr: &str, key: &str, body: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{addr}/api/{}?wait=10000", key.replace('.', "/")))
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {key}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST {key}: {e}"))
}
