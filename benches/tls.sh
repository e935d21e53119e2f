#!/usr/bin/env bash
# TLS benchmark: wsvnc --cert, websockify --cert and socat OPENSSL-LISTEN
# terminating TLS in front of the same sink, side by side in one run, driven
# by one client (examples/wsload.rs with --tls: rustls, a throwaway CA from
# scripts/test-ca.sh, no session resumption). wsvnc's plain relay runs beside
# them as the reference (what TLS costs). See benches/README.md ("TLS").
#
# usage: benches/tls.sh
#   env: REPS=5 (bulk)  RTT_REPS=9  HS_COUNT=2000 (handshakes per run)  HS_REPS=3
#        IDLE=400 (idle TLS connections held per relay)
#        BASE_PORT=21500 (uses BASE_PORT..BASE_PORT+12)  NO_BUILD=1  OUT=target/tls-bench
#        BASELINE=PATH another wsvnc binary (e.g. the build before a change), run as
#                      wsvnc-base-tls beside the others in the same run
#
# Rows: full handshakes per second (4 client threads) and the relay's CPU
# per handshake; bulk server→client MiB/s and CPU-s/GB (1 and 8 connections of
# 64 MiB, relay CPU pooled); echo round trips (64 B, 16 KiB) through each,
# interleaved by one client; memory per idle connection (RSS, PSS of the relay's process
# tree, growth over IDLE connections). socat relays plain TCP inside TLS (no
# WebSocket framing); the others relay WebSocket.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
RTT_REPS=${RTT_REPS:-9}
HS_COUNT=${HS_COUNT:-2000}
HS_REPS=${HS_REPS:-3}
IDLE=${IDLE:-400}
BASE_PORT=${BASE_PORT:-21500}
OUT=${OUT:-target/tls-bench}
BULK_BYTES=$((64 << 20))
WSLOAD=target/release/examples/wsload
WSVNC=target/release/wsvnc
T0=$(date +%s)

fail() { echo "tls bench: $*" >&2; exit 1; }
for tool in socat websockify openssl python3 setsid timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian packages: socat, websockify, openssl)"
done
mkdir -p "$OUT"
RES=$OUT/results.txt
: >"$RES"
# shellcheck source=benches/lib.sh
. benches/lib.sh

if [ -z "${NO_BUILD:-}" ]; then
    echo "building (release) ..." >&2
    cargo build --release --quiet --bin wsvnc --example wsload
fi
CA=$OUT/ca
scripts/test-ca.sh "$CA" server
CERT=$CA/server.pem KEY=$CA/server.key
ulimit -n "$(ulimit -Hn)"

RELAYS=(wsvnc-tls websockify-tls socat-tls wsvnc-plain)
if [ -n "${BASELINE:-}" ]; then
    [ -x "$BASELINE" ] || fail "BASELINE=$BASELINE is not an executable"
    RELAYS+=(wsvnc-base-tls)
fi

# start_relay NAME PORT SINK: sets PID_OF_RELAY.
start_relay() {
    local name=$1 port=$2 sink=$3
    case $name in
    wsvnc-tls | wsvnc-base-tls)
        local bin=$WSVNC
        [ "$name" = wsvnc-base-tls ] && bin=$BASELINE
        start "$name-$port" env RUST_LOG=warn "$bin" --listen "127.0.0.1:$port" \
            --target "127.0.0.1:$sink" --relay --max-connections 30000 --cert "$CERT" --key "$KEY" --ssl-only ;;
    websockify-tls) start "$name-$port" websockify --cert "$CERT" --key "$KEY" --ssl-only \
        "127.0.0.1:$port" "127.0.0.1:$sink" ;;
    socat-tls) start "$name-$port" socat -b 65536 \
        "OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,backlog=4096,cert=$CERT,key=$KEY,verify=0" \
        "TCP:127.0.0.1:$sink,nodelay" ;;
    wsvnc-plain) start "$name-$port" env RUST_LOG=warn "$WSVNC" --listen "127.0.0.1:$port" \
        --target "127.0.0.1:$sink" --relay --max-connections 30000 ;;
    esac
    PID_OF_RELAY=$STARTED
    wait_port "$port"
}

# client_args NAME PORT SINK: how wsload reaches the relay.
client_args() {
    case $1 in
    socat-tls) echo "--addr 127.0.0.1:$2 --tls $CA/ca.pem" ;;
    wsvnc-plain) echo "--addr 127.0.0.1:$2 --ws /websockify" ;;
    *) echo "--addr 127.0.0.1:$2 --ws /websockify --tls $CA/ca.pem" ;;
    esac
}

start_all "$BASE_PORT"

for rep in $(seq "$HS_REPS"); do
    echo "handshakes, repetition $rep/$HS_REPS ..." >&2
    for r in "${RELAYS[@]}"; do
        [ "$r" = wsvnc-plain ] && continue
        line=$(timeout 300 "$WSLOAD" handshakes --addr "127.0.0.1:${PORT[$r]}" --tls "$CA/ca.pem" \
            --count "$HS_COUNT" --conns 4 --pid "${PID[$r]}") || fail "$r handshakes failed"
        record "$r" hs "$line" per_s cpu_ms_each
    done
done
bulk_runs "$REPS"
# Round trips in their own phase: one client holds an echo connection
# through every relay and sends to each in turn, so all see the same load.
sleep 2
targets=""
for r in "${RELAYS[@]}"; do
    case $r in
    socat-tls) t="tls://127.0.0.1:${PORT[$r]}" ;;
    wsvnc-plain) t="127.0.0.1:${PORT[$r]}/websockify" ;;
    *) t="tls://127.0.0.1:${PORT[$r]}/websockify" ;;
    esac
    targets="$targets${targets:+,}$r=$t"
done
for rep in $(seq "$RTT_REPS"); do
    echo "echo round trips, repetition $rep/$RTT_REPS ..." >&2
    for size in 64 16384; do
        out=$(timeout 120 "$WSLOAD" rtt --targets "$targets" --tls "$CA/ca.pem" --size "$size" --count 1000 \
            --warmup 100) || fail "rtt $size failed"
        while read -r line; do
            r=$(sed -n 's/.*target=\([^ ]*\).*/\1/p' <<<"$line")
            record "$r" "rtt$size" "$line" p50_us p99_us
        done <<<"$out"
    done
done
for r in "${RELAYS[@]}"; do stop_group "${PID[$r]}"; done

# Idle: a fresh relay each, IDLE connections, memory growth per connection.
i=0
for r in "${RELAYS[@]}"; do
    port=$((BASE_PORT + 8 + i))
    i=$((i + 1))
    echo "idle: $r, $IDLE connections ..." >&2
    start_relay "$r" "$port" "$SINK_PORT"
    args=$(client_args "$r" "$port")
    # shellcheck disable=SC2086
    line=$(timeout 300 "$WSLOAD" idle $args --conns "$IDLE" --mark "$IDLE" --hold 2 --deadline 120 \
        --pid "$PID_OF_RELAY") || fail "$r idle failed"
    echo "  $line" >&2
    record "$r" idle "$line" rss_kib_per_conn pss_kib_per_conn opened
    stop_group "$PID_OF_RELAY"
done
stop_group "$SINK_PID"

ELAPSED=$(($(date +%s) - T0))
python3 - "$RES" "$ELAPSED" "$(nproc)" "${RELAYS[*]}" "$IDLE" <<'PY' | tee "$OUT/table.txt"
import sys, statistics
from collections import defaultdict
res, elapsed, ncpu, relays, idle = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5]
vals = defaultdict(list)
for line in open(res):
    r, k, v = line.split()
    if v not in ("-", ""):
        vals[(r, k)].append(float(v))
med = lambda r, k: statistics.median(vals[(r, k)]) if vals.get((r, k)) else None
def cpu_gb(r, c):
    cpu, b = vals.get((r, f"bulk{c}_cpu_s")), vals.get((r, f"bulk{c}_bytes"))
    return sum(cpu) / (sum(b) / 1e9) if cpu and b else None
rows = [("handshakes/s (4 clients)", lambda r: med(r, "hs_per_s"), "{:.0f}"),
        ("CPU ms per handshake", lambda r: med(r, "hs_cpu_ms_each"), "{:.2f}")]
for c in (1, 8):
    rows.append((f"bulk {c}x64 MiB MiB/s", lambda r, c=c: med(r, f"bulk{c}_mib_s"), "{:.0f}"))
    rows.append((f"bulk {c}x64 MiB CPU-s/GB", lambda r, c=c: cpu_gb(r, c), "{:.2f}"))
for s, n in ((64, "64 B"), (16384, "16 KiB")):
    rows.append((f"echo {n} p50 us", lambda r, s=s: med(r, f"rtt{s}_p50_us"), "{:.1f}"))
    rows.append((f"echo {n} p99 us", lambda r, s=s: med(r, f"rtt{s}_p99_us"), "{:.1f}"))
rows.append((f"idle RSS KiB/conn ({idle})", lambda r: med(r, "idle_rss_kib_per_conn"), "{:.1f}"))
rows.append((f"idle PSS KiB/conn ({idle})", lambda r: med(r, "idle_pss_kib_per_conn"), "{:.1f}"))
base = "websockify-tls"
w0, w = 28, 17
print(f"TLS benchmark: medians, (x) = ratio to websockify --cert; {ncpu} CPUs; run took {elapsed} s")
print("metric".ljust(w0) + "".join(r.rjust(w) for r in relays))
for name, f, fmt in rows:
    b = f(base)
    cells = []
    for r in relays:
        v = f(r)
        s = "-" if v is None else fmt.format(v) + (f" ({v / b:.2f})" if b else "")
        cells.append(s.rjust(w))
    print(name.ljust(w0) + "".join(cells))
PY
