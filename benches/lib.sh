# benches/lib.sh — shell helpers shared by the relay benchmarks (sourced).
# Needs: OUT (log directory), RES (results file), fail(); for start_all and
# bulk_runs also RELAYS, WSLOAD, BULK_BYTES and the script's start_relay and
# client_args.

declare -gA PORT PID

GROUPS_STARTED=()
cleanup() {
    local g
    for g in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    sleep 0.5
    for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD as the leader of a new process group; sets STARTED.
start() {
    local name=$1
    shift
    setsid "$@" >"$OUT/$name.log" 2>&1 &
    STARTED=$!
    GROUPS_STARTED+=("$STARTED")
}

# stop_group PGID: stop a group started by `start` and wait for all of it to go.
stop_group() {
    local g=$1 i
    kill -TERM -- "-$g" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 -- "-$g" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$g" 2>/dev/null || true
    sleep 0.2
}

# relay_flag BIN: "--relay" when that wsvnc build has relay mode opt-in (and
# needs it), nothing for an older build that relays by default.
relay_flag() {
    if "$1" --help 2>/dev/null | grep -q -- '--relay '; then echo --relay; fi
}

wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    fail "nothing listens on 127.0.0.1:$port (see $OUT/*.log)"
}

# record RELAY KEY LINE FIELD...: append "relay key_field value" rows.
record() {
    local relay=$1 key=$2 line=$3
    shift 3
    local f v
    for f in "$@"; do
        v=$(sed -n "s/.*\b$f=\([^ ]*\).*/\1/p" <<<"$line")
        echo "$relay ${key}_$f ${v:--}" >>"$RES"
    done
}


# start_all SINK_PORT: the sink on SINK_PORT and every relay of RELAYS on the
# ports after it; fills PORT[relay] and PID[relay], sets SINK_PID.
start_all() {
    SINK_PORT=$1
    start sink "$WSLOAD" sink --listen "127.0.0.1:$SINK_PORT"
    SINK_PID=$STARTED
    wait_port "$SINK_PORT"
    local r i=1
    for r in "${RELAYS[@]}"; do
        PORT[$r]=$((SINK_PORT + i))
        start_relay "$r" "${PORT[$r]}" "$SINK_PORT"
        PID[$r]=$PID_OF_RELAY
        i=$((i + 1))
    done
}

# bulk_runs REPS: 1 and 8 connections of BULK_BYTES each through every relay,
# REPS times, relays interleaved; recorded as bulk1_* and bulk8_*.
bulk_runs() {
    local rep r c args pidarg line
    for rep in $(seq "$1"); do
        echo "bulk, repetition $rep/$1 ..." >&2
        for r in "${RELAYS[@]}"; do
            args=$(client_args "$r" "${PORT[$r]}" "$SINK_PORT")
            pidarg=${PID[$r]:+--pid ${PID[$r]}}
            for c in 1 8; do
                # shellcheck disable=SC2086
                line=$(timeout 300 "$WSLOAD" bulk $args --bytes $((BULK_BYTES * c)) --conns $c $pidarg) ||
                    fail "$r bulk $c failed"
                record "$r" "bulk$c" "$line" mib_s cpu_s bytes
            done
        done
    done
}
