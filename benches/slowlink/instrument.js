// In-page instrumentation for benches/slow_links.sh, injected before any page script (as a
// Playwright init script) into both clients' pages: noVNC's and wsvnc's viewer. It reads only
// the remote-screen canvas (found by a CSS selector the driver passes in), never the clients'
// code or protocol, so it works for any client that draws the desktop 1:1 into a canvas.
//
// Clock: page time = performance.timeOrigin + performance.now() (wall-clock based ms, the same
// base as node's Date.now(); the driver measures the remaining offset with round trips).
//
// Once configured, every animation frame (requestAnimationFrame, ~60 Hz) it may:
// * window:  hash the content region (every pixel); a hash unlike the previous frame's is one
//            update seen; and match a sparse sample of the region against the reference
//            states' samples to tell whole states (a source image, a terminal screen) apart from
//            torn or partly drawn ones;
// * probe:   read the probe pixel; record [time, r, g, b] whenever it changes;
// * rest:    hash the whole canvas and compare with the X screenshot's hash; record when it
//            became exact.
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const S = {
    cfg: null, canvas: null, ctx: null,
    win: null, probe: null, rest: null,
  };
  window.__slb = S;

  S.now = now;

  /** cfg: { selector, region: [x, y, w, h], probe: [x, y], base: [r, g, b] (root colour before
   *  the probe runs), sig: { refs: [{ points: [...], values: [r, g, b, ...] }] } } */
  S.configure = (cfg) => { S.cfg = cfg; S.canvas = null; };

  function canvas() {
    const c = S.canvas && S.canvas.isConnected ? S.canvas : document.querySelector(S.cfg.selector);
    if (!c || !c.width || !c.height) return null;
    S.canvas = c;
    return c;
  }

  // Pixels are read by drawing the client's canvas into a scratch canvas of our own, never
  // through a context on the client's canvas: asking it for a '2d' context first would take
  // the place of the client's own (a WebGL or bitmaprenderer viewer), and this works for any
  // kind of canvas. 'copy' replaces the scratch pixels exactly, alpha included.
  let scratch = null;
  let sctx = null;
  function read(x, y, w, h) {
    if (!scratch || scratch.width < w || scratch.height < h) {
      const [ow, oh] = scratch ? [scratch.width, scratch.height] : [0, 0];
      scratch = document.createElement('canvas');
      scratch.width = Math.max(w, ow);
      scratch.height = Math.max(h, oh);
      sctx = scratch.getContext('2d', { willReadFrequently: true });
      sctx.globalCompositeOperation = 'copy';
      sctx.imageSmoothingEnabled = false;
    }
    sctx.drawImage(S.canvas, x, y, w, h, 0, 0, w, h);
    return sctx.getImageData(0, 0, w, h).data;
  }

  /** The canvas's size once the client has sized it (connected), else null. */
  S.size = () => {
    const c = S.cfg && canvas();
    return c ? [c.width, c.height] : null;
  };

  /** True once the canvas shows the first picture: the probe pixel has the root's base colour. */
  S.firstPicture = () => {
    if (!S.cfg || !canvas()) return false;
    const [x, y] = S.cfg.probe;
    const d = read(x, y, 1, 1);
    const b = S.cfg.base;
    return Math.max(Math.abs(d[0] - b[0]), Math.abs(d[1] - b[1]), Math.abs(d[2] - b[2])) <= 8;
  };

  // ---- window: updates seen, whole states identified
  S.startWindow = () => {
    S.win = { t0: now(), t1: null, changes: 0, whole: 0, lastHash: null, lastId: -2, ids: [], sampled: 0 };
  };
  S.stopWindow = () => {
    const w = S.win;
    S.win = null;
    w.t1 = now();
    return { t0: w.t0, t1: w.t1, changes: w.changes, whole: w.whole, ids: w.ids, sampled: w.sampled };
  };

  function hashRegion(data) {
    const u = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >> 2);
    let h = 0x811c9dc5;
    for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 16777619);
    return h >>> 0;
  }

  // Index of the reference state the region clearly shows, else -1 (torn, partly drawn or
  // something else). Each reference has its own sample points (chosen where it differs from
  // its nearest neighbours); score = mean absolute difference per channel there. Clear = the
  // best score is at most 24 and under 0.35 of the runner-up's.
  function identify(data) {
    const sig = S.cfg.sig;
    if (!sig || !sig.refs.length) return -1;
    let best = Infinity, second = Infinity, bestI = -1;
    for (let r = 0; r < sig.refs.length; r++) {
      const { points, values } = sig.refs[r];
      let sum = 0;
      for (let k = 0; k < points.length; k++) {
        const o = points[k] * 4, q = k * 3;
        sum += Math.abs(data[o] - values[q]) + Math.abs(data[o + 1] - values[q + 1]) + Math.abs(data[o + 2] - values[q + 2]);
      }
      const mean = sum / (points.length * 3);
      if (mean < best) { second = best; best = mean; bestI = r; } else if (mean < second) second = mean;
    }
    return best <= 24 && best < 0.35 * second ? bestI : -1;
  }

  function sampleWindow(w) {
    const [x, y, rw, rh] = S.cfg.region;
    const data = read(x, y, rw, rh);
    w.sampled++;
    const h = hashRegion(data);
    if (h === w.lastHash) return;
    if (w.lastHash !== null) w.changes++;
    w.lastHash = h;
    const id = identify(data);
    w.ids.push(id);
    if (id >= 0 && id !== w.lastId) {
      if (w.lastId !== -2) w.whole++;
      w.lastId = id;
    }
  }

  // ---- probe: the small change
  S.startProbe = () => { S.probe = { obs: [], last: null }; };
  S.stopProbe = () => { const p = S.probe; S.probe = null; return p ? p.obs : []; };

  function sampleProbe(p, t) {
    const [x, y] = S.cfg.probe;
    const d = read(x, y, 1, 1);
    const key = (d[0] << 16) | (d[1] << 8) | d[2];
    if (key !== p.last) { p.last = key; p.obs.push([t, d[0], d[1], d[2]]); }
  }

  // ---- rest: after motion stops, when does the canvas equal the X screen exactly?
  // watchRest() starts at the moment motion stops: every frame the whole canvas's RGB is
  // hashed (two independent 32-bit hashes, restHashes below) and the time of its last change
  // kept. startRest(h1, h2), the hashes of the X screenshot's RGB (computed by the driver,
  // rgbHashes in measure.mjs), adds the comparison; at the first frame whose hashes equal them,
  // exactAt = the last change's time (the canvas has been in that state since then), so the
  // time the driver needs to grab the screenshot is not counted. Only hashes cross into the
  // page while it is measured: a pixel-by-pixel comparison every frame, and the 3 MB reference
  // it needs, took ~10 ms of each 16.7 ms frame and ~100 ms at the start from the page being
  // measured, whose messages then waited (benches/README.md, "The rest check's own cost").
  // restDiff(reference) counts the differing pixels once, after the measurement.
  S.watchRest = () => { S.rest = { ref: null, lastHash: null, lastChange: now(), exactAt: null }; };
  S.startRest = (h1, h2) => { S.rest.ref = [h1 >>> 0, h2 >>> 0]; };
  S.restState = () => (S.rest ? { exactAt: S.rest.exactAt, sinceChange: now() - S.rest.lastChange } : null);
  S.stopRest = () => {
    const r = S.rest;
    S.rest = null;
    return r ? { exactAt: r.exactAt, lastChange: r.lastChange } : null;
  };

  /** Two 32-bit hashes of the RGB of RGBA pixels (alpha ignored); the same as rgbHashes in
   *  measure.mjs over packed RGB. */
  function restHashes(data) {
    const u = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >> 2);
    let h1 = 0x811c9dc5, h2 = 0x9747b28c;
    for (let i = 0; i < u.length; i++) {
      const v = u[i] & 0xffffff;
      h1 = Math.imul(h1 ^ v, 16777619);
      h2 = Math.imul(h2 + v, 0x9e3779b1) ^ (h2 >>> 15);
    }
    return [h1 >>> 0, h2 >>> 0];
  }

  function sampleRest(r, t) {
    const c = S.canvas;
    const [h1, h2] = restHashes(read(0, 0, c.width, c.height));
    const key = `${h1}:${h2}`;
    if (key !== r.lastHash) {
      if (r.lastHash !== null) r.lastChange = t;
      r.lastHash = key;
    }
    if (r.ref && r.exactAt === null && h1 === r.ref[0] && h2 === r.ref[1]) r.exactAt = r.lastChange;
  }

  /** After the measurement: how the canvas differs from the X screenshot `rgbBase64` (RGB):
   *  differing pixels, their bounding box and the sum of squared errors (diff -1: sizes differ). */
  S.restDiff = (rgbBase64) => {
    const c = canvas();
    if (!c) return { diff: -1, sse: null, box: null };
    const bin = atob(rgbBase64);
    if (bin.length !== c.width * c.height * 3) return { diff: -1, sse: null, box: null };
    const data = read(0, 0, c.width, c.height);
    let diff = 0, sse = 0, x0 = c.width, y0 = c.height, x1 = -1, y1 = -1;
    for (let i = 0, j = 0, p = 0; j < bin.length; i += 4, j += 3, p++) {
      const a = data[i] - bin.charCodeAt(j), b = data[i + 1] - bin.charCodeAt(j + 1), d = data[i + 2] - bin.charCodeAt(j + 2);
      if (a | b | d) {
        diff++;
        sse += a * a + b * b + d * d;
        const x = p % c.width, y = (p - x) / c.width;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
    return { diff, sse, box: diff ? [x0, y0, x1 - x0 + 1, y1 - y0 + 1] : null };
  };

  /** The canvas's pixels in x, y, w, h as base64 RGBA (for PSNR and dumps in the driver). */
  S.grab = (x, y, w, h) => {
    if (!S.cfg || !canvas()) return null;
    const d = read(x, y, w, h);
    let s = '';
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
    return btoa(s);
  };

  S.marks = { picture: null }; // page time of the first frame showing the first picture
  const tick = () => {
    requestAnimationFrame(tick);
    if (S.cfg && S.marks.picture === null && S.firstPicture()) S.marks.picture = now();
    if (!S.cfg || !(S.win || S.probe || S.rest) || !canvas()) return;
    const t = now();
    if (S.win) sampleWindow(S.win);
    if (S.probe) sampleProbe(S.probe, t);
    if (S.rest) sampleRest(S.rest, t);
  };
  requestAnimationFrame(tick);
})();
