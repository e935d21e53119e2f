#!/usr/bin/python3
"""Link emulator for benches/slow_links.sh: an IP link between two network namespaces.

Two TUN devices, one per side: HOST_IF stays in this (the host's) namespace, NS_IF is moved
into the namespace NETNS, where the browser runs. Each side's kernel sees a point-to-point
interface and runs its own, real TCP (congestion window, retransmits, pacing); this process
is the wire between them. Per direction, independently (mahimahi's mm-link + mm-delay model):

    arrival -> drop-tail queue (QUEUE bytes) -> serialiser at RATE bit/s -> DELAY ms -> delivery

A packet that finds more than QUEUE bytes still waiting to be serialised is dropped (so TCP
sees loss only where a real bottleneck router would drop). RATE 0 = unlimited, DELAY 0 and
RATE 0 = packets are passed on at once (the LAN case). The TUN MTU is set per link: 1500 on
shaped links (real packetisation), large on the unshaped one so that a Python forwarder is
not the bottleneck (like GSO/GRO on a real LAN interface).

Control: one command per line on stdin, prefixed with a request id (a word, echoed as "id"),
one JSON line per command on stdout (commands are read once both devices are configured, so the
first answer also says the link is up).
    set RATE_BPS DELAY_MS QUEUE_BYTES MTU   -> {"ok": true}
    stats                                   -> {"down": {...}, "up": {...}, "t": unix_s}
    idle                                    -> {"idle": bool}  (nothing queued or in flight)
"down" is host -> namespace (server to browser), "up" the other way; counters are IP bytes
and packets delivered, bytes and packets dropped, and the largest queue seen (bytes).
End of stdin (the driver exited or died) ends this process, and with it both TUN devices:
the kernel deletes a non-persistent TUN device when its last descriptor closes.
"""

import collections
import fcntl
import json
import os
import selectors
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65536 + 64


def open_tun(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def ip(*args):
    r = subprocess.run(['ip', *args], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise SystemExit(f'linkemu: ip {" ".join(args)}: {r.stderr.strip()}')


class Direction:
    """One direction of the link: queue, serialiser and delay line."""

    def __init__(self, out_fd):
        self.out_fd = out_fd
        self.rate = 0.0  # bytes per second, 0 = unlimited
        self.delay = 0.0  # seconds
        self.queue_limit = 0
        self.busy_until = 0.0  # when the serialiser finishes the last accepted packet
        self.line = collections.deque()  # (deliver_at, packet), deliver_at non-decreasing
        self.stats = dict(bytes=0, packets=0, dropped_bytes=0, dropped_packets=0, max_queue=0)

    def configure(self, rate_bps, delay_ms, queue_bytes):
        self.rate = rate_bps / 8.0
        self.delay = delay_ms / 1000.0
        self.queue_limit = queue_bytes

    def backlog(self, now):
        """Bytes accepted but not yet serialised."""
        if not self.rate or self.busy_until <= now:
            return 0
        return int((self.busy_until - now) * self.rate)

    def arrive(self, packet, now):
        size = len(packet)
        if self.rate:
            backlog = self.backlog(now)
            if backlog + size > self.queue_limit:
                self.stats['dropped_bytes'] += size
                self.stats['dropped_packets'] += 1
                return
            self.stats['max_queue'] = max(self.stats['max_queue'], backlog + size)
            self.busy_until = max(now, self.busy_until) + size / self.rate
            done = self.busy_until
        else:
            done = now
        at = done + self.delay
        if at <= now and not self.line:
            self.deliver(packet)
        else:
            self.line.append((at, packet))

    def deliver(self, packet):
        try:
            os.write(self.out_fd, packet)
        except OSError:
            # The receiving stack refused it (interface going down): a lost packet.
            self.stats['dropped_bytes'] += len(packet)
            self.stats['dropped_packets'] += 1
            return
        self.stats['bytes'] += len(packet)
        self.stats['packets'] += 1

    def flush(self, now):
        """Delivers what is due; returns when the next packet is due (or None)."""
        line = self.line
        while line and line[0][0] <= now:
            self.deliver(line.popleft()[1])
        return line[0][0] if line else None

    def idle(self, now):
        return not self.line and self.backlog(now) == 0


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--netns', required=True)
    ap.add_argument('--host-if', required=True)
    ap.add_argument('--ns-if', required=True)
    ap.add_argument('--host-addr', required=True)
    ap.add_argument('--ns-addr', required=True)
    a = ap.parse_args()

    host_fd = open_tun(a.host_if)
    ns_fd = open_tun(a.ns_if)
    ip('link', 'set', 'dev', a.ns_if, 'netns', a.netns)
    ip('addr', 'add', a.host_addr, 'peer', a.ns_addr, 'dev', a.host_if)
    ip('link', 'set', 'dev', a.host_if, 'up')
    ip('-n', a.netns, 'addr', 'add', a.ns_addr, 'peer', a.host_addr, 'dev', a.ns_if)
    ip('-n', a.netns, 'link', 'set', 'dev', a.ns_if, 'up')
    ip('-n', a.netns, 'link', 'set', 'dev', 'lo', 'up')

    down = Direction(ns_fd)  # read from the host side, written into the namespace
    up = Direction(host_fd)
    sel = selectors.DefaultSelector()
    sel.register(host_fd, selectors.EVENT_READ, down)
    sel.register(ns_fd, selectors.EVENT_READ, up)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    os.set_blocking(sys.stdin.fileno(), False)
    pending = b''

    def command(line, now):
        words = line.split()
        if not words:
            return True
        req, words = words[0], words[1:] or ['']

        def reply(obj):
            obj['id'] = req
            sys.stdout.write(json.dumps(obj) + '\n')
            sys.stdout.flush()

        if words[0] == 'set' and len(words) == 5:
            rate, delay, queue, mtu = (float(words[1]), float(words[2]), int(words[3]), int(words[4]))
            for d in (down, up):
                d.configure(rate, delay, queue)
            ip('link', 'set', 'dev', a.host_if, 'mtu', str(mtu))
            ip('-n', a.netns, 'link', 'set', 'dev', a.ns_if, 'mtu', str(mtu))
            reply({'ok': True})
        elif words[0] == 'stats':
            reply({'down': dict(down.stats), 'up': dict(up.stats), 't': time.time()})
        elif words[0] == 'idle':
            reply({'idle': down.idle(now) and up.idle(now)})
        elif words[0] == 'quit':
            return False
        else:
            reply({'error': f'unknown command {line!r}'})
        return True

    while True:
        now = time.monotonic()
        due = [t for t in (down.flush(now), up.flush(now)) if t is not None]
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        for key, _ in sel.select(timeout):
            d = key.data
            if d is None:
                chunk = os.read(key.fd, 4096)
                if not chunk:
                    return  # the driver is gone
                pending += chunk
                while b'\n' in pending:
                    line, pending = pending.split(b'\n', 1)
                    if not command(line.decode(), time.monotonic()):
                        return
                continue
            # Drain the TUN device: everything the kernel queued arrived "now".
            for _ in range(256):
                try:
                    packet = os.read(key.fd, MAX_PACKET)
                except BlockingIOError:
                    break
                d.arrive(packet, time.monotonic())


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        pass
