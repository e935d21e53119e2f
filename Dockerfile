# wsvnc as a container image: FROM scratch, nothing in it but the static binary.
#
# The binaries come from scripts/cross.sh (static musl builds in dist/linux-amd64/ and
# dist/linux-arm64/); TARGETARCH (amd64 | arm64) picks one. Either builder:
#   scripts/cross.sh build && docker buildx build --platform linux/amd64,linux/arm64 -t wsvnc .
#   scripts/cross.sh build && buildah build --platform linux/arm64 -t wsvnc .
# scripts/image.sh builds both with buildah, writes an OCI image layout, and runs each image
# under runc (see the README).
#
# Run: docker run -p 6080:6080 wsvnc                        (the built-in demo desktop)
#      docker run -p 6080:6080 -v /etc/wsvnc:/etc/wsvnc:ro wsvnc --target vnc.example:5900 \
#          --basic-auth-file /etc/wsvnc/htpasswd --allowed-host vnc-gw.example
# The entry point listens on 0.0.0.0:6080 inside the container (a non-loopback bind), so wsvnc
# refuses to start without access control (--jwt-secret-file or --basic-auth-file) unless
# --no-auth is given: the demo image says --no-auth; a real target should not. Arguments replace
# the default command.
FROM scratch
ARG TARGETARCH
COPY dist/linux-${TARGETARCH}/wsvnc /wsvnc
# nobody:nogroup. The binary needs no file, device or capability: it binds 6080, dials the
# VNC servers it is configured for, and reads --token-file/--password-file if given.
USER 65534:65534
EXPOSE 6080
ENTRYPOINT ["/wsvnc", "--listen", "0.0.0.0:6080"]
CMD ["--demo", "--no-auth"]
