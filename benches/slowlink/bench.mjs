// The slow-link benchmark's driver (run it through benches/slow_links.sh, which creates the
// network namespace and removes it again). noVNC 1.7 + websockify against wsvnc's gateway +
// viewer, one Xvnc desktop, one headless Chromium inside the namespace, emulated links.
// What is measured and how: benches/README.md, section "slow_links.sh".

import { execFile, spawnSync } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Drag, PALETTE, BASE_COLOUR, POINTER, PROBE, SCREEN, Slideshow, Terminal, prepareImages, sourceRate }
  from './content.mjs';
import { assertRunning, jsonLineProcess, setLogDir, sleep, spawnTracked, stopAll, tcpReady, waitFor }
  from './procs.mjs';
import { aggregate, median, probeLatencies, psnrFromSse, psnrRgbaRgb, table } from './report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const env = process.env;
const num = (name, dflt) => (env[name] !== undefined && env[name] !== '' ? Number(env[name]) : dflt);

const QUICK = env.QUICK === '1';
const CFG = {
  runs: num('RUNS', QUICK ? 1 : 3),
  warmMs: num('WARM_MS', QUICK ? 1000 : 2000),
  windowMs: num('WINDOW_MS', QUICK ? 2500 : 4000),
  graceMs: num('GRACE_MS', QUICK ? 1000 : 2000),
  psnrSamples: num('PSNR_SAMPLES', QUICK ? 2 : 3),
  restMs: num('REST_MS', QUICK ? 2000 : 4000),
  settledMs: num('SETTLED_MS', 1000),
  probeMs: num('PROBE_MS', 200),
  queueMs: num('QUEUE_MS', 100),
  connectMs: num('CONNECT_MS', 30000),
  // A page whose animation frames fell below this rate was starved of CPU by other load on
  // the machine (headless Chromium runs them at 60 Hz): such a measurement is repeated once.
  minRafHz: num('MIN_RAF_HZ', 30),
};
const OUT = env.SLB_OUT || path.join(ROOT, 'target', 'slowlink-bench');
// Fixed resources, moved by WSVNC_TEST_OFFSET=N (like the tests) so parallel checkouts can run
// it at once, each overridable: ports 27000+20N.. (Xvnc, gateway, websockify), X display
// :300+N, namespace wsvnc-bench-bN, subnet 10.223.N.0 (host .1, browser .2).
const OFFSET = num('WSVNC_TEST_OFFSET', 0);
const PORT_BASE = num('SLB_PORT_BASE', 27000 + 20 * OFFSET);
const PORT = { rfb: PORT_BASE, gateway: PORT_BASE + 1, websockify: PORT_BASE + 2, check: PORT_BASE + 3 };
const DISPLAY = num('SLB_DISPLAY', 300 + OFFSET);
const NETNS = env.SLB_NETNS || `wsvnc-bench-b${OFFSET}`;
const HOST_ADDR = env.SLB_HOST_ADDR || `10.223.${OFFSET}.1`;
const NS_ADDR = env.SLB_NS_ADDR || `10.223.${OFFSET}.2`;
const HOST_IF = env.SLB_HOST_IF || `wsvnc-bh${OFFSET}`;
const NS_IF = env.SLB_NS_IF || `wsvnc-bb${OFFSET}`;
const WSVNC = env.WSVNC_BIN || path.join(ROOT, 'target', 'release', 'wsvnc');
const CHROMIUM = env.CHROMIUM_PATH || '/usr/bin/chromium';
const NODE_MODULES = env.SLB_NODE_MODULES || path.join(ROOT, 'tests', 'browser', 'node_modules');
const NOVNC = path.join(NODE_MODULES, '@novnc', 'novnc');
const PYTHON = env.SLB_PYTHON || '/usr/bin/python3';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** LINKS: comma-separated `lan` or `MBIT/RTT_MS` (e.g. 20/20). */
function parseLinks(spec) {
  return spec.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s === 'lan') return { name: 'lan', label: 'LAN (no shaping)', rateBps: 0, rttMs: 0, queue: 0, mtu: 65000 };
    const m = s.match(/^([\d.]+)\/([\d.]+)$/);
    if (!m) throw new Error(`LINKS: bad link '${s}' (want lan or MBIT/RTT_MS)`);
    const rateBps = Number(m[1]) * 1e6;
    const rttMs = Number(m[2]);
    // Drop-tail queue of QUEUE_MS at the link rate (at least 4 full packets).
    const queue = Math.max(4 * 1514, Math.round((rateBps / 8) * (CFG.queueMs / 1000)));
    return { name: s, label: `${m[1]} Mbit/s, ${rttMs} ms RTT (queue ${(queue / 1024).toFixed(0)} KiB = ` +
      `${CFG.queueMs} ms)`, rateBps, rttMs, queue, mtu: 1500 };
  });
}
const LINKS = parseLinks(env.LINKS || 'lan,20/20,4/40,1/80');
const CONTENTS = (env.CONTENTS || 'slideshow,terminal,drag').split(',').map((s) => s.trim()).filter(Boolean);
const CLIENT_NAMES = (env.CLIENTS || 'novnc,wsvnc').split(',').map((s) => s.trim()).filter(Boolean);

// noVNC's RFB class on a bare page, served by websockify --web. noVNC defaults are kept
// (Tight, JPEG quality 6, compression 2): the page sets no quality or compression.
const NOVNC_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>noVNC slow-link bench</title>
<style>html,body{margin:0;background:#000}#screen{width:1024px;height:768px}</style>
<script type="module" src="bench.js"></script></head>
<body><div id="screen"></div></body></html>
`;
const NOVNC_SCRIPT = `import RFB from './novnc/core/rfb.js';
const url = new URL('websockify', location.href);
url.protocol = 'ws:';
const rfb = new RFB(document.getElementById('screen'), url.href, { shared: true });
rfb.viewOnly = true;
rfb.scaleViewport = false;
rfb.clipViewport = false;
rfb.resizeSession = false;
window.rfb = rfb;
`;

const log = (msg) => process.stderr.write(`[slowlink ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function clients() {
  const all = {
    novnc: { name: 'novnc', url: `http://${HOST_ADDR}:${PORT.websockify}/index.html`, selector: '#screen canvas' },
    wsvnc: {
      name: 'wsvnc',
      url: `http://${HOST_ADDR}:${PORT.gateway}/?${env.WSVNC_QUERY || 'resize=0&scale=native&view_only=1&reconnect=0'}`,
      selector: env.WSVNC_CANVAS || '#canvas',
    },
  };
  return CLIENT_NAMES.map((n) => {
    if (!all[n]) throw new Error(`CLIENTS: unknown client '${n}' (novnc, wsvnc)`);
    return all[n];
  });
}

// ------------------------------------------------------------------ setup

function checkNodeSide() {
  const missing = [];
  if (!fs.existsSync(path.join(NODE_MODULES, 'playwright-core'))) missing.push(`${NODE_MODULES}/playwright-core (npm ci in tests/browser)`);
  if (!fs.existsSync(path.join(NOVNC, 'core', 'rfb.js'))) missing.push(`${NOVNC} (npm ci in tests/browser)`);
  if (!fs.existsSync(WSVNC)) missing.push(`${WSVNC} (cargo build --release, or set WSVNC_BIN)`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (Debian package chromium)`);
  if (missing.length) throw new Error('missing:\n  - ' + missing.join('\n  - '));
}

const X_FILES = [`/tmp/.X${DISPLAY}-lock`, `/tmp/.X11-unix/X${DISPLAY}`];

/** Removes the display's lock file and socket when the Xvnc that made them is gone. */
function removeStaleXFiles() {
  let pid = null;
  try { pid = Number(fs.readFileSync(X_FILES[0], 'utf8').trim()); } catch { return; }
  try {
    process.kill(pid, 0);
    return; // still running: not ours to touch
  } catch { /* gone */ }
  for (const f of X_FILES) fs.rmSync(f, { force: true });
}

async function startXvnc() {
  removeStaleXFiles();
  if (fs.existsSync(X_FILES[0])) throw new Error(`X display :${DISPLAY} is in use (set SLB_DISPLAY)`);
  if (await tcpReady(PORT.rfb)) throw new Error(`127.0.0.1:${PORT.rfb} is in use (set SLB_PORT_BASE)`);
  const proc = spawnTracked('Xvnc', 'Xvnc', [`:${DISPLAY}`, '-rfbport', String(PORT.rfb), '-SecurityTypes', 'None',
    '-geometry', `${SCREEN.w}x${SCREEN.h}`, '-depth', '24', '-interface', '127.0.0.1', '-nolisten', 'tcp',
    '-AlwaysShared', '-desktop', 'wsvnc-slowlink']);
  await waitFor(`Xvnc :${DISPLAY}`, async () => { assertRunning(proc); return tcpReady(PORT.rfb); }, { timeoutMs: 15000 });
  return { proc, env: { ...process.env, DISPLAY: `:${DISPLAY}` } };
}

function novncWebDir() {
  const dir = path.join(OUT, 'novnc-web');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'index.html'), NOVNC_PAGE);
  fs.writeFileSync(path.join(dir, 'bench.js'), NOVNC_SCRIPT);
  // Timestamps kept (npm's are old), so Chromium's heuristic caching spares revalidating
  // ~30 modules on every page load: only the first load per browser context crosses the link.
  for (const sub of ['core', 'vendor']) {
    fs.cpSync(path.join(NOVNC, sub), path.join(dir, 'novnc', sub), { recursive: true, preserveTimestamps: true });
  }
  return dir;
}

async function startServers() {
  for (const p of [PORT.gateway, PORT.websockify]) {
    if (await tcpReady(p, HOST_ADDR)) throw new Error(`${HOST_ADDR}:${p} is in use (set SLB_PORT_BASE)`);
  }
  const target = `127.0.0.1:${PORT.rfb}`;
  const ws = spawnTracked('websockify', 'websockify', ['--web', novncWebDir(), `${HOST_ADDR}:${PORT.websockify}`, target]);
  const gw = spawnTracked('wsvnc', WSVNC, ['--listen', `${HOST_ADDR}:${PORT.gateway}`, '--target', target],
    { env: { ...process.env, RUST_LOG: env.RUST_LOG || 'info' } });
  for (const [p, proc] of [[PORT.websockify, ws], [PORT.gateway, gw]]) {
    await waitFor(`${proc.name} on ${HOST_ADDR}:${p}`, async () => { assertRunning(proc); return tcpReady(p, HOST_ADDR); });
  }
  return { ws, gw };
}

async function launchBrowser() {
  const { chromium } = await import(path.join(NODE_MODULES, 'playwright-core', 'index.mjs'));
  return chromium.launch({
    executablePath: path.join(HERE, 'chromium-netns.sh'), args: CHROMIUM_ARGS, timeout: 60000,
    env: { ...process.env, SLB_NETNS: NETNS, CHROMIUM_PATH: CHROMIUM },
  });
}

// ------------------------------------------------------------------ link check

/**
 * What the emulated link really does, from inside the namespace: TCP handshake time (one RTT)
 * and the goodput of a ~2 s stream from the host side (kernel TCP through the emulator).
 */
async function linkCheck(link) {
  const bytes = link.rateBps ? Math.max(64 << 10, Math.round((link.rateBps / 8) * 2)) : 200 << 20;
  const payload = Buffer.alloc(1 << 20, 0x5a);
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', () => pump());
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, payload.length);
        left -= n;
        if (!sock.write(payload.subarray(0, n))) { sock.once('drain', pump); return; }
      }
      sock.end();
    };
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(PORT.check, HOST_ADDR, resolve); });
  try {
    const out = await new Promise((resolve, reject) => {
      execFile('ip', ['netns', 'exec', NETNS, PYTHON, path.join(HERE, 'linkcheck.py'), HOST_ADDR, String(PORT.check)],
        { timeout: 60000 }, (err, stdout, stderr) => (err ? reject(new Error(`link check: ${err.message} ${stderr}`)) : resolve(stdout)));
    });
    const r = JSON.parse(out);
    if (r.bytes !== bytes) throw new Error(`link check: got ${r.bytes} of ${bytes} bytes`);
    return r;
  } finally {
    server.close();
  }
}

// ------------------------------------------------------------------ measurement

/** Sparse sample points of the region (seeded) and each reference's values there. */
function signature(region, refs, n = 600) {
  const [, , w, h] = region;
  let seed = 99991;
  const points = Array.from({ length: n }, () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed >>> 4) % (w * h);
  });
  const sigRefs = refs.map((ref) => points.flatMap((p) => [ref[p * 3], ref[p * 3 + 1], ref[p * 3 + 2]]));
  return { points, refs: sigRefs };
}

function colourIndex(r, g, b) {
  let best = -1;
  let bestD = 31;
  PALETTE.forEach(([pr, pg, pb], i) => {
    const d = Math.max(Math.abs(pr - r), Math.abs(pg - g), Math.abs(pb - b));
    if (d < bestD) { bestD = d; best = i; }
  });
  return best;
}

/** Offset page clock - node clock (ms), from the round trip with the smallest delay. */
async function clockOffset(page) {
  let best = null;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.timeOrigin + performance.now();
    const p = await page.evaluate(() => window.__slb.now());
    const t1 = performance.timeOrigin + performance.now();
    if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: p - (t0 + t1) / 2 };
  }
  return best;
}

/** Best PSNR of a canvas region (RGBA) over the references, via the sparse signature's top 3. */
function motionPsnr(rgba, refs, sig) {
  const scored = sig.refs.map((sr, r) => {
    let sum = 0;
    sig.points.forEach((p, k) => {
      sum += Math.abs(rgba[p * 4] - sr[k * 3]) + Math.abs(rgba[p * 4 + 1] - sr[k * 3 + 1]) + Math.abs(rgba[p * 4 + 2] - sr[k * 3 + 2]);
    });
    return [sum, r];
  }).sort((a, b) => a[0] - b[0]);
  return Math.max(...scored.slice(0, 3).map(([, r]) => psnrRgbaRgb(rgba, refs[r])));
}

let probeSeq = 0;

async function measure({ ctx, client, content, link, run, emu, xprobe, xwork, tmp, sig }) {
  const row = { link: link.name, content: content.name, client: client.name, run, load: os.loadavg()[0] };
  const page = await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  let paused = false;
  // Phase durations (ms), for the log: where a measurement's time goes.
  row.phases = {};
  let tPhase = Date.now();
  const phase = (name) => { const t = Date.now(); row.phases[name] = t - tPhase; tPhase = t; };
  try {
    await xprobe.call(`root ${BASE_COLOUR.join(' ')}`);
    // Configured before any page script runs, so the first picture is timed from the start.
    await page.addInitScript((cfg) => window.__slb.configure(cfg),
      { selector: client.selector, region: content.region, probe: PROBE, base: BASE_COLOUR, sig });
    await page.goto(client.url, { timeout: 60000, waitUntil: 'load' });
    phase('load');
    await waitFor(`${client.name}: canvas ${SCREEN.w}x${SCREEN.h}`, async () => {
      if (pageErrors.length) throw new Error(`page error: ${pageErrors[0]}`);
      const s = await page.evaluate(() => window.__slb.size());
      return s && s[0] === SCREEN.w && s[1] === SCREEN.h;
    }, { timeoutMs: CFG.connectMs, intervalMs: 50 });
    // First picture: the first update has reached the root window's corner.
    await waitFor(`${client.name}: first picture`, async () => {
      if (pageErrors.length) throw new Error(`page error: ${pageErrors[0]}`);
      return page.evaluate(() => window.__slb.marks.picture !== null);
    }, { timeoutMs: CFG.connectMs, intervalMs: 50 });
    // Navigation start (performance.timeOrigin) to the first animation frame showing it.
    row.connectMs = await page.evaluate(() => window.__slb.marks.picture - performance.timeOrigin);
    phase('connect');
    const clock = await clockOffset(page);
    row.clockRttMs = clock.rtt;
    phase('clock');
    await sleep(CFG.warmMs);
    phase('warm');

    // Window: updates seen, probe latency, wire bytes.
    const s0 = await emu.call('stats');
    const steps0 = content.motion ? content.motion.steps : null;
    await page.evaluate(() => { window.__slb.startWindow(); window.__slb.startProbe(); });
    const changes = [];
    const tEnd = Date.now() + CFG.windowMs;
    for (let slot = 1; Date.now() < tEnd; slot++) {
      const c = probeSeq++ % PALETTE.length;
      const r = await xprobe.call(`root ${PALETTE[c].join(' ')}`);
      changes.push({ t: r.t, c });
      await sleep(Math.max(0, tEnd - CFG.windowMs + slot * CFG.probeMs - Date.now()));
    }
    const win = await page.evaluate(() => window.__slb.stopWindow());
    const s1 = await emu.call('stats');
    const secs = (win.t1 - win.t0) / 1000;
    row.updatesPerSec = win.changes / secs;
    row.wholePerSec = win.whole / secs;
    row.rafHz = win.sampled / secs;
    if (steps0 !== null) row.sourcePerSec = (content.motion.steps - steps0) / secs;
    row.identified = win.ids.filter((i) => i >= 0).length / Math.max(1, win.ids.length);
    row.downKiBs = (s1.down.bytes - s0.down.bytes) / 1024 / (s1.t - s0.t);
    row.upKiBs = (s1.up.bytes - s0.up.bytes) / 1024 / (s1.t - s0.t);
    row.downDropped = s1.down.dropped_packets - s0.down.dropped_packets;
    phase('window');

    // Grace: the last change may still be on its way; stop waiting once it is on the canvas.
    const last = changes[changes.length - 1];
    const graceEnd = Date.now() + CFG.graceMs;
    while (Date.now() < graceEnd) {
      const seen = await page.evaluate(() => (window.__slb.probe.obs.at(-1) || null));
      if (seen && colourIndex(seen[1], seen[2], seen[3]) === last.c) break;
      await sleep(100);
    }
    const obs = (await page.evaluate(() => window.__slb.stopProbe()))
      .map(([t, r, g, b]) => [t - clock.offset, r, g, b]);
    row.latencies = probeLatencies(changes, obs, colourIndex).map((v) => (Number.isFinite(v) ? v : null));
    phase('grace');

    // In motion: PSNR of the canvas region against the best-matching reference state.
    row.motionPsnr = [];
    for (let k = 0; k < CFG.psnrSamples; k++) {
      await sleep(250);
      const b64 = await page.evaluate(() => window.__slb.grabRegion());
      if (b64) row.motionPsnr.push(motionPsnr(Buffer.from(b64, 'base64'), content.refs, sig));
    }
    phase('psnr');

    // At rest: stop all motion, then how long until the canvas equals the X screen exactly.
    await page.evaluate(() => window.__slb.watchRest());
    await content.pause();
    paused = true;
    const tStop = Date.now();
    const shot = fs.readFileSync(await grabStableFull(xwork, tmp));
    await page.evaluate((b64) => window.__slb.startRest(b64), shot.toString('base64'));
    // Until exact, or the bound, or settled inexact: canvas unchanged for SETTLED_MS with
    // nothing queued on the link (a client that will not become exact, e.g. lossy JPEG kept).
    const restEnd = tStop + CFG.restMs;
    while (Date.now() < restEnd) {
      const st = await page.evaluate(() => window.__slb.restState());
      if (st && st.exactAt !== null) break;
      if (st && st.sinceChange > CFG.settledMs && (await emu.call('idle')).idle) {
        row.restSettled = true;
        break;
      }
      await sleep(100);
    }
    const rest = await page.evaluate(() => window.__slb.stopRest());
    row.restMs = rest.exactAt !== null ? Math.max(0, rest.exactAt - clock.offset - tStop) : null;
    row.restDiffPx = rest.diff;
    row.restDiffBox = rest.box;
    if (rest.diff && env.SLB_DUMP === '1') await dumpRest(page, shot, row);
    phase('rest');
    row.restPsnr = rest.diff === 0 ? 99 : rest.sse !== null ? psnrFromSse(rest.sse, SCREEN.w * SCREEN.h * 3) : null;
    if (pageErrors.length) row.pageErrors = pageErrors;
  } catch (e) {
    row.error = e.message.split('\n')[0];
    log(`${link.name} ${content.name} ${client.name} run ${run}: FAILED: ${e.message}`);
    await page.screenshot({ path: path.join(OUT, 'logs', `failed-${link.name.replace('/', '_')}-${content.name}-${client.name}-${run}.png`) })
      .catch(() => {});
  } finally {
    await page.close().catch(() => {});
    if (paused) await content.resume();
  }
  // The next measurement starts on an empty link.
  await waitFor('the link to drain', async () => (await emu.call('idle')).idle, { timeoutMs: 20000, intervalMs: 100 })
    .catch((e) => log(`warning: ${e.message}`));
  await sleep(300);
  phase('drain');
  return row;
}

/** SLB_DUMP=1: the canvas and the X screen of a measurement that ended inexact, as PNGs. */
async function dumpRest(page, shot, row) {
  const rgba = await page.evaluate(() => {
    const c = window.__slb.canvasElement();
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
    return btoa(s);
  });
  const base = path.join(OUT, 'logs', `rest-${row.link.replace('/', '_')}-${row.content}-${row.client}-${row.run}`);
  const size = ['-size', `${SCREEN.w}x${SCREEN.h}`, '-depth', '8'];
  spawnSync('convert', [...size, 'rgba:-', `png:${base}-canvas.png`], { input: Buffer.from(rgba, 'base64') });
  spawnSync('convert', [...size, 'rgb:-', `png:${base}-x.png`], { input: shot });
}

async function grabStableFull(xh, tmp) {
  const file = path.join(tmp, 'full.rgb');
  let prev = null;
  const deadline = Date.now() + 3000;
  for (;;) {
    await xh.call(`grab 0 0 ${SCREEN.w} ${SCREEN.h} ${file}`);
    const cur = fs.readFileSync(file);
    if (prev && cur.equals(prev)) return file;
    if (Date.now() > deadline) throw new Error('the X screen did not settle after motion stopped');
    prev = cur;
    await sleep(40);
  }
}

function summaryLine(row) {
  if (row.error) return `FAILED ${row.error}`;
  const lat = row.latencies.map((v) => (v === null ? Infinity : v));
  const f = (v) => (v === null || v === undefined ? '–' : Number.isFinite(v) ? v.toFixed(0) : 'never');
  const p50 = [...lat].sort((a, b) => a - b)[lat.length >> 1];
  return `upd/s ${row.updatesPerSec.toFixed(1)} whole/s ${row.wholePerSec.toFixed(1)} lat p50 ${f(p50)} ms ` +
    `shown ${lat.filter(Number.isFinite).length}/${lat.length} down ${row.downKiBs.toFixed(0)} KiB/s ` +
    `psnr ${median(row.motionPsnr)?.toFixed(1)} rest ${f(row.restMs)} ms (diff ${row.restDiffPx}) ` +
    `connect ${row.connectMs.toFixed(0)} ms raf ${row.rafHz.toFixed(0)} Hz drops ${row.downDropped}; phases ` +
    Object.entries(row.phases).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(' ');
}

// ------------------------------------------------------------------ main

async function main() {
  const t0 = Date.now();
  fs.mkdirSync(OUT, { recursive: true });
  setLogDir(path.join(OUT, 'logs'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-slowlink-'));
  const rawPath = path.join(OUT, 'raw.jsonl');
  fs.writeFileSync(rawPath, '');
  checkNodeSide();
  const cls = clients();
  log(`${QUICK ? 'QUICK ' : ''}runs=${CFG.runs} window=${CFG.windowMs} ms, links ${LINKS.map((l) => l.name).join(' ')}, ` +
    `contents ${CONTENTS.join(' ')}, wsvnc ${WSVNC}`);
  const images = prepareImages(path.join(OUT, 'images'));
  let browser = null;
  const rows = [];
  const sources = {};
  try {
    // The link: emulator between the host and the browser's namespace (higher priority so
    // that its timing holds when the machine is busy).
    const emu = jsonLineProcess('linkemu', 'nice', ['-n', '-10', PYTHON, path.join(HERE, 'linkemu.py'),
      '--netns', NETNS, '--host-if', HOST_IF, '--ns-if', NS_IF, '--host-addr', HOST_ADDR, '--ns-addr', NS_ADDR]);
    await emu.call('stats', 20000);
    const x = await startXvnc();
    const xhelper = path.join(HERE, 'xhelper.py');
    const xprobe = jsonLineProcess('xprobe', PYTHON, [xhelper], { env: x.env });
    const xwork = jsonLineProcess('xwork', PYTHON, [xhelper], { env: x.env });
    await xprobe.call(`root ${BASE_COLOUR.join(' ')}`);
    await xprobe.call(`pointer ${POINTER.join(' ')}`);
    await startServers();
    browser = await launchBrowser();
    const instrument = fs.readFileSync(path.join(HERE, 'instrument.js'), 'utf8');
    // One browser context per client for the whole run, so its HTTP cache holds the client's
    // page after the first load and later page loads cost (almost) nothing on slow links.
    const ctxs = new Map();
    for (const c of cls) {
      const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
      await ctx.addInitScript(instrument);
      ctxs.set(c.name, ctx);
    }
    const total = CONTENTS.length * LINKS.length * CFG.runs * cls.length;
    let done = 0;
    for (const name of CONTENTS) {
      const content = name === 'slideshow' ? new Slideshow(images)
        : name === 'terminal' ? new Terminal(tmp)
          : name === 'drag' ? new Drag(images) : null;
      if (!content) throw new Error(`CONTENTS: unknown content '${name}' (slideshow, terminal, drag)`);
      log(`content ${name}: ${content.describe()}`);
      await content.start(x, xwork, path.join(tmp, 'grab.rgb'));
      const rate = await sourceRate(xwork, path.join(tmp, 'grab.rgb'), content.region);
      sources[name] = `${rate.perSec.toFixed(1)} changes/s`;
      log(`content ${name}: region ${content.region.join(',')}, X screen changes ${rate.perSec.toFixed(1)}/s ` +
        `(sampled ${rate.grabsPerSec.toFixed(0)}/s), ${content.refs.length} reference states`);
      const sig = signature(content.region, content.refs);
      for (const link of LINKS) {
        await emu.call(`set ${link.rateBps} ${link.rttMs / 2} ${link.queue} ${link.mtu}`);
        if (!link.check) {
          link.check = await linkCheck(link);
          const hs = link.check.connect_ms;
          log(`link ${link.name}: TCP handshakes ${hs.map((v) => v.toFixed(1)).join(' ')} ms, goodput ` +
            `${link.check.mbit.toFixed(2)} Mbit/s`);
          link.label += `; measured: TCP handshake min ${hs[0].toFixed(1)} ms, goodput ` +
            `${link.check.mbit.toFixed(link.check.mbit < 10 ? 2 : 0)} Mbit/s`;
          await waitFor('the link to drain', async () => (await emu.call('idle')).idle, { timeoutMs: 20000 });
        }
        for (let run = 0; run < CFG.runs; run++) {
          const order = run % 2 ? [...cls].reverse() : cls;
          for (const client of order) {
            const args = { ctx: ctxs.get(client.name), client, content, link, run, emu, xprobe, xwork, tmp, sig };
            let row = await measure(args);
            if (!row.error && row.rafHz < CFG.minRafHz) {
              log(`${link.name} ${name} ${client.name}: page ran ${row.rafHz.toFixed(0)} animation frames/s ` +
                '(CPU starved by other load): repeating once');
              row = { ...(await measure(args)), starvedBefore: row.rafHz };
            }
            rows.push(row);
            fs.appendFileSync(rawPath, JSON.stringify(row) + '\n');
            done++;
            log(`[${done}/${total}] ${link.name} ${name} ${client.name} run ${run + 1}: ${summaryLine(row)}`);
          }
        }
      }
      await content.stop();
      if (content.motion) {
        const r = median(rows.filter((w) => w.content === name && w.sourcePerSec).map((w) => w.sourcePerSec));
        if (r !== null) sources[name] = `${r.toFixed(1)} steps/s`;
      }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopAll();
    removeStaleXFiles(); // an Xvnc that had to be SIGKILLed leaves its lock behind
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const groups = new Map();
  for (const key of new Set(rows.map((r) => `${r.link}|${r.content}|${r.client}`))) {
    groups.set(key, aggregate(rows.filter((r) => `${r.link}|${r.content}|${r.client}` === key)));
  }
  const secs = Math.round((Date.now() - t0) / 1000);
  const starved = rows.filter((r) => !r.error && r.rafHz < CFG.minRafHz).length;
  const repeated = rows.filter((r) => r.starvedBefore !== undefined).length;
  const head = `slow-link benchmark: ${QUICK ? 'QUICK, ' : ''}${CFG.runs} run(s) per cell, ${CFG.windowMs / 1000} s window, ` +
    `medians (latency percentiles pooled over runs); ${os.cpus().length} CPUs, load average ` +
    `${median(rows.map((r) => r.load))?.toFixed(1)} (median at measurement starts); run took ${secs} s; ` +
    `${repeated} measurement(s) repeated, ${starved} still CPU-starved (< ${CFG.minRafHz} frames/s); wsvnc = ${WSVNC}`;
  const text = head + '\n' + table(groups, { links: LINKS, contents: CONTENTS, sources }) + '\n';
  fs.writeFileSync(path.join(OUT, 'table.md'), text);
  console.log(text);
  log(`raw rows: ${rawPath}; table: ${path.join(OUT, 'table.md')}; logs: ${path.join(OUT, 'logs')}`);
  if (rows.some((r) => r.error)) process.exitCode = 1;
}

main().catch(async (e) => {
  log(`FAILED: ${e.stack || e}`);
  await stopAll();
  process.exit(1);
});
