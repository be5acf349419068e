//! Reactors' dead letters on the broker: one durable queue,
//! [`REACTOR_DEAD_LETTERS`], holding each dead letter's document (see
//! [`crate::dead_letter::DeadLetter`], the event inside) as a persistent
//! message whose message id is the dead letter's id.
//!
//! A queue cannot be read without taking from it, so every operation here
//! opens a channel of its own and takes messages with `basic.get` and
//! manual acks: the one it removes (replay, drop) is acked, every other one
//! it took is nacked back with `requeue` before the channel closes, and if
//! the process dies mid-way the broker requeues them all when the channel
//! drops. Nothing is lost; what list shows is a snapshot (two operations at
//! once each see only what the other does not hold), and a message taken
//! and put back is marked redelivered, which no one reads here.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::{BasicProperties, Channel};

use parallel_you_core::bus::{Bus, BusError};
use parallel_you_core::envelope::Envelope;

use super::topology::REACTOR_DEAD_LETTERS;
use super::{unavailable, AmqpBus, MAX_MESSAGE};
use crate::dead_letter::DeadLetter;

/// Most messages one operation takes from the queue before it answers
/// with what it found: the messages it holds meanwhile are bounded.
const MAX_SCAN: usize = 100_000;

/// Publishes the dead letter `id` of the reactor `domain` to the queue.
pub(super) async fn keep(
    bus: &AmqpBus,
    domain: &str,
    id: &str,
    json: &str,
) -> Result<(), BusError> {
    let properties = BasicProperties::default()
        .with_message_id(id.into())
        .with_app_id(domain.into());
    bus.publish_raw(
        "",
        REACTOR_DEAD_LETTERS,
        json.as_bytes(),
        properties,
        true,
        REACTOR_DEAD_LETTERS,
    )
    .await
}

impl AmqpBus {
    /// Up to `limit` dead letters, oldest first, left in their queue.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let mut browse = Browse::open(self).await?;
        let mut out = Vec::new();
        let scanned = async {
            while out.len() < limit {
                match browse.next().await? {
                    Some((_, Some(letter))) => out.push(letter),
                    Some((_, None)) => {}
                    None => break,
                }
            }
            Ok::<_, BusError>(())
        }
        .await;
        browse.release().await;
        scanned.map(|()| out)
    }

    /// The dead letter `id`, left in its queue.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, BusError> {
        let mut browse = Browse::open(self).await?;
        let found = browse.find(id).await;
        browse.release().await;
        found.map(|f| f.map(|(_, letter)| letter))
    }

    /// Sends the dead letter `id`'s event back to its reactor's queue
    /// (waiting for the broker's confirm), then removes it from the dead
    /// letters. Returns it, or `None` if there is no such dead letter. If
    /// this process dies between the two, the letter stays and the event
    /// may go once more: the reactor's processed marker makes that second
    /// one a no-op.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, BusError> {
        let mut browse = Browse::open(self).await?;
        let done = async {
            let Some((tag, letter)) = browse.find(id).await? else {
                return Ok(None);
            };
            let event = Envelope::from_json(&letter.event, MAX_MESSAGE).map_err(|e| {
                BusError::Invalid(format!(
                    "dead letter {id:?} holds an event that is not a valid envelope: {}",
                    e.reason
                ))
            })?;
            self.send_to_reactor(&letter.reactor, event).await?;
            browse.ack(tag).await?;
            Ok(Some(letter))
        }
        .await;
        browse.release().await;
        done
    }

    /// Removes the dead letter `id` for good; true if it was there.
    pub async fn drop_dead_letter(&self, id: &str) -> Result<bool, BusError> {
        let mut browse = Browse::open(self).await?;
        let done = async {
            match browse.find(id).await? {
                Some((tag, _)) => browse.ack(tag).await.map(|()| true),
                None => Ok(false),
            }
        }
        .await;
        browse.release().await;
        done
    }
}

/// Messages taken from the dead-letter queue on a channel of its own, each
/// acked or, at [`Browse::release`], put back.
struct Browse {
    channel: Channel,
    /// The delivery tag of the last message taken.
    last: Option<u64>,
    taken: usize,
}

impl Browse {
    async fn open(bus: &AmqpBus) -> Result<Self, BusError> {
        let link = bus.link()?;
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        Ok(Browse {
            channel,
            last: None,
            taken: 0,
        })
    }

    /// The next message: its tag and its dead letter (`None` if it is not
    /// one, which stays in the queue); `None` once the queue is empty or
    /// [`MAX_SCAN`] were taken.
    async fn next(&mut self) -> Result<Option<(u64, Option<DeadLetter>)>, BusError> {
        if self.taken >= MAX_SCAN {
            return Ok(None);
        }
        let Some(got) = self
            .channel
            .basic_get(
                REACTOR_DEAD_LETTERS.into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let tag = got.delivery.delivery_tag;
        self.last = Some(tag);
        self.taken += 1;
        let letter = serde_json::from_slice::<DeadLetter>(&got.delivery.data);
        if let Err(err) = &letter {
            tracing::warn!(error = %err, "a message in {REACTOR_DEAD_LETTERS} is not a dead letter; left there");
        }
        Ok(Some((tag, letter.ok())))
    }

    /// Takes messages until the dead letter `id`.
    async fn find(&mut self, id: &str) -> Result<Option<(u64, DeadLetter)>, BusError> {
        while let Some((tag, letter)) = self.next().await? {
            if let Some(letter) = letter.filter(|l| l.id == id) {
                return Ok(Some((tag, letter)));
            }
        }
        Ok(None)
    }

    /// Removes the message `tag` from the queue.
    async fn ack(&self, tag: u64) -> Result<(), BusError> {
        self.channel
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(unavailable)
    }

    /// Puts back every message taken and not acked, then closes the
    /// channel (which would put them back too, but later).
    async fn release(self) {
        if let Some(last) = self.last {
            let back = BasicNackOptions {
                multiple: true,
                requeue: true,
            };
            if let Err(err) = self.channel.basic_nack(last, back).await {
                tracing::warn!(error = %err, "could not put dead letters back at once; closing the channel does");
            }
        }
        let _ = self.channel.close(200, "done".into()).await;
    }
}
