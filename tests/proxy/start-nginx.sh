#!/usr/bin/env bash
# tests/proxy/start-nginx.sh PREFIX PORT UPSTREAM CERT KEY SNIPPET
# Writes PREFIX/nginx.conf from tests/proxy/nginx.conf.in and runs nginx in
# the foreground (exec: the caller's child is nginx itself, stopped by PID).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 6 ] || { echo "usage: $0 PREFIX PORT UPSTREAM CERT KEY SNIPPET" >&2; exit 2; }
prefix=$1 port=$2 upstream=$3 cert=$4 key=$5 snippet=$6
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx not found (Debian package nginx)" >&2; exit 1; }
mkdir -p "$prefix/tmp"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@UPSTREAM@|$upstream|g" \
    -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" -e "s|@SNIPPET@|$snippet|g" \
    "$here/nginx.conf.in" >"$prefix/nginx.conf"
exec "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off; master_process off;'
