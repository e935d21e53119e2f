// What the Xvnc desktop shows during the slow-link benchmark, and the exact pixels it should show.
//
// Screen 1024x768. Each content occupies a region at the top left; the rest is the root window,
// whose colour the probe changes (the "small change"), read at PROBE (bottom right corner).
//
// * slideshow: ImageMagick `animate` (no border, 640x480 at +0+0) cycling photo-like
//   wallpapers from Debian's gnome-backgrounds, rendered once to 640x480, every 100 ms.
//   References: the rendered frames themselves (checked: a paused X screen equals one exactly).
// * terminal:  an xterm (100x34 characters, bitmap font) running `cat FIFO`; the driver writes
//   one log-like line every STEP_MS. The corpus has PERIOD lines, so the screen cycles through
//   PERIOD states; each is captured from X once at setup (reference k = after line k).
// * drag:      an ImageMagick `display` window (a 256x192 photo) moved every STEP_MS by 16 px
//   round a rectangle over a 640x480 `display` backdrop window (another wallpaper): window
//   moves (CopyRect for servers that detect it) plus re-exposed backdrop. References: the
//   backdrop with the mover pasted at each path position (checked against X at setup).
//
// Pausing stops all motion (SIGSTOP to animate, no more steps), so the X screen is constant.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { assertRunning, signal, sleep, spawnTracked, stop, waitFor } from './procs.mjs';

export const SCREEN = { w: 1024, h: 768 };
export const PROBE = [1016, 760];
export const POINTER = [900, 640]; // over the root window, clear of every content (blank cursor)
export const STEP_MS = 40; // terminal lines and drag moves: 25 per second
export const SLIDE_DELAY_CS = 10; // animate -delay, 1/100 s: 10 images per second
const TERMINAL_PERIOD = 50;
const WALLPAPERS = '/usr/share/backgrounds/gnome';
const WALLPAPER_NAMES = ['adwaita-d', 'adwaita-l', 'grid-d', 'grid-l', 'licorice-d', 'licorice-l',
  'pixels-d', 'pixels-l', 'symbolic-d', 'symbolic-l', 'truchet-d', 'truchet-l', 'wood-d', 'wood-l'];

// Probe colours: 4 levels per channel (64 colours, every pair >= 72 apart in some channel), in
// an order that changes every channel between neighbours. BASE is the root colour otherwise
// (>= 36 from every probe colour in every channel).
const LEVELS = [24, 96, 168, 240];
export const PALETTE = Array.from({ length: 64 }, (_, i) => {
  const k = (i * 23) % 64;
  return [LEVELS[k & 3], LEVELS[(k >> 2) & 3], LEVELS[(k >> 4) & 3]];
});
export const BASE_COLOUR = [60, 60, 60];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, maxBuffer: 1 << 20, ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${(r.stderr || '').trim()}`);
  return r.stdout;
}

/** Renders the wallpapers to 640x480 PNG + raw RGB in dir (cached by source list and sizes). */
export function prepareImages(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const sources = WALLPAPER_NAMES.map((n) => path.join(WALLPAPERS, `${n}.webp`));
  const missing = sources.filter((f) => !fs.existsSync(f));
  if (missing.length) {
    throw new Error(`wallpapers missing (${missing.join(', ')}): apt-get install gnome-backgrounds`);
  }
  const stamp = crypto.createHash('sha256')
    .update(JSON.stringify(sources.map((f) => [f, fs.statSync(f).size]))).update('v1').digest('hex');
  const stampFile = path.join(dir, 'stamp');
  const frames = WALLPAPER_NAMES.map((n) => path.join(dir, `${n}.png`));
  const mover = path.join(dir, 'mover.png');
  if (!fs.existsSync(stampFile) || fs.readFileSync(stampFile, 'utf8') !== stamp) {
    process.stderr.write(`[slowlink] rendering ${sources.length} wallpapers to 640x480 in ${dir}\n`);
    sources.forEach((src, i) => {
      run('convert', [src, '-resize', '640x480^', '-gravity', 'center', '-extent', '640x480',
        '-depth', '8', '-type', 'TrueColor', `PNG24:${frames[i]}`]);
      run('convert', [frames[i], '-depth', '8', `rgb:${frames[i]}.rgb`]);
    });
    run('convert', [frames[WALLPAPER_NAMES.indexOf('wood-d')], '-resize', '256x192!', '-depth', '8',
      '-type', 'TrueColor', `PNG24:${mover}`]);
    run('convert', [mover, '-depth', '8', `rgb:${mover}.rgb`]);
    fs.writeFileSync(stampFile, stamp);
  }
  return {
    frames,
    frameRgb: frames.map((f) => fs.readFileSync(`${f}.rgb`)),
    mover, moverRgb: fs.readFileSync(`${mover}.rgb`), moverSize: [256, 192],
  };
}

/**
 * Geometry of the first window titled `title` (inside area, absolute), polled until it is
 * mapped and the same in two polls in a row (a client may map first and resize after).
 */
async function windowGeometry(title, env) {
  let prev = null;
  return waitFor(`X window '${title}' mapped and settled`, () => {
    const g = windowGeometryNow(title, env);
    const same = g && prev && ['id', 'x', 'y', 'w', 'h'].every((k) => g[k] === prev[k]);
    prev = g;
    return same ? g : null;
  }, { timeoutMs: 20000, intervalMs: 200 });
}

function windowGeometryNow(title, env) {
  const r = spawnSync('xwininfo', ['-name', title], { encoding: 'utf8', env, timeout: 5000 });
  if (r.status !== 0) return null;
  const num = (re) => Number((r.stdout.match(re) || [])[1]);
  const g = {
    id: (r.stdout.match(/Window id: (0x[0-9a-f]+)/) || [])[1],
    x: num(/Absolute upper-left X:\s+(-?\d+)/), y: num(/Absolute upper-left Y:\s+(-?\d+)/),
    w: num(/Width:\s+(\d+)/), h: num(/Height:\s+(\d+)/),
    mapped: /Map State:\s+IsViewable/.test(r.stdout),
  };
  return g.mapped && g.id ? g : null;
}

/** X grab of the region through the X helper, as an RGB buffer. */
async function grab(xh, tmp, [x, y, w, h]) {
  await xh.call(`grab ${x} ${y} ${w} ${h} ${tmp}`);
  return fs.readFileSync(tmp);
}

/**
 * Grabs until two grabs in a row are equal (the X screen settled) and, when `unlike` is given,
 * differ from it (the change just requested has been drawn); bounded.
 */
async function grabStable(xh, tmp, region, unlike = null, timeoutMs = 5000) {
  let prev = await grab(xh, tmp, region);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await sleep(30);
    const cur = await grab(xh, tmp, region);
    if (cur.equals(prev) && !(unlike && cur.equals(unlike))) return cur;
    if (Date.now() > deadline) throw new Error(`X screen region ${region} did not settle (or change) in ${timeoutMs} ms`);
    prev = cur;
  }
}

/** Grabs until the region equals `want`; bounded (fails naming `what`). */
async function grabUntil(xh, tmp, region, want, what, timeoutMs = 5000) {
  await waitFor(what, async () => (await grab(xh, tmp, region)).equals(want), { timeoutMs, intervalMs: 30 });
}

/** Fixed-rate stepper: calls step() at t0 + n*STEP_MS (no drift), until stopped. */
function stepper(step) {
  let timer = null;
  let n = 0;
  let t0 = 0;
  let busy = null;
  const s = {
    last: 0,
    steps: 0,
    start() {
      if (timer) return;
      t0 = Date.now();
      n = 0;
      const tick = () => {
        n++;
        busy = Promise.resolve().then(step).then(() => { s.last = Date.now(); s.steps++; });
        busy.catch((e) => { s.error = e; });
        timer = setTimeout(tick, Math.max(0, t0 + (n + 1) * STEP_MS - Date.now()));
      };
      timer = setTimeout(tick, STEP_MS);
    },
    /** Stops stepping; throws (once) the error of a step that failed since start(). */
    async stop() {
      clearTimeout(timer);
      timer = null;
      await busy?.catch(() => {});
      const e = s.error;
      s.error = null;
      if (e) throw e;
    },
  };
  return s;
}

// ------------------------------------------------------------------ the three contents

export class Slideshow {
  constructor(images) { this.name = 'slideshow'; this.images = images; this.refs = images.frameRgb; }

  async start(x, xh, tmp) {
    this.proc = spawnTracked('animate', 'animate', ['-borderwidth', '0', '-title', 'wsvnc-slideshow',
      '-geometry', '+0+0', '-delay', String(SLIDE_DELAY_CS), ...this.images.frames], { env: x.env });
    const g = await windowGeometry('wsvnc-slideshow', x.env);
    assertRunning(this.proc);
    this.region = [g.x, g.y, g.w, g.h];
    if (g.w !== 640 || g.h !== 480) throw new Error(`slideshow window is ${g.w}x${g.h}, expected 640x480`);
    // The paused X screen must equal one of the source frames exactly (else PSNR would
    // measure the renderer, not the link). Animate may be paused mid-draw: try a few times.
    let ok = false;
    for (let i = 0; i < 8 && !ok; i++) {
      await sleep(150 + i * 37);
      await this.pause();
      const shot = await grabStable(xh, tmp, this.region);
      ok = this.refs.some((r) => r.equals(shot));
      await this.resume();
    }
    if (!ok) throw new Error('slideshow: the X screen never equals a source frame exactly');
  }

  async pause() { signal(this.proc, 'SIGSTOP'); this.pausedAt = Date.now(); }
  async resume() { signal(this.proc, 'SIGCONT'); }
  async stop() { await stop(this.proc); }
  describe() { return `animate, ${this.refs.length} wallpapers 640x480, one per ${SLIDE_DELAY_CS * 10} ms`; }
}

/** Deterministic log-like lines of varying length (no tabs, no escapes). */
function terminalCorpus() {
  const words = ['gateway', 'session', 'viewer', 'frame', 'ack', 'tile', 'deflate', 'rect', 'copy',
    'fill', 'tight', 'zrle', 'bytes', 'queue', 'rtt', 'damage', 'cursor', 'clipboard', 'pointer'];
  let seed = 12345;
  const rnd = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  return Array.from({ length: TERMINAL_PERIOD }, (_, i) => {
    const n = 3 + rnd(14);
    const msg = Array.from({ length: n }, () => words[rnd(words.length)] + (rnd(3) ? '' : '=' + rnd(100000)));
    return `12:00:${String(i % 60).padStart(2, '0')}.${String(rnd(1000)).padStart(3, '0')} ` +
      `${['INFO', 'DEBUG', 'WARN'][rnd(3)]} ${msg.join(' ')}`.slice(0, 99);
  });
}

export class Terminal {
  constructor(tmpDir) {
    this.name = 'terminal';
    this.fifo = path.join(tmpDir, 'terminal.fifo');
    this.lines = terminalCorpus();
    this.written = 0;
    this.motion = stepper(() => this.writeLine());
  }

  writeLine() {
    // "\r\n" first: the screen scrolls, then the line is drawn; the cursor stays behind it.
    fs.writeSync(this.fd, `\r\n${this.lines[this.written % TERMINAL_PERIOD]}`);
    this.written++;
  }

  async start(x, xh, tmp) {
    fs.rmSync(this.fifo, { force: true });
    run('mkfifo', [this.fifo]);
    this.proc = spawnTracked('xterm', 'xterm', ['-title', 'wsvnc-terminal', '-geometry', '100x34+0+0',
      '-bw', '0', '+sb', '-fg', 'black', '-bg', 'white', '-e', 'cat', this.fifo], { env: x.env });
    // O_NONBLOCK open fails (ENXIO) until cat has opened the read end: poll, bounded.
    this.fd = await waitFor('xterm to open its FIFO', () => {
      assertRunning(this.proc);
      try {
        return fs.openSync(this.fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      } catch (e) {
        if (e.code === 'ENXIO') return null;
        throw e;
      }
    }, { timeoutMs: 20000 });
    const g = await windowGeometry('wsvnc-terminal', x.env);
    this.region = [g.x, g.y, g.w, g.h];
    for (let i = 0; i < 40; i++) this.writeLine();
    await sleep(200);
    // Reference k: the screen after line k (mod PERIOD) was written.
    this.refs = new Array(TERMINAL_PERIOD);
    let shot = await grabStable(xh, tmp, this.region);
    for (let i = 0; i < TERMINAL_PERIOD; i++) {
      this.writeLine();
      shot = await grabStable(xh, tmp, this.region, shot);
      this.refs[(this.written - 1) % TERMINAL_PERIOD] = shot;
    }
    // The states must be distinct and repeat with the period.
    const distinct = new Set(this.refs.map((r) => crypto.createHash('sha1').update(r).digest('hex')));
    if (distinct.size !== TERMINAL_PERIOD) throw new Error(`terminal: ${distinct.size} distinct states of ${TERMINAL_PERIOD}`);
    for (let i = 0; i < TERMINAL_PERIOD + 7; i++) this.writeLine();
    await grabUntil(xh, tmp, this.region, this.refs[(this.written - 1) % TERMINAL_PERIOD],
      'terminal: the screen after PERIOD more lines to equal its reference');
    this.motion.start();
  }

  async pause() { await this.motion.stop(); this.pausedAt = Date.now(); }
  async resume() { this.motion.start(); }
  async stop() {
    await this.motion.stop();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    await stop(this.proc);
    fs.rmSync(this.fifo, { force: true });
  }

  describe() { return `xterm 100x34, one line per ${STEP_MS} ms, ${TERMINAL_PERIOD}-line cycle`; }
}

export class Drag {
  constructor(images) {
    this.name = 'drag';
    this.images = images;
    this.backdrop = images.frames[WALLPAPER_NAMES.indexOf('grid-l')];
    this.backdropRgb = images.frameRgb[WALLPAPER_NAMES.indexOf('grid-l')];
    // Round a rectangle inside the backdrop, 16 px per step.
    const pts = [];
    for (let x = 32; x < 352; x += 16) pts.push([x, 32]);
    for (let y = 32; y < 256; y += 16) pts.push([352, y]);
    for (let x = 352; x > 32; x -= 16) pts.push([x, 256]);
    for (let y = 256; y > 32; y -= 16) pts.push([32, y]);
    this.path = pts;
    this.pos = 0;
    this.motion = stepper(() => this.step());
  }

  step() {
    this.pos = (this.pos + 1) % this.path.length;
    const [px, py] = this.path[this.pos];
    return this.xh.call(`move ${this.mover.id} ${this.region[0] + px} ${this.region[1] + py}`);
  }

  synthesize([px, py]) {
    const [mw, mh] = this.images.moverSize;
    const w = this.region[2];
    const out = Buffer.from(this.backdropRgb);
    for (let y = 0; y < mh; y++) {
      this.images.moverRgb.copy(out, ((py + y) * w + px) * 3, y * mw * 3, (y + 1) * mw * 3);
    }
    return out;
  }

  async start(x, xh, tmp) {
    this.xh = xh;
    this.back = spawnTracked('display-backdrop', 'display', ['-borderwidth', '0', '-title', 'wsvnc-backdrop',
      '-geometry', '+0+0', this.backdrop], { env: x.env });
    const g = await windowGeometry('wsvnc-backdrop', x.env);
    this.region = [g.x, g.y, g.w, g.h];
    if (g.w !== 640 || g.h !== 480) throw new Error(`drag backdrop is ${g.w}x${g.h}, expected 640x480`);
    const [px, py] = this.path[0];
    this.moverProc = spawnTracked('display-mover', 'display', ['-borderwidth', '0', '-title', 'wsvnc-mover',
      '-geometry', `+${g.x + px}+${g.y + py}`, this.images.mover], { env: x.env });
    this.mover = await windowGeometry('wsvnc-mover', x.env);
    this.refs = this.path.map((p) => this.synthesize(p));
    for (const i of [0, 5, 17]) {
      this.pos = i - 1;
      await this.step();
      // Moving the window re-exposes the backdrop, which its client redraws a moment later.
      await grabUntil(xh, tmp, this.region, this.refs[i], `drag: the X screen at path position ${i} ` +
        'to equal the backdrop with the window pasted there');
    }
    this.motion.start();
  }

  async pause() { await this.motion.stop(); this.pausedAt = Date.now(); }
  async resume() { this.motion.start(); }
  async stop() {
    await this.motion.stop();
    await stop(this.moverProc);
    await stop(this.back);
  }

  describe() { return `256x192 window moved 16 px per ${STEP_MS} ms round a ${this.path.length}-step loop over a 640x480 window`; }
}

/** Measured rate of change of the region on the X screen (grabs as fast as the helper can). */
export async function sourceRate(xh, tmp, region, ms = 2000) {
  const t0 = Date.now();
  let prev = null;
  let changes = 0;
  let grabs = 0;
  while (Date.now() - t0 < ms) {
    const cur = await grab(xh, tmp, region);
    grabs++;
    if (prev && !cur.equals(prev)) changes++;
    prev = cur;
  }
  return { perSec: changes / ((Date.now() - t0) / 1000), grabsPerSec: grabs / ((Date.now() - t0) / 1000) };
}
