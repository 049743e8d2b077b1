# shellcheck shell=bash
# Where cargo puts its output, and the package version (Cargo.toml), for the build scripts.
cargo_meta_json() { cargo metadata --format-version 1 --no-deps; }
cargo_target_dir() {
    cargo_meta_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}
# cargo_package_version [PACKAGE]: the workspace member's version (default detect-agent).
cargo_package_version() {
    cargo_meta_json | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1]))' "${1:-detect-agent}"
}
