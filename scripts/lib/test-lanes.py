#!/usr/bin/env python3
"""`cargo test ARGS`, with the test binaries run in two lanes side by side (scripts/test).

cargo runs test binaries one after another, and two of ours take minutes while mostly waiting
on brokers, timers and child processes: detect-fleet's integration tests (crates/fleet/tests/it)
and the agent's (tests/it). This builds every binary once with `cargo test ARGS --no-run`,
then runs each the way cargo does (in its package's directory, with CARGO_MANIFEST_DIR and
CARGO_PKG_NAME set), detect-fleet's integration tests in one lane and every other binary, in
cargo's order, in the other. Each binary's output is printed whole when it ends, with
cargo's `Running` line and the binary's wall time. Every binary runs (cargo's --no-fail-fast);
a binary still running after TIMEOUT_SECS (default 1800) is killed and counts as failed.
Exit status: cargo's if the build failed, else 1 if any binary failed, else 0.
Usage: scripts/lib/test-lanes.py CARGO_TEST_ARGS... [-- TEST_BINARY_ARGS...]
"""

import json
import os
import subprocess
import sys
import threading
import time

TIMEOUT_SECS = int(os.environ.get("TIMEOUT_SECS", "1800"))
KIND_ORDER = {"lib": 0, "bin": 1, "test": 2}
print_lock = threading.Lock()


def build(args):
    """Builds the test binaries; returns (status, [binary dicts in cargo's run order])."""
    cmd = ["cargo", "test", *args, "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    bins = []
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        kind = target["kind"][0]
        bins.append({
            "dir": os.path.dirname(msg["manifest_path"]),
            "kind": kind,
            "name": target["name"],
            "src": target["src_path"],
            "exe": msg["executable"],
        })
    status = proc.wait()
    bins.sort(key=lambda b: (b["dir"], KIND_ORDER.get(b["kind"], 9), b["name"]))
    return status, bins


def package_name(directory):
    """The [package] name in DIR/Cargo.toml (for CARGO_PKG_NAME), or '' if none is found."""
    try:
        with open(os.path.join(directory, "Cargo.toml"), encoding="utf-8") as f:
            in_package = False
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    in_package = line == "[package]"
                elif in_package and line.startswith("name"):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def run(b, args):
    """Runs one binary with ARGS; prints its output; returns True when it passed."""
    rel = os.path.relpath(b["src"], b["dir"])
    env = dict(os.environ, CARGO_MANIFEST_DIR=b["dir"], CARGO_PKG_NAME=package_name(b["dir"]))
    started = time.monotonic()
    try:
        proc = subprocess.run([b["exe"], *args], cwd=b["dir"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=TIMEOUT_SECS)
        out, ok = proc.stdout, proc.returncode == 0
        why = "" if ok else f"exit status {proc.returncode}"
    except subprocess.TimeoutExpired as e:
        out, ok = e.stdout or b"", False
        why = f"killed after {TIMEOUT_SECS} s"
    except OSError as e:
        out, ok, why = b"", False, f"could not start: {e}"
    secs = time.monotonic() - started
    with print_lock:
        print(f"     Running {rel} ({b['exe']})", flush=True)
        sys.stdout.write(out.decode("utf-8", "replace"))
        print(f"== {rel} of {b['dir']}: {'ok' if ok else 'FAILED (' + why + ')'} in {secs:.0f} s",
              flush=True)
    return ok


def lane(bins, args, failed):
    for b in bins:
        if not run(b, args):
            failed.append(b)


def main():
    argv = sys.argv[1:]
    cargo_args, test_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) \
        if "--" in argv else (argv, [])
    status, bins = build(cargo_args)
    if status != 0:
        return status
    fleet_it = [b for b in bins
                if b["kind"] == "test" and b["name"] == "it"
                and b["dir"].endswith(os.path.join("crates", "fleet"))]
    rest = [b for b in bins if b not in fleet_it]
    failed = []
    lanes = [threading.Thread(target=lane, args=(group, test_args, failed)) for group in (fleet_it, rest)]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    if failed:
        names = ", ".join(f"{os.path.relpath(b['src'], b['dir'])} of {b['dir']}" for b in failed)
        print(f"test-lanes: failed: {names}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
