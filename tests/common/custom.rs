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
