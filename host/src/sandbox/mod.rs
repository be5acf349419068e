//! What one command's instance may touch: the state behind its imports.
//!
//! Each command gets a fresh [`Sandbox`] in a fresh wasmtime `Store`. It
//! reaches the document store only under its component's domain and only
//! through its command's [`UnitOfWork`] (nothing it writes or schedules is
//! kept unless the command commits), produces only events of that domain
//! (held until the commit, never published by the emitter itself), logs
//! within a budget, and has WASI with no files, environment, arguments or
//! sockets. Outbound HTTP (`wasi:http`) and config values (`wasi:config`)
//! are what its component's grants allow (`crate::grants`), nothing by
//! default.

mod tail_pipe;
mod wasi;

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::bindings::parallel_you::handler::{emitter, log, scheduler, store as wit_store, types};
use crate::grants::http::HttpHooks;
use crate::grants::{ConfigValues, Grants};
use crate::timers::Clock;
use parallel_you_core::envelope::{Envelope, Meta};
use parallel_you_core::error::{ErrorBody, ErrorCode};
use parallel_you_core::json_depth::{check_depth, MAX_JSON_DEPTH};
use parallel_you_core::names::{check_routing_key, domain_of};
use parallel_you_core::store::{Filter, Store, StoreError, UnitLimits, UnitOfWork};
use tail_pipe::TailPipe;

/// Bytes of a guest's stderr kept to explain a trap: the last ones written,
/// where a Rust panic message is. Everything before them is dropped, never
/// refused, so writing can never trap a guest.
pub(crate) const STDERR_CAPTURE: usize = 4096;
/// Bytes of log messages a command may write before the rest is dropped.
const LOG_BUDGET: usize = 64 * 1024;

/// Limits on what one command may produce.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputLimits {
    /// Most events (emitted and returned) per command.
    pub(crate) max_events: usize,
    /// Most bytes of event bodies (emitted and returned) per command.
    pub(crate) max_event_bytes: usize,
    /// Largest event body, in bytes.
    pub(crate) max_event_body: usize,
}

/// The state of one instance.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    /// What the grants allow over HTTP (nothing without them).
    http_hooks: HttpHooks,
    /// Config values and secrets the grants give it (none: nothing to
    /// allocate for the components that have none).
    config: Option<Arc<ConfigValues>>,
    stderr: TailPipe,
    domain: Arc<str>,
    /// The command's view of the store; its ops are the command's changes.
    pub(crate) unit: UnitOfWork,
    /// What timers are scheduled by.
    clock: Arc<dyn Clock>,
    /// The command being handled; `None` while the manifest is read.
    command: Option<Meta>,
    limits: OutputLimits,
    memory_cap: usize,
    log_left: usize,
    /// Events the guest emitted, in order: published after the commit.
    pub(crate) emitted: Vec<Envelope>,
    /// Events checked so far for this command, and their body bytes.
    events_seen: usize,
    event_bytes: usize,
    /// Why the guest was stopped at an emit: past its event caps, or (a
    /// reactor) an event it may not publish.
    pub(crate) events_exceeded: Option<ErrorBody>,
    /// Set when the guest asked for more memory than its cap.
    pub(crate) memory_denied: bool,
    /// Set when the epoch callback stopped the guest at its deadline.
    pub(crate) timed_out: bool,
    /// Set when a store call failed with `unavailable`: the host's own
    /// passing failure, which the guest can only pass on.
    pub(crate) store_unavailable: bool,
    /// A query's sandbox: every write and timer is refused.
    read_only: bool,
    /// A reactor's sandbox: its timers come back to it as events.
    reactor: bool,
}

impl Sandbox {
    pub(crate) fn new(
        domain: Arc<str>,
        store: Arc<dyn Store>,
        command: Option<Meta>,
        clock: Arc<dyn Clock>,
        limits: OutputLimits,
        memory_cap: usize,
    ) -> Self {
        let stderr = TailPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            http_hooks: HttpHooks::new(None, domain.clone()),
            config: None,
            stderr,
            unit: UnitOfWork::new(store, domain.clone(), UnitLimits::default()),
            domain,
            clock,
            command,
            limits,
            memory_cap,
            log_left: LOG_BUDGET,
            emitted: Vec::new(),
            memory_denied: false,
            events_seen: 0,
            event_bytes: 0,
            events_exceeded: None,
            timed_out: false,
            store_unavailable: false,
            read_only: false,
            reactor: false,
        }
    }

    /// This sandbox with what `grants` allow: outbound HTTP, config values
    /// and its own memory cap.
    pub(crate) fn with_grants(mut self, grants: &Grants) -> Self {
        self.http_hooks = HttpHooks::new(grants.http.clone(), self.domain.clone());
        self.config = Some(grants.values.clone());
        if let Some(memory) = grants.memory {
            self.memory_cap = memory;
        }
        self
    }

    /// The most linear memory this instance may have, in bytes.
    pub(crate) fn memory_cap(&self) -> usize {
        self.memory_cap
    }

    /// This sandbox for a reactor: its timers are delivered back to it.
    pub(crate) fn for_reactor(mut self) -> Self {
        self.reactor = true;
        self
    }

    /// This sandbox for a query: reads only.
    pub(crate) fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The refusal of a write in a read-only sandbox.
    fn refuse_write(&self, what: &str) -> Result<(), wit_store::StoreError> {
        if self.read_only {
            return Err(wit_store::StoreError::Invalid(format!(
                "read-only: a query cannot {what}; the store is written only while an event is handled"
            )));
        }
        Ok(())
    }

    /// Readies a reused (warm) instance's state for its next command.
    pub(crate) fn begin_command(&mut self, command: Meta) {
        self.command = Some(command);
        self.emitted.clear();
        self.unit.take_ops();
        self.log_left = LOG_BUDGET;
        self.memory_denied = false;
        self.events_seen = 0;
        self.event_bytes = 0;
        self.events_exceeded = None;
        self.timed_out = false;
        self.store_unavailable = false;
        self.http_hooks.reset();
        self.stderr.clear();
    }

    /// Lets go of the last command before the instance is parked.
    pub(crate) fn end_command(&mut self) {
        self.command = None;
        self.emitted.clear();
        self.unit.take_ops();
    }

    /// `err` for the guest, noting a store outage.
    fn store_error(&mut self, err: StoreError) -> wit_store::StoreError {
        if matches!(err, StoreError::Unavailable(_)) {
            self.store_unavailable = true;
        }
        to_wit_error(err)
    }

    /// What the guest wrote to stderr (a panic message, typically).
    pub(crate) fn stderr_text(&self) -> String {
        let tail = self.stderr.contents();
        // The cut may have split a character: lossy decoding mends it.
        String::from_utf8_lossy(&tail).trim().to_owned()
    }

    /// Turns an event a guest produced into an envelope, or says why it
    /// cannot be published; every event counts against the command's caps.
    pub(crate) fn check_event(
        &mut self,
        cause: &Meta,
        event: types::Event,
    ) -> Result<Envelope, ErrorBody> {
        let invalid = |msg: String| ErrorBody::new(ErrorCode::InvalidEvent, msg);
        if let Some(err) = self.past_caps(event.body.len()) {
            return Err(err);
        }
        self.events_seen += 1;
        self.event_bytes += event.body.len();
        check_routing_key(&event.routing_key).map_err(|e| invalid(e.0))?;
        if domain_of(&event.routing_key) != &*self.domain {
            return Err(invalid(format!(
                "event {:?} is outside the handler's domain {:?}",
                event.routing_key, self.domain
            )));
        }
        if event.body.len() > self.limits.max_event_body {
            return Err(invalid(format!(
                "event {:?} has a body of {} bytes, over the limit of {}",
                event.routing_key,
                event.body.len(),
                self.limits.max_event_body
            )));
        }
        // Checked before parsing: the scan is flat, whatever the nesting.
        check_depth(&event.body, MAX_JSON_DEPTH)
            .map_err(|e| invalid(format!("event {:?}: {e}", event.routing_key)))?;
        let body = serde_json::value::RawValue::from_string(event.body).map_err(|e| {
            invalid(format!(
                "event {:?} has a body that is not JSON: {e}",
                event.routing_key
            ))
        })?;
        Ok(Envelope::event_for(cause, &event.routing_key, body))
    }

    /// Why one more event of `len` body bytes would pass the command's
    /// caps (count, total bytes), if it would.
    fn past_caps(&self, len: usize) -> Option<ErrorBody> {
        let msg = if self.events_seen >= self.limits.max_events {
            format!(
                "a command may produce at most {} events",
                self.limits.max_events
            )
        } else if self.event_bytes.saturating_add(len) > self.limits.max_event_bytes {
            format!(
                "a command's events may come to at most {} bytes in all",
                self.limits.max_event_bytes
            )
        } else {
            return None;
        };
        Some(ErrorBody::new(ErrorCode::InvalidEvent, msg))
    }
}

impl ResourceLimiter for Sandbox {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            // An error here traps the guest at the growth, so the outcome is
            // a clear `memory_limit` instead of an allocator failure later.
            self.memory_denied = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit: the guest asked for {desired} bytes, the cap is {} bytes",
                self.memory_cap
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }
}

fn to_wit_error(err: StoreError) -> wit_store::StoreError {
    match err {
        StoreError::Conflict { current } => wit_store::StoreError::Conflict(current),
        StoreError::NotFound => wit_store::StoreError::NotFound,
        StoreError::Invalid(m) | StoreError::TooLarge(m) => wit_store::StoreError::Invalid(m),
        StoreError::Unavailable(m) => wit_store::StoreError::Unavailable(m),
    }
}

fn to_wit_document(doc: parallel_you_core::store::Document) -> wit_store::Document {
    wit_store::Document {
        id: doc.id,
        version: doc.version,
        json: doc.json,
    }
}

impl types::Host for Sandbox {}

impl wit_store::Host for Sandbox {
    async fn get(
        &mut self,
        collection: String,
        id: String,
    ) -> Result<Option<wit_store::Document>, wit_store::StoreError> {
        let got = self.unit.get(&collection, &id).await;
        got.map(|d| d.map(to_wit_document))
            .map_err(|e| self.store_error(e))
    }

    async fn list(
        &mut self,
        collection: String,
        filter_json: String,
    ) -> Result<Vec<wit_store::Document>, wit_store::StoreError> {
        let filter = Filter::parse(&filter_json).map_err(to_wit_error)?;
        let listed = self.unit.list(&collection, &filter).await;
        listed
            .map(|docs| docs.into_iter().map(to_wit_document).collect())
            .map_err(|e| self.store_error(e))
    }

    async fn upsert(
        &mut self,
        collection: String,
        id: String,
        json: String,
        expected_version: Option<u64>,
    ) -> Result<u64, wit_store::StoreError> {
        self.refuse_write("write documents")?;
        let written = self
            .unit
            .upsert(&collection, &id, &json, expected_version)
            .await;
        written.map_err(|e| self.store_error(e))
    }

    async fn delete(
        &mut self,
        collection: String,
        id: String,
    ) -> Result<bool, wit_store::StoreError> {
        self.refuse_write("delete documents")?;
        let deleted = self.unit.delete(&collection, &id).await;
        deleted.map_err(|e| self.store_error(e))
    }

    async fn clear(&mut self, collection: String) -> Result<(), wit_store::StoreError> {
        self.refuse_write("clear collections")?;
        let cleared = self.unit.clear(&collection).await;
        cleared.map_err(|e| self.store_error(e))
    }
}

impl scheduler::Host for Sandbox {
    async fn schedule(
        &mut self,
        delay_ms: u64,
        routing_key: String,
        body: String,
    ) -> Result<String, wit_store::StoreError> {
        self.refuse_write("schedule timers")?;
        let Some(cause) = self.command.clone() else {
            return Err(wit_store::StoreError::Invalid(
                "timers can only be scheduled while handling a command".to_owned(),
            ));
        };
        let target = if self.reactor {
            crate::timers::Target::Reactor
        } else {
            crate::timers::Target::Handler
        };
        let scheduled = crate::timers::schedule_to(
            &mut self.unit,
            &*self.clock,
            &cause,
            delay_ms,
            &routing_key,
            &body,
            target,
        )
        .await;
        scheduled.map_err(|e| self.store_error(e))
    }

    async fn cancel(&mut self, id: String) -> Result<bool, wit_store::StoreError> {
        self.refuse_write("cancel timers")?;
        let cancelled = self.unit.cancel(&id).await;
        cancelled.map_err(|e| self.store_error(e))
    }
}

impl emitter::Host for Sandbox {
    async fn emit(&mut self, event: types::Event) -> wasmtime::Result<()> {
        let Some(cause) = self.command.clone() else {
            tracing::warn!(domain = %self.domain, "emit called outside a command; ignored");
            return Ok(());
        };
        if let Some(err) = self.past_caps(event.body.len()) {
            // Stop the guest at its first emit past a cap: it would
            // otherwise run on, and every further emit would cost an error
            // event. The command's one error event comes from `classify`.
            let msg = err.message.clone();
            self.events_exceeded = Some(err);
            return Err(wasmtime::Error::msg(msg));
        }
        let envelope = match self.check_event(&cause, event) {
            Ok(env) => env,
            // A reactor's event fails whole, as for a bad returned command:
            // its error event would answer nobody's command.
            Err(err) if self.reactor => {
                let msg = err.message.clone();
                self.events_exceeded = Some(err);
                return Err(wasmtime::Error::msg(msg));
            }
            // Small by construction: `check_event` quotes only a routing
            // key it has already checked, and serde_json's own message.
            Err(err) => err.event_for(&cause),
        };
        self.emitted.push(envelope);
        Ok(())
    }
}

impl log::Host for Sandbox {
    async fn log(&mut self, level: log::Level, message: String) {
        if self.log_left == 0 {
            return;
        }
        let message = if message.len() > self.log_left {
            let mut cut = self.log_left;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            self.log_left = 0;
            format!(
                "{}… (log budget of {LOG_BUDGET} bytes per command used up)",
                &message[..cut]
            )
        } else {
            self.log_left -= message.len();
            message
        };
        let domain = &*self.domain;
        let correlation_id = self.command.as_ref().map(|c| c.correlation_id.as_str());
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "handler", domain, correlation_id, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "handler", domain, correlation_id, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "handler", domain, correlation_id, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "handler", domain, correlation_id, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "handler", domain, correlation_id, "{message}")
            }
        }
    }
}
