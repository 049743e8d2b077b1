//! Where the binaries under test are: `detect-agent`, `detect-fleet` and the mosquitto plugin,
//! taken by path (never built from inside a test), from an environment variable or the target dir.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `detect-agent` binary: `$DETECT_AGENT_BIN` (scripts/test sets it after
/// `cargo build -p detect-agent`), else `detect-agent` in the test binary's target directory.
pub fn agent() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        find(
            "detect-agent",
            "DETECT_AGENT_BIN",
            "cargo build -p detect-agent",
        )
    })
}

/// The `detect-fleet` binary: `$DETECT_FLEET_BIN`, else `detect-fleet` in the test binary's
/// target directory (cargo builds it before the fleet's own integration tests).
pub fn fleet() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        find(
            "detect-fleet",
            "DETECT_FLEET_BIN",
            "cargo build -p detect-fleet",
        )
    })
}

/// detect-fleet's mosquitto plugin: `$DETECT_MOSQ_PLUGIN`, else `plugin/libdetect_fleet_mosq.so`
/// in the test binary's target directory (built by `cargo build -p detect-mosquitto-plugin
/// --profile plugin`: a test never builds it, and only that profile unwinds on panic).
pub fn mosquitto_plugin() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let var = "DETECT_MOSQ_PLUGIN";
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "${var} = {} is not a file", path.display());
            return path;
        }
        let built = std::env::current_exe().ok().and_then(|exe| {
            Some(
                exe.parent()?
                    .parent()?
                    .parent()?
                    .join("plugin/libdetect_fleet_mosq.so"),
            )
        });
        match built {
            Some(path) if path.is_file() => path,
            _ => panic!(
                "the mosquitto plugin is not built: run `cargo build -p detect-mosquitto-plugin \
                 --profile plugin` or set {var} (looked for {})",
                built.map_or_else(|| "<unknown>".into(), |p| p.display().to_string())
            ),
        }
    })
}

fn find(name: &str, var: &str, build: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "${var} = {} is not a file", path.display());
        return path;
    }
    // A test binary is target/<profile>/deps/NAME-HASH; the binaries are in target/<profile>.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(name)));
    match beside {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "{name} not found: set {var} to its path, or run `{build}` first \
             (looked for {})",
            beside.map_or_else(|| "<unknown>".into(), |p| p.display().to_string())
        ),
    }
}
