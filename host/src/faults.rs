//! Crash injection, for the tests that kill a host between two steps of a
//! command and check that nothing is lost or doubled.
//!
//! `PYOU_CRASH_AT=<point>:<n>` makes the process abort (no unwinding, no
//! flushing: as a SIGKILL would leave it) the `n`-th time it reaches
//! `<point>` (`n` defaults to 1). Unset, a point costs one load of a
//! static. The points, in the order a command passes them:
//! `after-guest`, `mid-commit`, `after-commit`, `after-publish`,
//! `after-mark`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a fault point.
pub const ENV: &str = "PYOU_CRASH_AT";

/// A place between two steps of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The guest returned; nothing is committed yet.
    AfterGuest,
    /// Inside the store's commit: its writes made, not yet committed.
    MidCommit,
    /// Committed; no event published yet.
    AfterCommit,
    /// Events published; the outbox row not yet marked sent.
    AfterPublish,
    /// Marked sent; the delivery not yet acknowledged.
    AfterMark,
}

impl Point {
    /// Every point, in the order a command passes them.
    pub const ALL: [Point; 5] = [
        Point::AfterGuest,
        Point::MidCommit,
        Point::AfterCommit,
        Point::AfterPublish,
        Point::AfterMark,
    ];

    /// The point's name in [`ENV`].
    pub fn as_str(self) -> &'static str {
        match self {
            Point::AfterGuest => "after-guest",
            Point::MidCommit => "mid-commit",
            Point::AfterCommit => "after-commit",
            Point::AfterPublish => "after-publish",
            Point::AfterMark => "after-mark",
        }
    }
}

struct Armed {
    point: Point,
    at: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            let (name, n) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            let point = Point::ALL.into_iter().find(|p| p.as_str() == name)?;
            let at = n.parse().ok().filter(|n| *n >= 1)?;
            Some(Armed {
                point,
                at,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Marks that `point` is reached; aborts the process if it is armed and
/// this is its `n`-th time.
pub fn reached(point: Point) {
    if let Some(armed) = armed() {
        if armed.point == point && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.at {
            eprintln!("{ENV}: aborting at {}", point.as_str());
            std::process::abort();
        }
    }
}
