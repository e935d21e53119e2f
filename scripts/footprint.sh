#!/usr/bin/env bash
# scripts/footprint.sh [BINARY]
#
# Checks the footprint promises for small hosts and appliances:
#   * the stripped release binary, viewer included, is <= 2 MiB;
#   * a started, idle gateway (listening, a --target configured, no
#     connections yet) has a resident set <= 4 MiB.
# Prints the measured values; exit 1 when a limit is exceeded.
set -euo pipefail
BIN=${1:-target/release/wsvnc}
MAX_BIN=$((2 * 1024 * 1024))
MAX_RSS_KIB=4096
ADDR=127.0.0.1:6099

[ -x "$BIN" ] || { echo "[footprint] $BIN missing: cargo build --release" >&2; exit 2; }
size=$(stat -c %s "$BIN")
printf '[footprint] binary %s: %d bytes (%.2f MiB, limit 2 MiB)\n' "$BIN" "$size" "$(awk -v s="$size" 'BEGIN{print s/1048576}')"

"$BIN" --listen "$ADDR" --target 127.0.0.1:5999 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
ok=""
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null; then ok=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
[ -n "$ok" ] || { echo "[footprint] gateway did not start on $ADDR" >&2; exit 2; }
# One HTTP request so the embedded viewer has been served once (pages touched).
exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}"
printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$ADDR" >&3
cat <&3 >/dev/null; exec 3<&-
sleep 0.3
rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
echo "[footprint] idle gateway RSS: $rss KiB (limit $MAX_RSS_KIB KiB)"

fail=0
[ "$size" -le "$MAX_BIN" ] || { echo "[footprint] FAIL: binary larger than 2 MiB" >&2; fail=1; }
[ "$rss" -le "$MAX_RSS_KIB" ] || { echo "[footprint] FAIL: idle RSS above 4 MiB" >&2; fail=1; }
exit $fail
