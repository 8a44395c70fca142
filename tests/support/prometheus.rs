//! A strict reader of Prometheus' text exposition format, for the metrics
//! file: every family announced by `# HELP` and `# TYPE` before its samples,
//! families contiguous, names and label names as the format allows, label
//! values with their three escapes, values that parse, no series twice.
//! Whatever it does not understand fails the test. `promtool check metrics`
//! judges the same file too when it is on the PATH.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// One series: its name and its labels, sorted.
pub type Series = (String, Vec<(String, String)>);

/// The samples of a metrics file, by series, and each family's type.
#[derive(Debug, Default)]
pub struct Metrics {
    pub samples: BTreeMap<Series, f64>,
    pub types: BTreeMap<String, String>,
}

impl Metrics {
    /// The value of `name` with exactly `labels`, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The value of `name{schedule="SCHEDULE"}`, which must be there.
    #[track_caller]
    pub fn of(&self, name: &str, schedule: &str) -> f64 {
        self.get(name, &[("schedule", schedule)])
            .unwrap_or_else(|| panic!("no {name}{{schedule={schedule:?}}} in {self:#?}"))
    }
}

fn is_name(name: &str, colon: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Parses `text`, panicking with the line at the first thing that is wrong.
#[track_caller]
pub fn parse(text: &str) -> Metrics {
    assert!(text.ends_with('\n'), "the file does not end with a newline");
    let mut metrics = Metrics::default();
    let mut helped = Vec::<String>::new();
    let mut finished = Vec::<String>::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let fail = |why: &str| -> ! { panic!("metrics line {line:?}: {why}\n{text}") };
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| fail("no help text"));
            if !is_name(name, true) || helped.iter().any(|n| n == name) || help.is_empty() {
                fail("bad or repeated HELP");
            }
            helped.push(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| fail("no type"));
            if !["gauge", "counter", "untyped"].contains(&kind) {
                fail("unexpected type");
            }
            if !helped.iter().any(|n| n == name) || metrics.types.contains_key(name) {
                fail("TYPE without HELP, or repeated");
            }
            metrics.types.insert(name.to_string(), kind.to_string());
            if let Some(previous) = current.replace(name.to_string()) {
                finished.push(previous);
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            fail("unexpected comment or blank line");
        }
        let (series, value) = sample(line).unwrap_or_else(|why| fail(&why));
        if current.as_deref() != Some(series.0.as_str()) {
            fail("sample outside its family's block");
        }
        if finished.contains(&series.0) {
            fail("family continued after another");
        }
        if metrics.samples.insert(series, value).is_some() {
            fail("series given twice");
        }
    }
    metrics
}

fn sample(line: &str) -> Result<(Series, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value after the name")?;
    let name = &line[..name_end];
    if !is_name(name, true) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
            if !is_name(key, false) || key.starts_with("__") {
                return Err(format!("bad label name {key:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("unknown escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &after[end + 1..];
            if let Some(more) = rest.strip_prefix(',') {
                rest = more;
            } else {
                rest = rest.strip_prefix('}').ok_or("labels not closed")?;
                break;
            }
        }
    }
    let text = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value: f64 = text.parse().map_err(|_| format!("bad value {text:?}"))?;
    labels.sort();
    Ok(((name.to_string(), labels), value))
}

/// `promtool check metrics` on `text`, when promtool is installed: its
/// lint (names, units, HELP) must pass. Returns whether it ran.
#[track_caller]
pub fn promtool_check(text: &str) -> bool {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {out:?}\n{text}"
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_escapes_and_refuses_what_is_wrong() {
        let good =
            "# HELP a_x An x.\n# TYPE a_x gauge\na_x{s=\"q\\\"b\\\\c\\n\",t=\"\"} 1.5\na_x 2\n";
        let m = parse(good);
        assert_eq!(m.get("a_x", &[("s", "q\"b\\c\n"), ("t", "")]), Some(1.5));
        assert_eq!(m.get("a_x", &[]), Some(2.0));
        for bad in [
            "a_x 1\n",                                            // no HELP/TYPE
            "# HELP a_x h\n# TYPE a_x gauge\na_x{s=\"x} 1\n",     // unterminated
            "# HELP a_x h\n# TYPE a_x gauge\na_x 1\na_x 1\n",     // twice
            "# HELP a_x h\n# TYPE a_x gauge\na_x one\n",          // value
            "# HELP a_x h\n# TYPE a_x gauge\na_x{s=\"\\t\"} 1\n", // escape
        ] {
            assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad:?}");
        }
    }
}
