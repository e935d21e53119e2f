// The remote screen: one <canvas> whose bitmap is the remote desktop, the remote cursor, and
// scaling. Frames (docs/protocol.md "Pacing"): ops are queued until EndFrame and applied in
// order in one task, never half a frame; a picture's parts are held until its last part.
// Images decode off the main thread (createImageBitmap) once all their bytes are in; a frame
// waits for its own images, and for earlier undrawn frames only where they overlap.
// Scaling: "native" = one remote pixel per CSS pixel (pixelated); "fit" = largest with the
// aspect kept. Pointer positions map from the canvas's on-screen box to its bitmap.

import { S, ProtocolError } from './protocol.js';

// A frame covers the desktop about once: more than twice its pixels (plus slack), or this many
// ops, without an EndFrame is a broken gateway.
const MAX_FRAME_OPS = 1 << 20;
const FRAME_SLACK_BYTES = 1 << 20;
// Frames ended but still waiting for their images: the gateway's pacing keeps this small.
const MAX_FRAMES_WAITING = 64;
// Frames with more rectangles than this count as overlapping every other frame.
const EXACT_RECTS = 64;

export class Display {
  constructor(canvas, viewport) {
    this.canvas = canvas;
    this.viewport = viewport;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.width = 0;
    this.height = 0;
    this.ops = [];
    this.decodes = []; // image decodes of the frame being received
    this.held = null; // {ops, decodes, bytes}: parts of a picture received so far
    this.image = null; // an image being received in ImageData pieces
    this.queuedBytes = 0;
    this.queuedArea = 0; // largest desktop area in force during the queued frame
    this.pending = []; // frames ended and not yet drawn, in order
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
    if (m.type === S.RESIZE) {
      // The desktop changed: a picture in parts and an image in pieces are void.
      this.held = null;
      this.image = null;
    }
    if (m.type === S.IMAGE_DATA) {
      this.imageData(m);
    } else {
      if (m.type === S.JPEG || m.type === S.PNG || m.type === S.WEBP) {
        m.image = decodeImage(new Blob([m.data], { type: m.mime }));
      } else if (m.type === S.IMAGE_BEGIN) {
        if (this.image) throw new ProtocolError('ImageBegin while an image is incomplete');
        if (m.total > 8 * m.w * m.h + FRAME_SLACK_BYTES) throw new ProtocolError(`ImageBegin of ${m.total} bytes`);
        const img = { chunks: [], got: 0, total: m.total, op: m };
        m.image = new Promise((resolve, reject) => { img.resolve = resolve; img.reject = reject; });
        m.image.catch(() => {});
        this.image = img;
      }
      if (m.image) this.decodes.push(m.image);
      this.ops.push(m);
    }
    const bytes = this.queuedBytes + (this.held ? this.held.bytes : 0);
    if (this.ops.length > MAX_FRAME_OPS || bytes > 8 * this.queuedArea + FRAME_SLACK_BYTES) {
      const n = this.ops.length;
      this.reset();
      throw new ProtocolError(`frame without EndFrame grew to ${n} messages, ${bytes} pixel bytes`);
    }
  }

  /** The next piece of the image begun by ImageBegin; decoding starts with the last. */
  imageData(m) {
    const img = this.image;
    if (!img) throw new ProtocolError('ImageData without ImageBegin');
    img.got += m.data.length;
    if (img.got > img.total) throw new ProtocolError(`ImageData past the image's ${img.total} bytes`);
    img.chunks.push(m.data);
    if (img.got === img.total) {
      this.image = null;
      decodeImage(new Blob(img.chunks, { type: img.op.mime })).then(img.resolve, img.reject);
    }
  }

  /** Discards partly received and undrawn frames (connection lost). */
  reset() {
    this.ops.length = 0;
    this.decodes = [];
    this.held = null;
    this.image = null;
    this.queuedBytes = this.queuedArea = 0;
    this.epoch++;
    for (const f of this.pending) f.resolve(null);
    this.pending = [];
    this.waiting = 0;
  }

  /** Ends a part of a picture: held (its images keep decoding) until the last part. */
  endPart() {
    const h = this.held || (this.held = { ops: [], decodes: [], bytes: 0 });
    for (const m of this.ops) h.ops.push(m);
    for (const d of this.decodes) h.decodes.push(d);
    h.bytes += this.queuedBytes;
    this.ops = [];
    this.decodes = [];
    this.queuedBytes = 0;
    if (h.ops.length > MAX_FRAME_OPS) throw new ProtocolError(`picture grew to ${h.ops.length} messages`);
  }

  /**
   * Ends the frame (`picture`: a held picture's last part): resolves with the time drawing
   * started once drawn; rejects with a ProtocolError for a bad op.
   */
  endFrame(picture = false) {
    let ops = this.ops, decodes = this.decodes;
    if (this.image && (picture || ops.includes(this.image.op))) {
      throw new ProtocolError('frame ended inside an image');
    }
    if (picture) {
      const h = this.held || { ops: [], decodes: [] };
      ops = h.ops.concat(ops);
      decodes = h.decodes.concat(decodes);
      this.held = null;
    }
    this.ops = [];
    this.decodes = [];
    this.queuedBytes = this.queuedArea = 0;
    if (++this.waiting > MAX_FRAMES_WAITING) throw new ProtocolError('too many frames waiting to be drawn');
    const f = { ops, images: null, ready: false, failed: false, ...this.areaOf(ops),
      barrier: ops.some((m) => m.type === S.RESIZE) };
    const done = new Promise((resolve, reject) => { f.resolve = resolve; f.reject = reject; });
    this.pending.push(f);
    const epoch = this.epoch;
    Promise.all(decodes).then((images) => { f.images = images; }, () => { f.failed = true; }).then(() => {
      if (epoch !== this.epoch) return;
      f.ready = true;
      this.drawReady();
    });
    return done;
  }

  /** Where `ops` draw or copy from: rectangles [x0, y0, x1, y1] (null: too many). */
  areaOf(ops) {
    let rects = [];
    const mark = (x, y, w, h) => { if (w && h) rects.push([x, y, x + w, y + h]); };
    for (const m of ops) {
      if (m.w === undefined) continue;
      mark(m.x, m.y, m.w, m.h);
      if (m.type === S.COPY) mark(m.sx, m.sy, m.w, m.h);
    }
    if (rects.length > EXACT_RECTS) rects = null;
    return { rects };
  }

  /** Draws every undrawn frame that is decoded and not behind an earlier frame it overlaps. */
  drawReady() {
    for (let i = 0; i < this.pending.length;) {
      const f = this.pending[i];
      const behind = !f.ready || this.pending.slice(0, i).some((e) => e.barrier || f.barrier || overlap(e, f));
      if (behind) { i++; continue; }
      this.pending.splice(i, 1);
      this.waiting--;
      if (f.failed) { f.reject(new ProtocolError('an image does not decode')); continue; }
      const t0 = performance.now();
      try {
        this.apply(f.ops, f.images);
        f.resolve(t0);
      } catch (e) {
        f.reject(e);
      }
    }
  }

  /** Applies `ops` in order; `images` are the decoded images, in order. */
  apply(ops, images) {
    const ctx = this.ctx;
    let k = 0;
    for (const m of ops) {
      if (m.type === S.RESIZE) {
        this.width = -1; // force clear even at the same size, as the protocol says
        this.setSize(m.width, m.height);
        continue;
      }
      const image = m.image ? images[k++] : null;
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
      } else if (image) {
        const ok = image.width === m.w && image.height === m.h;
        if (ok) ctx.drawImage(image, m.x, m.y);
        image.close();
        if (!ok) throw new ProtocolError(`${m.mime} ${m.w}×${m.h} decodes to ${image.width}×${image.height}`);
      }
    }
  }

  check(x, y, w, h, m) {
    if (x + w > this.width || y + h > this.height) {
      const name = { [S.FILL]: 'Fill', [S.COPY]: 'Copy', [S.PIXELS]: 'Pixels', [S.PALETTE]: 'Palette',
        [S.JPEG]: 'Jpeg', [S.PNG]: 'Png', [S.WEBP]: 'Webp', [S.IMAGE_BEGIN]: 'ImageBegin' }[m.type];
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

/** Whether two frames' areas (see Display.areaOf) may overlap. */
function overlap(e, f) {
  if (!e.rects || !f.rects) return true;
  return e.rects.some((a) => f.rects.some((b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]));
}

/** Starts decoding an image off the main thread; the pixels are drawn as they are (no colour
 * conversion), so a PNG or a lossless WebP stays exact. */
function decodeImage(blob) {
  const p = createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  p.catch(() => {}); // reported when the frame is applied
  return p;
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

/** Resolves to whether this browser decodes WebP lossless (a 2×1 image from the gateway's encoder). */
export function decodesWebp() {
  const probe = Uint8Array.from(atob('UklGRiIAAABXRUJQVlA4TBYAAAAvAQAAAA1ERIQrACJpf+gBgvA/LSIB'), (c) => c.charCodeAt(0));
  return decodeImage(new Blob([probe], { type: 'image/webp' })).then((b) => b.width === 2, () => false);
}
