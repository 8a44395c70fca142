//! The shipped systemd units: `systemd-analyze security` rates the service
//! 3.0 or better, and the failure unit it names exists. Without
//! `systemd-analyze` on the PATH the rating is skipped (and says so); the
//! rest always runs.

use std::path::Path;
use std::process::Command;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit's `Key=value` lines for `key`.
fn settings<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_service_unit_reads_everything_writes_its_home_and_mails_on_failure() {
    let unit = example("backupctl.service");
    assert_eq!(settings(&unit, "User"), ["backupctl"]);
    assert_eq!(
        settings(&unit, "AmbientCapabilities"),
        ["CAP_DAC_READ_SEARCH"]
    );
    assert_eq!(
        settings(&unit, "CapabilityBoundingSet"),
        ["CAP_DAC_READ_SEARCH"]
    );
    assert_eq!(settings(&unit, "ProtectSystem"), ["strict"]);
    assert_eq!(settings(&unit, "ReadWritePaths"), ["/var/lib/backupctl"]);
    assert_eq!(
        settings(&unit, "ExecStart"),
        ["/usr/local/bin/backupctl daemon --foreground"]
    );
    assert_eq!(
        settings(&unit, "OnFailure"),
        ["backupctl-failure@%n.service"]
    );
    let failure = example("backupctl-failure@.service");
    assert!(settings(&failure, "ExecStart")[0].contains("| mail -s"));
}

#[test]
fn systemd_analyze_rates_the_service_unit_ok() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/backupctl.service");
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the unit's security rating is not checked");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let rating: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for backupctl.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no rating in {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(rating <= 3.0, "exposure {rating}:\n{text}");
}
