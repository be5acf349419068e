//! The wasmtime side: one engine, components compiled once, and a fresh
//! sandboxed instance per command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    UpdateDeadline,
};

use crate::bindings::{self, HandlerPre};
use crate::cache::{sha256_hex, CacheError, CompileCache};
use crate::sandbox::{OutputLimits, Sandbox};
use crate::warm::{InstancePolicy, WarmInstance, WarmPool, WARM_SLOTS};
use parallel_you_core::bus::Publisher;
use parallel_you_core::envelope::{parse_timestamp_ms, Envelope};
use parallel_you_core::error::{Code, ErrorBody, ErrorCode};
use parallel_you_core::host_info::CommandInfo;
use parallel_you_core::names::{check_domain, check_routing_key, error_key};
use parallel_you_core::schema::BodySchemas;
use parallel_you_core::store::{MemoryStore, Store as DocumentStore};

/// How often the epoch advances: deadlines are checked, and busy guests
/// yield to the executor, at this granularity. Short slices keep a looping
/// guest from delaying the runtime's timers and I/O.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Sandbox limits applied to every command.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time a command may run (default 5 s).
    pub deadline: Duration,
    /// Largest linear memory a guest may grow to, in bytes (default 64 MiB).
    pub memory: usize,
    /// Most instances alive at once; further commands wait (default 64).
    pub max_instances: u32,
    /// Most events one command may produce (default 1000).
    pub max_events: usize,
    /// Largest event body in bytes (default 1 MiB).
    pub max_event_body: usize,
    /// Bytes of each linear memory kept mapped between instances and reset
    /// with `memset` (only the pages a guest touched, found with Linux's
    /// `PAGEMAP_SCAN`) instead of being unmapped with `madvise` and faulted
    /// in again by the next instance. Default: the memory cap (64 MiB)
    /// where the kernel has `PAGEMAP_SCAN` (Linux 6.7+), else 0 (plain
    /// `madvise`). Costs resident memory: pages a pool slot touched stay
    /// mapped while the slot is warm.
    pub keep_resident: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(5),
            memory: 64 * 1024 * 1024,
            max_instances: 64,
            max_events: 1000,
            max_event_body: 1024 * 1024,
            keep_resident: if PoolingAllocationConfig::is_pagemap_scan_available() {
                64 * 1024 * 1024
            } else {
                0
            },
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct LoadError {
    /// The file that failed.
    pub file: PathBuf,
    /// Why, phrased so its author can fix it.
    pub reason: String,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly runtime: {0}")]
pub struct RuntimeError(String);

impl From<CacheError> for RuntimeError {
    fn from(err: CacheError) -> Self {
        RuntimeError(err.to_string())
    }
}

/// What a handler declares about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The first segment of all its routing keys.
    pub domain: String,
    /// Its own version.
    pub version: String,
    /// The commands it accepts.
    pub commands: Vec<CommandInfo>,
    /// The events it may publish.
    pub events: Vec<String>,
}

impl Manifest {
    /// The routing keys it claims.
    pub fn routing_keys(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|c| c.routing_key.clone())
            .collect()
    }
}

/// A component compiled, linked and validated, ready to run commands.
pub struct LoadedHandler {
    /// Where it was loaded from.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Hex SHA-256 of the component file's bytes. With the manifest's
    /// version it identifies a version of a handler: two builds that both
    /// say `1.0.0` but differ in a byte are different versions.
    pub sha256: String,
    /// How long compiling (or fetching from the cache), linking and reading
    /// the manifest took.
    pub load_time: Duration,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    pre: HandlerPre<Sandbox>,
    domain: Arc<str>,
    /// The manifest's body schemas, compiled once at load.
    schemas: BodySchemas,
    /// Parked instances, used only under [`InstancePolicy::Warm`].
    warm: WarmPool,
}

impl LoadedHandler {
    /// `<manifest version>+<first 12 hex digits of the SHA-256>`, e.g.
    /// `1.0.0+3f9a0c41d2e7`: what events and listings call its version.
    pub fn version_label(&self) -> String {
        let short = self.sha256.get(..12).unwrap_or(&self.sha256);
        format!("{}+{short}", self.manifest.version)
    }
}

impl std::fmt::Debug for LoadedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedHandler")
            .field("file", &self.file)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

/// How one command ended inside the sandbox.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    /// Events published through the emitter while it ran.
    pub(crate) emitted: Vec<Envelope>,
    /// Whether every emitted event was published.
    pub(crate) published: bool,
    /// The returned events, or why there are none.
    pub(crate) result: Result<Vec<Envelope>, ErrorBody>,
}

/// The engine, the linker and the limits shared by all handlers.
pub struct Runtime {
    engine: Engine,
    /// Compiled code on disk, when enabled.
    cache: Option<Arc<CompileCache>>,
    linker: Linker<Sandbox>,
    limits: Limits,
    instances: Arc<Semaphore>,
    /// Handlers (by domain) whose instances are reused; all others get a
    /// fresh instance per command.
    policies: RwLock<HashMap<String, InstancePolicy>>,
    /// Instances parked by all warm pools.
    parked: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Creates the engine (pooling allocator, epoch interruption) and starts
    /// the thread that advances epochs; it stops when the runtime is dropped.
    pub fn new(limits: Limits) -> Result<Self, RuntimeError> {
        Self::with_cache(limits, None)
    }

    /// Like [`Runtime::new`], keeping compiled code in `cache_dir` (see
    /// [`crate::cache`]) when one is given.
    pub fn with_cache(limits: Limits, cache_dir: Option<&Path>) -> Result<Self, RuntimeError> {
        let cache = cache_dir.map(CompileCache::open).transpose()?.map(Arc::new);
        let err = |e: wasmtime::Error| RuntimeError(format!("{e:#}"));
        let n = limits.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // Room for components from other languages too: interpreters such as
        // CPython and SpiderMonkey bring more core instances and tables than a
        // Rust guest.
        // Parked warm instances (`crate::warm`) hold slots too: reserve room
        // for them on top of the running ones.
        let slots = n + WARM_SLOTS;
        pool.total_component_instances(slots)
            .total_core_instances(slots * 32)
            .total_memories(slots * 4)
            .total_tables(slots * 16)
            .total_stacks(n)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .table_elements(200_000)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20)
            .max_memory_size(limits.memory);
        if limits.keep_resident > 0 {
            keep_slots_resident(&mut pool, limits.keep_resident);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Plain `call_async` without the component-model-async machinery:
            // our world has no async functions, and this halves call overhead.
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .cache(cache.as_ref().map(|c| c.wasmtime_cache()));
        let engine = Engine::new(&config).map_err(err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        bindings::Handler::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(err)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("pyou-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError(format!("cannot start the epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            cache,
            linker,
            instances: Arc::new(Semaphore::new(n as usize)),
            limits,
            policies: RwLock::new(HashMap::new()),
            parked: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Sets how the commands of `domain` get their instance (see
    /// [`crate::warm`]); applies to the handler loaded for it now and later.
    pub fn set_instance_policy(&self, domain: &str, policy: InstancePolicy) {
        let mut policies = self.policies.write();
        match policy {
            InstancePolicy::Fresh => policies.remove(domain),
            warm => policies.insert(domain.to_owned(), warm),
        };
    }

    /// How the commands of `domain` get their instance.
    pub fn instance_policy(&self, domain: &str) -> InstancePolicy {
        self.policies
            .read()
            .get(domain)
            .copied()
            .unwrap_or_default()
    }

    /// Compiles, links and validates a component file, calling its
    /// `manifest` in a sandbox. Compilation runs on a blocking thread.
    pub async fn load(&self, file: &Path) -> Result<LoadedHandler, LoadError> {
        let bytes = tokio::fs::read(file).await.map_err(|e| LoadError {
            file: file.to_owned(),
            reason: format!("cannot read: {e}"),
        })?;
        self.load_bytes(file, bytes).await
    }

    /// Like [`Runtime::load`] for bytes already read from `file`.
    pub async fn load_bytes(
        &self,
        file: &Path,
        bytes: Vec<u8>,
    ) -> Result<LoadedHandler, LoadError> {
        let fail = |reason: String| LoadError {
            file: file.to_owned(),
            reason,
        };
        let started = Instant::now();
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        // Hashing tens of MiB and compiling take a while: off the async
        // workers, so dispatch goes on meanwhile.
        let (sha256, compiled, from_cache) = tokio::task::spawn_blocking(move || {
            let sha256 = sha256_hex(&bytes);
            let compile = || Component::new(&engine, &bytes);
            match cache {
                Some(cache) => {
                    let (compiled, info) = cache.compile(&sha256, compile);
                    (sha256, compiled, info.cached)
                }
                None => (sha256, compile(), false),
            }
        })
        .await
        .map_err(|e| fail(format!("compilation was cancelled: {e}")))?;
        let component =
            compiled.map_err(|e| fail(format!("not a valid WebAssembly component: {e:#}")))?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            fail(format!(
                "does not fit the `parallel-you:handler/handler` world (it imports something the host does not offer): {e:#}"
            ))
        })?;
        let pre = HandlerPre::new(instance_pre).map_err(|e| {
            fail(format!(
                "does not export `parallel-you:handler/command-handler`: {e:#}"
            ))
        })?;
        let manifest = self.read_manifest(&pre).await.map_err(|e| {
            fail(format!(
                "its `manifest` function failed: {}: {}",
                e.code, e.message
            ))
        })?;
        let manifest = validate_manifest(manifest).map_err(fail)?;
        let schemas = BodySchemas::compile(&manifest.commands).map_err(|e| fail(e.to_string()))?;
        Ok(LoadedHandler {
            file: file.to_owned(),
            domain: Arc::from(manifest.domain.as_str()),
            manifest,
            loaded_at: SystemTime::now(),
            sha256,
            load_time: started.elapsed(),
            from_cache,
            pre,
            schemas,
            warm: WarmPool::new(self.parked.clone()),
        })
    }

    async fn read_manifest(
        &self,
        pre: &HandlerPre<Sandbox>,
    ) -> Result<bindings::parallel_you::handler::types::Manifest, ErrorBody> {
        // The manifest cannot reach real data: its sandbox has an empty store.
        let sandbox = Sandbox::new(
            Arc::from(""),
            Arc::new(MemoryStore::new()),
            None,
            None,
            self.output_limits(),
            self.limits.memory,
        );
        self.in_sandbox(pre, Slot::Fresh(Box::new(sandbox)), |h, store| {
            Box::pin(async move {
                h.parallel_you_handler_command_handler()
                    .call_manifest(store)
                    .await
            })
        })
        .await
        .result
    }

    fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_events: self.limits.max_events,
            max_event_body: self.limits.max_event_body,
        }
    }

    /// Runs one command in an instance of `handler`: a fresh one, or under
    /// [`InstancePolicy::Warm`] a parked one when there is one.
    pub(crate) async fn run(
        &self,
        handler: &LoadedHandler,
        cmd: &Envelope,
        store: Arc<dyn DocumentStore>,
        publisher: Arc<dyn Publisher>,
    ) -> RunOutcome {
        // A body its schema refuses never reaches an instance.
        if let Err(err) = handler.schemas.check(cmd) {
            return RunOutcome {
                emitted: Vec::new(),
                published: true,
                result: Err(err),
            };
        }
        let max_idle = match self.instance_policy(&handler.domain) {
            InstancePolicy::Fresh => None,
            InstancePolicy::Warm { max_idle } => Some(max_idle),
        };
        let slot = match max_idle.and_then(|_| handler.warm.take()) {
            Some(mut warm) => {
                warm.store
                    .data_mut()
                    .begin_command(cmd.meta.clone(), publisher);
                Slot::Warm(warm)
            }
            None => Slot::Fresh(Box::new(Sandbox::new(
                handler.domain.clone(),
                store,
                Some(cmd.meta.clone()),
                Some(publisher),
                self.output_limits(),
                self.limits.memory,
            ))),
        };
        let wit_cmd = to_wit_command(cmd);
        let called = self
            .in_sandbox(&handler.pre, slot, move |h, store| {
                Box::pin(async move {
                    h.parallel_you_handler_command_handler()
                        .call_handle(store, &wit_cmd)
                        .await
                })
            })
            .await;
        let Some(mut wasm_store) = called.store else {
            return RunOutcome {
                emitted: Vec::new(),
                published: true,
                result: called
                    .result
                    .and_then(|_| Err(ErrorBody::new(ErrorCode::Trap, "the instance was lost"))),
            };
        };
        let sandbox = wasm_store.data_mut();
        let result = match called.result {
            Err(e) => Err(e),
            Ok(Err(he)) => Err(handler_error(he)),
            Ok(Ok(events)) => {
                let mut out = Vec::with_capacity(events.len());
                let mut failure = None;
                for ev in events {
                    match sandbox.check_event(&cmd.meta, ev, sandbox.emitted.len() + out.len()) {
                        Ok(env) => out.push(env),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                match failure {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
            }
        };
        let emitted = std::mem::take(&mut sandbox.emitted);
        let published = !sandbox.emit_failed;
        // Only an instance whose call returned is healthy: one that trapped,
        // timed out or hit the memory cap has no `instance` here and is
        // dropped with its store (poisoned).
        if let (Some(max_idle), Some(instance)) = (max_idle, called.instance) {
            handler.warm.park(
                WarmInstance {
                    store: wasm_store,
                    instance,
                },
                max_idle,
            );
        }
        RunOutcome {
            emitted,
            published,
            result,
        }
    }

    /// Instances of `handler` parked for reuse now.
    pub fn parked_instances(&self, handler: &LoadedHandler) -> usize {
        handler.warm.len()
    }

    /// Runs `call` under the deadline and memory cap in a fresh instance of
    /// `pre` (`Slot::Fresh`) or a parked one (`Slot::Warm`), and classifies
    /// any failure.
    async fn in_sandbox<R, F>(&self, pre: &HandlerPre<Sandbox>, slot: Slot, call: F) -> Called<R>
    where
        R: Send,
        F: for<'a> FnOnce(
                &'a bindings::Handler,
                &'a mut Store<Sandbox>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
            > + Send,
    {
        let Ok(_permit) = self.instances.acquire().await else {
            return Called {
                result: Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the runtime is shutting down",
                )),
                store: None,
                instance: None,
            };
        };
        let deadline = self.limits.deadline;
        let started = Instant::now();
        let (mut store, parked) = match slot {
            Slot::Fresh(sandbox) => {
                let mut store = Store::new(&self.engine, *sandbox);
                store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
                (store, None)
            }
            Slot::Warm(warm) => (warm.store, Some(warm.instance)),
        };
        store.set_epoch_deadline(1);
        // Yield to the executor at every tick, so a busy guest never holds a
        // worker thread, and stop it once its wall-clock deadline has passed.
        store.epoch_deadline_callback(move |mut ctx| {
            if started.elapsed() >= deadline {
                ctx.data_mut().timed_out = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        // A guest blocked in a host call is not interrupted by epochs; this
        // outer timeout covers that case.
        let outer = deadline + Duration::from_secs(1);
        let result = tokio::time::timeout(outer, async {
            let instance = match parked {
                Some(instance) => instance,
                None => pre.instantiate_async(&mut store).await?,
            };
            let r = call(&instance, &mut store).await?;
            Ok::<_, wasmtime::Error>((r, instance))
        })
        .await;
        match result {
            Err(_) => Called {
                result: Err(ErrorBody::new(
                    ErrorCode::Timeout,
                    format!(
                        "the handler did not finish within {} ms",
                        deadline.as_millis()
                    ),
                )),
                store: None,
                instance: None,
            },
            Ok(Ok((r, instance))) => Called {
                result: Ok(r),
                store: Some(store),
                instance: Some(instance),
            },
            Ok(Err(e)) => Called {
                result: Err(classify(&e, store.data(), deadline)),
                store: Some(store),
                instance: None,
            },
        }
    }
}

/// Where a call runs: a new instance around this sandbox, or a parked one.
enum Slot {
    Fresh(Box<Sandbox>),
    Warm(WarmInstance),
}

/// What [`Runtime::in_sandbox`] hands back.
struct Called<R> {
    result: Result<R, ErrorBody>,
    /// The store, unless the call had to be abandoned at the outer timeout.
    store: Option<Store<Sandbox>>,
    /// The instance, only if the call returned: it may serve again.
    instance: Option<bindings::Handler>,
}

/// Makes the next fresh instance in a reused pool slot cheap, without
/// sharing anything between commands.
///
/// By default a freed slot's linear memory is `madvise`d away, and the next
/// instance page-faults in every page it touches again: for an interpreter
/// component (CPython, SpiderMonkey: a snapshot of tens of MiB, of which a
/// command touches thousands of pages) that is most of its per-command cost.
/// With the Linux `PAGEMAP_SCAN` ioctl (kernel 6.7+) Wasmtime instead finds
/// the pages the last instance dirtied and copies them back from the
/// component's memory image, up to `keep_resident` bytes, so the slot stays
/// mapped and the next instance starts from the pristine snapshot without
/// faults. Measured in `docs/bench-languages.md`. The price is resident
/// memory: a used slot keeps the pages its instances dirtied (for a Python
/// handler, tens of MiB) instead of returning them to the system. Without
/// the ioctl the defaults stay: keeping memory resident would then mean a
/// `memset` of the whole kept range per command.
fn keep_slots_resident(pool: &mut PoolingAllocationConfig, bytes: usize) {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(bytes)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
}

/// Bytes of a table slot kept resident (and reset page by page) between
/// instances: the interpreters' function tables, tens of thousands of
/// entries.
const TABLE_KEEP_RESIDENT: usize = 4 << 20;

fn classify(err: &wasmtime::Error, sandbox: &Sandbox, deadline: Duration) -> ErrorBody {
    if sandbox.memory_denied {
        return ErrorBody::new(ErrorCode::MemoryLimit, format!("{err}"));
    }
    if sandbox.timed_out {
        return ErrorBody::new(
            ErrorCode::Timeout,
            format!(
                "the handler ran past its deadline of {} ms and was stopped",
                deadline.as_millis()
            ),
        );
    }
    let stderr = sandbox.stderr_text();
    let detail = format!("{err:?}");
    let message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("the handler trapped: {trap}"),
        None => format!("the handler failed: {err}"),
    };
    let mut context = serde_json::Map::new();
    if !stderr.is_empty() {
        context.insert("stderr".into(), stderr.into());
    }
    context.insert("backtrace".into(), detail.into());
    ErrorBody::new(ErrorCode::Trap, message).with_context(serde_json::Value::Object(context))
}

fn handler_error(he: bindings::parallel_you::handler::types::HandlerError) -> ErrorBody {
    let code = Code::from_handler(he.code);
    let context = he
        .context
        .map(|c| serde_json::from_str(&c).unwrap_or(serde_json::Value::String(c)))
        .unwrap_or(serde_json::Value::Null);
    ErrorBody {
        code,
        message: he.message,
        context,
        command: None,
    }
}

fn to_wit_command(cmd: &Envelope) -> bindings::parallel_you::handler::types::Command {
    use bindings::parallel_you::handler::types;
    let m = &cmd.meta;
    types::Command {
        meta: types::Meta {
            message_id: m.message_id.clone(),
            routing_key: m.routing_key.clone(),
            reply_channel: m.reply_channel.clone(),
            correlation_id: m.correlation_id.clone(),
            causation_id: m.causation_id.clone(),
            session_id: m.session_id.clone(),
            timestamp_ms: parse_timestamp_ms(&m.timestamp).unwrap_or(0),
        },
        body: cmd.body.get().to_owned(),
    }
}

fn validate_manifest(
    m: bindings::parallel_you::handler::types::Manifest,
) -> Result<Manifest, String> {
    check_domain(&m.domain).map_err(|e| e.0)?;
    if m.version.trim().is_empty() {
        return Err("its manifest has an empty version".to_owned());
    }
    if m.commands.is_empty() {
        return Err("its manifest declares no commands".to_owned());
    }
    let prefix = format!("{}.", m.domain);
    let mut commands = Vec::with_capacity(m.commands.len());
    for c in m.commands {
        check_routing_key(&c.routing_key).map_err(|e| format!("its manifest: {e}"))?;
        if !c.routing_key.starts_with(&prefix) {
            return Err(format!(
                "it claims routing key {:?}, outside its own domain {:?}: a component may only claim keys under its domain",
                c.routing_key, m.domain
            ));
        }
        if c.routing_key == error_key(&m.domain) {
            return Err(format!(
                "it claims {:?}, which is the domain's error event",
                c.routing_key
            ));
        }
        if commands
            .iter()
            .any(|k: &CommandInfo| k.routing_key == c.routing_key)
        {
            return Err(format!("it declares {:?} twice", c.routing_key));
        }
        let body_schema = c
            .body_schema
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| format!("the body schema of {:?} is not JSON: {e}", c.routing_key))
            })
            .transpose()?;
        commands.push(CommandInfo {
            routing_key: c.routing_key,
            summary: c.summary,
            body_schema,
        });
    }
    Ok(Manifest {
        domain: m.domain,
        version: m.version,
        commands,
        events: m.events,
    })
}
