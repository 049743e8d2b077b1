# shellcheck shell=bash
# cargo-zigbuild + Zig from PyPI, in a private venv (sourced by scripts/setup and
# scripts/cross-build). A venv under the cache dir needs no root, does not touch the system
# Python (Debian 12's pip refuses system installs: PEP 668) and survives between CI runs on
# the same machine, so the ~60 MB download happens once. Pinned: a new Zig can break
# cargo-zigbuild's linker wrapper.
ZIGLANG_VERSION=0.14.1
CARGO_ZIGBUILD_VERSION=0.24.1
ZIGBUILD_VENV=${ZIGBUILD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/detect-agent/zigbuild-venv}

# Installs the pinned versions into $ZIGBUILD_VENV when missing or different, then puts the
# venv's bin/ first on PATH (cargo finds `cargo-zigbuild` there; cargo-zigbuild runs Zig as
# `python3 -m ziglang`, which resolves to the venv's python). Returns non-zero with a message.
zigbuild_ensure() {
    local have_zb have_zig
    have_zb=$("$ZIGBUILD_VENV/bin/cargo-zigbuild" --version 2>/dev/null | awk '{ print $2 }') || true
    have_zig=$("$ZIGBUILD_VENV/bin/python3" -m ziglang version 2>/dev/null) || true
    if [ "$have_zb" != "$CARGO_ZIGBUILD_VERSION" ] || [ "$have_zig" != "$ZIGLANG_VERSION" ]; then
        echo "zigbuild: installing ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION into $ZIGBUILD_VENV" >&2
        command -v python3 >/dev/null 2>&1 || { echo "zigbuild: python3 not found" >&2; return 1; }
        if [ ! -x "$ZIGBUILD_VENV/bin/pip" ]; then
            mkdir -p "$(dirname "$ZIGBUILD_VENV")"
            if ! python3 -m venv "$ZIGBUILD_VENV" >&2; then
                # Debian's system python3 keeps venv (ensurepip) in a separate package.
                rm -rf "$ZIGBUILD_VENV"
                if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
                    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2 \
                        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2; } \
                        || { echo "zigbuild: could not install python3-venv" >&2; return 1; }
                fi
                python3 -m venv "$ZIGBUILD_VENV" >&2 \
                    || { echo "zigbuild: python3 -m venv $ZIGBUILD_VENV failed (install python3-venv)" >&2; return 1; }
            fi
        fi
        "$ZIGBUILD_VENV/bin/pip" install -q --disable-pip-version-check \
            "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" >&2 \
            || { echo "zigbuild: pip install ziglang cargo-zigbuild failed" >&2; return 1; }
    fi
    case ":$PATH:" in
        *":$ZIGBUILD_VENV/bin:"*) ;;
        *) export PATH="$ZIGBUILD_VENV/bin:$PATH" ;;
    esac
}
