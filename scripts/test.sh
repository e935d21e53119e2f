#!/usr/bin/env bash
# scripts/test.sh — run every test of wsvnc. The one command CI (.ci/run) and
# the README give.
#
#   scripts/test.sh            everything (installs what is missing first)
#   scripts/test.sh STEP...    only some steps, in the order given:
#       deps      scripts/deps.sh: apt packages (Xvnc, x11vnc, Xvfb, xterm,
#                 chromium, ...), npm packages, the Autobahn Python 2.7 venv
#       cargo     cargo test (unit + integration tests, incl. real Xvnc/x11vnc,
#                 TLS with a test CA, a real nginx in front of wsvnc), and a
#                 check of the build without the `tls` feature
#       autobahn  the Autobahn testsuite (groups 1-13) against examples/echo
#       novnc     noVNC 1.7 in Chromium through wsvnc's relay mode to Xvnc,
#                 plain and over wss://
#       viewer    wsvnc's own viewer in Chromium (mock gateway + real Xvnc;
#                 over https/wss; behind nginx terminating TLS)
#       footprint stripped release binary <= 2 MiB, idle gateway RSS <= 4 MiB
#       cross     static musl builds for x86_64 and aarch64 (sizes), and the unit and
#                 integration tests for aarch64 under qemu-user (scripts/cross.sh)
#       image     the FROM-scratch container image: built from the Dockerfile by
#                 buildah, run under runc for amd64 and arm64 (scripts/image.sh)
#       fleet     three instances behind a real HAProxy: routing by token, TLS,
#                 failover and rejoin, Chromium viewers (tests/fleet)
#       fuzz      every cargo-fuzz target (fuzz/) for a fixed number of runs
#                 from the committed seed corpus (docs/fuzzing.md)
#
# Every step must pass; nothing is skipped because a server or browser is
# missing (deps installs them, and the tests fail loudly without them).
# Output of each step is printed; a summary of all steps comes at the end.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TERM_COLOR=never
# Test builds with line tables only (backtraces keep file:line) and without
# incremental state (a fresh clone never reuses it). Measured from a fresh
# clone on the 2-core VM, two runs each: the host test build 80.6/81.4 s ->
# 60.1/62.1 s, the aarch64 test build 174.3/173.5 s -> 137.9/136.6 s,
# target/ 4.6 -> 1.8 GB.
# Exported only here, so a developer's own `cargo test` keeps full debug info
# (and the two do not share build artefacts).
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
ALL_STEPS=(deps cargo autobahn novnc viewer footprint cross image fleet fuzz)
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=("${ALL_STEPS[@]}")

log() { printf '\n[test] ===== %s\n' "$*"; }
declare -a RESULTS=()
FAILED=0
CHILDREN=()
cleanup() {
    local pid
    for pid in "${CHILDREN[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    return 0
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

release_build() {
    # One release build serves the Autobahn echo server, the relay and the
    # footprint check.
    [ -n "${RELEASE_BUILT:-}" ] && return 0
    cargo build --release --locked --bin wsvnc --example echo || return 1
    RELEASE_BUILT=1
}

# Wait until HOST:PORT accepts TCP connections (a server we started).
wait_port() {
    local addr=$1 pid=$2 i
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || { echo "[test] server (pid $pid) exited early" >&2; return 1; }
        (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "[test] nothing listening on $addr after 20 s" >&2
    return 1
}

step_deps() { scripts/deps.sh apt browser autobahn cross fuzz && (cd tests/viewer && deps_viewer) && (cd tests/fleet && deps_viewer); }
deps_viewer() {
    # tests/viewer has its own package.json (playwright-core, ws).
    local want have=""
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    [ -f node_modules/.wsvnc-lock.sha256 ] && have=$(cat node_modules/.wsvnc-lock.sha256)
    [ "$want" = "$have" ] && return 0
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund </dev/null || return 1
    printf '%s\n' "$want" > node_modules/.wsvnc-lock.sha256
}

# The `tls` feature (rustls, VeNCrypt) is on by default; the build without
# it must keep compiling (and refusing VeNCrypt X509 with a message).
step_cargo() { cargo test --locked --all-features && cargo check --locked --no-default-features --all-targets; }

step_autobahn() {
    release_build || return 1
    local addr=127.0.0.1:$((9001 + ${WSVNC_TEST_OFFSET:-0})) pid rc
    RUST_LOG=warn target/release/examples/echo "$addr" >reports-echo.log 2>&1 &
    pid=$!; CHILDREN+=("$pid")
    wait_port "$addr" "$pid" || return 1
    scripts/autobahn.sh "$addr"; rc=$?
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    rm -f reports-echo.log
    return $rc
}

step_novnc() {
    release_build || return 1
    # The test page comes from the test's own static server (another origin),
    # as with websockify, which accepts any Origin by default.
    local relay="$ROOT/target/release/wsvnc --listen {listen} --target {target} --relay --allow-origin *"
    tests/browser/run.sh "$relay" || return 1
    # Again over wss:// (TLS only), with a throwaway CA.
    local ca
    ca=$(mktemp -d) && scripts/test-ca.sh "$ca" server || return 1
    RELAY_TLS_SPKI=$(cat "$ca/server.spki") tests/browser/run.sh \
        "$relay --cert $ca/server.pem --key $ca/server.key --ssl-only"
    local rc=$?
    rm -rf "$ca"
    return $rc
}

step_viewer() {
    cargo build --locked --bin wsvnc || return 1
    (cd tests/viewer && WSVNC_BIN="$ROOT/target/debug/wsvnc" npm test)
}

step_footprint() {
    release_build || return 1
    scripts/footprint.sh target/release/wsvnc
}

# Runs per fuzz target: a short, fixed amount of work so CI catches a
# regression on the seed corpus and its near neighbours; long campaigns are
# run by hand (docs/fuzzing.md). FUZZ_RUNS=N overrides for every target.
FUZZ_RUNS=${FUZZ_RUNS:-}
step_fuzz() {
    local targets t runs out rc=0
    targets=$(cd fuzz && cargo +nightly fuzz list) || return 1
    (cd fuzz && cargo +nightly fuzz build -O) || return 1
    out=$(mktemp -d)
    for t in $targets; do
        # About 10 s each on an idle 2-core VM, a minute on a loaded one (execs/s
        # measured on a loaded one:
        # token_file 19k, browser_proto/jwt 7k, http_route 5k, rfb_client
        # 1.1k, ws_session 0.8k).
        case $t in
            rfb_client|ws_session) runs=${FUZZ_RUNS:-16000} ;;
            http_route|browser_proto|jwt) runs=${FUZZ_RUNS:-100000} ;;
            *) runs=${FUZZ_RUNS:-300000} ;;
        esac
        mkdir -p "$out/$t"
        echo "[test] fuzz $t: $runs runs"
        # New inputs go to a scratch corpus; the committed seeds are only read.
        if ! (cd fuzz && cargo +nightly fuzz run -O "$t" "$out/$t" "corpus/$t" -- \
                -runs="$runs" -seed=1 -timeout=10 -rss_limit_mb=3072 -print_final_stats=1 2>&1 | tail -n 12); then
            echo "[test] fuzz $t FAILED (crash input in fuzz/artifacts/$t/)" >&2
            rc=1
        fi
    done
    rm -rf "$out"
    return $rc
}

step_cross() { scripts/cross.sh build test; }

step_image() { scripts/image.sh; }

step_fleet() {
    release_build || return 1
    (cd tests/fleet && WSVNC_BIN="$ROOT/target/release/wsvnc" npm test)
}

for step in "${STEPS[@]}"; do
    case " ${ALL_STEPS[*]} " in *" $step "*) ;; *) echo "unknown step '$step' (steps: ${ALL_STEPS[*]})" >&2; exit 2;; esac
    log "$step"
    t0=$SECONDS
    if "step_$step"; then
        RESULTS+=("PASS  $step ($((SECONDS - t0)) s)")
    else
        RESULTS+=("FAIL  $step ($((SECONDS - t0)) s)")
        FAILED=1
        # Without dependencies nothing else can run meaningfully.
        [ "$step" = deps ] && break
    fi
done

log "summary"
printf '  %s\n' "${RESULTS[@]}"
if [ $FAILED -ne 0 ]; then
    echo "[test] FAILED" >&2
    exit 1
fi
echo "[test] all steps passed"
