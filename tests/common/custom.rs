//! `[[custom_metrics]]` tables for the config files of the daemon and dump tests, with the
//! files and scripts they read written by the test.

use std::path::Path;

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
