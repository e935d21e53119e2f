#!/usr/bin/env bash
# Relay benchmark: direct TCP, socat, websockify and wsvnc's relay mode, side
# by side on this machine, in one run. Prints one table of medians with
# ratios against socat. See benches/README.md for what each row measures.
#
# usage: benches/relay_vs_websockify.sh
#   env: REPS=5 (bulk; ≥5 for the README)   RTT_REPS=9   IDLE_CONNS=10000   IDLE_MARK=1000
#        BASE_PORT=20000 (uses BASE_PORT..BASE_PORT+15)   NO_BUILD=1 (skip cargo build)
#        OUT=target/relay-bench (logs, raw results, table)
#        BASELINE=PATH another wsvnc binary (e.g. the build before a change), run as
#                 column "wsvnc-base" beside the others, for before/after in one run
#
# Every server is started in its own session (setsid) and its whole process
# group is stopped by PID on exit, error or signal. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_MARK=${IDLE_MARK:-1000}
BASE_PORT=${BASE_PORT:-20000}
OUT=${OUT:-target/relay-bench}
BULK_BYTES=$((64 << 20)) # per connection
RTT_REPS=${RTT_REPS:-9}
RTT_SMALL_COUNT=${RTT_SMALL_COUNT:-2000}
RTT_LARGE_COUNT=${RTT_LARGE_COUNT:-1000}
IDLE_DEADLINE=60          # seconds per relay for opening idle connections
IDLE_MAX_MEM_MIB=4096     # stop opening when MemAvailable fell by this much
IDLE_HOLD=5               # seconds held before counting

WSLOAD=target/release/examples/wsload
WSVNC=target/release/wsvnc
T0=$(date +%s)

fail() { echo "relay_vs_websockify: $*" >&2; exit 1; }
for tool in socat websockify python3 setsid timeout; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (Debian packages: socat, websockify)"
done

mkdir -p "$OUT"
RES=$OUT/results.txt
: >"$RES"

# ---------------------------------------------------------------- processes

# shellcheck source=benches/lib.sh
. benches/lib.sh

# ---------------------------------------------------------------- relays

# wsvnc-copy: the same binary with --relay-copy (no splice), to weigh the
# zero-copy path in the same run. Left out of the idle phase (same memory).
RELAYS=(direct socat websockify wsvnc wsvnc-copy)
if [ -n "${BASELINE:-}" ]; then
    [ -x "$BASELINE" ] || fail "BASELINE=$BASELINE is not an executable"
    RELAYS+=(wsvnc-base)
fi

# start_relay NAME RELAY_PORT SINK_PORT: sets PID_OF_RELAY ("" for direct).
start_relay() {
    local name=$1 port=$2 sink=$3
    case $name in
    direct) PID_OF_RELAY="" ; return ;;
    socat) start "socat-$port" socat -b 65536 \
        "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay" "TCP:127.0.0.1:$sink,nodelay" ;;
    websockify) start "websockify-$port" websockify "127.0.0.1:$port" "127.0.0.1:$sink" ;;
    wsvnc) start "wsvnc-$port" env RUST_LOG=warn "$WSVNC" --listen "127.0.0.1:$port" \
        --target "127.0.0.1:$sink" --relay --max-connections 30000 ;;
    wsvnc-copy) start "wsvnc-copy-$port" env RUST_LOG=warn "$WSVNC" --listen "127.0.0.1:$port" \
        --target "127.0.0.1:$sink" --relay --max-connections 30000 --relay-copy ;;
    wsvnc-base) start "wsvnc-base-$port" env RUST_LOG=warn "$BASELINE" --listen "127.0.0.1:$port" \
        --target "127.0.0.1:$sink" $(relay_flag "$BASELINE") --max-connections 30000 ;;
    esac
    PID_OF_RELAY=$STARTED
    wait_port "$port"
}

# client_args NAME PORT SINK_PORT: how the load client reaches the relay.
client_args() {
    case $1 in
    direct) echo "--addr 127.0.0.1:$3" ;;
    socat) echo "--addr 127.0.0.1:$2" ;;
    *) echo "--addr 127.0.0.1:$2 --ws /websockify" ;;
    esac
}

# ---------------------------------------------------------------- build

if [ -z "${NO_BUILD:-}" ]; then
    echo "building (release) ..." >&2
    cargo build --release --quiet --bin wsvnc --example wsload
fi
[ -x "$WSLOAD" ] && [ -x "$WSVNC" ] || fail "missing $WSLOAD or $WSVNC (cargo build --release --bin wsvnc --example wsload)"

ulimit -n "$(ulimit -Hn)"
echo "open-file limit: $(ulimit -n)" >&2

# ---------------------------------------------------------------- throughput and latency

start_all "$BASE_PORT"
bulk_runs "$REPS"
# Round trips in their own phase, after a pause. One client holds an echo
# connection through every relay and sends to each in turn, so all four
# see the same load (this machine is shared; latency there is bimodal,
# depending on whether a wakeup finds a free CPU). Repeated RTT_REPS times.
sleep 2
targets=""
for r in "${RELAYS[@]}"; do
    case $r in
    direct) t="127.0.0.1:$SINK_PORT" ;;
    socat) t="127.0.0.1:${PORT[$r]}" ;;
    *) t="127.0.0.1:${PORT[$r]}/websockify" ;;
    esac
    targets="$targets${targets:+,}$r=$t"
done
for rep in $(seq "$RTT_REPS"); do
    echo "echo round trips, repetition $rep/$RTT_REPS ..." >&2
    for size in 64 16384; do
        count=$RTT_SMALL_COUNT key=rtt64
        [ "$size" = 16384 ] && count=$RTT_LARGE_COUNT key=rtt16k
        out=$(timeout 120 "$WSLOAD" rtt --targets "$targets" --size "$size" --count "$count" --warmup 100) ||
            fail "rtt $size failed"
        while read -r line; do
            r=$(sed -n 's/.*target=\([^ ]*\).*/\1/p' <<<"$line")
            record "$r" "$key" "$line" p50_us p99_us
        done <<<"$out"
    done
done
for r in "${RELAYS[@]}"; do
    if [ -n "${PID[$r]}" ]; then stop_group "${PID[$r]}"; fi
done
stop_group "$SINK_PID"

# ---------------------------------------------------------------- idle connections

# Each relay gets a fresh sink and a fresh relay process, so the memory
# baseline is its own and earlier tests leave nothing behind.
i=0
for r in "${RELAYS[@]}"; do
    [ "$r" = wsvnc-copy ] && continue
    sink=$((BASE_PORT + 10))
    port=$((BASE_PORT + 11 + i))
    i=$((i + 1))
    echo "idle: $r, up to $IDLE_CONNS connections ..." >&2
    start "idle-sink-$r" "$WSLOAD" sink --listen "127.0.0.1:$sink"
    sink_pid=$STARTED
    wait_port "$sink"
    start_relay "$r" "$port" "$sink"
    args=$(client_args "$r" "$port" "$sink")
    pidarg=${PID_OF_RELAY:+--pid $PID_OF_RELAY}
    # shellcheck disable=SC2086
    line=$(timeout 200 "$WSLOAD" idle $args --conns "$IDLE_CONNS" --mark "$IDLE_MARK" --hold "$IDLE_HOLD" \
        --deadline "$IDLE_DEADLINE" --max-mem-mib "$IDLE_MAX_MEM_MIB" $pidarg) || fail "$r idle failed"
    echo "  $line" >&2
    record "$r" idle "$line" mem_conns rss_kib_per_conn pss_kib_per_conn opened open_after_hold stop first_error
    if [ -n "$PID_OF_RELAY" ]; then stop_group "$PID_OF_RELAY"; fi
    stop_group "$sink_pid"
done

# ---------------------------------------------------------------- table

ELAPSED=$(($(date +%s) - T0))
python3 - "$RES" "$REPS/$RTT_REPS" "$IDLE_CONNS" "$IDLE_MARK" "$ELAPSED" "$(nproc)" "${RELAYS[*]}" <<'PY' | tee "$OUT/table.txt"
import sys, statistics
from collections import defaultdict
res, reps, idle_n, mark, elapsed, ncpu = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
relays = sys.argv[7].split()
vals = defaultdict(list)
for line in open(res):
    relay, key, v = line.split()
    vals[(relay, key)].append(v)

def nums(r, k):
    return [float(x) for x in vals.get((r, k), []) if x not in ("-", "")]

def median(r, k):
    xs = nums(r, k)
    return statistics.median(xs) if xs else None

def cpu_per_gb(r, c):
    # Pooled over repetitions: Σ CPU-seconds / Σ GB (CPU is counted in
    # clock ticks, so one run's 64 MiB is too short to stand alone).
    cpu, b = nums(r, f"bulk{c}_cpu_s"), nums(r, f"bulk{c}_bytes")
    return sum(cpu) / (sum(b) / 1e9) if cpu and b else None

def held(r):
    o, s = vals.get((r, "idle_open_after_hold")), vals.get((r, "idle_stop"))
    e, n = vals.get((r, "idle_first_error")), vals.get((r, "idle_opened"))
    why = s[0] if s else "-"
    if why != "done" and n:
        why += f" after {n[0]} opened" + (f", first error {e[0]}" if e and e[0] != "-" else "")
    return float(o[0]) if o and o[0] != "-" else None, why

rows = []
for c in (1, 8):
    rows.append((f"bulk {c}x64 MiB  MiB/s", lambda r, c=c: median(r, f"bulk{c}_mib_s"), "{:.0f}"))
    rows.append((f"bulk {c}x64 MiB  CPU-s/GB", lambda r, c=c: cpu_per_gb(r, c), "{:.2f}"))
for k, name in (("rtt64", "64 B"), ("rtt16k", "16 KiB")):
    rows.append((f"echo {name} p50 us", lambda r, k=k: median(r, f"{k}_p50_us"), "{:.1f}"))
    rows.append((f"echo {name} p99 us", lambda r, k=k: median(r, f"{k}_p99_us"), "{:.1f}"))
rows.append((f"idle RSS KiB/conn ({mark})", lambda r: median(r, "idle_rss_kib_per_conn"), "{:.1f}"))
rows.append((f"idle PSS KiB/conn ({mark})", lambda r: median(r, "idle_pss_kib_per_conn"), "{:.1f}"))
rows.append((f"idle held of {idle_n}", lambda r: held(r)[0], "{:.0f}"))

w0, w = 26, 17
print(f"relay benchmark: medians of {reps} (bulk/echo) runs, (x) = ratio to socat; {ncpu} CPUs; run took {elapsed} s")
print("metric".ljust(w0) + "".join(r.rjust(w) for r in relays))
for name, f, fmt in rows:
    base = f("socat")
    cells = []
    for r in relays:
        v = f(r)
        if v is None:
            cells.append("-".rjust(w))
            continue
        s = fmt.format(v)
        if base:
            s += f" ({v / base:.2f})"
        cells.append(s.rjust(w))
    print(name.ljust(w0) + "".join(cells))
for r in relays:
    m = vals.get((r, "idle_mem_conns"))
    if m and m[0] not in ("-", mark):
        print(f"idle {r}: memory measured at {m[0]} connections (all it held)")
    if held(r)[1] not in ("done", "-"):
        print(f"idle {r}: stopped early: {held(r)[1]}")
PY
