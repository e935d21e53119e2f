#!/usr/bin/python3
"""X helper for benches/slow_links.sh: one Xlib connection (ctypes, libX11) driven by stdin.

Doing these through one long-lived connection instead of spawning `xsetroot`, `xdotool` and
`import` per step keeps the timing exact (each reply's timestamp is taken after XSync, so the
X server has applied the request) and costs no process start per step (2-7 ms of CPU each).

Commands, one per line, each prefixed with a request id (a word, echoed as "id" in the answer);
one JSON line answers each, in order:
    root R G B             root window background := solid colour, cleared   -> {"t": ms}
    move WINDOW X Y        XMoveWindow (WINDOW decimal or 0x hex)          -> {"t": ms}
    pointer X Y            warp the pointer to X,Y and give the root window a blank cursor
                                                                             -> {"t": ms}
    grab X Y W H PATH      XGetImage of the root window's area -> PATH as raw RGB, row-major
                                                                             -> {"t": ms}
"t" is wall-clock milliseconds (time.time(), the clock node's Date.now() reads) after the
request completed (XSync returned; for grab, after the pixels arrived). Errors answer
{"error": "..."}; end of stdin ends the process. DISPLAY selects the X server.
"""

import ctypes
import ctypes.util
import json
import os
import sys
import time


class XImage(ctypes.Structure):
    # Xlib.h, struct _XImage: the fields up to the function table.
    _fields_ = [
        ('width', ctypes.c_int), ('height', ctypes.c_int), ('xoffset', ctypes.c_int),
        ('format', ctypes.c_int), ('data', ctypes.POINTER(ctypes.c_ubyte)),
        ('byte_order', ctypes.c_int), ('bitmap_unit', ctypes.c_int), ('bitmap_bit_order', ctypes.c_int),
        ('bitmap_pad', ctypes.c_int), ('depth', ctypes.c_int), ('bytes_per_line', ctypes.c_int),
        ('bits_per_pixel', ctypes.c_int), ('red_mask', ctypes.c_ulong), ('green_mask', ctypes.c_ulong),
        ('blue_mask', ctypes.c_ulong),
    ]


ZPIXMAP = 2
ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
ALL_PLANES = ctypes.c_ulong(0xFFFFFFFF)


def load_xlib():
    name = ctypes.util.find_library('X11') or 'libX11.so.6'
    x = ctypes.CDLL(name)
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XDefaultRootWindow.restype = ctypes.c_ulong
    x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x.XSetWindowBackground.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    x.XClearWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x.XMoveWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int]
    x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x.XGetImage.restype = ctypes.POINTER(XImage)
    x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                            ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x.XDestroyImage.argtypes = [ctypes.POINTER(XImage)]
    x.XWarpPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                               ctypes.c_uint, ctypes.c_uint, ctypes.c_int, ctypes.c_int]
    x.XCreateBitmapFromData.restype = ctypes.c_ulong
    x.XCreateBitmapFromData.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint]
    x.XCreatePixmapCursor.restype = ctypes.c_ulong
    x.XCreatePixmapCursor.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_void_p,
                                      ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    x.XDefineCursor.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    x.XSetErrorHandler.argtypes = [ERROR_HANDLER]
    x.XSetErrorHandler.restype = ctypes.c_void_p
    return x


def main():
    x = load_xlib()
    dpy = x.XOpenDisplay(None)
    if not dpy:
        sys.exit(f'xhelper: cannot open display {os.environ.get("DISPLAY")!r}')
    root = x.XDefaultRootWindow(dpy)
    # Xlib's default error handler exits the process; record protocol errors instead (a window
    # that went away) and report them with the request that caused them.
    # XErrorEvent: int type, Display *display, XID resourceid, unsigned long serial, then the
    # error code byte at offset 32 (LP64).
    errors = []
    handler = ERROR_HANDLER(lambda _dpy, ev: errors.append(ctypes.cast(ev, ctypes.POINTER(ctypes.c_ubyte))[32]) or 0)
    x.XSetErrorHandler(handler)

    def grab(gx, gy, w, h, path):
        img = x.XGetImage(dpy, root, gx, gy, w, h, ALL_PLANES, ZPIXMAP)
        if not img:
            raise RuntimeError(f'XGetImage {w}x{h}+{gx}+{gy} failed')
        try:
            im = img.contents
            if (im.bits_per_pixel, im.red_mask, im.green_mask, im.blue_mask, im.byte_order) != \
                    (32, 0xFF0000, 0xFF00, 0xFF, 0):
                raise RuntimeError('unsupported X pixel format (want 32 bpp, 0xff0000/0xff00/0xff, LSB first)')
            raw = ctypes.string_at(im.data, im.bytes_per_line * h)
        finally:
            x.XDestroyImage(img)
        stride = w * 4
        if len(raw) != stride * h:
            raw = b''.join(raw[y * (len(raw) // h):y * (len(raw) // h) + stride] for y in range(h))
        rgb = bytearray(w * h * 3)
        rgb[0::3] = raw[2::4]
        rgb[1::3] = raw[1::4]
        rgb[2::3] = raw[0::4]
        tmp = path + '.part'
        with open(tmp, 'wb') as f:
            f.write(rgb)
        os.replace(tmp, path)

    def now_ms():
        return time.time() * 1000.0

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        req, words = words[0], words[1:]
        if not words:
            words = ['']
        try:
            if words[0] == 'root' and len(words) == 4:
                r, g, b = (int(v) for v in words[1:])
                x.XSetWindowBackground(dpy, root, (r << 16) | (g << 8) | b)
                x.XClearWindow(dpy, root)
                x.XSync(dpy, 0)
                out = {'t': now_ms()}
            elif words[0] == 'move' and len(words) == 4:
                x.XMoveWindow(dpy, int(words[1], 0), int(words[2]), int(words[3]))
                x.XSync(dpy, 0)
                out = {'t': now_ms()}
            elif words[0] == 'pointer' and len(words) == 3:
                # A view-only VNC client never sends a pointer position, so VNC servers draw the
                # cursor into the framebuffer it sees (TigerVNC: needRenderedCursor), while
                # XGetImage never shows it. A blank cursor keeps both pictures equal.
                pix = x.XCreateBitmapFromData(dpy, root, b'\x00', 1, 1)
                black = (ctypes.c_ubyte * 16)()  # XColor, all zero
                cur = x.XCreatePixmapCursor(dpy, pix, pix, black, black, 0, 0)
                x.XDefineCursor(dpy, root, cur)
                x.XWarpPointer(dpy, 0, root, 0, 0, 0, 0, int(words[1]), int(words[2]))
                x.XSync(dpy, 0)
                out = {'t': now_ms()}
            elif words[0] == 'grab' and len(words) == 6:
                gx, gy, w, h = (int(v) for v in words[1:5])
                grab(gx, gy, w, h, words[5])
                out = {'t': now_ms()}
            else:
                out = {'error': f'bad command {line.strip()!r}'}
            if errors:
                out = {'error': f'X protocol error (code {errors[0]}) in {line.strip()!r}'}
                errors.clear()
        except Exception as e:  # noqa: BLE001 - reported to the driver, which fails the run
            out = {'error': str(e)}
        out['id'] = req
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
