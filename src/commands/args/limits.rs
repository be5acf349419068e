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
    /// The longest deadline a component's grants file may give it, in
    /// milliseconds.
    #[arg(long, env = "PYOU_MAX_DEADLINE_MS", default_value_t = 60_000)]
    pub(crate) max_deadline_ms: u64,
    /// The largest memory cap a component's grants file may give it, in
    /// MiB (at least --memory-mib).
    #[arg(long, env = "PYOU_MAX_MEMORY_MIB", default_value_t = 64)]
    pub(crate) max_memory_mib: usize,
    /// How long a processed command's marker is kept to recognise its
    /// redelivery (`7d`, `12h`, `90s`); a duplicate older than this runs
    /// again.
    #[arg(long, env = "PYOU_DEDUP_WINDOW", default_value = "7d", value_parser = humantime::parse_duration)]
    pub(crate) dedup_window: std::time::Duration,
    /// Tries of a reactor's failing event (the first included) before it is
    /// dead-lettered (`pyou dlq`).
    #[arg(long, env = "PYOU_REACTOR_TRIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) reactor_tries: u32,
    /// Most commands one event may make a reactor send; more fail the event.
    #[arg(long, env = "PYOU_MAX_COMMANDS_PER_EVENT", default_value_t = parallel_you_host::host::DEFAULT_MAX_COMMANDS)]
    pub(crate) max_commands_per_event: usize,
}

impl LimitArgs {
    /// The host configuration these flags describe.
    pub(crate) fn host_config(&self) -> parallel_you_host::HostConfig {
        parallel_you_host::HostConfig {
            limits: parallel_you_host::Limits {
                deadline: std::time::Duration::from_millis(self.deadline_ms.max(1)),
                memory: self.memory_mib.max(1) * 1024 * 1024,
                max_deadline: std::time::Duration::from_millis(self.max_deadline_ms.max(1)),
                max_memory: self.max_memory_mib.max(1) * 1024 * 1024,
                ..Default::default()
            },
            max_body: 0,
            dedup_window: self.dedup_window,
            retry: parallel_you_host::RetryPolicy::default(),
            reactors: {
                let defaults = parallel_you_host::ReactorConfig::default();
                parallel_you_host::ReactorConfig {
                    retry: parallel_you_host::RetryPolicy {
                        max_attempts: self.reactor_tries,
                        ..defaults.retry
                    },
                    max_commands: self.max_commands_per_event.max(1),
                    ..defaults
                }
            },
        }
    }
}
