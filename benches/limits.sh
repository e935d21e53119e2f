#!/usr/bin/env bash
# Limits benchmark (README "Reliability"): peers that hold resources
# without doing anything, wsvnc beside websockify in one run.
#
#  idle  : N WebSocket upgrades that never say ClientHello (each from its own
#          loopback address, so --max-per-client does not apply): how many
#          VNC connections the server opens for them, memory (PSS of the
#          server and its children) with them open, and how many the server
#          has closed WAIT seconds later (wsvnc: --handshake-timeout, 10 s).
#  burst : 200 connections opened at once that send nothing, then at once a
#          `GET /`: its latency (a SYN dropped because the accept queue was
#          full costs a 1 s retransmission). wsvnc with the default backlog
#          (net.core.somaxconn), wsvnc --backlog 128 (the backlog before), and
#          websockify.
#
# usage: benches/limits.sh
#   env: N=1000 (wsvnc idle peers)  WSFY_N=200 (websockify forks a process per
#        connection: fewer)  WAIT=20  BURST=200  REPS=9  BASE_PORT=21000
#        NO_BUILD=1 (skip cargo build)  OUT=target/limits-bench
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000}
WSFY_N=${WSFY_N:-200}
WAIT=${WAIT:-20}
BURST=${BURST:-200}
REPS=${REPS:-9}
BASE_PORT=${BASE_PORT:-21000}
OUT=${OUT:-target/limits-bench}
WSVNC=target/release/wsvnc
PEERS=benches/limits_peers.py

fail() { echo "limits: $*" >&2; exit 1; }
for tool in websockify python3 setsid; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian packages: websockify, python3)"
done
mkdir -p "$OUT"
RES="$OUT/results.txt"
: >"$RES"
source benches/lib.sh
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
ulimit -n 20000

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) somaxconn=$(cat /proc/sys/net/core/somaxconn)" | tee -a "$RES"

# ---------------------------------------------------------------- idle
run_idle() { # NAME N PATH CMD...
    local name=$1 n=$2 path=$3 port=$((BASE_PORT)) vnc=$((BASE_PORT + 1))
    shift 3
    start "$name" "${@//PORT/$port}"
    local pid=$STARTED
    wait_port "$port"
    # The server's child (websockify) or the server itself.
    python3 "$PEERS" idle --name "$name" --port "$port" --pid "$pid" --vnc-port "$vnc" --path "$path" \
        --n "$n" --wait "$WAIT" | tee -a "$RES"
    stop_group "$pid"
}
run_idle wsvnc "$N" /ws "$WSVNC" --listen 127.0.0.1:PORT --target "127.0.0.1:$((BASE_PORT + 1))"
run_idle websockify "$WSFY_N" /websockify websockify 127.0.0.1:PORT "127.0.0.1:$((BASE_PORT + 1))"

# --------------------------------------------------------------- burst
run_burst() { # NAME CMD...
    local name=$1 port=$((BASE_PORT + 2))
    shift
    start "$name" "${@//PORT/$port}"
    local pid=$STARTED
    wait_port "$port"
    python3 "$PEERS" burst --name "$name" --port "$port" --n "$BURST" --reps "$REPS" | tee -a "$RES"
    stop_group "$pid"
}
run_burst wsvnc "$WSVNC" --listen 127.0.0.1:PORT --target 127.0.0.1:1
run_burst wsvnc-backlog-128 "$WSVNC" --listen 127.0.0.1:PORT --target 127.0.0.1:1 --backlog 128
run_burst websockify websockify 127.0.0.1:PORT 127.0.0.1:1

echo "results in $RES"
