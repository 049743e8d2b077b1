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
    // Size (docs/footprint.md): the release profile aborts on panic, so nothing unwinds and the
    // binary needs no .eh_frame_hdr, the lookup table only unwinding uses (a panic still prints
    // its message and aborts; a RUST_BACKTRACE trace comes out empty, it was addresses only in a
    // stripped binary). -79 248 B on aarch64-musl. Binaries only: test harnesses unwind.
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if release && target == "aarch64-unknown-linux-musl" {
        println!("cargo:rustc-link-arg-bins=--no-eh-frame-hdr");
        // And the unwind tables themselves (.eh_frame, -268 424 B), by .cargo/no-eh-frame.ld.
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
        println!("cargo:rustc-link-arg-bins=-T{dir}/.cargo/no-eh-frame.ld");
        println!("cargo:rerun-if-changed=.cargo/no-eh-frame.ld");
    }
    // Re-run when HEAD moves: HEAD itself (branch switch) and the branch's ref (a commit),
    // resolved by --git-path (worktrees too). Only existing files: cargo re-runs every build
    // for a missing one. A branch kept only in packed-refs gets its loose file on the next
    // commit, so then the refs/heads directory is watched instead.
    println!("cargo:rerun-if-changed=build.rs");
    let path_of = |name: &str| {
        git(&["rev-parse", "--git-path", name]).filter(|p| std::path::Path::new(p).exists())
    };
    let mut watch: Vec<String> = ["HEAD", "packed-refs"]
        .into_iter()
        .filter_map(path_of)
        .collect();
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.extend(path_of(&branch).or_else(|| path_of("refs/heads")));
    }
    for path in watch {
        println!("cargo:rerun-if-changed={path}");
    }
}
