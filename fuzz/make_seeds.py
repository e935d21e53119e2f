#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/seed-*.

The seeds are the project's own test vectors, restated here: HTTP heads of
src/http/tests.rs, RFC 6455 §5.7 and RFC 7692 §7.2.3 frames of src/ws/, the
RFB kitchen sink of src/rfb/client/tests.rs (every message and encoding),
browser messages of docs/protocol.md, token-file lines of src/config.rs, and
JWTs like those of src/http/access/. Deterministic: running it again writes
the same files. Usage: python3 fuzz/make_seeds.py
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = b"wsvnc fuzz key, thirty-two bytes or more"  # as in fuzz_targets/{http_route,jwt}.rs
EXP = 1_900_000_600  # the targets check at 1_900_000_000


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, header=None, key=KEY):
    h = b64u(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64u(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64u(sig)}"


# ------------------------------------------------------------------ http_route
UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")
good = jwt({"exp": EXP, "token": "lab", "view_only": True})
target = jwt({"exp": EXP, "host": "10.1.2.3", "port": 5901})
http = {
    "get": "GET / HTTP/1.1\r\nHost: 127.0.0.1:6080\r\n\r\n",
    "pipelined": "GET / HTTP/1.1\r\nHost: localhost\r\n\r\nHEAD /js/main.js HTTP/1.1\r\nHost: localhost\r\n\r\n"
                 "GET /healthz HTTP/1.0\r\n\r\n",
    "rebound": "GET /ws HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n" + UPGRADE + "\r\n",
    "ws-jwt": f"GET /ws?jwt={good}&token=lab HTTP/1.1\r\nHost: vnc.example.com\r\n" + UPGRADE +
              "Sec-WebSocket-Protocol: wsvnc.v1\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    "relay-token-jwt": f"GET /websockify?token={target} HTTP/1.1\r\nHost: a.lab.example\r\n" + UPGRADE + "\r\n",
    "cookie": f"GET /app.css HTTP/1.1\r\nHost: [::1]:6080\r\nCookie: x=1; wsvnc_jwt={good}\r\n\r\n",
    "bearer": f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {good}\r\n" + UPGRADE + "\r\n",
    "basic": "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic YW5uOnMzY3JldA==\r\n\r\n",
    "rfc6455": "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n"
               "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "body": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "traversal": "GET /../%2e%2e/etc/passwd?x=%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "version": "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
}
for name, text in http.items():
    write("http_route", name, text.encode())


# ------------------------------------------------------------------ ws_session
def masked(first, payload, key=b"\x37\xfa\x21\x3d"):
    n = len(payload)
    head = bytes([first])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


hello_deflated = bytes([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])  # RFC 7692 §7.2.3.1
ws = {
    # mode byte: bit 0 deflate, bit 1 stream binary; then the chunk size.
    "rfc6455-hello": bytes([0, 255]) + bytes([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
    "fragments-ping-close": bytes([0, 3]) + masked(0x01, b"Hel") + masked(0x89, b"ping") + masked(0x80, b"lo")
                             + masked(0x88, struct.pack(">H", 1000) + b"bye"),
    "binary-stream": bytes([2, 7]) + masked(0x82, bytes(range(200))) + masked(0x82, b"\x00" * 70000),
    "deflate-hello": bytes([1, 255]) + masked(0xc1, hello_deflated) + masked(0x41, hello_deflated[:3])
                     + masked(0x80, hello_deflated[3:]),
    "deflate-binary": bytes([3, 16]) + masked(0xc2, zlib.compressobj(6, zlib.DEFLATED, -15).compress(b"x" * 5000)
                                              + b"\x00\x00\xff\xff"),
    "bad-utf8-close": bytes([0, 255]) + masked(0x81, b"\xff\xfe") + masked(0x88, b"\x03\xe8\xc0"),
}
for name, data in ws.items():
    write("ws_session", name, data)


# ------------------------------------------------------------------ rfb_client
def rect(x, y, w, h, enc):
    return struct.pack(">HHHHi", x, y, w, h, enc)


def update(n):
    return bytes([0, 0]) + struct.pack(">H", n)


def px(r, g, b):
    return bytes([r, g, b, 0])


def z(data):
    c = zlib.compressobj()
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


RAW, COPY, RRE, HEXTILE, ZLIB, TIGHT, ZRLE = 0, 1, 2, 5, 6, 7, 16
DESKTOP_SIZE, LAST_RECT, CURSOR, NAME, EXT_SIZE = -223, -224, -239, -307, -308
sink = update(12)
sink += rect(0, 0, 2, 2, RAW) + px(1, 2, 3) + px(4, 5, 6) + px(7, 8, 9) + px(10, 11, 12)
sink += rect(4, 0, 4, 4, RRE) + struct.pack(">I", 1) + px(20, 20, 20) + px(200, 0, 0) + struct.pack(">HHHH", 1, 2, 2, 1)
sink += rect(16, 0, 16, 16, HEXTILE) + bytes([2]) + px(0, 99, 0)
d = z(bytes([30, 31, 32, 0, 33, 34, 35, 0]))
sink += rect(0, 4, 2, 1, ZLIB) + struct.pack(">I", len(d)) + d
d = z(bytes([1, 40, 41, 42]))
sink += rect(0, 8, 3, 3, ZRLE) + struct.pack(">I", len(d)) + d
sink += rect(4, 8, 2, 2, TIGHT) + bytes([0x80, 50, 51, 52])
sink += rect(4, 12, 2, 1, TIGHT) + bytes([0x00, 60, 61, 62, 63, 64, 65])
sink += rect(8, 8, 2, 2, COPY) + struct.pack(">HH", 0, 0)
sink += rect(1, 0, 2, 1, CURSOR) + px(255, 0, 0) + px(0, 0, 255) + bytes([0b1000_0000])
sink += rect(0, 0, 0, 0, NAME) + struct.pack(">I", 5) + b"renam"
sink += rect(0, 0, 64, 48, EXT_SIZE) + bytes([1, 0, 0, 0]) + struct.pack(">I", 7) + struct.pack(">HHHH", 0, 0, 64, 48) + bytes(4)
sink += rect(64, 48, 0, 0, RAW)
sink += bytes([2]) + bytes([3, 0, 0, 0, 0, 0, 0, 4]) + b"a\xe9\nb"
sink += bytes([1, 0]) + struct.pack(">HHHHHHHH", 255, 2, 0x1200, 0x3400, 0x5600, 1, 2, 3)
sink += update(100) + rect(63, 47, 1, 1, RAW) + px(70, 71, 72) + rect(0, 0, 0, 0, LAST_RECT)
sink += update(1) + rect(0, 0, 8, 6, DESKTOP_SIZE)
# The first byte of a seed is the chunk size for the second feeding.
write("rfb_client", "kitchen-sink", bytes([7]) + sink)
storm = update(201) + b"".join(rect(0, 0, 64, 48 - i % 2, DESKTOP_SIZE) for i in range(200)) + rect(0, 0, 1, 1, RAW) + px(9, 9, 9)
write("rfb_client", "size-storm", bytes([13]) + storm)
# Hextile with subrects, raw and coloured tiles.
hx = rect(0, 0, 20, 18, HEXTILE)
hx += bytes([1]) + b"".join(px(i, i, i) for i in range(256))  # raw 16x16
hx += bytes([2 | 4 | 8 | 16]) + px(1, 1, 1) + px(2, 2, 2) + bytes([2]) + px(3, 3, 3) + bytes([0x11, 0x22]) + px(4, 4, 4) + bytes([0, 0x33])
hx += bytes([2 | 8]) + px(5, 5, 5) + bytes([1, 0x00, 0x00])
hx += bytes([0])
write("rfb_client", "hextile", bytes([5]) + update(1) + hx)
# Tight: palette (2 colours, 1 bit) and gradient filters, zlib-compressed streams.
tp = rect(0, 0, 8, 2, TIGHT) + bytes([0x40, 1, 1]) + px(0, 0, 0)[:3] + px(255, 255, 255)[:3] + bytes([0b10101010, 0b01010101])
data = bytes(range(48))
tg = rect(0, 2, 8, 2, TIGHT) + bytes([0x40 | 0x10, 2]) + bytes([len(z(data))]) + z(data)
write("rfb_client", "tight-filters", bytes([3]) + update(2) + tp + tg)
# ZRLE: palette tile and RLE tile.
zr = bytes([2]) + px(1, 2, 3)[:3] + px(4, 5, 6)[:3] + bytes([0b01010101] * 16)
zr2 = bytes([128]) + px(7, 8, 9)[:3] + bytes([255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 15])
d = z(zr)
d2 = z(zr2)
write("rfb_client", "zrle-tiles", bytes([9]) + update(2) + rect(0, 0, 8, 8, ZRLE) + struct.pack(">I", len(d)) + d
      + rect(0, 8, 64, 40, ZRLE) + struct.pack(">I", len(d2)) + d2)

# ------------------------------------------------------------------ browser_proto
def s(b):
    return struct.pack("<I", len(b)) + b


proto = {
    "hello": bytes([0x80, 1]),
    "input": bytes([0x81, 1]) + struct.pack("<I", 0xff0d) + bytes([0x82]) + struct.pack("<HHB", 10, 20, 1)
             + bytes([0x84]) + struct.pack("<I", 7),
    "clipboard": bytes([0x83]) + s("héllo\nwörld".encode()),
    "resize-password": bytes([0x85]) + struct.pack("<HH", 1920, 1080) + bytes([0x86]) + s(b"secret"),
    "truncated": bytes([0x83, 0xff, 0xff, 0xff, 0x7f, 0x41]),
}
for name, data in proto.items():
    write("browser_proto", name, data)

# ------------------------------------------------------------------ token_file
write("token_file", "lines", b"# comment\nalpha: 127.0.0.1:5901\n beta :[::1]:5902 password=s3cret view_only\n"
      b"sock: unix:/tmp/vnc.sock\nport: 5903\n")
write("token_file", "bad", b"nocolon\na: 127.0.0.1:1 frob\n: 127.0.0.1:2\n")

# ------------------------------------------------------------------ jwt
write("jwt", "valid", b"\x00" + good.encode())
write("jwt", "target", b"\x00" + target.encode())
write("jwt", "alg-none", b"\x00" + (jwt({"exp": EXP}, {"alg": "none"}).rsplit(".", 1)[0] + ".").encode())
write("jwt", "expired", b"\x00" + jwt({"exp": 1}).encode())
write("jwt", "json", b"\x01" + '{"a":[1,-2.5e3,{"b":null}],"c":"\\u00e9\\ud83d\\ude00","d":true}'.encode())
write("jwt", "payload", b"\x02" + json.dumps({"exp": EXP, "host": "10.0.0.1", "port": "5900"}).encode())
# RFC 7515 Appendix A.1 (another key: fails the signature, exercises the parser).
write("jwt", "rfc7515-a1", b"\x00" + b"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      b"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
      b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
print("seeds written under", os.path.join(HERE, "corpus"))
