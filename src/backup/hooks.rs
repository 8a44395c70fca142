//! Hooks: the `before=CMD`, `after=CMD` and `on-failure=CMD` options of a
//! schedule, run with `sh -c` from the home, with variables describing the run.
//! They run only from a schedule file nobody else could have written
//! ([`crate::store::trust`]); otherwise the hook is refused, which for a
//! `before` hook is a failure like any other.
//!
//! A hook's standard output and error go to the log of the process that runs
//! it (the service log), one log line per output line, prefixed with the hook
//! and the schedule, so what a hook printed sits beside the run it belongs to.
//! Its standard input is empty. Our own files are opened close-on-exec, so a
//! hook never inherits the pidfile or a schedule lock.

use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::store::{Schedule, Untrusted};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Before,
    After,
    OnFailure,
}

impl HookKind {
    pub fn option_name(self) -> &'static str {
        match self {
            HookKind::Before => "before",
            HookKind::After => "after",
            HookKind::OnFailure => "on-failure",
        }
    }

    /// The command configured for this hook, if any.
    pub fn command(self, schedule: &Schedule) -> Option<&str> {
        let hooks = &schedule.options.hooks;
        match self {
            HookKind::Before => hooks.before.as_deref(),
            HookKind::After => hooks.after.as_deref(),
            HookKind::OnFailure => hooks.on_failure.as_deref(),
        }
    }
}

/// What a hook is told about the run, as `BACKUPCTL_*` variables. Values not
/// known yet (the archive, before the run) are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookEnv {
    /// `BACKUPCTL_SCHEDULE`: the schedule's name.
    pub schedule: String,
    /// `BACKUPCTL_SOURCE`: the source directory, resolved.
    pub source: String,
    /// `BACKUPCTL_ARCHIVE`: the archive written (absolute path).
    pub archive: String,
    /// `BACKUPCTL_STATE`: `running` (before), `ok` or `partial` (after), `failed` or `copy-failed` (on-failure).
    pub state: String,
    /// `BACKUPCTL_SIZE`: the archive's size in bytes.
    pub size: String,
    /// `BACKUPCTL_DURATION`: seconds the backup took, with milliseconds (`1.234`).
    pub duration: String,
    /// `BACKUPCTL_ERROR`: why the run failed (on-failure only).
    pub error: String,
}

impl HookEnv {
    pub fn vars(&self) -> [(&'static str, &str); 7] {
        [
            ("BACKUPCTL_SCHEDULE", &self.schedule),
            ("BACKUPCTL_SOURCE", &self.source),
            ("BACKUPCTL_ARCHIVE", &self.archive),
            ("BACKUPCTL_STATE", &self.state),
            ("BACKUPCTL_SIZE", &self.size),
            ("BACKUPCTL_DURATION", &self.duration),
            ("BACKUPCTL_ERROR", &self.error),
        ]
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{hook} hook of {name} could not be started")]
    Spawn {
        hook: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{hook} hook of {name} refused")]
    Refused {
        hook: &'static str,
        name: String,
        #[source]
        source: Untrusted,
    },
    #[error("{hook} hook of {name} failed ({status})")]
    Failed {
        hook: &'static str,
        name: String,
        status: ExitStatus,
    },
}

/// Runs `kind`'s hook of `schedule`, if it has one, and waits for it. Its
/// output is logged line by line. `trusted` says whether the schedule file
/// may be trusted with commands; when it may not, the hook is refused.
pub fn run_hook(
    kind: HookKind,
    schedule: &Schedule,
    home: &Path,
    env: &HookEnv,
    trusted: &Result<(), Untrusted>,
) -> Result<(), HookError> {
    let Some(command) = kind.command(schedule) else {
        return Ok(());
    };
    let hook = kind.option_name();
    let name = &schedule.name;
    if let Err(untrusted) = trusted {
        return Err(HookError::Refused {
            hook,
            name: name.clone(),
            source: untrusted.clone(),
        });
    }
    let spawn_error = |source| HookError::Spawn {
        hook,
        name: name.clone(),
        source,
    };
    log::info!("Running {hook} hook of {name}: {command}");
    let (reader, writer) = io::pipe().map_err(spawn_error)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(spawn_error)?)
        .stderr(writer);
    for (key, value) in env.vars() {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // Our copies of the write end must go, or the read below never ends.
    drop(cmd);
    for line in BufReader::new(reader).split(b'\n') {
        match line {
            Ok(line) => log::info!("{hook} hook of {name}: {}", String::from_utf8_lossy(&line)),
            Err(e) => {
                log::warn!("cannot read the output of the {hook} hook of {name}: {e}");
                break;
            }
        }
    }
    let status = child.wait().map_err(spawn_error)?;
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            hook,
            name: name.clone(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(options: &str) -> Schedule {
        Schedule::parse(&format!("src;10:00;job;{options}")).unwrap()
    }

    #[test]
    fn hooks_see_the_variables_and_run_in_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let s = schedule("after=echo $BACKUPCTL_SCHEDULE:$BACKUPCTL_STATE > out && pwd >> out");
        let env = HookEnv {
            schedule: "job".into(),
            state: "ok".into(),
            ..HookEnv::default()
        };
        run_hook(HookKind::After, &s, dir.path(), &env, &Ok(())).unwrap();
        let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let home = dir.path().canonicalize().unwrap();
        assert_eq!(out, format!("job:ok\n{}\n", home.display()));
        // No hook configured: nothing to do.
        run_hook(HookKind::Before, &s, dir.path(), &env, &Ok(())).unwrap();
    }

    #[test]
    fn a_failing_hook_reports_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let s = schedule("before=echo nope >&2 && exit 3");
        let err = run_hook(
            HookKind::Before,
            &s,
            dir.path(),
            &HookEnv::default(),
            &Ok(()),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("before hook of job failed"),
            "{err}"
        );
        assert!(err.to_string().contains('3'), "{err}");
    }

    #[test]
    fn a_hook_from_an_untrusted_file_is_refused_and_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let s = schedule("before=touch ran");
        let untrusted = Err(Untrusted {
            path: dir.path().join("backup_schedules.txt"),
            why: "is writable by everyone (mode 0666)".into(),
        });
        let err = run_hook(
            HookKind::Before,
            &s,
            dir.path(),
            &HookEnv::default(),
            &untrusted,
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Refused { .. }), "{err}");
        assert!(!dir.path().join("ran").exists());
        // No hook configured: nothing is refused.
        run_hook(
            HookKind::After,
            &s,
            dir.path(),
            &HookEnv::default(),
            &untrusted,
        )
        .unwrap();
    }
}
