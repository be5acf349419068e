//! The event log as files: one JSON line per message in
//! `events-YYYY-MM-DD.jsonl` (the UTC day it was appended) in a folder;
//! the retention deletes whole days.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use parallel_you_core::envelope::Envelope;

use super::{LogError, LogSink};

const PREFIX: &str = "events-";
const SUFFIX: &str = ".jsonl";

/// The log in a folder of daily files.
#[derive(Debug, Clone)]
pub struct FileLog {
    dir: PathBuf,
}

impl FileLog {
    /// The log in `dir`, made if missing.
    pub fn open(dir: &Path) -> Result<FileLog, LogError> {
        std::fs::create_dir_all(dir).map_err(|err| LogError::File {
            path: dir.to_owned(),
            err,
        })?;
        Ok(FileLog {
            dir: dir.to_owned(),
        })
    }

    /// The day files, oldest first.
    fn days(&self) -> Result<Vec<(String, PathBuf)>, LogError> {
        let fail = |err| LogError::File {
            path: self.dir.clone(),
            err,
        };
        let mut days = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(fail)? {
            let path = entry.map_err(fail)?.path();
            let day = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
                .map(str::to_owned);
            if let Some(day) = day {
                days.push((day, path));
            }
        }
        days.sort();
        Ok(days)
    }
}

/// `YYYY-MM-DD` of an instant in ms since the epoch, UTC.
fn day_of(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339(t).to_string()[..10].to_owned()
}

#[async_trait]
impl LogSink for FileLog {
    async fn append(&self, entries: &[Envelope]) -> Result<(), LogError> {
        let path = self
            .dir
            .join(format!("{PREFIX}{}{SUFFIX}", day_of(super::now_ms())));
        let mut text = String::new();
        for message in entries {
            text.push_str(&message.to_json());
            text.push('\n');
        }
        let written = tokio::task::spawn_blocking({
            let path = path.clone();
            move || -> std::io::Result<()> {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                // One write per batch: whole lines, even with several writers.
                file.write_all(text.as_bytes())
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        written.map_err(|err| LogError::File { path, err })
    }

    async fn sweep(&self, before_ms: u64) -> Result<usize, LogError> {
        // A day goes once all of it is past the window.
        let last_kept = day_of(before_ms);
        let mut deleted = 0;
        for (day, path) in self.days()? {
            if day < last_kept {
                std::fs::remove_file(&path).map_err(|err| LogError::File {
                    path: path.clone(),
                    err,
                })?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn find(
        &self,
        causes: &[String],
        correlation: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        let days = self.days()?;
        let causes: std::collections::HashSet<String> = causes.iter().cloned().collect();
        let correlation = correlation.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (_, path) in days {
                let fail = |err| LogError::File {
                    path: path.clone(),
                    err,
                };
                let file = std::fs::File::open(&path).map_err(fail)?;
                for line in std::io::BufReader::new(file).lines() {
                    let line = line.map_err(fail)?;
                    // A line cut short by a crash is skipped, not fatal.
                    let Ok(message) = Envelope::from_json(&line, usize::MAX) else {
                        continue;
                    };
                    let m = &message.meta;
                    let hit = m.causation_id.as_ref().is_some_and(|c| causes.contains(c))
                        || correlation.as_deref() == Some(m.correlation_id.as_str());
                    if hit {
                        out.push(message);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .unwrap_or_else(|e| {
            Err(LogError::File {
                path: self.dir.clone(),
                err: std::io::Error::other(e.to_string()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::day_of;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_796_145_979_546), "2026-12-01");
    }
}
