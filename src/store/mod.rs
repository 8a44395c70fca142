//! The schedule store, `backup_schedules.txt`: one schedule per line.
//!
//! Reading needs no lock: writers never modify the file in place, they write a
//! temporary copy, sync it and rename it over the original, so a reader sees
//! either the old or the new file, whole. Writers take an exclusive lock on a
//! separate lock file for the whole read-modify-write, so concurrent `create`s
//! never lose a schedule. Lines that do not parse (edited by hand) are kept
//! byte for byte and reported, never dropped.

pub mod options;
pub mod schedule;
pub mod state;
pub mod trust;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use options::{Format, Options};

use crate::file_error::FileError;
use crate::primitives::{self, quote, quote_at};

/// How much of a refused line its message quotes; the reason quotes the bad
/// field again, and the whole stays one short line whatever was typed.
const LINE_QUOTE: usize = 60;
pub use schedule::{Schedule, ScheduleError, Timing};
pub use state::{RunRecord, RunState, StateFile};
pub use trust::Untrusted;

/// Errors of the schedule store. Input errors name the bad input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("malformed schedule: {} ({reason})", quote_at(input, LINE_QUOTE))]
    Malformed {
        input: String,
        reason: ScheduleError,
    },
    #[error("a schedule named \"{}\" already exists at index {index}", quote(name))]
    DuplicateName { name: String, index: usize },
    #[error("no schedule at index {index}: {}", count_phrase(*count))]
    IndexOutOfRange { index: usize, count: usize },
    #[error("no schedule with index or name \"{}\"", quote(text))]
    UnknownSchedule { text: String },
    #[error("schedule {index} is not valid ({reason}); fix or delete it first")]
    InvalidEntry { index: usize, reason: EntryError },
    #[error(transparent)]
    Io(#[from] FileError),
}

fn count_phrase(count: usize) -> String {
    match count {
        0 => "there are no schedules".to_string(),
        1 => "the only schedule is 0".to_string(),
        n => format!("schedules are numbered 0 to {}", n - 1),
    }
}

impl StoreError {
    /// True when the user's input was refused (as opposed to an I/O failure).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, StoreError::Io(_))
    }
}

/// Why a line of the store is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Invalid(#[from] ScheduleError),
}

/// One line of the store, valid or not.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The line exactly as stored, without its newline.
    pub raw: Vec<u8>,
    /// The parsed schedule, or why the line is not one.
    pub parsed: Result<Schedule, EntryError>,
}

impl Entry {
    fn from_raw(raw: Vec<u8>) -> Self {
        let parsed = match std::str::from_utf8(&raw) {
            Ok(text) => Schedule::parse(text).map_err(EntryError::from),
            Err(_) => Err(EntryError::NotUtf8),
        };
        Self { raw, parsed }
    }

    /// The line for display; invalid UTF-8 shows as U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// The schedule file and its lock.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    lock_path: PathBuf,
}

impl Store {
    pub fn new(path: PathBuf, lock_path: PathBuf) -> Self {
        Self { path, lock_path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the hooks of these schedules may run (see [`trust`]).
    pub fn hooks_trusted(&self) -> Result<(), Untrusted> {
        trust::check_schedule_file(&self.path)
    }

    /// Every non-blank line, in order; the position is the schedule's index.
    /// A missing file is an empty store.
    pub fn load(&self) -> Result<Vec<Entry>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(self.io_error("read schedule file", source)),
        };
        Ok(bytes
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| Entry::from_raw(line.to_vec()))
            .collect())
    }

    /// Finds a valid schedule by index or by name (the rule of [`locate`]).
    pub fn find(&self, key: &str) -> Result<(usize, Schedule), StoreError> {
        let entries = self.load()?;
        let index = locate(&entries, key)?;
        match &entries[index].parsed {
            Ok(schedule) => Ok((index, schedule.clone())),
            Err(reason) => Err(StoreError::InvalidEntry {
                index,
                reason: reason.clone(),
            }),
        }
    }

    /// Validates `line` and appends it. Refused lines leave the store untouched.
    pub fn add(&self, line: &str) -> Result<Schedule, StoreError> {
        let schedule = Schedule::parse(line).map_err(|reason| StoreError::Malformed {
            input: line.to_string(),
            reason,
        })?;
        self.edit(|entries| {
            let duplicate = entries
                .iter()
                .position(|e| matches!(&e.parsed, Ok(s) if s.name == schedule.name));
            if let Some(index) = duplicate {
                return Err(StoreError::DuplicateName {
                    name: schedule.name.clone(),
                    index,
                });
            }
            entries.push(Entry::from_raw(line.as_bytes().to_vec()));
            Ok(())
        })?;
        Ok(schedule)
    }

    /// Removes the line `key` points at, by index (as `list` shows it) or by
    /// name (the rule of [`locate`]), looked up under the lock so that it is
    /// the line of the file being rewritten. An invalid line can be removed
    /// by its index. Returns its index and the line.
    pub fn remove(&self, key: &str) -> Result<(usize, Entry), StoreError> {
        self.edit(|entries| {
            let index = locate(entries, key)?;
            Ok((index, entries.remove(index)))
        })
    }

    /// Runs `change` on the current lines under the exclusive lock, then writes
    /// the result atomically. When `change` fails nothing is written.
    fn edit<T>(
        &self,
        change: impl FnOnce(&mut Vec<Entry>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock = primitives::open_lock_file(&self.lock_path)
            .map_err(FileError::on("open lock file", &self.lock_path))?;
        lock.lock()
            .map_err(FileError::on("lock", &self.lock_path))?;
        let mut entries = self.load()?;
        let outcome = change(&mut entries)?;
        self.write_atomically(&entries)?;
        // The lock is released when `lock` is dropped, after the rename.
        Ok(outcome)
    }

    fn write_atomically(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let mut text = Vec::new();
        for entry in entries {
            text.extend_from_slice(&entry.raw);
            text.push(b'\n');
        }
        // The new file keeps the old one's permissions and, when we may set
        // it (root), its owner: an edit must neither make a file others could
        // write trusted with hooks, nor hand root's file to the editor.
        let old = fs::symlink_metadata(&self.path)
            .ok()
            .filter(|m| m.is_file());
        let mode = old.as_ref().map_or(NEW_FILE_MODE, |m| m.mode() & 0o777);
        let owner = old.as_ref().map(|m| (m.uid(), m.gid()));
        primitives::replace_atomic(&self.path, mode, |file| {
            if let Some((uid, gid)) = owner {
                keep_owner(file, uid, gid);
            }
            file.write_all(&text)
        })
        .map_err(|source| self.io_error("write schedule file", source))
    }

    fn io_error(&self, action: &'static str, source: io::Error) -> StoreError {
        StoreError::Io(FileError::new(action, &self.path, source))
    }
}

/// The mode of a schedule file `create` makes.
const NEW_FILE_MODE: u32 = 0o644;

/// Gives the new copy the old file's owner and group. Only root may give a
/// file away; anyone else's copy stays theirs (they wrote it), with the old
/// file's permissions.
fn keep_owner(file: &fs::File, uid: u32, gid: u32) {
    let meta = file.metadata();
    if meta.is_ok_and(|m| m.uid() == uid && m.gid() == gid) {
        return;
    }
    if std::os::unix::fs::fchown(file, Some(uid), Some(gid)).is_err() {
        let _ = std::os::unix::fs::fchown(file, None, Some(gid));
    }
}

/// The one lookup rule of every command that names a schedule: a plain
/// number (ASCII digits only) within range is an index, as `list` numbers the
/// lines; anything else, or a number out of range, is a name, matched only
/// against valid schedules. Nothing found: a plain number is reported as an
/// index out of range, anything else as an unknown index or name.
fn locate(entries: &[Entry], key: &str) -> Result<usize, StoreError> {
    let plain_number = !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit());
    let number = key.parse::<usize>().ok().filter(|_| plain_number);
    if let Some(index) = number.filter(|&i| i < entries.len()) {
        return Ok(index);
    }
    let by_name = entries
        .iter()
        .position(|e| matches!(&e.parsed, Ok(s) if s.name == key));
    match (by_name, number) {
        (Some(index), _) => Ok(index),
        (None, Some(index)) => Err(StoreError::IndexOutOfRange {
            index,
            count: entries.len(),
        }),
        (None, None) => Err(StoreError::UnknownSchedule {
            text: key.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &Path) -> Store {
        Store::new(dir.join("s.txt"), dir.join(".s.lock"))
    }

    #[test]
    fn add_list_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        store.add("a;10:00;one").unwrap();
        store.add("b;11:00;two").unwrap();
        let (index, removed) = store.remove("0").unwrap();
        assert_eq!((index, removed.text().as_str()), (0, "a;10:00;one"));
        let left: Vec<String> = store.load().unwrap().iter().map(Entry::text).collect();
        assert_eq!(left, ["b;11:00;two"]);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        store.add("a;10:00;one").unwrap();
        let err = store.add("b;11:00;one").unwrap_err();
        assert!(matches!(err, StoreError::DuplicateName { index: 0, .. }));
    }

    #[test]
    fn a_plain_number_in_range_is_an_index_anything_else_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        fs::write(
            store.path(),
            "a;10:00;one\nb;10:00;7\nc;10:00;-1\nnot a schedule\n",
        )
        .unwrap();
        // In range: the index, even when a schedule is named like another's.
        assert_eq!(store.find("1").unwrap().0, 1);
        assert_eq!(store.find("01").unwrap().0, 1);
        // Out of range, or not a plain number: a name.
        assert_eq!(store.find("7").unwrap().0, 1);
        assert_eq!(store.find("-1").unwrap().0, 2);
        assert_eq!(store.find("one").unwrap().0, 0);
        // Invalid lines have no name.
        assert!(matches!(
            store.find("not a schedule"),
            Err(StoreError::UnknownSchedule { .. })
        ));
        assert!(matches!(
            store.find("9"),
            Err(StoreError::IndexOutOfRange { index: 9, count: 4 })
        ));
        for unknown in ["+0", "", " 0", "1.0", "two", "99999999999999999999999"] {
            assert!(
                matches!(store.find(unknown), Err(StoreError::UnknownSchedule { .. })),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn remove_takes_an_index_or_a_name_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        fs::write(store.path(), "a;10:00;one\nb;11:00;two\ngarbage\n").unwrap();
        let (index, removed) = store.remove("two").unwrap();
        assert_eq!((index, removed.text().as_str()), (1, "b;11:00;two"));
        // An invalid line goes by its index.
        assert_eq!(store.remove("1").unwrap().1.text(), "garbage");
        for bad in ["-1", "+0", "two", "", " 0", "99999999999999999999999"] {
            assert!(
                matches!(store.remove(bad), Err(StoreError::UnknownSchedule { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            store.remove("1"),
            Err(StoreError::IndexOutOfRange { index: 1, count: 1 })
        ));
        assert_eq!(fs::read_to_string(store.path()).unwrap(), "a;10:00;one\n");
    }

    #[test]
    fn hand_edited_lines_survive_edits_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        fs::write(store.path(), b"garbage\xff\n\nx;10:00;ok\n").unwrap();
        store.add("y;11:00;other").unwrap();
        let bytes = fs::read(store.path()).unwrap();
        assert_eq!(bytes, b"garbage\xff\nx;10:00;ok\ny;11:00;other\n");
        let entries = store.load().unwrap();
        assert!(entries[0].parsed.is_err());
        assert!(matches!(
            store.find("0"),
            Err(StoreError::InvalidEntry { index: 0, .. })
        ));
        assert_eq!(store.find("ok").unwrap().0, 1);
    }

    #[test]
    fn edits_keep_the_file_mode_and_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        store.add("a;10:00;one").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(store.path()), NEW_FILE_MODE);
        for kept in [0o600, 0o664, 0o640] {
            fs::set_permissions(store.path(), fs::Permissions::from_mode(kept)).unwrap();
            store.add(&format!("b;10:00;m{kept:o}")).unwrap();
            assert_eq!(mode(store.path()), kept);
        }
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(store.path(), Some(65534), Some(65534)).unwrap();
            store.remove("0").unwrap();
            let meta = fs::metadata(store.path()).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        }
    }

    mod round_trip {
        use super::*;
        use proptest::prelude::*;

        const HOSTILE: [&str; 17] = [
            "\n",
            "\r",
            "\r\n",
            "\0",
            "\u{1b}",
            "\u{1b}[31m",
            "\u{7f}",
            "\t",
            " ",
            "\u{85}",
            "\u{2028}",
            "\u{202e}",
            "\u{feff}",
            "é",
            "日本",
            "\u{a0}",
            "\n0 0 * * *;n2",
        ];

        /// A valid field, sometimes with a hostile piece put in front, in
        /// the middle or at the end.
        fn field(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
            (
                prop::sample::select(valid),
                prop::option::weighted(0.4, prop::sample::select(&HOSTILE[..])),
                0..3usize,
            )
                .prop_map(|(text, hostile, at)| {
                    let Some(hostile) = hostile else {
                        return text.to_string();
                    };
                    match at {
                        0 => format!("{hostile}{text}"),
                        1 => {
                            let mid = text.char_indices().nth(text.chars().count() / 2);
                            let mid = mid.map_or(text.len(), |(i, _)| i);
                            format!("{}{hostile}{}", &text[..mid], &text[mid..])
                        }
                        _ => format!("{text}{hostile}"),
                    }
                })
        }

        /// Lines shaped like schedules, whose fields may hold anything.
        fn shaped_line() -> impl Strategy<Value = String> {
            (
                field(&["src", "/data", "a b"]),
                field(&["10:00", "23:59", "0 0 * * *", "@daily", "*/5 * * * mon"]),
                field(&["n", "job", "x.y"]),
                prop::option::of(field(&[
                    "catch-up",
                    "if-changed,catch-up",
                    "before=echo hi",
                    "after=true",
                    "format=tar.zst,level=3",
                    "keep-last=2",
                    r#"before="curl -fsS -d 'a,b' https://h/x;y""#,
                    r#"after="say \"hi\" \\ there",catch-up"#,
                    r#"on-failure=echo "bare quotes""#,
                ])),
            )
                .prop_map(|(path, time, name, options)| match options {
                    Some(options) => format!("{path};{time};{name};{options}"),
                    None => format!("{path};{time};{name}"),
                })
        }

        /// Free-form lines: separators and hostile characters in any order.
        fn loose_line() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                3 => prop::sample::select(vec!["src", "10:00", "0 0 * * *", "n", "catch-up", ";", ",", "=", "before=", "\"", "\\"])
                    .prop_map(str::to_string),
                2 => prop::sample::select(&HOSTILE[..]).prop_map(str::to_string),
                1 => any::<char>().prop_map(String::from),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
        }

        fn line() -> impl Strategy<Value = String> {
            prop_oneof![3 => shaped_line(), 1 => loose_line()]
        }

        /// What a reader of the store sees of a schedule.
        fn shape(s: &Schedule) -> (String, String, String, Options) {
            (
                s.source.clone(),
                s.timing.to_string(),
                s.name.clone(),
                s.options.clone(),
            )
        }

        /// Option values of any text (control characters aside), quoted
        /// with [`options::quote_value`].
        fn hook_value() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                3 => prop::sample::select(vec!["a", " ", ",", ";", "\"", "\\", "=", "é", "'"]).prop_map(str::to_string),
                1 => any::<char>().prop_filter("not a layout character", |&c| !crate::primitives::is_layout_char(c)).prop_map(String::from),
            ];
            prop::collection::vec(piece, 1..12).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #[test]
            fn quoted_values_read_back_as_typed(before in hook_value(), after in hook_value()) {
                let dir = tempfile::tempdir().unwrap();
                let store = store_in(dir.path());
                let line = format!(
                    "src;10:00;n;before={},catch-up,after={}",
                    options::quote_value(&before),
                    options::quote_value(&after)
                );
                store.add(&line).unwrap();
                let entries = store.load().unwrap();
                let reread = entries[0].parsed.as_ref().expect("the stored line parses");
                prop_assert_eq!(reread.options.hooks.before.as_deref(), Some(before.as_str()));
                prop_assert_eq!(reread.options.hooks.after.as_deref(), Some(after.as_str()));
                prop_assert!(reread.options.catch_up);
                prop_assert_eq!(&reread.name, "n");
            }

            #[test]
            fn what_add_accepts_is_what_load_reads_back(line in line()) {
                let dir = tempfile::tempdir().unwrap();
                let store = store_in(dir.path());
                fs::write(store.path(), b"a;10:00;first\nhand edited\xff\n").unwrap();
                let before = fs::read(store.path()).unwrap();
                let count = store.load().unwrap().len();
                match store.add(&line) {
                    Ok(added) => {
                        let entries = store.load().unwrap();
                        prop_assert_eq!(entries.len(), count + 1, "one line, one entry");
                        let stored = &entries[count];
                        prop_assert_eq!(&stored.raw, line.as_bytes());
                        let reread = stored.parsed.as_ref().expect("the stored line parses");
                        prop_assert_eq!(shape(reread), shape(&added));
                        prop_assert!(fs::read(store.path()).unwrap().starts_with(&before));
                    }
                    Err(_) => prop_assert_eq!(fs::read(store.path()).unwrap(), before),
                }
            }
        }
    }
}
