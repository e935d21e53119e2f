#!/usr/bin/env bash
# benches/slow_links.sh — noVNC 1.7 + websockify against wsvnc's gateway + viewer on real Xvnc
# content (slideshow, scrolling terminal, window drag) through emulated links (LAN, 20 Mbit/s
# 20 ms, 4 Mbit/s 40 ms, 1 Mbit/s 80 ms), side by side in one run. Prints, per link x content,
# updates/s seen by the browser, small-change latency p50/p95, wire KiB/s each way and fidelity
# in motion (PSNR) and at rest (exact match); ratios wsvnc/noVNC. Method: benches/README.md.
#
#   benches/slow_links.sh                 full run (3 runs per cell), ~15 min
#   QUICK=1 benches/slow_links.sh         1 run per cell, shorter phases, ~4 min
#   WSVNC_BIN=/path/to/wsvnc benches/slow_links.sh    another build (skips cargo build)
#   LINKS=lan,4/40 CONTENTS=slideshow CLIENTS=wsvnc RUNS=5 WINDOW_MS=8000 QUEUE_MS=60 ...
#
# Needs root (network namespace, TUN devices). With WSVNC_TEST_OFFSET=N (default 0) it uses
# X display :300+N (SLB_DISPLAY), ports 27000+20N..+3 (SLB_PORT_BASE; Xvnc on 127.0.0.1, the
# web servers and the link check on the link's host address), network namespace
# wsvnc-bench-bN (SLB_NETNS), addresses 10.223.N.1 (host) / 10.223.N.2 (browser).
# Results: target/slowlink-bench/.
# Every process is killed by PID and the namespace removed on exit, error and Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { printf '[slowlink] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites (all named)
missing=()
need() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 || missing+=("command $1 (Debian package $2)")
}
need Xvnc tigervnc-standalone-server
need websockify websockify
need animate imagemagick
need display imagemagick
need convert imagemagick
need xterm xterm
need xwininfo x11-utils
need ip iproute2
need node nodejs
need npm npm
need mkfifo coreutils
[ -x /usr/bin/python3 ] || missing+=("/usr/bin/python3 (Debian package python3)")
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=("${CHROMIUM_PATH:-/usr/bin/chromium} (Debian package chromium)")
compgen -G '/usr/lib/*/libX11.so.6' >/dev/null \
    || missing+=("libX11.so.6 (Debian package libx11-6)")
compgen -G '/usr/share/backgrounds/gnome/*.webp' >/dev/null \
    || missing+=("/usr/share/backgrounds/gnome/*.webp (Debian package gnome-backgrounds)")
if [ ${#missing[@]} -gt 0 ]; then
    printf '[slowlink] missing prerequisites (scripts/deps.sh apt installs them):\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
[ "$(id -u)" -eq 0 ] || die "needs root: network namespace and TUN devices (ip netns, /dev/net/tun)"
[ -c /dev/net/tun ] || die "/dev/net/tun missing: the kernel needs TUN support (CONFIG_TUN)"

if [ -z "${WSVNC_BIN:-}" ]; then
    # The gateway's speed is part of what is measured: a release build.
    nice cargo build --release --quiet --bin wsvnc
    export WSVNC_BIN="$root/target/release/wsvnc"
fi
[ -x "$WSVNC_BIN" ] || die "no wsvnc binary at $WSVNC_BIN"
if [ ! -f tests/browser/node_modules/playwright-core/package.json ] \
    || [ ! -f tests/browser/node_modules/@novnc/novnc/core/rfb.js ]; then
    scripts/deps.sh browser
fi

# ---------------------------------------------------------------- network namespace
export SLB_NETNS=${SLB_NETNS:-wsvnc-bench-b${WSVNC_TEST_OFFSET:-0}}
if ip netns list | grep -qw -- "$SLB_NETNS"; then
    pids=$(ip netns pids "$SLB_NETNS" || true)
    [ -z "$pids" ] || die "network namespace $SLB_NETNS exists and is in use (pids: $pids); another run?"
    echo "[slowlink] removing stale network namespace $SLB_NETNS" >&2
    ip netns del "$SLB_NETNS"
fi
ip netns add "$SLB_NETNS"

node_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$node_pid" 2>/dev/null || true
    fi
    # Anything still inside the namespace was started by this run (Chromium): kill by PID.
    local p
    for p in $(ip netns pids "$SLB_NETNS" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$SLB_NETNS" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "[slowlink] $WSVNC_BIN; namespace $SLB_NETNS; results in ${SLB_OUT:-target/slowlink-bench}" >&2
node benches/slowlink/bench.mjs &
node_pid=$!
wait "$node_pid"
