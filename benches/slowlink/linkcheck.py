#!/usr/bin/python3
"""Link check for benches/slow_links.sh, run inside the browser's namespace against the
driver's check server at HOST:PORT. Prints one JSON line:
  connect_ms: TCP handshake times (one round trip each) of 5 connections that send nothing;
  mbit:       goodput of one stream (the connection sends b'g'; the server answers with a
              fixed number of bytes and closes), from the first byte to the end."""
import json
import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
handshakes = []
for _ in range(5):
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=30)
    handshakes.append((time.perf_counter() - t0) * 1000)
    s.close()
    time.sleep(0.05)
s = socket.create_connection((host, port), timeout=30)
s.sendall(b'g')
n = 0
first = None
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    if first is None:
        first = time.perf_counter()
    n += len(d)
t2 = time.perf_counter()
print(json.dumps({'connect_ms': sorted(handshakes), 'bytes': n,
                  'mbit': n * 8 / max(1e-6, t2 - (first or t2)) / 1e6}))
