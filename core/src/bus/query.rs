//! Queries carried by a bus: a gateway with no host in its process asks,
//! one host serving the reactor answers.
//!
//! A bus that carries queries ([`super::Bus::bind_queries`] answers
//! `true`) gives each reactor a query queue, consumed by competing hosts
//! like its events; [`super::Bus::ask`] sends one request there and waits
//! (bounded) for its answer; [`super::Bus::query_routes`] lists the queries
//! bound, with what their manifests declare, for a gateway's `/api`.

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};

use super::BusError;
use crate::error::ErrorBody;
use crate::host_info::QueryInfo;

/// One query bound on the bus, as the serving reactor's manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRoute {
    /// The reactor's domain.
    pub domain: String,
    /// The query: name, summary, params schema.
    pub query: QueryInfo,
}

/// How a [`QueryRequest`] is answered, on the bus it came from.
#[async_trait]
pub trait QueryReply: Send {
    /// Sends `answer` (the query's JSON text, or why it failed) to the
    /// asker, and settles the request.
    async fn answer(self: Box<Self>, answer: Result<String, ErrorBody>) -> Result<(), BusError>;
}

/// A query to answer: the reactor's domain, the query's name, its
/// parameters (a JSON object's text, as the asker sent it).
pub struct QueryRequest {
    /// The reactor's domain.
    pub domain: String,
    /// The query's name.
    pub name: String,
    /// The parameters' JSON text.
    pub params: String,
    reply: Box<dyn QueryReply>,
}

impl QueryRequest {
    /// A request answered through `reply`.
    pub fn new(domain: String, name: String, params: String, reply: Box<dyn QueryReply>) -> Self {
        QueryRequest {
            domain,
            name,
            params,
            reply,
        }
    }

    /// Answers it.
    pub async fn answer(self, answer: Result<String, ErrorBody>) -> Result<(), BusError> {
        self.reply.answer(answer).await
    }
}

impl std::fmt::Debug for QueryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRequest")
            .field("domain", &self.domain)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The query requests of one reactor, as they arrive.
pub struct QueryRequests(Pin<Box<dyn Stream<Item = QueryRequest> + Send>>);

impl QueryRequests {
    /// Wraps a stream of requests.
    pub fn new(stream: impl Stream<Item = QueryRequest> + Send + 'static) -> Self {
        QueryRequests(Box::pin(stream))
    }

    /// The next request; `None` once the bus stops.
    pub async fn next(&mut self) -> Option<QueryRequest> {
        self.0.next().await
    }
}
