//! Limits per caller, so one client cannot take the gateway from the
//! others: a request rate (429 with `Retry-After` past it), a number of
//! open WebSockets, and a pace for the commands one socket sends. A
//! caller is its token's subject when authenticated, else its IP address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;

use crate::auth::Caller;
use crate::rejection::ApiError;
use crate::Gateway;

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests (or messages) per second, sustained.
    pub per_second: u32,
    /// How many may come at once after a quiet spell.
    pub burst: u32,
}

/// Callers whose buckets are kept; past it the least recently seen go.
const MAX_CALLERS: usize = 100_000;

/// Who is asking, for the per-caller limits: the subject, so one user's
/// clients share a budget wherever they connect from; else the address.
pub(crate) fn caller(who: Option<&Caller>, addr: Option<&ConnectInfo<SocketAddr>>) -> String {
    match who.and_then(|c| c.subject.as_deref()) {
        Some(subject) => format!("sub:{subject}"),
        None => addr.map_or_else(|| "unknown".to_owned(), |a| a.0.ip().to_string()),
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate) -> Self {
        Bucket {
            tokens: f64::from(rate.burst.max(1)),
            at: Instant::now(),
        }
    }

    /// Takes a token, or says how long until there is one.
    fn take(&mut self, rate: Rate) -> Result<(), Duration> {
        let per_second = f64::from(rate.per_second.max(1));
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(f64::from(rate.burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }
}

/// One token bucket per caller.
#[derive(Debug)]
pub(crate) struct Buckets {
    rate: Option<Rate>,
    map: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    pub(crate) fn new(rate: Option<Rate>) -> Self {
        Buckets {
            rate,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// A request from `caller`: `Err(retry_after)` when over its rate.
    pub(crate) fn take(&self, caller: &str) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let mut map = self.map.lock();
        if !map.contains_key(caller) && map.len() >= MAX_CALLERS {
            // Drop the half seen longest ago: a caller that comes back
            // starts with a full bucket, which is what a quiet one has.
            let mut seen: Vec<Instant> = map.values().map(|b| b.at).collect();
            seen.sort_unstable();
            let cut = seen[seen.len() / 2];
            map.retain(|_, b| b.at > cut);
        }
        map.entry(caller.to_owned())
            .or_insert_with(|| Bucket::full(rate))
            .take(rate)
    }
}

/// Middleware for the API routes: 429 past the caller's request rate.
pub(crate) async fn limit_requests(
    State(gw): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let addr = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let who = request.extensions().get::<Caller>();
    gw.rates
        .requests
        .take(&caller(who, addr))
        .map_err(|retry_after| ApiError::TooManyRequests {
            retry_after_s: retry_after.as_secs().max(1),
            what: "requests from this client",
        })?;
    Ok(next.run(request).await)
}

/// Open WebSockets per caller.
#[derive(Debug)]
pub(crate) struct Sockets {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open socket, counted until dropped.
#[derive(Debug)]
pub(crate) struct SocketSlot {
    caller: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Sockets {
    pub(crate) fn new(max: usize) -> Self {
        Sockets {
            max: max.max(1),
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a new socket of `caller`, or `None` at its cap.
    pub(crate) fn open(&self, caller: &str) -> Option<SocketSlot> {
        let mut open = self.open.lock();
        let n = open.entry(caller.to_owned()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            caller: caller.to_owned(),
            open: self.open.clone(),
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// The pace of one socket's commands: past the rate the socket is not
/// read until a token is back, so a flood slows down instead of failing.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: Option<Rate>,
    bucket: Option<Bucket>,
}

impl Pace {
    pub(crate) fn new(rate: Option<Rate>) -> Self {
        Pace {
            rate,
            bucket: rate.map(Bucket::full),
        }
    }

    /// Waits until the socket may send one more command.
    pub(crate) async fn next(&mut self) {
        let (Some(rate), Some(bucket)) = (self.rate, self.bucket.as_mut()) else {
            return;
        };
        while let Err(wait) = bucket.take(rate) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The gateway's per-caller limits.
#[derive(Debug)]
pub(crate) struct Rates {
    pub(crate) requests: Buckets,
    pub(crate) sockets: Sockets,
    pub(crate) socket_commands: Option<Rate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate {
            per_second: 10,
            burst: 5,
        };
        let buckets = Buckets::new(Some(rate));
        for _ in 0..5 {
            assert!(buckets.take("a").is_ok());
        }
        let Err(wait) = buckets.take("a") else {
            panic!("the sixth at once passed")
        };
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another caller has its own bucket.
        assert!(buckets.take("b").is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(buckets.take("a").is_ok(), "a token came back");
        assert!(Buckets::new(None).take("a").is_ok());
    }

    #[test]
    fn sockets_are_counted_per_caller_until_closed() {
        let sockets = Sockets::new(2);
        let one = sockets.open("a");
        let two = sockets.open("a");
        assert!(one.is_some() && two.is_some());
        assert!(sockets.open("a").is_none());
        assert!(sockets.open("b").is_some());
        drop(one);
        assert!(sockets.open("a").is_some());
    }
}
