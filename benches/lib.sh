# benches/lib.sh — shell helpers shared by the relay benchmarks (sourced).
# Needs: OUT (log directory), RES (results file), fail().

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

