//! Which program we were called as. One executable answers to three names, as
//! busybox does: `backup_manager` (the spec's manager script), `backup_service`
//! (the spec's service script, run in the foreground) and `backupctl`.

use std::ffi::OsStr;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// `backupctl`: every subcommand.
    Backupctl,
    /// `backup_manager`: the same subcommands, under the spec's name.
    Manager,
    /// `backup_service`: runs the service loop in the foreground.
    Service,
}

const TABLE: [(&str, Personality); 2] = [
    ("backup_manager", Personality::Manager),
    ("backup_service", Personality::Service),
];

impl Personality {
    /// Decides from argv[0]: directories and an extension (`.exe`, `.py`) are
    /// stripped; anything unknown is `backupctl`.
    pub fn from_argv0(argv0: Option<&OsStr>) -> Self {
        let stem = argv0
            .map(Path::new)
            .and_then(Path::file_stem)
            .and_then(OsStr::to_str)
            .unwrap_or("");
        TABLE
            .iter()
            .find(|(name, _)| *name == stem)
            .map_or(Personality::Backupctl, |&(_, p)| p)
    }

    /// The name used in messages and `--help`.
    pub fn program_name(self) -> &'static str {
        match self {
            Personality::Backupctl => "backupctl",
            Personality::Manager => "backup_manager",
            Personality::Service => "backup_service",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_picks_the_personality() {
        let cases = [
            ("backup_manager", Personality::Manager),
            ("./backup_manager", Personality::Manager),
            ("/usr/local/bin/backup_service", Personality::Service),
            ("backup_manager.py", Personality::Manager),
            ("backup_service.exe", Personality::Service),
            ("backupctl", Personality::Backupctl),
            ("/opt/bin/something-else", Personality::Backupctl),
            ("", Personality::Backupctl),
        ];
        for (argv0, expected) in cases {
            assert_eq!(
                Personality::from_argv0(Some(OsStr::new(argv0))),
                expected,
                "{argv0}"
            );
        }
        assert_eq!(Personality::from_argv0(None), Personality::Backupctl);
    }
}
