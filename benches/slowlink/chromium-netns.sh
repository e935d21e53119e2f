#!/bin/sh
# Chromium inside the benchmark's network namespace: Playwright's executablePath for
# benches/slow_links.sh. `ip netns exec` execs Chromium in place (same PID, same inherited
# descriptors, so Playwright's --remote-debugging-pipe keeps working), and every connection it
# opens leaves the namespace only through the emulated link.
set -eu
: "${SLB_NETNS:?SLB_NETNS (the namespace) must be set}"
exec ip netns exec "$SLB_NETNS" "${CHROMIUM_PATH:-/usr/bin/chromium}" "$@"
