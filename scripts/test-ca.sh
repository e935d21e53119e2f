#!/usr/bin/env bash
# scripts/test-ca.sh DIR [NAME]...
#
# A throwaway certificate authority for tests and benchmarks (never for
# production): DIR/ca.pem + DIR/ca.key (made once), and for each NAME a leaf
# certificate DIR/NAME.pem with key DIR/NAME.key, signed by the CA, valid
# for localhost, 127.0.0.1 and ::1 (ECDSA P-256, the usual web key), plus
# DIR/NAME.spki: the base64 SHA-256 of its public key, as Chromium's
# --ignore-certificate-errors-spki-list wants it. NAME defaults to "server".
# A leaf that exists is kept. Needs openssl (Debian package openssl).
set -euo pipefail
dir=${1:?usage: scripts/test-ca.sh DIR [NAME]...}
shift
[ $# -gt 0 ] || set -- server
command -v openssl >/dev/null || { echo "test-ca.sh: openssl not found (Debian package openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=wsvnc test CA $$" -out ca.pem 2>/dev/null
fi
for name in "$@"; do
    [ -f "$name.pem" ] && continue
    openssl ecparam -name prime256v1 -genkey -noout -out "$name.key.tmp"
    openssl pkcs8 -topk8 -nocrypt -in "$name.key.tmp" -out "$name.key"
    rm -f "$name.key.tmp"
    openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
        -days 3650 -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    openssl x509 -in "$name.pem" -pubkey -noout | openssl pkey -pubin -outform der \
        | openssl dgst -sha256 -binary | base64 >"$name.spki"
    rm -f "$name.csr" "$name.ext"
done
