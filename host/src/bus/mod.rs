//! The buses the host adds to the in-process one of `parallel-you-core`:
//! RabbitMQ (feature `amqp`).

#[cfg(feature = "amqp")]
pub mod amqp;
