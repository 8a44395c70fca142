//! `ping=URL`: healthchecks.io-style pings around a run. `URL/start` when
//! the run begins (sent on its own thread, so the backup never waits for
//! it), then `URL` when it succeeded or `URL/EXIT-CODE` when it did not (3 for
//! a partial archive, 1 for a failure: the codes `run` exits with), with the
//! run's log lines as the body. A ping that fails is a warning in the log and
//! never fails the backup. The start ping gives up after [`TIMEOUT`]; the end
//! one after what is left of it once the start ping is done (at least
//! [`END_TIMEOUT_MIN`]), so a server that hangs holds the end of a run for
//! about [`TIMEOUT`] in all, and the archive itself not at all.
//!
//! Why `ureq`: a small synchronous client with rustls, timeouts and no async
//! runtime; a hand-written HTTP/1.1 client would still need TLS for https.

use std::time::{Duration, Instant};

use crate::logging;
use crate::primitives::{error_chain, redact_urls};
use crate::store::{Schedule, Untrusted};

/// How long the pings may hold a run, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The least time the end ping gets, however long the start one took.
pub const END_TIMEOUT_MIN: Duration = Duration::from_secs(1);

/// The most of the run's log a ping carries (healthchecks.io keeps 100 kB).
const MAX_BODY: usize = 100_000;

/// What the run came to, for the final ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Success,
    /// The exit code `run` gives it (non-zero).
    Failure(u8),
}

/// The pings of one schedule's run.
pub struct Pinger<'a> {
    schedule: &'a str,
    url: &'a str,
    agent: ureq::Agent,
}

impl<'a> Pinger<'a> {
    pub fn new(schedule: &'a str, url: &'a str) -> Self {
        let agent = ureq::Agent::config_builder()
            .user_agent(concat!("backupctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            schedule,
            url,
            agent,
        }
    }

    /// `URL/start`.
    pub fn start(&self) {
        self.send("start", String::new(), TIMEOUT);
    }

    /// `URL` or `URL/CODE`, with the run's log lines, within `timeout`.
    pub fn end(&self, ending: Ending, lines: &[String], timeout: Duration) {
        let suffix = match ending {
            Ending::Success => String::new(),
            Ending::Failure(code) => code.to_string(),
        };
        self.send(&suffix, body(lines), timeout);
    }

    fn send(&self, suffix: &str, body: String, timeout: Duration) {
        let url = target(self.url, suffix);
        let request = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(timeout))
            .build();
        if let Err(error) = request.send(body) {
            // The URL may hold a password or a token: the log, and the
            // pings that carry it, show neither.
            log::warn!(
                "ping of {} failed: {}: {}",
                self.schedule,
                redact_urls(&url),
                redact_urls(&error_chain(&error))
            );
        }
    }
}

/// The pinger of `schedule`'s run, if it has `ping=`. Like hooks, pings
/// need a trusted schedule file: the run's log (file names, errors) goes to
/// the URL, which only the service's user may choose.
pub fn pinger<'a>(schedule: &'a Schedule, trusted: &Result<(), Untrusted>) -> Option<Pinger<'a>> {
    let url = schedule.options.ping.as_deref()?;
    if let Err(untrusted) = trusted {
        log::warn!("ping of {} refused: {untrusted}", schedule.name);
        return None;
    }
    Some(Pinger::new(&schedule.name, url))
}

/// Runs `run` between the pings of `pinger`: the start ping on its own
/// thread while the run goes on, the end ping (what `ending` makes of the
/// result, with the lines this thread logged during the run) once both are
/// done.
pub fn around<T>(
    pinger: Option<&Pinger<'_>>,
    run: impl FnOnce() -> T,
    ending: impl FnOnce(&T) -> Ending,
) -> T {
    let Some(pinger) = pinger else {
        return run();
    };
    let ((result, lines), waited) = std::thread::scope(|scope| {
        let start = scope.spawn(|| pinger.start());
        let result = logging::capture_lines(run);
        // The start ping goes out before the end one, whatever its speed.
        let waiting = Instant::now();
        let _ = start.join();
        (result, waiting.elapsed())
    });
    let timeout = TIMEOUT.saturating_sub(waited).max(END_TIMEOUT_MIN);
    pinger.end(ending(&result), &lines, timeout);
    result
}

/// `URL/SUFFIX` (or `URL` for none), with one `/` between them, the suffix
/// added to the path: before a query (healthchecks.io's `?create=1`).
fn target(url: &str, suffix: &str) -> String {
    if suffix.is_empty() {
        return url.to_string();
    }
    let (path, query) = url.split_at(url.find(['?', '#']).unwrap_or(url.len()));
    format!("{}/{suffix}{query}", path.trim_end_matches('/'))
}

/// The log lines, one a line; only the last [`MAX_BODY`] bytes of a long
/// log (the end says how the run ended), cut at a line.
fn body(lines: &[String]) -> String {
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if text.len() > MAX_BODY {
        let mut cut = text.len() - MAX_BODY;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        let start = text[cut..].find('\n').map_or(cut, |n| cut + n + 1);
        text = format!("(earlier lines left out)\n{}", &text[start..]);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_join_with_one_slash() {
        assert_eq!(target("https://hc/x", ""), "https://hc/x");
        assert_eq!(target("https://hc/x", "start"), "https://hc/x/start");
        assert_eq!(target("https://hc/x/", "1"), "https://hc/x/1");
        assert_eq!(
            target("https://hc/k/slug?create=1", "start"),
            "https://hc/k/slug/start?create=1"
        );
    }

    #[test]
    fn a_long_log_keeps_its_end() {
        let lines: Vec<String> = (0..20_000).map(|n| format!("line {n}")).collect();
        let text = body(&lines);
        assert!(text.len() <= MAX_BODY + 30);
        assert!(text.starts_with("(earlier lines left out)\nline "));
        assert!(text.ends_with("line 19999\n"));
        assert_eq!(body(&["a".into()]), "a\n");
    }
}
