// A stand-in for the wsvnc gateway: serves web/ statically (with the gateway's CSP) and
// speaks browser protocol v3 (docs/protocol.md) at /ws, with an independent encoder and a
// strict decoder of browser messages that records everything the viewer sends.
//
//   node mock-gateway.mjs [--port 6080] [--web ../../web]   → a demo desktop for manual use
//     ?token=password   asks for a password ("secret")
//     ?token=credentials  asks for a user name and a password ("me", "secret")
//     ?token=error      fails with an Error message
//     ?token=drop       drops the connection 3 s after the first frame
//
// Tests import MockGateway and script each session themselves (gw.onSession).

import { execFileSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:";
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon' };

// ---- server → browser encoder --------------------------------------------------------

class W {
  constructor() { this.parts = []; }
  u8(v) { const b = Buffer.alloc(1); b.writeUInt8(v); this.parts.push(b); return this; }
  u16(v) { const b = Buffer.alloc(2); b.writeUInt16LE(v); this.parts.push(b); return this; }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  str(s) { const b = Buffer.from(s, 'utf8'); this.u32(b.length); this.parts.push(b); return this; }
  raw(b) { this.parts.push(Buffer.from(b)); return this; }
  done() { return Buffer.concat(this.parts); }
}

export const enc = {
  hello: (w, h, flags = 0, name = 'mock desktop', version = 3) =>
    new W().u8(0x01).u8(version).u16(w).u16(h).u8(flags).str(name).done(),
  resize: (w, h) => new W().u8(0x02).u16(w).u16(h).done(),
  fill: (x, y, w, h, [r, g, b, a = 255]) =>
    new W().u8(0x03).u16(x).u16(y).u16(w).u16(h).u8(r).u8(g).u8(b).u8(a).done(),
  copy: (x, y, w, h, sx, sy) => new W().u8(0x04).u16(x).u16(y).u16(w).u16(h).u16(sx).u16(sy).done(),
  // Pixels carry RGB; tests hand RGBA blocks (rgba() below), the alpha is dropped here.
  pixels: (x, y, w, h, rgbaBlock) => new W().u8(0x05).u16(x).u16(y).u16(w).u16(h)
    .raw(rgbaBlock.filter((_, i) => i % 4 !== 3)).done(),
  // Palette: `colours` [[r, g, b], …] (1..256), `index(x, y)` → colour number.
  palette: (x, y, w, h, colours, index) => {
    const n = colours.length;
    const bits = n <= 2 ? 1 : n <= 4 ? 2 : n <= 16 ? 4 : 8;
    const rowBytes = Math.ceil(w * bits / 8);
    const packed = Buffer.alloc(rowBytes * h);
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const bit = xx * bits;
        packed[yy * rowBytes + (bit >> 3)] |= index(xx, yy) << (8 - bits - (bit & 7));
      }
    }
    return new W().u8(0x0e).u16(x).u16(y).u16(w).u16(h).u8(n - 1).raw(colours.flat()).raw(packed).done();
  },
  jpeg: (x, y, w, h, bytes) => new W().u8(0x0f).u16(x).u16(y).u16(w).u16(h).u32(bytes.length).raw(bytes).done(),
  png: (x, y, w, h, bytes) => new W().u8(0x15).u16(x).u16(y).u16(w).u16(h).u32(bytes.length).raw(bytes).done(),
  webp: (x, y, w, h, bytes) => new W().u8(0x16).u16(x).u16(y).u16(w).u16(h).u32(bytes.length).raw(bytes).done(),
  // An image in pieces: format 0 JPEG, 1 PNG; `total` bytes follow in imageData messages.
  imageBegin: (x, y, w, h, format, total) => new W().u8(0x13).u16(x).u16(y).u16(w).u16(h).u8(format).u32(total)
    .done(),
  imageData: (bytes) => new W().u8(0x14).u32(bytes.length).raw(bytes).done(),
  endFrame: (id) => new W().u8(0x06).u32(id).done(),
  endPart: (id, last) => new W().u8(0x12).u32(id).u8(last ? 1 : 0).done(),
  cursor: (hx, hy, w, h, rgba) => new W().u8(0x07).u16(hx).u16(hy).u16(w).u16(h).raw(rgba).done(),
  bell: () => Buffer.from([0x08]),
  clipboard: (text) => new W().u8(0x09).str(text).done(),
  desktopName: (name) => new W().u8(0x0a).str(name).done(),
  passwordRequired: () => Buffer.from([0x0b]),
  credentialsRequired: () => Buffer.from([0x11]),
  // bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock
  ledState: (bits) => Buffer.from([0x10, bits]),
  status: (level, text) => new W().u8(0x0c).u8(level).str(text).done(),
  error: (text) => new W().u8(0x0d).str(text).done(),
};

/**
 * Real JPEG bytes of a w×h image filled by fn(x, y) → [r, g, b], made by ImageMagick's
 * `convert` (Debian package imagemagick) at 4:4:4, quality 95.
 */
export function jpegOf(w, h, fn) {
  const rgb = rgba(w, h, fn).filter((_, i) => i % 4 !== 3);
  return execFileSync('convert', ['-size', `${w}x${h}`, '-depth', '8', 'rgb:-',
    '-sampling-factor', '1x1', '-quality', '95', 'jpeg:-'], { input: rgb });
}

/** PNG bytes (8-bit RGB, no ancillary chunks) of a w×h image filled by fn(x, y) → [r, g, b]. */
export function pngOf(w, h, fn) {
  const rgb = rgba(w, h, fn).filter((_, i) => i % 4 !== 3);
  return execFileSync('convert', ['-size', `${w}x${h}`, '-depth', '8', 'rgb:-', '-strip',
    '-define', 'png:color-type=2', 'png24:-'], { input: rgb });
}

/** WebP lossless bytes (libwebp through ImageMagick, exact RGB) of a w×h image filled by fn(x, y). */
export function webpOf(w, h, fn) {
  const rgb = rgba(w, h, fn).filter((_, i) => i % 4 !== 3);
  return execFileSync('convert', ['-size', `${w}x${h}`, '-depth', '8', 'rgb:-', '-strip',
    '-define', 'webp:lossless=true', '-define', 'webp:exact=true', 'webp:-'], { input: rgb });
}

/** w×h RGBA block filled by fn(x, y) → [r, g, b]. */
export function rgba(w, h, fn) {
  const b = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, bl] = fn(x, y);
      const o = (y * w + x) * 4;
      b[o] = r; b[o + 1] = g; b[o + 2] = bl; b[o + 3] = 255;
    }
  }
  return b;
}

// ---- browser → server decoder (strict, as the gateway must be) ------------------------

// KeyCode (0x87) is recorded as a 'Key' with its `code`, PointerExt (0x88) as a 'Pointer'.
export const NAMES = { 0x80: 'ClientHello', 0x81: 'Key', 0x82: 'Pointer', 0x83: 'Clipboard',
  0x84: 'FrameAck', 0x85: 'ResizeRequest', 0x86: 'Password', 0x87: 'Key', 0x88: 'Pointer',
  0x89: 'Credentials', 0x8a: 'Received', 0x8b: 'Accept' };

export function decodeClient(buf) {
  const out = [];
  let p = 0;
  const need = (n) => { if (p + n > buf.length) throw new Error(`truncated at ${p}`); };
  const u8 = () => { need(1); return buf[p++]; };
  const u16 = () => { need(2); const v = buf.readUInt16LE(p); p += 2; return v; };
  const u32 = () => { need(4); const v = buf.readUInt32LE(p); p += 4; return v; };
  const str = () => {
    const n = u32(); need(n);
    const s = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(p, p + n));
    p += n;
    return s;
  };
  while (p < buf.length) {
    const type = u8();
    switch (type) {
      case 0x80: out.push({ type: 'ClientHello', version: u8() }); break;
      case 0x81: { const down = u8(); out.push({ type: 'Key', down, keysym: u32() }); break; }
      case 0x82: out.push({ type: 'Pointer', x: u16(), y: u16(), mask: u8() }); break;
      case 0x83: out.push({ type: 'Clipboard', text: str() }); break;
      case 0x84: out.push({ type: 'FrameAck', id: u32() }); break;
      case 0x85: out.push({ type: 'ResizeRequest', width: u16(), height: u16() }); break;
      case 0x86: out.push({ type: 'Password', password: str() }); break;
      case 0x87: {
        const down = u8(), keysym = u32(), code = str();
        if (down > 1 || !/^[A-Za-z0-9]{1,32}$/.test(code)) throw new Error(`bad KeyCode ${down} ${JSON.stringify(code)}`);
        out.push({ type: 'Key', down, keysym, code });
        break;
      }
      case 0x88: {
        const m = { type: 'Pointer', x: u16(), y: u16(), mask: u16() };
        if (m.mask > 0x1ff || (m.mask & 0x180) === 0) throw new Error(`PointerExt mask 0x${m.mask.toString(16)}`);
        out.push(m);
        break;
      }
      case 0x89: out.push({ type: 'Credentials', username: str(), password: str() }); break;
      case 0x8a: out.push({ type: 'Received', id: u32() }); break;
      case 0x8b: out.push({ type: 'Accept', formats: u8() }); break;
      default: throw new Error(`unknown type 0x${type.toString(16)}`);
    }
  }
  return out;
}

// ---- one viewer connection ------------------------------------------------------------

export class MockSession {
  constructor(ws, req) {
    this.ws = ws;
    this.url = new URL(req.url, 'http://x');
    this.protocol = ws.protocol;
    this.received = [];
    this.errors = [];
    this.closed = false;
    this.waiters = [];
    ws.on('message', (data, isBinary) => {
      if (!isBinary) { this.errors.push('text message'); ws.close(1003); return; }
      try {
        for (const m of decodeClient(data)) this.received.push(m);
      } catch (e) {
        this.errors.push(e.message);
        ws.close(1002, e.message);
      }
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = true;
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.wake();
    });
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Sends protocol messages, all in one WebSocket message. */
  send(...msgs) {
    if (!this.closed) this.ws.send(Buffer.concat(msgs), { binary: true });
  }

  close(code = 1000, reason = '') { this.ws.close(code, reason); }
  terminate() { this.ws.terminate(); }

  of(type) { return this.received.filter((m) => m.type === type); }

  /** Resolves with pred()'s truthy result once it holds (checked after every message). */
  waitFor(pred, what = 'condition', ms = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ` +
        JSON.stringify(this.received.slice(-12)))), ms);
      const check = () => {
        let v;
        try { v = pred(this); } catch (e) { clearTimeout(timer); reject(e); return; }
        if (v) { clearTimeout(timer); resolve(v); } else this.waiters.push(check);
      };
      check();
    });
  }

  /** Waits for the n-th message of a type (1-based, counting all received so far). */
  waitType(type, n = 1, ms) {
    return this.waitFor((s) => s.of(type).length >= n && s.of(type)[n - 1], `${type} #${n}`, ms);
  }
}

// ---- the server ------------------------------------------------------------------------

export class MockGateway {
  constructor({ webDir = path.resolve(HERE, '../../web') } = {}) {
    this.webDir = webDir;
    this.sessions = [];
    this.onSession = demoSession;
    this.pending = [];
  }

  start(port = 0, host = '127.0.0.1') {
    this.http = http.createServer((req, res) => this.serve(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: true,
      handleProtocols: (protocols) => (protocols.has('wsvnc.v3') ? 'wsvnc.v3' : false),
    });
    this.http.on('upgrade', (req, sock, head) => {
      if (new URL(req.url, 'http://x').pathname !== '/ws') { sock.destroy(); return; }
      this.wss.handleUpgrade(req, sock, head, (ws) => {
        const s = new MockSession(ws, req);
        this.sessions.push(s);
        const waiter = this.pending.shift();
        if (waiter) waiter(s);
        Promise.resolve(this.onSession(s)).catch((e) => { s.errors.push(`script: ${e.message}`); });
      });
    });
    return new Promise((resolve) => this.http.listen(port, host, () => {
      this.port = this.http.address().port;
      this.url = `http://${host}:${this.port}/`;
      resolve(this.url);
    }));
  }

  /** The next viewer connection (or the first not yet handed out). */
  nextSession(ms = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no viewer connected')), ms);
      this.pending.push((s) => { clearTimeout(timer); resolve(s); });
    });
  }

  serve(req, res) {
    const url = new URL(req.url, 'http://x');
    let rel = decodeURIComponent(url.pathname);
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.join(this.webDir, path.normalize(rel));
    if (!file.startsWith(this.webDir + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    });
    res.end(body);
  }

  async stop() {
    for (const s of this.sessions) if (!s.closed) s.terminate();
    this.wss.close();
    await new Promise((r) => this.http.close(r));
  }
}

// ---- a demo desktop (manual use, and the default script) ------------------------------

const W0 = 1024, H0 = 640;

function demoFrame() {
  const msgs = [enc.fill(0, 0, W0, H0, [32, 58, 96])];
  msgs.push(enc.fill(0, H0 - 36, W0, 36, [20, 22, 28]));
  msgs.push(enc.fill(60, 60, 420, 260, [236, 236, 236]));
  msgs.push(enc.fill(60, 60, 420, 26, [70, 110, 190]));
  msgs.push(enc.pixels(540, 60, 256, 256, rgba(256, 256, (x, y) => [x, y, 255 - x])));
  msgs.push(enc.fill(60, 360, 200, 120, [230, 120, 40]));
  msgs.push(enc.copy(300, 360, 200, 120, 60, 360));
  return msgs;
}

function arrowCursor() {
  const w = 12, h = 18;
  return rgba(w, h, () => [0, 0, 0]).map((v, i) => {
    const px = (i >> 2) % w, py = Math.floor((i >> 2) / w);
    const inside = px <= py * 0.6 && py < 16;
    const edge = inside && (px === 0 || px >= Math.floor(py * 0.6) || py === 15);
    if (i % 4 === 3) return inside ? 255 : 0;
    return inside && !edge ? 255 : 0;
  });
}

export async function demoSession(s) {
  await s.waitType('ClientHello');
  const token = s.url.searchParams.get('token');
  s.send(enc.status(0, 'connecting to VNC server'));
  if (token === 'error') {
    s.send(enc.error('connection refused by 127.0.0.1:5900'));
    s.close(1011, 'VNC server unreachable');
    return;
  }
  if (token === 'password') {
    s.send(enc.passwordRequired());
    const pw = await s.waitType('Password', 1, 120000);
    if (pw.password !== 'secret') {
      s.send(enc.error('Authentication failed'));
      s.close(1008, 'authentication failed');
      return;
    }
  }
  if (token === 'credentials') {
    s.send(enc.credentialsRequired());
    const c = await s.waitType('Credentials', 1, 120000);
    if (c.username !== 'me' || c.password !== 'secret') {
      s.send(enc.error('Authentication failed'));
      s.close(1008, 'authentication failed');
      return;
    }
  }
  const flags = (s.url.searchParams.get('view_only') === '1' ? 1 : 0) | 2;
  s.send(enc.hello(W0, H0, flags, 'demo:1 (mock)'), enc.cursor(0, 0, 12, 18, arrowCursor()),
    ...demoFrame(), enc.endFrame(1));
  let id = 1, t = 0;
  const timer = setInterval(() => {
    if (s.closed) { clearInterval(timer); return; }
    const acked = s.of('FrameAck').length;
    if (id - acked >= 2) return; // simple pacing for manual use: 2 frames unacknowledged
    t++;
    const x = 60 + (t * 7) % 380;
    s.send(enc.fill(60, 500, 440, 40, [32, 58, 96]), enc.fill(x, 505, 60, 30, [255, 210, 60]),
      enc.endFrame(++id));
  }, 50);
  s.ws.on('message', () => {
    const last = s.received[s.received.length - 1];
    if (last && last.type === 'Clipboard') s.send(enc.clipboard(`echo: ${last.text}`));
    if (last && last.type === 'ResizeRequest') { /* the demo desktop keeps its size */ }
  });
  if (token === 'drop') setTimeout(() => s.terminate(), 3000);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : d;
  };
  const gw = new MockGateway({ webDir: path.resolve(arg('--web', path.resolve(HERE, '../../web'))) });
  gw.start(Number(arg('--port', 6080))).then((url) => console.log(`mock gateway at ${url}`));
}
