//! Sandbox limits of the handlers a subcommand runs.

/// Sandbox limits, shared by every subcommand that runs handlers.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LimitArgs {
    /// Wall-clock deadline of one command, in milliseconds.
    #[arg(long, env = "PYOU_DEADLINE_MS", default_value_t = 5000)]
    pub(crate) deadline_ms: u64,
    /// Memory cap of one command's instance, in MiB.
    #[arg(long, env = "PYOU_MEMORY_MIB", default_value_t = 64)]
    pub(crate) memory_mib: usize,
    /// How long a processed command's marker is kept to recognise its
    /// redelivery (`7d`, `12h`, `90s`); a duplicate older than this runs
    /// again.
    #[arg(long, env = "PYOU_DEDUP_WINDOW", default_value = "7d", value_parser = humantime::parse_duration)]
    pub(crate) dedup_window: std::time::Duration,
}

impl LimitArgs {
    /// The host configuration these flags describe.
    pub(crate) fn host_config(&self) -> parallel_you_host::HostConfig {
        parallel_you_host::HostConfig {
            limits: parallel_you_host::Limits {
                deadline: std::time::Duration::from_millis(self.deadline_ms.max(1)),
                memory: self.memory_mib.max(1) * 1024 * 1024,
                ..Default::default()
            },
            max_body: 0,
            dedup_window: self.dedup_window,
            retry: parallel_you_host::RetryPolicy::default(),
        }
    }
}
