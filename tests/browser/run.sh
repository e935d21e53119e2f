#!/usr/bin/env bash
# tests/browser/run.sh [RELAY_CMD]
#
# Runs the noVNC browser tests (node --test) against the WebSocket relay given
# as the first argument or in $RELAY_CMD: a command template with {listen}
# and {target} (HOST:PORT each), split on whitespace, run from the current
# directory. Examples (from the repository root):
#   tests/browser/run.sh 'websockify {listen} {target}'
#   tests/browser/run.sh 'target/release/wsvnc --listen {listen} --target {target} --relay --allow-origin *'
# Needs what scripts/deps.sh installs (apt + browser steps). Artifacts
# (screenshots, process logs) go to tests/browser/artifacts/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RELAY_CMD=${1:-${RELAY_CMD:-}}
if [ -z "$RELAY_CMD" ]; then
    echo "usage: $0 'RELAY COMMAND with {listen} and {target}'  (or set RELAY_CMD)" >&2
    exit 2
fi
export RELAY_CMD
echo "[browser] RELAY_CMD=$RELAY_CMD" >&2
exec node --test --test-concurrency=1 "$here"/*.test.mjs
