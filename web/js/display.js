// The remote screen: one <canvas> whose bitmap is the remote desktop (one canvas pixel per
// remote pixel), drawing whole frames at once, the remote cursor, and scaling.
//
// Drawing ops (Resize, Fill, Copy, Pixels) are queued until EndFrame and then applied in
// order inside one task, so the browser never paints half a frame (docs/protocol.md,
// "Pacing"). Copy reads the canvas as it is at that point of the frame (CopyRect semantics).
//
// Scaling. "native" (1:1) means one remote pixel per *CSS* pixel: a 1920×1080 desktop has
// the same on-screen size as a 1920×1080 web page, whatever devicePixelRatio is, and the
// remote-resize request asks for the window size in CSS pixels. On a HiDPI screen the canvas
// is then upscaled by devicePixelRatio with `image-rendering: pixelated`, which keeps edges
// sharp at integer ratios. "fit" scales the canvas to the largest size that fits the window
// with its aspect kept; pixelated when that enlarges, smooth when it shrinks.
// Pointer coordinates are mapped from the canvas's on-screen box (getBoundingClientRect) to
// its bitmap size, which is correct for every mode, zoom level and ratio.

import { S, ProtocolError } from './protocol.js';

// A frame is composed from the current framebuffer, so it covers the desktop at most about
// once: more than twice the desktop's pixels (plus slack), or this many ops, without an
// EndFrame is a broken gateway, and memory must not grow with it.
const MAX_FRAME_OPS = 1 << 20;
const FRAME_SLACK_BYTES = 1 << 20;

export class Display {
  constructor(canvas, viewport) {
    this.canvas = canvas;
    this.viewport = viewport;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.width = 0;
    this.height = 0;
    this.ops = [];
    this.queuedBytes = 0;
    this.queuedArea = 0; // largest desktop area in force during the queued frame
    this.mode = 'fit';
    this.scale = 1;
    this.cursorCss = 'default';
    this.onLayout = null; // called after the on-screen size changed
  }

  /** Sets the desktop size; keeps the picture when the size is unchanged (reconnect). */
  setSize(width, height) {
    if (width === this.width && height === this.height) return;
    this.width = width;
    this.height = height;
    this.canvas.width = width;
    this.canvas.height = height;
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, width, height);
    this.layout();
  }

  /** Queues one drawing message of the current frame; throws when the frame is too big. */
  queue(m) {
    this.queuedArea = Math.max(this.queuedArea, this.width * this.height,
      m.type === S.RESIZE ? m.width * m.height : 0);
    if (m.data) this.queuedBytes += m.data.length;
    this.ops.push(m);
    if (this.ops.length > MAX_FRAME_OPS || this.queuedBytes > 8 * this.queuedArea + FRAME_SLACK_BYTES) {
      const n = this.ops.length, bytes = this.queuedBytes;
      this.reset();
      throw new ProtocolError(`frame without EndFrame grew to ${n} messages, ${bytes} pixel bytes`);
    }
  }

  /** Discards a partly received frame (connection lost). */
  reset() {
    this.ops.length = 0;
    this.queuedBytes = this.queuedArea = 0;
  }

  /** Applies every queued op. Throws ProtocolError for an op outside the desktop. */
  flush() {
    const ops = this.ops;
    this.ops = [];
    this.queuedBytes = this.queuedArea = 0;
    const ctx = this.ctx;
    for (const m of ops) {
      if (m.type === S.RESIZE) {
        this.width = -1; // force clear even at the same size, as the protocol says
        this.setSize(m.width, m.height);
        continue;
      }
      if (m.w === 0 || m.h === 0) continue;
      this.check(m.x, m.y, m.w, m.h, m);
      if (m.type === S.FILL) {
        ctx.fillStyle = `rgb(${m.r},${m.g},${m.b})`;
        ctx.fillRect(m.x, m.y, m.w, m.h);
      } else if (m.type === S.COPY) {
        this.check(m.sx, m.sy, m.w, m.h, m);
        // Drawing a canvas onto itself copies the source first (HTML "drawImage": the
        // source is a snapshot), so overlapping copies are safe.
        ctx.drawImage(this.canvas, m.sx, m.sy, m.w, m.h, m.x, m.y, m.w, m.h);
      } else if (m.type === S.PIXELS) {
        ctx.putImageData(new ImageData(m.data, m.w, m.h), m.x, m.y);
      }
    }
  }

  check(x, y, w, h, m) {
    if (x + w > this.width || y + h > this.height) {
      const name = { [S.FILL]: 'Fill', [S.COPY]: 'Copy', [S.PIXELS]: 'Pixels' }[m.type];
      throw new ProtocolError(`${name} ${w}×${h} at ${x},${y} is outside the ` +
        `${this.width}×${this.height} desktop`);
    }
  }

  /** Cursor message → CSS cursor (data URL image with its hotspot); 0×0 hides it. */
  setCursor(m) {
    if (m.w === 0 || m.h === 0) {
      this.cursorCss = 'none';
    } else {
      const c = document.createElement('canvas');
      c.width = m.w;
      c.height = m.h;
      c.getContext('2d').putImageData(new ImageData(m.data, m.w, m.h), 0, 0);
      const hx = Math.min(m.hx, m.w - 1), hy = Math.min(m.hy, m.h - 1);
      this.cursorCss = `url(${c.toDataURL()}) ${hx} ${hy}, default`;
    }
    this.canvas.style.cursor = this.cursorCss;
  }

  setMode(mode) {
    this.mode = mode;
    this.viewport.classList.toggle('native', mode === 'native');
    this.layout();
  }

  /** Recomputes the canvas's on-screen size for the mode and the viewport size. */
  layout() {
    if (this.width <= 0 || this.height <= 0) return;
    let scale = 1;
    if (this.mode === 'fit') {
      const vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
      scale = Math.min(vw / this.width, vh / this.height);
      if (!(scale > 0)) scale = 1;
    }
    this.scale = scale;
    this.canvas.style.width = `${Math.round(this.width * scale * 1000) / 1000}px`;
    this.canvas.style.height = `${Math.round(this.height * scale * 1000) / 1000}px`;
    const device = scale * (window.devicePixelRatio || 1);
    this.canvas.classList.toggle('smooth', device < 0.999);
    if (this.onLayout) this.onLayout();
  }

  /** Maps a client (viewport CSS) position to a remote pixel, clamped to the desktop. */
  toRemote(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    const fx = r.width > 0 ? (clientX - r.left) * this.width / r.width : 0;
    const fy = r.height > 0 ? (clientY - r.top) * this.height / r.height : 0;
    return {
      x: Math.max(0, Math.min(this.width - 1, Math.floor(fx))),
      y: Math.max(0, Math.min(this.height - 1, Math.floor(fy))),
    };
  }
}
