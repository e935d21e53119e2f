#!/usr/bin/env bash
# benches/viewer_vs_novnc.sh — the wsvnc viewer (gateway mode) against noVNC 1.7 (through
# wsvnc's relay mode) on the same animated demo desktop, in headless Chromium; prints one
# table of medians with ratios. See benches/viewer_bench.mjs for what is measured and how.
#
#   benches/viewer_vs_novnc.sh             RUNS=5 WINDOW_MS=5000 by default
#   RUNS=9 benches/viewer_vs_novnc.sh
#   WSVNC_BIN=target/debug/wsvnc benches/viewer_vs_novnc.sh   (skips the release build)
#
# Needs: chromium (Debian), node 20, npm (playwright-core in tests/viewer, @novnc/novnc in
# tests/browser: installed here with `npm ci` when missing). Uses 127.0.0.1:19150-19152
# (+ 1000 · WSVNC_TEST_OFFSET).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [ -z "${WSVNC_BIN:-}" ]; then
    # The gateway's own speed shows in first-pixel time and frame rate: measure a release build.
    nice cargo build --release --quiet
    export WSVNC_BIN="$root/target/release/wsvnc"
fi
[ -x "$WSVNC_BIN" ] || { echo "no wsvnc binary at $WSVNC_BIN" >&2; exit 1; }
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ] || {
    echo "Chromium missing: apt-get install chromium" >&2; exit 1; }
for dir in tests/viewer tests/browser; do
    [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund --silent)
done
echo "[bench] $WSVNC_BIN, RUNS=${RUNS:-5}, WINDOW_MS=${WINDOW_MS:-5000}" >&2
exec nice node benches/viewer_bench.mjs
