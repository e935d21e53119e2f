#!/usr/bin/env bash
# scripts/autobahn.sh HOST:PORT [CASES]
#
# Runs the Autobahn|Testsuite fuzzing client (wstest -m fuzzingclient) against
# a WebSocket echo server already listening at ws://HOST:PORT/, writes the
# reports to reports/autobahn/ (index.html for people, index.json parsed
# here) and prints a summary.
#
#   CASES               comma-separated case patterns, default "*" (all 517
#                       cases, groups 1-13, incl. 9.* limits/performance and
#                       12.*/13.* permessage-deflate)
#   AUTOBAHN_EXCLUDE    comma-separated patterns to leave out (default none)
#   AUTOBAHN_OUT        report folder (default reports/autobahn)
#   AUTOBAHN_ALLOWLIST  recorded non-OK verdicts (default docs/autobahn.md)
#   AUTOBAHN_TIMEOUT    seconds for the whole wstest run (default 1800)
#   AUTOBAHN_SHARDS     wstest processes run side by side, each on every
#                       N-th selected case (default: the number of CPUs, at
#                       most 4); wstest is single-threaded Python and its
#                       own CPU is most of the run time
#
# Exit status: 0 when every case passed by the rules in docs/autobahn.md;
# 1 when a case did not; 2 on a usage or setup error.
# Needs .deps/py27 (scripts/deps.sh autobahn).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf '[autobahn] ERROR: %s\n' "$*" >&2; exit 2; }
log() { printf '[autobahn] %s\n' "$*"; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 HOST:PORT [CASES]"
ADDR=$1
CASES=${2:-*}
HOST=${ADDR%:*}
PORT=${ADDR##*:}
[[ -n "$HOST" && "$PORT" =~ ^[0-9]+$ && "$ADDR" == *:* ]] || die "address must be HOST:PORT, got '$ADDR'"
OUT=${AUTOBAHN_OUT:-$ROOT/reports/autobahn}
ALLOWLIST=${AUTOBAHN_ALLOWLIST:-$ROOT/docs/autobahn.md}
TIMEOUT=${AUTOBAHN_TIMEOUT:-1800}
WSTEST=$ROOT/.deps/py27/bin/wstest

[ -x "$WSTEST" ] || die "$WSTEST missing: run scripts/deps.sh autobahn"
[ -f "$ALLOWLIST" ] || die "allowlist $ALLOWLIST missing"
command -v python3 >/dev/null || die "python3 missing"
# The server must already be listening (wstest would just record failures).
timeout 5 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null \
    || die "nothing accepts TCP connections at $HOST:$PORT (start the echo server first)"

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
python3 - "$OUT/spec.json" "$OUT" "ws://$ADDR" "$CASES" "${AUTOBAHN_EXCLUDE:-}" <<'EOF'
import json, sys
path, outdir, url, cases, exclude = sys.argv[1:]
split = lambda s: [c.strip() for c in s.split(',') if c.strip()]
spec = {
    "outdir": outdir,
    "servers": [{"agent": "wsvnc", "url": url}],
    "cases": split(cases),
    "exclude-cases": split(exclude),
    "exclude-agent-cases": {},
}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF

# The case ids the spec selects, as wstest itself resolves the patterns:
# wstest exits 0 even when it could not connect for some cases, so the
# summary checks that every selected case has a result.
"$ROOT/.deps/py27/bin/python2.7" -W ignore - "$OUT/spec.json" "$OUT/expected.json" <<'EOF' \
    || die "could not resolve the case patterns (see above)"
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseSetname, CaseBasename
from autobahntestsuite.caseset import CaseSet
spec = json.load(open(sys.argv[1]))
cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
json.dump(cs.parseSpecCases(spec), open(sys.argv[2], "w"))
EOF

SHARDS=${AUTOBAHN_SHARDS:-$(nproc 2>/dev/null || echo 1)}
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "AUTOBAHN_SHARDS must be a positive number, got '$SHARDS'"
[ "$SHARDS" -gt 4 ] && SHARDS=4
# One spec per shard: every SHARDS-th case of the resolved list, so each
# shard gets a similar mix of quick and heavy (9.*, 12.*, 13.*) cases.
python3 - "$OUT" "$SHARDS" <<'EOF'
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
spec = json.load(open(os.path.join(out, "spec.json")))
ids = json.load(open(os.path.join(out, "expected.json")))
for i in range(n):
    d = os.path.join(out, "shard%d" % i)
    os.makedirs(d, exist_ok=True)
    s = dict(spec, outdir=d, cases=ids[i::n], **{"exclude-cases": []})
    json.dump(s, open(os.path.join(d, "spec.json"), "w"), indent=2)
EOF

log "wstest -m fuzzingclient against ws://$ADDR, cases '$CASES'${AUTOBAHN_EXCLUDE:+, excluding '$AUTOBAHN_EXCLUDE'}, $SHARDS shard(s) (logs: $OUT/shard*/wstest.log)"
start=$SECONDS
pids=()
for i in $(seq 0 $((SHARDS - 1))); do
    (cd "$OUT/shard$i" && exec timeout "$TIMEOUT" "$WSTEST" -m fuzzingclient -s "$OUT/shard$i/spec.json") \
        >"$OUT/shard$i/wstest.log" 2>&1 &
    pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
    set +e
    wait "${pids[$i]}"; r=$?
    set -e
    if [ $r -ne 0 ]; then
        tail -n 30 "$OUT/shard$i/wstest.log" >&2
        [ $r -eq 124 ] && log "shard $i: wstest timed out after $TIMEOUT s" >&2
        rc=$r
    fi
done
elapsed=$((SECONDS - start))
log "wstest finished in ${elapsed} s (exit $rc)"
[ $rc -eq 0 ] || die "wstest failed (exit $rc)"
cat "$OUT"/shard*/wstest.log >"$OUT/wstest.log"
# One index.json for the summary below: the shards' results merged.
python3 - "$OUT" "$SHARDS" <<'EOF' || die "a shard wrote no index.json (see its wstest.log)"
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
merged = {}
for i in range(n):
    for agent, cases in json.load(open(os.path.join(out, "shard%d" % i, "index.json"))).items():
        merged.setdefault(agent, {}).update(cases)
json.dump(merged, open(os.path.join(out, "index.json"), "w"))
EOF

grep -E 'Connection to .* failed' "$OUT/wstest.log" | head -n 5 >&2 || true

python3 - "$OUT/index.json" "$ALLOWLIST" "$elapsed" "$OUT/expected.json" <<'EOF'
import collections, fnmatch, json, re, sys

index_path, allow_path, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3])
expected = json.load(open(sys.argv[4]))

def case_key(cid):
    return tuple(int(p) for p in cid.split('.'))

# Allowlist: the markdown table under "## Recorded non-OK verdicts":
#   | case pattern | verdict | reason |
allow = []
in_section = False
for line in open(allow_path, encoding="utf-8"):
    if line.startswith("## "):
        in_section = line.strip().lower().startswith("## recorded non-ok verdicts")
        continue
    if not in_section or not line.lstrip().startswith("|"):
        continue
    cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
    if len(cells) < 3 or not re.match(r"^[0-9*][0-9.*]*$", cells[0]):
        continue  # header, separator or malformed row
    allow.append({"pattern": cells[0], "verdict": cells[1].upper(), "reason": cells[2], "used": 0})

def allowed(cid, verdict):
    for a in allow:
        if fnmatch.fnmatchcase(cid, a["pattern"]) and a["verdict"] in (verdict, "*"):
            a["used"] += 1
            return a["reason"]
    return None

index = json.load(open(index_path))
# No agent at all when no case could connect.
agent, cases = next(iter(index.items())) if index else ("(none)", {})

behaviors = collections.Counter(c["behavior"] for c in cases.values())
closes = collections.Counter(c["behaviorClose"] for c in cases.values())
total_ms = sum(c.get("duration", 0) for c in cases.values())

problems = []   # (case, text) that make the run fail
notes = []      # (case, text) non-OK but accepted
missing = [cid for cid in expected if cid not in cases]
if not expected:
    print("[autobahn] the case patterns select no case"); sys.exit(1)
for cid in sorted(cases, key=case_key):
    c = cases[cid]
    b, bc = c["behavior"], c["behaviorClose"]
    if b == "OK" and bc == "OK":
        continue
    text = "behavior=%s close=%s remoteCloseCode=%s" % (b, bc, c.get("remoteCloseCode"))
    bad = []
    if b in ("FAILED", "UNIMPLEMENTED"):
        bad.append("%s is never accepted" % b)
    elif b == "NON-STRICT":
        reason = allowed(cid, b)
        if reason is None:
            bad.append("NON-STRICT not recorded in %s" % allow_path)
        else:
            text += "  [recorded: %s]" % reason
    elif b not in ("OK", "INFORMATIONAL"):
        bad.append("unknown behavior %s" % b)
    if bc not in ("OK", "INFORMATIONAL"):
        bad.append("closing behaviour %s" % bc)
    if bad:
        problems.append((cid, text + "  <- " + "; ".join(bad)))
    else:
        notes.append((cid, text))

def print_cases(rows):
    # One line per case; a whole group with one identical verdict (e.g. all
    # of 12.* UNIMPLEMENTED) is folded into one line.
    by_group = collections.OrderedDict()
    for cid, text in rows:
        by_group.setdefault(cid.split(".")[0], []).append((cid, text))
    for group, items in by_group.items():
        in_group = [k for k in cases if k.split(".")[0] == group]
        texts = set(t for _, t in items)
        if len(items) == len(in_group) and len(items) > 5 and len(texts) == 1:
            print("  %-9s %s  (all %d cases of group %s)" % (group + ".*", texts.pop(), len(items), group))
        else:
            for cid, text in items:
                print("  %-9s %s" % (cid, text))

print("[autobahn] agent %s: %d cases in %d s (sum of case durations %.1f s)"
      % (agent, len(cases), elapsed, total_ms / 1000.0))
print("[autobahn] behavior:      " + ", ".join("%s %d" % (k, behaviors.get(k, 0))
      for k in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"))
      + "".join(", %s %d" % (k, v) for k, v in behaviors.items()
                if k not in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")))
print("[autobahn] behaviorClose: " + ", ".join("%s %d" % kv for kv in sorted(closes.items())))
if notes:
    print("[autobahn] accepted non-OK verdicts (%d):" % len(notes))
    print_cases(notes)
for a in allow:
    if a["used"] == 0:
        print("[autobahn] note: allowlist row '%s %s' matched no case in this run" % (a["pattern"], a["verdict"]))
if missing:
    print("[autobahn] NOT RUN (%d of %d selected cases have no result; connection failures "
          "are in wstest.log): %s" % (len(missing), len(expected), " ".join(missing[:20])
                                      + (" ..." if len(missing) > 20 else "")))
if problems:
    print("[autobahn] FAILING cases (%d):" % len(problems))
    print_cases(problems)
if problems or missing:
    print("[autobahn] FAIL: %d of %d cases not accepted, %d not run (report: %s)"
          % (len(problems), len(expected), len(missing), index_path.replace("index.json", "shard*/index.html")))
    sys.exit(1)
print("[autobahn] PASS: all %d cases accepted" % len(cases))
EOF
