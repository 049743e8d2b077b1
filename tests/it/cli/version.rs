//! `detect-agent --version`: the package version, the target triple and the git commit that
//! build.rs stamped in (scripts/check-packages checks the same line from the installed path).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");

fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn version_prints_the_package_version_the_host_triple_and_the_git_commit() {
    let line = stdout_of(Command::new(BIN).arg("--version")).expect("--version exits 0");

    let rustc = stdout_of(Command::new("rustc").arg("-vV")).expect("rustc -vV runs");
    let host = rustc
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV prints host:");
    // Run outside git (a source tarball) the build stamps "unknown".
    let commit = stdout_of(
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    )
    .unwrap_or_else(|| "unknown".to_owned());

    let want = format!(
        "detect-agent {} ({host}, commit {commit})",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(line, want);
}
