//! `Test`: one command, with what it must print and how it must exit, checked
//! together (the model is `just`'s `tests/test.rs`). Expected stdout and
//! stderr default to empty and the status to 0, so an unexpected warning fails
//! the test unless the test says it expects it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::eventually;

/// What one output stream must hold.
pub enum Expect {
    /// Exactly this text (the default, with the empty string).
    Exact(String),
    /// This text, where each `[..]` stands for any characters within one line
    /// (as in cargo's test suite); everything else, newlines included, exact.
    Pattern(String),
    /// Each of these substrings, in any order.
    Contains(Vec<String>),
    /// Exactly this text once `normalise` has replaced what varies per run.
    Normalised(Box<dyn Fn(&str) -> String>, String),
    /// One JSON document, which the test then reads with `Output::json`.
    Json,
}

impl Expect {
    fn check(&self, stream: &str, actual: &str, what: &str, output: &Output) {
        let ok = match self {
            Expect::Exact(expected) => actual == expected,
            Expect::Pattern(pattern) => matches_pattern(pattern, actual),
            Expect::Contains(needles) => needles.iter().all(|n| actual.contains(n.as_str())),
            Expect::Normalised(normalise, expected) => normalise(actual) == *expected,
            Expect::Json => serde_json::from_str::<serde_json::Value>(actual).is_ok(),
        };
        if !ok {
            let expected = match self {
                Expect::Exact(text) | Expect::Pattern(text) => text.clone(),
                Expect::Contains(needles) => format!("text containing {needles:#?}"),
                Expect::Normalised(normalise, text) => {
                    format!("{text}\n--- normalised actual:\n{}", normalise(actual))
                }
                Expect::Json => "a JSON document".to_string(),
            };
            panic!(
                "{what}: unexpected {stream}\n--- expected:\n{expected}\n--- actual:\n{actual}\n--- full output: {output:#?}"
            );
        }
    }
}

/// `[..]` matches any run of characters other than a newline.
pub fn matches_pattern(pattern: &str, actual: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or_default();
    let parts: Vec<&str> = parts.collect();
    actual
        .strip_prefix(first)
        .is_some_and(|rest| wildcards_then(&parts, rest))
}

/// `rest` is a wildcard followed by `parts[0]`, then another wildcard, and so on.
fn wildcards_then(parts: &[&str], rest: &str) -> bool {
    let Some((literal, later)) = parts.split_first() else {
        return rest.is_empty();
    };
    let line_end = rest.find('\n').unwrap_or(rest.len());
    (0..=line_end).any(|at| {
        rest.is_char_boundary(at)
            && rest[at..].starts_with(literal)
            && wildcards_then(later, &rest[at + literal.len()..])
    })
}

/// What a command printed and how it exited (`None`: killed by a signal).
#[derive(Debug)]
pub struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// A command and what it must do. Build it with `TestEnv::manager`, `ctl`,
/// `service`, `bash` or `test`, then `run()` (or `spawn()` for a command that
/// a test signals or waits for).
pub struct Test {
    command: Command,
    what: String,
    status: Option<i32>,
    stdout: Expect,
    stderr: Expect,
}

impl Test {
    pub(super) fn new(command: Command, what: String) -> Self {
        Self {
            command,
            what,
            status: Some(0),
            stdout: Expect::Exact(String::new()),
            stderr: Expect::Exact(String::new()),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.what.push(' ');
        self.what.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// The exit code; 0 unless said.
    pub fn status(mut self, code: i32) -> Self {
        self.status = Some(code);
        self
    }

    /// Killed by a signal, so no exit code.
    pub fn killed(mut self) -> Self {
        self.status = None;
        self
    }

    pub fn stdout(mut self, text: impl Into<String>) -> Self {
        self.stdout = Expect::Exact(text.into());
        self
    }

    pub fn stderr(mut self, text: impl Into<String>) -> Self {
        self.stderr = Expect::Exact(text.into());
        self
    }

    /// Exact text where `[..]` matches anything within a line.
    pub fn stdout_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.stdout = Expect::Pattern(pattern.into());
        self
    }

    pub fn stderr_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.stderr = Expect::Pattern(pattern.into());
        self
    }

    /// Stdout holds `needle` (and any other needles given the same way).
    pub fn stdout_contains(mut self, needle: impl Into<String>) -> Self {
        add_needle(&mut self.stdout, needle.into());
        self
    }

    pub fn stderr_contains(mut self, needle: impl Into<String>) -> Self {
        add_needle(&mut self.stderr, needle.into());
        self
    }

    /// Stdout is one JSON document (read it with `Output::json`).
    pub fn stdout_json(mut self) -> Self {
        self.stdout = Expect::Json;
        self
    }

    /// Stdout, once `normalise` has run over it, is exactly `expected`.
    pub fn stdout_normalised(
        mut self,
        normalise: impl Fn(&str) -> String + 'static,
        expected: impl Into<String>,
    ) -> Self {
        self.stdout = Expect::Normalised(Box::new(normalise), expected.into());
        self
    }

    /// Runs the command to its end and checks status, stdout and stderr.
    #[track_caller]
    pub fn run(mut self) -> Output {
        self.command.stdin(Stdio::null());
        let out = self
            .command
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run: {e}", self.what));
        let output = Output {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        check(&self.what, self.status, &self.stdout, &self.stderr, &output);
        output
    }

    /// Starts the command; `Process::wait` checks it as `run` would.
    #[track_caller]
    pub fn spawn(mut self) -> Process {
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start: {e}", self.what));
        let stdout = Stream::drain(child.stdout.take().unwrap());
        let stderr = Stream::drain(child.stderr.take().unwrap());
        Process {
            child,
            stdout,
            stderr,
            test: self,
        }
    }
}

fn add_needle(expect: &mut Expect, needle: String) {
    match expect {
        Expect::Contains(needles) => needles.push(needle),
        other => *other = Expect::Contains(vec![needle]),
    }
}

#[track_caller]
fn check(what: &str, status: Option<i32>, stdout: &Expect, stderr: &Expect, output: &Output) {
    assert_eq!(
        output.status, status,
        "{what}: unexpected exit status; {output:#?}"
    );
    stdout.check("stdout", &output.stdout, what, output);
    stderr.check("stderr", &output.stderr, what, output);
}

/// One output stream of a started process, read on a thread as it comes, so
/// that a chatty process never blocks on a full pipe and a test can see what
/// it has printed so far.
struct Stream {
    text: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Stream {
    fn drain(mut pipe: impl Read + Send + 'static) -> Self {
        let text = Arc::new(Mutex::new(Vec::new()));
        let shared = text.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => shared.lock().unwrap().extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Self { text, reader }
    }

    fn so_far(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// The pipe reached its end: every process holding it has closed it.
    fn closed(&self) -> bool {
        self.reader.is_finished()
    }
}

/// A started `Test`. Killed and reaped on drop if still running.
pub struct Process {
    child: Child,
    stdout: Stream,
    stderr: Stream,
    test: Test,
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal`, unless the process has already exited.
    #[track_caller]
    pub fn signal(&mut self, signal: Signal) {
        if self.is_running() {
            kill(Pid::from_raw(self.pid()), signal).expect("signal the process");
        }
    }

    /// What the process has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.so_far()
    }

    /// Waits (up to the `eventually` limit) until the process has written
    /// `needle` to stderr, whether or not it is still running.
    #[track_caller]
    pub fn wait_for_stderr(&self, needle: &str) {
        eventually(
            &format!("{needle:?} on {}'s stderr", self.test.what),
            || self.stderr.so_far().contains(needle),
        );
    }

    /// Waits (up to the `eventually` limit) for the process to exit and for
    /// its stdout and stderr to close, then checks its status and output like
    /// `Test::run`. A descendant still holding either pipe (a daemon that
    /// kept an inherited descriptor) fails the test rather than hanging it.
    #[track_caller]
    pub fn wait(mut self) -> Output {
        eventually(&format!("{} to exit", self.test.what), || {
            !self.is_running()
        });
        let status = self.child.wait().expect("reap").code();
        eventually(
            &format!(
                "{}'s stdout and stderr to close (it exited; does a process it started hold them?)",
                self.test.what
            ),
            || self.stdout.closed() && self.stderr.closed(),
        );
        let output = Output {
            status,
            stdout: self.stdout.so_far(),
            stderr: self.stderr.so_far(),
        };
        let t = &self.test;
        check(&t.what, t.status, &t.stdout, &t.stderr, &output);
        output
    }

    /// Sends `signal` and waits as `wait` does.
    #[track_caller]
    pub fn signal_and_wait(mut self, signal: Signal) -> Output {
        self.signal(signal);
        self.wait()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn patterns_match_within_lines_only() {
        assert!(matches_pattern("a\n", "a\n"));
        assert!(!matches_pattern("a\n", "ab\n"));
        assert!(matches_pattern("a [..] c\n", "a bbb c\n"));
        assert!(matches_pattern("[..]\n", "anything\n"));
        assert!(!matches_pattern("a[..]\n", "a\nb\n"));
        assert!(matches_pattern("x[..]y[..]z", "x1y2z"));
        assert!(!matches_pattern("x[..]y", "x1y2"));
        assert!(matches_pattern("[..]", ""));
        assert!(!matches_pattern("a [..] c\nd\n", "a b c\n"));
    }
}
