//! `backups [NAME]`: lists the archive files in `backups/`, sorted by name.
//! `--long` adds each archive's date and size (and, in an incremental chain,
//! its level and parent), `--json` prints them as JSON
//! with their schedule and manifest (shape in docs/archives.md). With NAME,
//! only that schedule's own archives (`History::owned`: named like its
//! archives and with a manifest naming it), then a total line.

use std::path::Path;

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use super::{Context, print_json, print_lines};
use crate::archive::{manifest, verify};
use crate::backup::{self, History, history};
use crate::error::Error;
use crate::exit_codes::ExitCode;
use crate::primitives::{human_bytes, printable};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this schedule's own archives (those whose manifest names it,
    /// also of a schedule deleted since), followed by their count and total
    /// size
    #[arg(allow_hyphen_values = true, value_name = "NAME")]
    pub schedule: Option<String>,
    /// Show each archive's date and size
    #[arg(long, short)]
    pub long: bool,
    /// Print the archives as JSON, with their schedule and checksum
    #[arg(long, conflicts_with = "long")]
    pub json: bool,
}

/// How to show the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// File names only (the spec's output).
    Names,
    /// Date, size and name.
    Long,
    Json,
}

/// One archive in `backups --json`.
#[derive(Debug, Serialize)]
struct ArchiveJson {
    archive: String,
    schedule: Option<String>,
    size: u64,
    modified: String,
    sha256: Option<String>,
    verified_manifest: bool,
    /// In an incremental chain: 0 for a full archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<u32>,
    /// The archive an incremental holds the changes since.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

impl Args {
    fn style(&self) -> Style {
        match (self.long, self.json) {
            (_, true) => Style::Json,
            (true, false) => Style::Long,
            (false, false) => Style::Names,
        }
    }
}

pub fn run(args: &Args, ctx: &Context) -> Result<ExitCode, Error> {
    if let Some(name) = &args.schedule {
        return one_schedule(args.style(), ctx, name);
    }
    let style = args.style();
    let dir = ctx.home.backups_dir();
    let names = backup::archive_names(&dir).map_err(|e| Error::io("list", &dir, e))?;
    log::info!("Show backups list");
    if style == Style::Names {
        print_lines(names)?;
        return Ok(ExitCode::Success);
    }
    let schedules: Vec<String> = ctx
        .store
        .load()?
        .into_iter()
        .filter_map(|entry| entry.parsed.ok().map(|s| s.name))
        .collect();
    let mut rows = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if verify::format_of(&path).is_none() {
            continue; // manifests and foreign files
        }
        rows.push(describe(ctx, &path, name, &schedules, None)?);
    }
    if style == Style::Json {
        print_json(&rows)?;
    } else {
        print_lines(rows.iter().map(long_line))?;
    }
    Ok(ExitCode::Success)
}

/// `backups NAME`: the schedule's own archives, sorted by name, and a total
/// line (`--json` prints the array alone). A name that is neither a schedule
/// nor the owner of any archive is refused.
fn one_schedule(style: Style, ctx: &Context, name: &str) -> Result<ExitCode, Error> {
    let dir = ctx.home.backups_dir();
    let mut owned = History::named(&ctx.home, name)
        .owned()
        .map_err(|e| Error::io("list", &dir, e))?;
    if owned.is_empty() && !is_schedule(ctx, name)? {
        return Err(Error::NoArchivesOwner {
            name: name.to_string(),
        });
    }
    log::info!("Show backups list of {}", printable(name));
    // One directory: the paths sort as the file names do.
    owned.sort_by(|a, b| a.path.cmp(&b.path));
    if style == Style::Names {
        let total = total_line(owned.len(), owned.iter().map(|a| a.size).sum());
        print_lines(owned.iter().map(|a| a.name()).chain([total]))?;
        return Ok(ExitCode::Success);
    }
    let mut rows = Vec::new();
    for archive in &owned {
        rows.push(describe(
            ctx,
            &archive.path,
            archive.name(),
            &[],
            Some(name),
        )?);
    }
    if style == Style::Json {
        print_json(&rows)?;
    } else {
        let total = total_line(rows.len(), rows.iter().map(|r| r.size).sum());
        print_lines(rows.iter().map(long_line).chain([total]))?;
    }
    Ok(ExitCode::Success)
}

fn is_schedule(ctx: &Context, name: &str) -> Result<bool, Error> {
    Ok(ctx
        .store
        .load()?
        .iter()
        .any(|entry| matches!(&entry.parsed, Ok(s) if s.name == name)))
}

/// `3 archives, 1.2 MiB in total`.
fn total_line(count: usize, bytes: u64) -> String {
    let noun = if count == 1 { "archive" } else { "archives" };
    format!("{count} {noun}, {} in total", human_bytes(bytes))
}

/// One archive's row; `owner`, when known (`backups NAME`), is its schedule.
fn describe(
    ctx: &Context,
    path: &Path,
    archive: String,
    schedules: &[String],
    owner: Option<&str>,
) -> Result<ArchiveJson, Error> {
    let metadata = path.metadata().map_err(|e| Error::io("read", path, e))?;
    let modified = metadata
        .modified()
        .map_err(|e| Error::io("read", path, e))?;
    let manifest = manifest::read_manifest(path).ok();
    let schedule = owner
        .map(str::to_string)
        .or_else(|| {
            schedules
                .iter()
                .find(|s| history::parse_for_schedule(&archive, s).is_some())
                .cloned()
        })
        .or_else(|| manifest.as_ref().map(|m| m.schedule.clone()));
    let chain = manifest.as_ref().and_then(|m| m.chain.clone());
    let verified_manifest = manifest
        .as_ref()
        .is_some_and(|m| m.archive == archive && m.archive_size == metadata.len());
    Ok(ArchiveJson {
        schedule,
        size: metadata.len(),
        modified: DateTime::<chrono::Utc>::from(modified)
            .with_timezone(&ctx.zone)
            .to_rfc3339_opts(SecondsFormat::Secs, false),
        level: chain.as_ref().map(|c| c.level),
        parent: chain.and_then(|c| c.parent).map(|p| p.archive),
        sha256: manifest.map(|m| m.sha256),
        verified_manifest,
        archive,
    })
}

/// `2025-01-01 02:00    12.3 KiB  docs_20250101_020000.tar.gz`.
fn long_line(row: &ArchiveJson) -> String {
    let date = DateTime::parse_from_rfc3339(&row.modified)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| row.modified.clone());
    let chain = match (row.level, &row.parent) {
        (Some(0), _) => "  level 0 (full)".to_string(),
        (Some(level), Some(parent)) => format!("  level {level}, on {parent}"),
        _ => String::new(),
    };
    format!(
        "{date}  {:>10}  {}{chain}",
        human_bytes(row.size),
        row.archive
    )
}
