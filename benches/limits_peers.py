#!/usr/bin/env python3
"""Scripted peers for benches/limits.sh (stdlib only).

idle  : a counting stand-in VNC server on --vnc-port, then N WebSocket
        upgrades to --path that never send a byte more (no ClientHello),
        each from its own loopback address (127.1.x.y). Prints one line:
        how many upgraded, how many VNC connections the server opened, the
        server's memory (PSS of the process and its children) before, with
        the sockets open and after --wait seconds, and how many the server
        closed by then (with the median time to close).
burst : REPS times: N connections opened at once that send nothing (from
        their own addresses), then at once a `GET /` from 127.0.0.1, timed
        to the first response byte. Prints the median and the maximum.
"""
import argparse
import base64
import os
import select
import socket
import statistics
import threading
import time


def src_addr(i):
    return f"127.1.{i // 250}.{i % 250 + 1}"


def pss_kib(pid):
    """PSS of `pid` and all its descendants, in KiB."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except OSError:
            pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def counting_vnc(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    state = {"n": 0, "held": []}

    def run():
        while True:
            s, _ = ls.accept()
            state["n"] += 1
            state["held"].append(s)

    threading.Thread(target=run, daemon=True).start()
    return state


def upgrade(i, port, path):
    s = socket.socket()
    s.bind((src_addr(i), 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            break
        head += b
    s.setblocking(False)
    return s, head.startswith(b"HTTP/1.1 101")


def idle(a):
    vnc = counting_vnc(a.vnc_port)
    before = pss_kib(a.pid)
    t0 = time.monotonic()
    socks, ok = [], 0
    for i in range(a.n):
        s, up = upgrade(i, a.port, a.path)
        socks.append(s)
        ok += up
    time.sleep(1)
    opened = time.monotonic()
    held = pss_kib(a.pid)
    vnc_at_open = vnc["n"]
    open_socks = {s.fileno(): s for s in socks}
    closed_at = []
    while open_socks and time.monotonic() - t0 < a.wait:
        r, _, _ = select.select(list(open_socks), [], [], 0.2)
        for fd in r:
            s = open_socks[fd]
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                closed_at.append(time.monotonic() - t0)
                s.close()
                del open_socks[fd]
    time.sleep(max(0.0, a.wait - (time.monotonic() - t0)))
    after = pss_kib(a.pid)
    med = f"{statistics.median(closed_at):.1f}" if closed_at else "-"
    print(
        f"server={a.name} n={a.n} upgraded={ok} vnc_conns_opened={vnc_at_open} "
        f"pss_before_kib={before} pss_open_kib={held} per_conn_kib={(held - before) / max(a.n, 1):.1f} "
        f"closed_by_server={len(closed_at)} median_close_s={med} still_open_at_{a.wait}s={len(open_socks)} "
        f"pss_after_kib={after} open_phase_s={opened - t0:.1f}",
        flush=True,
    )


def timed_get(port):
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    s.recv(1)
    dt = time.monotonic() - t
    s.close()
    return dt


def burst(a):
    times = []
    for _ in range(a.reps):
        hold = []
        for i in range(a.n):
            s = socket.socket()
            s.bind((src_addr(i), 0))
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", a.port))
            except BlockingIOError:
                pass
            hold.append(s)
        times.append(timed_get(a.port))
        for s in hold:
            s.close()
        time.sleep(1.5)  # the server sees the closes; the next round starts clean
    ms = sorted(t * 1000 for t in times)
    print(
        f"server={a.name} half_open={a.n} reps={a.reps} get_median_ms={statistics.median(ms):.1f} "
        f"get_max_ms={ms[-1]:.1f} over_1s={sum(t >= 1000 for t in ms)}",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("idle")
    i.add_argument("--name", required=True)
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--pid", type=int, required=True)
    i.add_argument("--vnc-port", type=int, required=True)
    i.add_argument("--path", default="/ws")
    i.add_argument("--n", type=int, default=1000)
    i.add_argument("--wait", type=float, default=20)
    b = sub.add_parser("burst")
    b.add_argument("--name", required=True)
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--n", type=int, default=200)
    b.add_argument("--reps", type=int, default=9)
    a = p.parse_args()
    idle(a) if a.cmd == "idle" else burst(a)


if __name__ == "__main__":
    main()
