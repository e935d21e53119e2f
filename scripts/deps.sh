#!/usr/bin/env bash
# scripts/deps.sh — install what the tests need, when it is missing.
#
# Usage: scripts/deps.sh [apt] [browser] [autobahn] [cross] [fuzz]   (no argument: all five)
#
#   apt       Debian packages (Xvnc, xterm, Chromium, ImageMagick, ...), checked
#             one by one with dpkg-query; `apt-get update` + install only when
#             something is missing.
#   browser   `npm ci` in tests/browser (playwright-core, @novnc/novnc), only
#             when node_modules does not match package-lock.json.
#   autobahn  Python 2.7 + autobahntestsuite in .deps/py27 (the suite runs on
#             Python 2.7 only; Debian 12 has none): Debian 11 python2.7 .debs
#             fetched with a private apt configuration (the system's apt
#             sources are not touched) and unpacked with dpkg -x; pip
#             bootstrapped from PyPI wheels; pinned packages installed
#             --no-deps. Rebuilt only when the recipe below changes.
#             Entry points: .deps/py27/bin/python2.7, .deps/py27/bin/wstest.
#   fuzz      a nightly Rust toolchain (rustup) and cargo-fuzz (cargo install
#             --locked), for the fuzz step.
#   cross     for scripts/cross.sh (run `apt` first): the rustup targets
#             x86_64-unknown-linux-musl and aarch64-unknown-linux-musl, and
#             qemu-aarch64 registered with binfmt_misc (flags F: found from inside
#             containers too), so that aarch64 test binaries can exec the aarch64
#             wsvnc binary.
#
# Runs as root with no standard input (CI). Prints what it installs; any
# failure stops it with a message and a non-zero exit.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[deps] %s\n' "$*" >&2; }
die() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'printf "[deps] FAILED (exit %s) at scripts/deps.sh line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- apt

APT_PACKAGES=(
    # VNC servers, X tools, terminal
    tigervnc-standalone-server tigervnc-tools x11vnc xvfb xterm xfonts-base
    xkb-data x11-xkb-utils x11-utils x11-xserver-utils xauth xdotool xclip
    fonts-dejavu-core
    # browser test
    chromium imagemagick
    # photo content (Tight JPEG test) and an ARGB cursor theme (cursor test)
    gnome-backgrounds adwaita-icon-theme
    # relays and plumbing; noVNC's pages as Debian ships them (websockify-compat test);
    # openssl makes the test CA (scripts/test-ca.sh), nginx is the reverse proxy
    # of the TLS-termination test (tests/proxy)
    socat websockify novnc ca-certificates curl openssl nginx
    # benches/slow_links.sh: network namespaces
    iproute2
    # python3 (bootstrap of the Python 2.7 environment)
    python3 python3-venv python3-pip gcc libc6-dev
    # RFB security tests: AES for the independent ARD vectors
    # (scripts/ard_vectors.py), db_load for the test-only PAM user database
    # of X509Plain (docs/testing-real-servers.md), openssl for test CAs
    python3-cryptography db-util openssl
    # shared libraries the Debian 11 python2.7 build links against
    libbz2-1.0 libcrypt1 libdb5.3 libexpat1 libncursesw6 libnsl2 libreadline8
    libsqlite3-0 libtinfo6 libtirpc3 zlib1g
    # static musl builds and the aarch64 tests under qemu-user (scripts/cross.sh)
    gcc-aarch64-linux-gnu musl-tools qemu-user-static
    # the fleet test (HAProxy, test CA, socket table) and the container image (scripts/image.sh)
    haproxy openssl iproute2 curl jq buildah umoci runc
)

apt_missing() {
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$p"
        fi
    done
}

do_apt() {
    local missing=()
    mapfile -t missing < <(apt_missing "${APT_PACKAGES[@]}")
    # Node.js: the image ships Node 20 (nodesource); playwright-core needs >= 20.
    # Without any node, fall back to Debian's nodejs + npm.
    if ! command -v node >/dev/null 2>&1; then
        missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing+=(npm)
    elif ! command -v npm >/dev/null 2>&1; then
        missing+=(npm)
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt: all ${#APT_PACKAGES[@]} packages present"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "apt: missing ${missing[*]} and not root"
    log "apt: installing: ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=900 update
    apt-get -o DPkg::Lock::Timeout=900 install -y "${missing[@]}" </dev/null
    local still
    still=$(apt_missing "${APT_PACKAGES[@]}")
    [ -z "$still" ] || die "apt: still missing after install: $still"
    log "apt: done"
}

# ---------------------------------------------------------------- browser (npm)

do_browser() {
    local dir="$ROOT/tests/browser"
    command -v node >/dev/null 2>&1 || die "browser: node not found (run: scripts/deps.sh apt)"
    command -v npm >/dev/null 2>&1 || die "browser: npm not found (run: scripts/deps.sh apt)"
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || log "browser: WARNING: node $(node --version) < 20; playwright-core wants >= 20"
    local want have=""
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    [ -f "$dir/node_modules/.wsvnc-lock.sha256" ] && have=$(cat "$dir/node_modules/.wsvnc-lock.sha256")
    if [ "$want" = "$have" ] && [ -f "$dir/node_modules/@novnc/novnc/core/rfb.js" ] \
        && [ -f "$dir/node_modules/playwright-core/package.json" ]; then
        log "browser: node_modules up to date"
        return
    fi
    log "browser: npm ci in tests/browser (playwright-core, @novnc/novnc; no browser download)"
    # playwright-core has no install script; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD
    # is belt and braces.
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund </dev/null)
    printf '%s\n' "$want" > "$dir/node_modules/.wsvnc-lock.sha256"
    log "browser: done"
}

# ---------------------------------------------------------------- autobahn (python 2.7)

PY27="$ROOT/.deps/py27"
# Debian 11 packages, unpacked into $PY27/root. Versions are whatever
# bullseye(-security) serves; the Release signatures are checked by apt.
PY27_DEBS=(python2.7-minimal libpython2.7-minimal libpython2.7-stdlib python2.7 libssl1.1 libffi7
    # headers + build config, to compile wsaccel (below)
    libpython2.7-dev)
# pip for Python 2.7 (last releases supporting it), fetched as wheels.
PY27_BOOT=(pip==20.3.4 setuptools==44.1.1 wheel==0.37.1)
# The whole dependency closure of autobahntestsuite 0.8.2, pinned, installed
# with --no-deps: every entry is a py2 wheel or a pure-Python sdist -- except
# wsaccel, autobahn's "accelerate" extra: a small C extension (UTF-8 validator,
# XOR masker) without a py27 wheel, compiled here by the system gcc against
# libpython2.7-dev's headers. Without it autobahn masks and validates every
# byte in pure Python and groups 9, 12 and 13 alone take over 30 minutes on
# 2 cores (same verdicts, just slow).
PY27_REQS=(
    autobahntestsuite==0.8.2 autobahn==0.10.9 txaio==2.1.0 Twisted==19.10.0
    zope.interface==5.4.0 Automat==22.10.0 PyHamcrest==1.9.0 hyperlink==21.0.0
    attrs==21.4.0 incremental==22.10.0 constantly==15.1.0 six==1.16.0 idna==2.10
    typing==3.10.0.0 pyOpenSSL==21.0.0 cryptography==3.3.2 cffi==1.15.1
    pycparser==2.21 enum34==1.1.10 ipaddress==1.0.23 service-identity==21.1.0
    pyasn1==0.4.8 pyasn1-modules==0.2.8 klein==20.6.0 Tubes==0.2.1
    Werkzeug==1.0.1 Jinja2==2.11.3 MarkupSafe==1.1.1 unittest2==1.1.0
    traceback2==1.4.0 linecache2==1.0.0 ujson==2.0.3 wsaccel==0.6.2
)
PY27_RECIPE="v2 ${PY27_DEBS[*]} | ${PY27_BOOT[*]} | ${PY27_REQS[*]}"

py27_ok() {
    [ -f "$PY27/.stamp" ] && [ "$(cat "$PY27/.stamp")" = "$PY27_RECIPE" ] \
        && "$PY27/bin/wstest" --help >/dev/null 2>&1
}

do_autobahn() {
    if py27_ok; then
        log "autobahn: .deps/py27 up to date ($("$PY27/bin/python2.7" -c 'import autobahntestsuite as a; print("autobahntestsuite " + a.__version__)' 2>/dev/null))"
        return
    fi
    [ "$(dpkg --print-architecture)" = amd64 ] || die "autobahn: only amd64 is supported (Debian 11 py27 + manylinux wheels)"
    command -v /usr/bin/python3 >/dev/null || die "autobahn: /usr/bin/python3 missing (run: scripts/deps.sh apt)"
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || die "autobahn: python3-pip missing (run: scripts/deps.sh apt)"
    local t0=$SECONDS
    log "autobahn: building .deps/py27 (Debian 11 python2.7 + autobahntestsuite 0.8.2)"
    rm -rf "$PY27"
    mkdir -p "$PY27/apt/lists/partial" "$PY27/apt/cache/archives/partial" "$PY27/debs" "$PY27/boot" "$PY27/root" "$PY27/bin"

    # Private apt configuration: own source list, lists and cache; the
    # system's sources, lists and dpkg database are left alone. Bullseye is
    # served by deb.debian.org until it moves to archive.debian.org: try both.
    local apt_opts=(
        -o "Dir::Etc::sourcelist=$PY27/apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
        -o Dir::Etc::preferences=/nonexistent -o Dir::Etc::preferencesparts=/nonexistent
        -o "Dir::State::lists=$PY27/apt/lists" -o "Dir::Cache=$PY27/apt/cache"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Languages=none
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false
    )
    local mirror got=""
    for mirror in http://deb.debian.org http://archive.debian.org; do
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s/%s main\n' \
            "$mirror" "debian bullseye" "$mirror" "debian-security bullseye-security" \
            > "$PY27/apt/sources.list"
        rm -rf "$PY27/apt/lists" "$PY27/debs"
        mkdir -p "$PY27/apt/lists/partial" "$PY27/debs"
        log "autobahn: apt-get update (private source list: $mirror bullseye, bullseye-security)"
        if ! apt-get "${apt_opts[@]}" update </dev/null; then
            log "autobahn: $mirror: apt-get update failed, trying the next mirror"
            continue
        fi
        log "autobahn: apt-get download ${PY27_DEBS[*]}"
        if (cd "$PY27/debs" && apt-get "${apt_opts[@]}" download "${PY27_DEBS[@]}" </dev/null); then
            got=$mirror
            break
        fi
        log "autobahn: $mirror: download failed, trying the next mirror"
    done
    [ -n "$got" ] || die "autobahn: could not download the Debian 11 python2.7 packages"
    local deb
    for deb in "$PY27"/debs/*.deb; do
        dpkg -x "$deb" "$PY27/root"
    done
    ls "$PY27"/debs >"$PY27/debs.txt"
    rm -rf "$PY27/apt" "$PY27/debs"

    # Wrappers: the interpreter finds its stdlib through PYTHONHOME and the
    # bullseye libssl1.1/libffi7 through LD_LIBRARY_PATH (their sonames do not
    # clash with Debian 12's libssl3/libffi8).
    cat > "$PY27/bin/python2.7" <<'EOF'
#!/bin/sh
# Debian 11 python2.7 unpacked under ../root (made by scripts/deps.sh).
here=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONHOME="$here/root/usr"
export LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONNOUSERSITE=1
unset PYTHONPATH
exec "$here/root/usr/bin/python2.7" "$@"
EOF
    cat > "$PY27/bin/wstest" <<'EOF'
#!/bin/sh
# autobahntestsuite's wstest, run by the private python2.7.
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/python2.7" -W ignore::DeprecationWarning "$here/../root/usr/local/bin/wstest" "$@"
EOF
    chmod +x "$PY27/bin/python2.7" "$PY27/bin/wstest"
    "$PY27/bin/python2.7" -c 'import ssl, ctypes, zlib, hashlib; print("python " + __import__("sys").version.split()[0] + ", " + ssl.OPENSSL_VERSION)' >&2 \
        || die "autobahn: the unpacked python2.7 does not run"

    log "autobahn: pip download ${PY27_BOOT[*]} (python3 pip, py2 wheels)"
    /usr/bin/python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 2.7 --implementation py --abi none --platform any \
        -d "$PY27/boot" "${PY27_BOOT[@]}" </dev/null
    local pipwhl
    pipwhl=$(ls "$PY27"/boot/pip-*.whl)
    # pip runs from its own wheel (a zip on sys.path) to install itself.
    # The Debian scheme puts it in root/usr/local (sys.prefix/local).
    log "autobahn: installing pip into the python2.7 tree"
    env -u PIP_FIND_LINKS "$PY27/bin/python2.7" "$pipwhl/pip" install --disable-pip-version-check \
        --no-warn-script-location --no-index --find-links "$PY27/boot" "${PY27_BOOT[@]}" </dev/null
    rm -rf "$PY27/boot"

    log "autobahn: pip install --no-deps ${PY27_REQS[*]}"
    # CFLAGS: the unpacked headers (Debian's sysconfig points at /usr/include).
    env -u PIP_FIND_LINKS PYTHONWARNINGS=ignore \
        CFLAGS="-I$PY27/root/usr/include/python2.7 -I$PY27/root/usr/include" \
        "$PY27/bin/python2.7" -m pip install --disable-pip-version-check \
        --no-python-version-warning --no-warn-script-location --no-deps "${PY27_REQS[@]}" </dev/null
    env PYTHONWARNINGS=ignore "$PY27/bin/python2.7" -m pip check --disable-pip-version-check --no-python-version-warning \
        || die "autobahn: pip check failed"
    "$PY27/bin/python2.7" -c 'import wsaccel.utf8validator, wsaccel.xormask' || die "autobahn: wsaccel does not import"
    "$PY27/bin/wstest" --help >/dev/null 2>&1 || { "$PY27/bin/wstest" --help || true; die "autobahn: wstest does not run"; }
    printf '%s\n' "$PY27_RECIPE" > "$PY27/.stamp"
    log "autobahn: done in $((SECONDS - t0)) s ($PY27/bin/wstest)"
}

# ---------------------------------------------------------------- fuzz

do_fuzz() {
    command -v rustup >/dev/null 2>&1 || die "fuzz: rustup not found (the fuzz step needs a nightly toolchain)"
    if ! rustup toolchain list | grep -q '^nightly'; then
        log "fuzz: installing the nightly toolchain (rustup, minimal profile)"
        rustup toolchain install nightly --profile minimal </dev/null || die "fuzz: cannot install rust nightly"
    fi
    if cargo fuzz --version >/dev/null 2>&1; then
        log "fuzz: $(cargo fuzz --version) present"
        return
    fi
    log "fuzz: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked </dev/null || die "fuzz: cargo install cargo-fuzz failed"
}

# ---------------------------------------------------------------- cross (scripts/cross.sh)

do_cross() {
    command -v rustup >/dev/null 2>&1 || die "cross: rustup not found (the musl targets come from rustup)"
    local t installed
    installed=$(rustup target list --installed)
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        if grep -qx "$t" <<<"$installed"; then continue; fi
        log "cross: rustup target add $t"
        rustup target add "$t" </dev/null
    done
    local conf=/usr/lib/binfmt.d/qemu-aarch64.conf dir=/proc/sys/fs/binfmt_misc
    [ -f "$conf" ] || die "cross: $conf missing (Debian package qemu-user-static; run: scripts/deps.sh apt)"
    if ! mountpoint -q "$dir"; then
        log "cross: mounting binfmt_misc on $dir"
        mount -t binfmt_misc binfmt_misc "$dir" || die "cross: cannot mount binfmt_misc (not root, or no kernel support)"
    fi
    if [ ! -e "$dir/qemu-aarch64" ]; then
        log "cross: registering qemu-aarch64 with binfmt_misc ($conf)"
        grep -v '^#' "$conf" | head -1 >"$dir/register"
    fi
    [ "$(head -1 "$dir/qemu-aarch64")" = enabled ] || echo 1 >"$dir/qemu-aarch64"
    log "cross: rustup musl targets present; qemu-aarch64 registered ($(grep ^flags "$dir/qemu-aarch64"))"
}

# ---------------------------------------------------------------- main

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(apt browser autobahn cross fuzz)
for s in "${steps[@]}"; do
    case "$s" in
        apt) do_apt ;;
        browser) do_browser ;;
        autobahn) do_autobahn ;;
        cross) do_cross ;;
        fuzz) do_fuzz ;;
        *) die "unknown step '$s' (apt, browser, autobahn, cross, fuzz)" ;;
    esac
done
log "all requested steps done: ${steps[*]}"
