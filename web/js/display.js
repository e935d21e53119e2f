// The remote screen: one <canvas> whose bitmap is the remote desktop (one canvas pixel per
// remote pixel), drawing whole frames at once, the remote cursor, and scaling.
//
// Drawing ops (Resize, Fill, Copy, Pixels, Palette, Jpeg) are queued until EndFrame and then
// applied in order inside one task, so the browser never paints half a frame (docs/protocol.md,
// "Pacing"). Copy reads the canvas as it is at that point of the frame (CopyRect semantics).
// JPEG images start decoding off the main thread (createImageBitmap) as soon as they arrive;
// a frame is applied once all its images are decoded, and frames are applied in order.
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
// Frames ended but still waiting for their images: the gateway's pacing keeps this small.
const MAX_FRAMES_WAITING = 64;

export class Display {
  constructor(canvas, viewport) {
    this.canvas = canvas;
    this.viewport = viewport;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.width = 0;
    this.height = 0;
    this.ops = [];
    this.decodes = []; // image decodes of the frame being received
    this.queuedBytes = 0;
    this.queuedArea = 0; // largest desktop area in force during the queued frame
    this.chain = Promise.resolve(); // frames ended, applied in order
    this.waiting = 0;
    this.epoch = 0; // bumped by reset(): frames of a lost connection are dropped
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
    if (m.type === S.JPEG) {
      m.image = createImageBitmap(new Blob([m.data], { type: 'image/jpeg' }),
        { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
      m.image.catch(() => {}); // reported when the frame is applied
      this.decodes.push(m.image);
    }
    this.ops.push(m);
    if (this.ops.length > MAX_FRAME_OPS || this.queuedBytes > 8 * this.queuedArea + FRAME_SLACK_BYTES) {
      const n = this.ops.length, bytes = this.queuedBytes;
      this.reset();
      throw new ProtocolError(`frame without EndFrame grew to ${n} messages, ${bytes} pixel bytes`);
    }
  }

  /** Discards partly received and undrawn frames (connection lost). */
  reset() {
    this.ops.length = 0;
    this.decodes = [];
    this.queuedBytes = this.queuedArea = 0;
    this.epoch++;
    this.chain = Promise.resolve();
    this.waiting = 0;
  }

  /**
   * Ends the frame being received: resolves once it is drawn (after every earlier frame and
   * its own images), with the time drawing started; rejects with a ProtocolError for a bad op.
   */
  endFrame() {
    const ops = this.ops, decodes = this.decodes, epoch = this.epoch;
    this.ops = [];
    this.decodes = [];
    this.queuedBytes = this.queuedArea = 0;
    if (++this.waiting > MAX_FRAMES_WAITING) throw new ProtocolError('too many frames waiting to be drawn');
    const done = this.chain.then(() => Promise.all(decodes).catch(() => {
      throw new ProtocolError('a JPEG image does not decode');
    })).then((images) => {
      if (epoch !== this.epoch) return null; // connection gone meanwhile
      this.waiting--;
      const t0 = performance.now();
      this.apply(ops, images);
      return t0;
    });
    this.chain = done.catch(() => {});
    return done;
  }

  /** Applies `ops` in order; `images` are the decoded JPEGs, in order. */
  apply(ops, images) {
    const ctx = this.ctx;
    let k = 0;
    for (const m of ops) {
      if (m.type === S.RESIZE) {
        this.width = -1; // force clear even at the same size, as the protocol says
        this.setSize(m.width, m.height);
        continue;
      }
      const image = m.type === S.JPEG ? images[k++] : null;
      if (m.w === 0 || m.h === 0) { if (image) image.close(); continue; }
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
        ctx.putImageData(new ImageData(rgbToRgba(m.data, m.w * m.h), m.w, m.h), m.x, m.y);
      } else if (m.type === S.PALETTE) {
        ctx.putImageData(new ImageData(paletteToRgba(m), m.w, m.h), m.x, m.y);
      } else if (m.type === S.JPEG) {
        const ok = image.width === m.w && image.height === m.h;
        if (ok) ctx.drawImage(image, m.x, m.y);
        image.close();
        if (!ok) throw new ProtocolError(`Jpeg ${m.w}×${m.h} decodes to ${image.width}×${image.height}`);
      }
    }
  }

  check(x, y, w, h, m) {
    if (x + w > this.width || y + h > this.height) {
      const name = { [S.FILL]: 'Fill', [S.COPY]: 'Copy', [S.PIXELS]: 'Pixels', [S.PALETTE]: 'Palette',
        [S.JPEG]: 'Jpeg' }[m.type];
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

/** Tightly packed RGB → RGBA (alpha 255). */
function rgbToRgba(rgb, n) {
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    out[i * 4] = rgb[j]; out[i * 4 + 1] = rgb[j + 1]; out[i * 4 + 2] = rgb[j + 2]; out[i * 4 + 3] = 255;
  }
  return out;
}

/** Palette message → RGBA; an index past the palette is a protocol error. */
function paletteToRgba(m) {
  const { w, h, n, bits, rowBytes, colours, data } = m;
  const out = new Uint8ClampedArray(w * h * 4);
  const px = new Uint32Array(out.buffer);
  const pal = new Uint32Array(1 << bits);
  const probe = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1; // little-endian
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [colours[i * 3], colours[i * 3 + 1], colours[i * 3 + 2]];
    pal[i] = probe ? (0xff000000 | b << 16 | g << 8 | r) >>> 0 : (r << 24 | g << 16 | b << 8 | 0xff) >>> 0;
  }
  const mask = (1 << bits) - 1, perByte = 8 / bits;
  for (let y = 0, o = 0; y < h; y++) {
    // Whole bytes of the row, `perByte` indices each, most significant first.
    for (let b = y * rowBytes, left = w; left > 0; b++) {
      const byte = data[b];
      for (let k = 0, shift = 8 - bits; k < perByte && left > 0; k++, left--, shift -= bits) {
        const idx = (byte >> shift) & mask;
        if (idx >= n) throw new ProtocolError(`Palette index ${idx} of ${n} colours`);
        px[o++] = pal[idx];
      }
    }
  }
  return out;
}
