//! Stamps the binary for `detect-agent --version`: the target triple (cargo's TARGET) and the
//! short git commit (`git rev-parse --short HEAD`; "unknown" outside a git checkout).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=DETECT_AGENT_TARGET={target}");
    println!("cargo:rustc-env=DETECT_AGENT_COMMIT={commit}");
    // Re-run when HEAD moves: HEAD itself (branch switch) and the branch's ref (a commit).
    // --git-path resolves both inside worktrees too; packed-refs covers packed branches.
    println!("cargo:rerun-if-changed=build.rs");
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watch {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
