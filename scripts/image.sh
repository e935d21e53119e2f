#!/usr/bin/env bash
# scripts/image.sh — the container image (Dockerfile, FROM scratch), built and run here
# without a Docker engine.
#
#   1. scripts/cross.sh build: the static binaries in dist/linux-{amd64,arm64}/.
#   2. buildah (no daemon; its storage under target/image/) builds the Dockerfile as is for
#      linux/amd64 and linux/arm64 with --timestamp 0 (same binaries, same image digest) and
#      writes the OCI image layout target/image/oci: tags amd64 and arm64, and latest, an
#      index of both platforms (what `docker buildx --platform linux/amd64,linux/arm64`
#      pushes). Copy it anywhere with `skopeo copy oci:target/image/oci:latest docker://...`.
#   3. Each platform's image is unpacked by umoci (which checks every blob's digest) into a
#      runtime bundle and run by runc, the OCI runtime under Docker and containerd: its own
#      PID, network, mount, IPC and UTS namespaces, the image's user, entrypoint and command
#      (the arm64 one through qemu-aarch64, registered with binfmt_misc's F flag so that it is
#      found from inside the container). Checked: the root filesystem holds /wsvnc and nothing
#      else; the process runs as uid/gid 65534; inside the container's network namespace
#      GET / answers with the viewer page and GET /healthz with ok.
#   4. Prints the sizes: the compressed layer (what a registry stores and a host pulls) and
#      the unpacked image.
#
# Needs root (runc, umoci), buildah, umoci, runc (scripts/deps.sh apt) and the cross
# toolchain (scripts/deps.sh cross). Exit 1 when a check fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

WORK=$ROOT/target/image
OCI=$WORK/oci
ARCHES=(amd64 arm64)

for cmd in buildah:buildah umoci:umoci runc:runc curl:curl jq:jq nsenter:util-linux; do
    command -v "${cmd%%:*}" >/dev/null || die "${cmd%%:*} not found (Debian package ${cmd#*:}; run: scripts/deps.sh apt)"
done
[ "$(id -u)" -eq 0 ] || die "needs root (runc and umoci unpack a root filesystem)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
    || die "running the arm64 image needs qemu-aarch64 registered with binfmt_misc (run: scripts/deps.sh cross)"

scripts/cross.sh build

rm -rf "$WORK"
mkdir -p "$WORK"
buildah=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
CONTAINERS=()
cleanup() {
    local c
    for c in "${CONTAINERS[@]:-}"; do
        [ -n "$c" ] && runc --root "$WORK/runc" delete --force "$c" >/dev/null 2>&1
    done
    # vfs layers are plain directories: nothing mounted to undo.
    rm -rf "$WORK/storage" "$WORK/run" "$WORK/runc"
    return 0
}
trap cleanup EXIT

"${buildah[@]}" manifest create wsvnc:latest >/dev/null
for arch in "${ARCHES[@]}"; do
    log "buildah build --platform linux/$arch (Dockerfile)"
    "${buildah[@]}" build --quiet --timestamp 0 --platform "linux/$arch" -t "wsvnc:$arch" . >/dev/null
    "${buildah[@]}" push --quiet "wsvnc:$arch" "oci:$OCI:$arch"
    "${buildah[@]}" manifest add wsvnc:latest "containers-storage:localhost/wsvnc:$arch" >/dev/null
done
"${buildah[@]}" manifest push --quiet --all wsvnc:latest "oci:$OCI:latest"

# Runs the image of one platform under runc; checks it; prints one size line.
check_image() {
    local arch=$1 bundle=$WORK/bundle-$arch id="wsvnc-image-test-$$-$1" pid i ok=""
    local manifest config layer layer_size unpacked
    manifest=$(jq -r --arg t "$arch" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$OCI/index.json")
    config=$(jq -r .config.digest "$OCI/blobs/${manifest/://}")
    [ "$(jq -r .architecture "$OCI/blobs/${config/://}")" = "$arch" ] || die "$arch: config names another architecture"
    [ "$(jq '.layers | length' "$OCI/blobs/${manifest/://}")" -eq 1 ] || die "$arch: more than one layer"
    layer=$(jq -r '.layers[0].digest' "$OCI/blobs/${manifest/://}")
    layer_size=$(stat -c %s "$OCI/blobs/${layer/://}")

    umoci unpack --image "$OCI:$arch" "$bundle" >/dev/null
    local files
    files=$(cd "$bundle/rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')
    [ "$files" = "./wsvnc " ] || die "$arch: root filesystem holds more than /wsvnc: $files"
    unpacked=$(du -sb "$bundle/rootfs" | cut -f1)
    # The bundle's process is the image's (user, entrypoint + cmd). No terminal; no cgroup
    # limits (this machine's hybrid cgroup hierarchy is not what runc expects for them).
    jq '.process.terminal = false | del(.linux.resources)' "$bundle/config.json" >"$bundle/config.json.new"
    mv "$bundle/config.json.new" "$bundle/config.json"
    log "$arch: runc run ($(jq -c '.process.args' "$bundle/config.json"), uid $(jq .process.user.uid "$bundle/config.json"))"
    CONTAINERS+=("$id")
    runc --root "$WORK/runc" run --detach --bundle "$bundle" "$id" </dev/null >"$WORK/$arch.log" 2>&1
    pid=$(runc --root "$WORK/runc" state "$id" | jq .pid)
    for i in $(seq 1 100); do
        if nsenter --target "$pid" --net curl -fsS -o /dev/null http://127.0.0.1:6080/healthz 2>/dev/null; then ok=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$ok" ] || { cat "$WORK/$arch.log" >&2; die "$arch: the container did not answer on 6080"; }
    [ "$(awk '/^Uid:/ {print $2} /^Gid:/ {print $2}' "/proc/$pid/status" | tr '\n' ' ')" = "65534 65534 " ] \
        || die "$arch: the process does not run as 65534:65534"
    [ "$(nsenter --target "$pid" --net curl -fsS http://127.0.0.1:6080/healthz)" = ok ] || die "$arch: /healthz"
    local page
    page=$(nsenter --target "$pid" --net curl -fsS http://127.0.0.1:6080/)
    [[ "$page" == *'<canvas'* ]] || die "$arch: GET / is not the viewer page"
    runc --root "$WORK/runc" kill "$id" KILL
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    runc --root "$WORK/runc" delete --force "$id"
    rm -rf "$bundle"
    printf '[image] linux/%-6s layer %7d bytes compressed (%.2f MiB), %7d bytes unpacked: runs under runc as 65534, GET / and /healthz answer\n' \
        "$arch" "$layer_size" "$(awk -v s="$layer_size" 'BEGIN{print s/1048576}')" "$unpacked"
}

for arch in "${ARCHES[@]}"; do
    check_image "$arch"
done
log "OCI image layout: $OCI (tags: latest = both platforms, ${ARCHES[*]})"
