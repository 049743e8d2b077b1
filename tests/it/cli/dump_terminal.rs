//! `dump --format json` on a terminal ends with a newline (issue #11 item 10); piped, the
//! payload bytes stay exact. The terminal is a real pty from util-linux `script`.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");

/// `dump --format FORMAT` with stdout on a pty, as the pty's bytes.
fn on_a_terminal(format: &str) -> Vec<u8> {
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{BIN} dump --format {format}"),
            "/dev/null",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs");
    assert!(
        out.status.success(),
        "{format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn json_on_a_terminal_ends_with_a_newline_and_piped_json_does_not() {
    for format in ["json", "json-short"] {
        let shown = on_a_terminal(format);
        // The pty turns "\n" into "\r\n" (onlcr).
        assert!(
            shown.ends_with(b"}\r\n"),
            "{format}: ends with {:?}",
            String::from_utf8_lossy(&shown[shown.len().saturating_sub(10)..])
        );
        let piped = Command::new(BIN)
            .args(["dump", "--format", format])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(piped.status.success());
        assert!(piped.stdout.ends_with(b"}"), "{format}: piped bytes exact");
    }
}
