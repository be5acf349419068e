//! `--event-log`: where a serving process keeps the audit trail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parallel_you_core::store::Store;
use parallel_you_host::event_log::{EventLog, FileLog, LogSink, StoreLog};

/// The event log of `pyou serve` and `pyou host`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EventLogArgs {
    /// Keep every event on the bus, and every command this process runs,
    /// in the event log: `store` (the host's store) or a folder of daily
    /// JSON-lines files. `pyou events query` reads it.
    #[arg(long, env = "PYOU_EVENT_LOG", value_name = "store|DIR")]
    pub(crate) event_log: Option<String>,
    /// How long the event log keeps an entry (files: whole UTC days).
    #[arg(
        long,
        env = "PYOU_EVENT_LOG_RETENTION",
        default_value = "7d",
        value_parser = humantime::parse_duration
    )]
    pub(crate) event_log_retention: Duration,
}

/// Where a log is: the store, or a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogPlace {
    /// Domain `pyou`, collection `event_log` of the store.
    Store,
    /// Daily files in this folder.
    Dir(PathBuf),
}

impl LogPlace {
    /// `store`, or a folder.
    pub(crate) fn parse(text: &str) -> LogPlace {
        if text == "store" {
            LogPlace::Store
        } else {
            LogPlace::Dir(PathBuf::from(text))
        }
    }

    /// The log's reader and writer, over `store` when it is in the store.
    pub(crate) async fn open(&self, store: Arc<dyn Store>) -> anyhow::Result<Arc<dyn LogSink>> {
        Ok(match self {
            LogPlace::Store => Arc::new(StoreLog::open(store).await?),
            LogPlace::Dir(dir) => Arc::new(FileLog::open(dir)?),
        })
    }
}

impl EventLogArgs {
    /// The sessions' history a gateway replays from after a restart: the
    /// log, when it is in the store (a folder of files is not searchable
    /// by session).
    pub(crate) async fn history(
        &self,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Option<parallel_you_gateway::History>> {
        match self.event_log.as_deref().map(LogPlace::parse) {
            Some(LogPlace::Store) => Ok(Some(parallel_you_gateway::History(Arc::new(
                StoreLog::open(store).await?,
            )))),
            _ => Ok(None),
        }
    }

    /// Starts the log, if asked for: it follows `bus` and the host logs
    /// the commands it runs into it.
    pub(crate) async fn start(
        &self,
        host: &Arc<parallel_you_host::Host>,
        bus: &dyn parallel_you_core::Bus,
    ) -> anyhow::Result<Option<Arc<EventLog>>> {
        let Some(place) = self.event_log.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let sink = LogPlace::parse(place).open(host.store().clone()).await?;
        let log = EventLog::start(sink, self.event_log_retention);
        log.follow(bus).await?;
        host.log_commands(log.clone());
        eprintln!(
            "pyou: keeping the event log in {place} for {}",
            humantime::format_duration(self.event_log_retention)
        );
        Ok(Some(log))
    }
}
