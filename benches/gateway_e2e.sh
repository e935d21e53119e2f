#!/usr/bin/env bash
# End-to-end gateway benchmark (see examples/gwload.rs for what is measured).
#
# Starts the release gateway fresh for every run and drives it with
# `gwload` (N headless v2 viewers, permessage-deflate like browsers), reads
# the gateway's CPU (utime+stime, /proc/PID/stat) and RSS over the
# measurement window, repeats each configuration REPEAT times and prints one
# table of medians.
#
# MODE=split (default): the demo VNC server runs as its own process
#   (`wsvnc --demo-server ... --demo-size 1920x1080`) and the gateway is
#   `wsvnc --target` to it, so the gateway CPU column is the gateway's alone
#   (the demo renders, diffs and encodes 1080p frames: that is VNC-server work).
# MODE=demo: `wsvnc --demo --demo-size 1920x1080`, one process; its CPU then
#   includes the demo server.
#
# Caveats printed with the table: gwload runs on the same machine and its
# viewers inflate and paint every frame, so on a small machine the load
# generator competes with the gateway for the CPU; its own CPU is shown.
#
# Env: PORT (17080) SIZE (1920x1080) SECS (10) WARMUP (3) REPEAT (3)
#      CONFIGS ("N:SLOW:DEFLATE ..."), NICE (nice -n 5)
#      WSVNC, GWLOAD: binaries to use instead of building (e.g. an older build, to compare
#      before/after in the same conditions; gwload must speak that gateway's protocol)
#      BASELINE=PATH another wsvnc binary (e.g. the build before a change) run as
#               the gateway right after each run of this one (rows marked "base")
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-17080}
SIZE=${SIZE:-1920x1080}
SECS=${SECS:-10}
WARMUP=${WARMUP:-3}
REPEAT=${REPEAT:-3}
# 10:1:0 — without deflate a frame is big enough for a 1 MB/s viewer to be slow.
CONFIGS=${CONFIGS:-"1:0:1 10:0:1 50:0:1 10:1:1 10:0:0 10:1:0"}
NICE=${NICE:-nice -n 5}
MODE=${MODE:-split}
VNC_PORT=$((PORT + 1))

if [ -z "${WSVNC:-}" ]; then
  cargo build --release --bin wsvnc --example gwload >&2
fi
WSVNC=${WSVNC:-target/release/wsvnc}
GWLOAD=${GWLOAD:-target/release/examples/gwload}
OUT=$(mktemp -d)
PID=
VPID=
stop() { if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() { stop "$PID"; stop "$VPID"; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; exit 1
}
trap cleanup EXIT INT TERM

BUILDS="new"
[ -n "${BASELINE:-}" ] && BUILDS="new base"
for cfg in $CONFIGS; do
  IFS=: read -r n slow deflate <<<"$cfg"
  for r in $(seq 1 "$REPEAT"); do
   for build in $BUILDS; do
    GW=$WSVNC
    [ "$build" = base ] && GW=$BASELINE
    vnc_args=()
    if [ "$MODE" = split ]; then
      RUST_LOG=warn $WSVNC --demo-server "127.0.0.1:$VNC_PORT" --demo-size "$SIZE" >"$OUT/demo.log" 2>&1 &
      VPID=$!
      wait_port "$VNC_PORT"
      RUST_LOG=warn $GW --listen "127.0.0.1:$PORT" --target "127.0.0.1:$VNC_PORT" --heartbeat 0 \
        >"$OUT/wsvnc.log" 2>&1 &
      PID=$!
      vnc_args=(--vnc-pid "$VPID")
    else
      RUST_LOG=warn $GW --listen "127.0.0.1:$PORT" --demo --demo-size "$SIZE" --heartbeat 0 \
        >"$OUT/wsvnc.log" 2>&1 &
      PID=$!
    fi
    wait_port "$PORT"
    flag=""; [ "$deflate" = 0 ] && flag="--no-deflate"
    echo "run: viewers=$n slow=$slow deflate=$deflate #$r ($build)" >&2
    $NICE $GWLOAD --addr "127.0.0.1:$PORT" --viewers "$n" --slow "$slow" --seconds "$SECS" \
      --warmup "$WARMUP" --pid "$PID" "${vnc_args[@]}" $flag | tee -a "$OUT/all.txt" | grep '^RESULT' \
      | sed "s/^RESULT /RESULT build=$build /" >>"$OUT/results.txt" || true
    stop "$PID"; PID=
    stop "$VPID"; VPID=
   done
  done
done

python3 - "$OUT/results.txt" "$SIZE" "$SECS" "$REPEAT" "$MODE" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    kv = dict(p.split('=', 1) for p in line.split()[1:])
    rows.setdefault((kv['viewers'], kv['slow'], kv['deflate'], kv['build']), []).append(kv)
def med(runs, k):
    v = [float(r[k]) for r in runs if r[k] not in ('nan', 'NaN')]
    return st.median(v) if v else float('nan')
print(f"gateway e2e: demo desktop {sys.argv[2]} (mode {sys.argv[5]}), {sys.argv[3]} s windows, median of {sys.argv[4]} runs")
hdr = ("build", "viewers", "slow", "deflate", "fps/viewer", "fps min", "slow fps", "MB/s/viewer",
       "lat p50 ms", "lat p99 ms", "gw CPU %", "gw µs/frame", "RSS MiB", "peak MiB", "VNC CPU %", "load CPU %", "failed")
print(" | ".join(hdr))
print(" | ".join("---" for _ in hdr))
for (n, s, d, b), runs in rows.items():
    vals = [b, n, s, "on" if d == "1" else "off"]
    for k, fmt in (("fps_med", "{:.1f}"), ("fps_min", "{:.1f}"), ("slow_fps", "{:.1f}"), ("mbs_med", "{:.2f}"),
                   ("lat_p50", "{:.0f}"), ("lat_p99", "{:.0f}"), ("cpu_pct", "{:.0f}"), ("cpu_us_frame", "{:.0f}"),
                   ("rss_mib", "{:.1f}"), ("hwm_mib", "{:.1f}"), ("vnc_cpu_pct", "{:.0f}"), ("load_cpu_pct", "{:.0f}")):
        vals.append(fmt.format(med(runs, k)))
    vals.append(str(sum(int(r['failed']) for r in runs)))
    print(" | ".join(vals))
PY
