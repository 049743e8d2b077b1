# shellcheck shell=bash
# The cargo target directory of a full scripts/test run, kept between runs beside the other
# caches (~/.cache/detect-agent, or $XDG_CACHE_HOME/detect-agent): on a fresh clone the
# registry crates of every build (the debug tests, clippy, the four agent targets,
# detect-fleet, ci-qemu's ARM test builds) are then already compiled, and cargo rebuilds the
# workspace crates only (their files are new). Cargo's own fingerprints decide what is stale;
# the directory's name also carries a hash of what cargo does not see (rustc and cargo
# versions, the pinned Zig and cargo-zigbuild, the cross gccs that compile ring's C code), so
# a toolchain change starts a new directory and the old one is removed. Bounded: a directory
# over BUILD_CACHE_LIMIT_MIB (default 16 GiB) is emptied before use. One run at a time: the
# run holds a lock on it (flock, fd 9, inherited by its jobs), and a second run started
# meanwhile builds in ./target as before, so no run ever tests another run's binaries.
# Sourced by scripts/test after scripts/setup; needs scripts/lib/zigbuild.sh sourced first.

# build_cache_open: sets and exports CARGO_TARGET_DIR (and CARGO_INCREMENTAL=0: a fresh
# clone's paths are new, so incremental data would never be reused, only piled up), or
# leaves both alone when the cache is in use or cannot be made. Prints what it chose.
build_cache_open() {
    local cache key dir old size limit=${BUILD_CACHE_LIMIT_MIB:-16384}
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/detect-agent
    key=$({
        rustc -vV
        cargo -V
        echo "ziglang $ZIGLANG_VERSION cargo-zigbuild $CARGO_ZIGBUILD_VERSION"
        aarch64-linux-gnu-gcc --version 2>/dev/null | head -n1
        arm-linux-gnueabihf-gcc --version 2>/dev/null | head -n1
    } | sha256sum | cut -c1-16) || return 0
    dir=$cache/target-$key
    mkdir -p "$cache" || return 0
    exec 9>"$cache/target.lock"
    if ! flock -n 9; then
        echo "build cache: $cache/target.lock is held by another run; building in ./target"
        exec 9>&-
        return 0
    fi
    for old in "$cache"/target-*; do
        if [ -d "$old" ] && [ "$old" != "$dir" ]; then
            echo "build cache: removing $old (another toolchain)"
            rm -rf "$old"
        fi
    done
    if [ -d "$dir" ]; then
        size=$(du -sm "$dir" | cut -f1)
        if [ "$size" -gt "$limit" ]; then
            echo "build cache: $dir is $size MiB, over $limit MiB: emptied"
            rm -rf "$dir"
        fi
    fi
    mkdir -p "$dir" || return 0
    echo "build cache: $dir ($(du -sm "$dir" | cut -f1) MiB)"
    export CARGO_TARGET_DIR=$dir CARGO_INCREMENTAL=0
}
