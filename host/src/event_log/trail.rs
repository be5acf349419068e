//! The trail of one command: the messages with its correlation id (the
//! command itself), then everything caused by them, level by level (its
//! events, the commands reactors sent for them, their events, …), in the
//! order they were made.

use std::collections::HashSet;

use parallel_you_core::envelope::Envelope;

use super::{timestamp_ms, LogError, LogSink};

/// Most messages one trail returns.
pub const MAX_TRAIL: usize = 10_000;
/// Most levels of causes followed (a reactor loop stops here).
const MAX_DEPTH: usize = 64;

/// What [`trail`] found.
#[derive(Debug)]
pub struct Trail {
    /// Each message with its level (0: the command itself or a message
    /// sharing its correlation id; 1: what it caused; …), oldest first.
    pub messages: Vec<(usize, Envelope)>,
    /// More matched than [`MAX_TRAIL`] or the levels followed.
    pub truncated: bool,
}

/// Everything the log holds that `correlation` caused, in order: by
/// instant, a cause before what it caused at the same instant.
pub async fn trail(log: &dyn LogSink, correlation: &str) -> Result<Trail, LogError> {
    let mut seen = HashSet::new();
    let mut asked = HashSet::from([correlation.to_owned()]);
    let mut messages = Vec::new();
    let mut causes = vec![correlation.to_owned()];
    // The first round also finds the command itself, by its correlation id.
    let mut itself = Some(correlation);
    let mut round = 0;
    loop {
        let found = log
            .find(&causes, itself.take(), MAX_TRAIL - messages.len())
            .await?;
        let mut next = Vec::new();
        for message in found {
            if !seen.insert(message.meta.message_id.clone()) {
                continue;
            }
            let level = if message.meta.correlation_id == correlation {
                0
            } else {
                round + 1
            };
            if asked.insert(message.meta.correlation_id.clone()) {
                next.push(message.meta.correlation_id.clone());
            }
            messages.push((level, message));
        }
        let truncated = messages.len() >= MAX_TRAIL || (!next.is_empty() && round == MAX_DEPTH);
        if truncated || next.is_empty() {
            messages.sort_by(|(la, a), (lb, b)| {
                (timestamp_ms(a), *la, &a.meta.message_id).cmp(&(
                    timestamp_ms(b),
                    *lb,
                    &b.meta.message_id,
                ))
            });
            return Ok(Trail {
                messages,
                truncated,
            });
        }
        causes = next;
        round += 1;
    }
}
