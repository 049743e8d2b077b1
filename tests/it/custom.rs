//! Custom metrics in tests: reading specs against the proc-builtins fixture, and
//! `[[custom_metrics]]` tables for config files with the files and scripts they read.

use std::path::{Path, PathBuf};

use detect_agent::collect::custom::{
    self, CustomError, CustomState, CustomValue, MetricSpec, Reading,
};

/// tests/fixtures/NAME.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every metric of `specs`, built-ins under the proc-builtins fixture tree.
pub fn read(specs: &[MetricSpec]) -> Vec<Reading> {
    custom::read_all(
        specs,
        &fixture("proc-builtins"),
        &mut CustomState::default(),
    )
}

/// The one metric's value or error.
pub fn one(spec: MetricSpec) -> Result<CustomValue, CustomError> {
    read(&[spec]).remove(0).value
}

/// One `[[custom_metrics]]` table; `source` is its source line(s), e.g. `builtin = "x"`.
pub fn table(name: &str, kind: &str, source: &str) -> String {
    format!("\n[[custom_metrics]]\nname = \"{name}\"\ntype = \"{kind}\"\n{source}\n")
}

/// `file = "DIR/NAME"`, with `text` written there.
pub fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("file = {path:?}")
}

/// `command = ["/bin/sh", "DIR/NAME"]`, with the shell script `body` written there.
pub fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    format!("command = [\"/bin/sh\", {path:?}]")
}

/// A script body that starts a child, writes the child's pid and its own to `pids` (whole,
/// by rename) and waits forever: for tests that a timeout or a stop kills both.
pub fn hung_with_pids(pids: &Path) -> String {
    format!(
        "sleep 1000 &\necho $! > {p}.tmp\necho $$ >> {p}.tmp\nmv {p}.tmp {p}\nwait\n",
        p = pids.display()
    )
}

/// True when `pid` is gone or a zombie (killed, waiting for a reaper that may be us).
pub fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Every pid written by `hung_with_pids` is dead within 5 s.
pub fn all_dead(pids: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(pids).map_err(|e| e.to_string())?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for pid in text.split_whitespace() {
        while !dead(pid) {
            if std::time::Instant::now() >= until {
                return Err(format!("process {pid} survived"));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Ok(())
}
