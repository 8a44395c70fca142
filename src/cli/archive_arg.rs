//! The archive `restore` and `contents` are pointed at: an archive file name
//! in `backups/`, a path to an archive, or a schedule's name for its newest
//! archive (with `--at`, its newest archive taken at or before that time).
//! A schedule's archives are only those whose manifest names it, so a file
//! merely named like one is never picked.

use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

use super::Context;
use crate::backup::History;
use crate::error::Error;

/// `--at` values: a local date and time, `2026-11-20 18:00[:SS]` (or with a
/// `T` between them).
pub fn parse_at(text: &str) -> Result<NaiveDateTime, String> {
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text.trim(), format).ok())
    .ok_or_else(|| {
        format!("expected a local date and time like \"2026-11-20 18:00\", found {text:?}")
    })
}

/// The archive `target` names; `at` asks for a schedule's archive as of then.
pub fn resolve(ctx: &Context, target: &str, at: Option<NaiveDateTime>) -> Result<PathBuf, Error> {
    let dir = ctx.home.backups_dir();
    let history = History::named(&ctx.home, target);
    if let Some(at) = at {
        let found = history
            .newest_not_after(at)
            .map_err(|e| Error::io("list", &dir, e))?;
        return found
            .map(|archive| archive.path)
            .ok_or_else(|| Error::NoArchiveAt {
                schedule: target.to_string(),
                at: at.format("%Y-%m-%d %H:%M:%S").to_string(),
            });
    }
    let in_backups = dir.join(target);
    if !target.contains('/') && !target.starts_with('.') && in_backups.is_file() {
        return Ok(in_backups);
    }
    if let Some(newest) = history.newest().map_err(|e| Error::io("list", &dir, e))? {
        return Ok(newest.path);
    }
    let path = Path::new(target);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(Error::NoSuchArchive {
        archive: target.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_a_local_date_and_time() {
        let expected = NaiveDateTime::parse_from_str("2026-11-20 18:00:00", "%Y-%m-%d %H:%M:%S");
        assert_eq!(parse_at("2026-11-20 18:00"), Ok(expected.unwrap()));
        assert_eq!(parse_at("2026-11-20T18:00:00"), Ok(expected.unwrap()));
        assert!(parse_at("2026-11-20").is_err());
        assert!(parse_at("yesterday").is_err());
    }
}
