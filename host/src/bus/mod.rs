//! The buses the host adds to the in-process one of `parallel-you-core`:
//! RabbitMQ.

pub mod amqp;
