//! The run of one schedule: the pipeline that `run` and the service both
//! drive. It owns a schedule's history (its archives, the newest, the next
//! name, manifests, retention), its lock, its hooks, writing one archive and
//! recording the outcome in the state file.
//!
//! It sits between the callers (`cli`, `daemon`) and the parts it drives
//! (`archive` writes and reads archive files, `store` holds schedules and
//! run states). rustic is the model: `rustic_core` owns the operations,
//! the commands only drive them.

pub mod chain;
pub mod health;
pub mod history;
pub mod hooks;
mod job;
mod lock;
mod ping;
pub mod progress;
pub mod retention;
mod runner;

pub use crate::archive::Watch;
pub use history::{ArchiveFile, CRASH_AT_VAR, History, archive_names};
pub use job::{JobError, run_job};
pub use lock::{LockError, ScheduleLock, WhenBusy, lock_schedule};
pub use runner::{DryRun, Finished, RunError, RunOutcome, estimate_bytes, plan_run, summary};
