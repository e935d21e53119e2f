// The wsvnc viewer (gateway mode) against noVNC 1.7 (relay mode) on the same animated
// desktop, in headless Chromium. Run through benches/viewer_vs_novnc.sh.
//
//   wsvnc --demo-server 127.0.0.1:19150            the animated demo desktop (30 fps)
//   wsvnc --listen :19151 --target …:19150          gateway: our viewer at /, protocol v2 at /ws
//   wsvnc --listen :19152 --target …:19150 --relay --web D  relay: noVNC page from D, /websockify
//
// Both pages get the same instrumentation (an init script, before any page code):
// * first pixels: ms from navigation start until ≥ 90 % of a 16×12 grid of points on the
//   visible canvas are non-black (checked every animation frame until it holds);
// * frames/s: animation frames in which the visible (connected) canvas was drawn on,
//   counted over a 5 s window after 1 s of warm-up;
// * main-thread ms/frame: time inside WebSocket message handlers (noVNC decodes RFB and
//   draws there; our viewer parses protocol v2 there and draws in a promise callback once a frame's images are
//   decoded, which this does not count: see the canvas column), per counted frame;
// * canvas ms/frame: time inside fillRect/putImageData/drawImage on any canvas, per frame;
// * WS KiB/s: WebSocket payload received (after permessage-deflate inflation), and the
//   bytes the server put on the wire for the whole session (its log line at close);
// * page KiB: HTTP response bodies of one cold page load (fresh browser context).
// Medians over RUNS runs per client (alternating). Environment: RUNS (default 5),
// WINDOW_MS (5000), WSVNC_BIN (default target/release/wsvnc).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { assertRunning, killAll, sleep, spawnTracked, tcpReady, waitFor } from '../tests/browser/lib.mjs';
import { ROOT, WSVNC, assertPortFree, launchChromium, startWsvnc, testOffset } from '../tests/viewer/harness.mjs';

const RUNS = Number(process.env.RUNS || 5);
const WINDOW_MS = Number(process.env.WINDOW_MS || 5000);
const WARMUP_MS = 1000;
// + 1000 per WSVNC_TEST_OFFSET step, so parallel checkouts do not collide.
const PORT = Object.fromEntries(Object.entries({ demo: 19150, gateway: 19151, relay: 19152 })
  .map(([k, v]) => [k, v + 1000 * testOffset()]));
const NOVNC = path.join(ROOT, 'tests', 'browser', 'node_modules', '@novnc', 'novnc');

// The instrumentation, injected into both pages before their own scripts.
const INSTRUMENT = `(() => {
  const B = window.__bench = { first: null, frames: 0, handlerMs: 0, canvasMs: 0, wsBytes: 0,
    measuring: false, dirty: false };
  const wrap = (fn) => function (e) {
    const t = performance.now();
    try { return fn.call(this, e); } finally {
      if (B.measuring) {
        B.handlerMs += performance.now() - t;
        B.wsBytes += e.data && (e.data.byteLength ?? e.data.size ?? e.data.length) || 0;
      }
    }
  };
  const d = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
  Object.defineProperty(WebSocket.prototype, 'onmessage', { configurable: true,
    get() { return d.get.call(this); }, set(fn) { d.set.call(this, typeof fn === 'function' ? wrap(fn) : fn); } });
  const ael = WebSocket.prototype.addEventListener;
  WebSocket.prototype.addEventListener = function (type, fn, o) {
    return ael.call(this, type, type === 'message' && typeof fn === 'function' ? wrap(fn) : fn, o);
  };
  const C = CanvasRenderingContext2D.prototype;
  for (const name of ['fillRect', 'putImageData', 'drawImage']) {
    const orig = C[name];
    C[name] = function (...a) {
      const t = performance.now();
      try { return orig.apply(this, a); } finally {
        if (B.measuring) B.canvasMs += performance.now() - t;
        if (this.canvas.isConnected) B.dirty = true;
      }
    };
  }
  // The visible remote screen: the largest canvas in the document.
  const screen = () => [...document.querySelectorAll('canvas')]
    .sort((a, b) => b.width * b.height - a.width * a.height)[0];
  const tick = () => {
    if (B.dirty) { B.dirty = false; if (B.measuring) B.frames++; }
    if (B.first === null) {
      const c = screen();
      if (c && c.width >= 64 && c.height >= 64) {
        const ctx = c.getContext('2d');
        let lit = 0, n = 0;
        for (let gy = 0; gy < 12; gy++) {
          for (let gx = 0; gx < 16; gx++) {
            const p = ctx.getImageData(Math.floor((gx + 0.5) * c.width / 16),
              Math.floor((gy + 0.5) * c.height / 12), 1, 1).data;
            n++;
            if (p[0] + p[1] + p[2] > 0) lit++;
          }
        }
        if (lit >= 0.9 * n) B.first = performance.now();
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();`;

// noVNC's RFB class on a bare page, as tests/browser/page/index.html embeds it. The script
// is a file of its own, so the page also works under a strict --web-csp.
const NOVNC_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>noVNC bench</title>
<style>html,body{margin:0;background:#000}#screen{width:1024px;height:768px}</style>
<script type="module" src="bench.js"></script></head>
<body><div id="screen"></div></body></html>
`;
const NOVNC_SCRIPT = `import RFB from './novnc/core/rfb.js';
const url = new URL('websockify', location.href);
url.protocol = 'ws:';
const rfb = new RFB(document.getElementById('screen'), url.href, { shared: true });
rfb.scaleViewport = false;
rfb.resizeSession = false;
rfb.qualityLevel = 9;
window.rfb = rfb;
`;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** "WebSocket closed" lines of a wsvnc log: [{ out: bytes sent on the wire, secs }]. */
function closedSockets(logPath) {
  const re = /WebSocket closed [^\n]*?: \d+ bytes in, (\d+) bytes out, ([\d.]+)s/g;
  return [...fs.readFileSync(logPath, 'utf8').matchAll(re)].map((m) => ({ out: Number(m[1]), secs: Number(m[2]) }));
}

async function oneRun(browser, { url, server }) {
  const closedBefore = closedSockets(server.proc.logPath).length;
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  let bytes = 0;
  const bodies = [];
  page.on('response', (r) => bodies.push(r.body().then((b) => { bytes += b.length; }, () => {})));
  await page.addInitScript(INSTRUMENT);
  await page.goto(url);
  await page.waitForFunction(() => window.__bench.first !== null, null, { timeout: 30000 })
    .catch((e) => { throw new Error(`${url}: no picture (${problems.join('; ') || e.message})`); });
  await Promise.all(bodies);
  const first = await page.evaluate(() => window.__bench.first);
  await sleep(WARMUP_MS);
  await page.evaluate(() => { window.__bench.measuring = true; });
  const t0 = Date.now();
  await sleep(WINDOW_MS);
  const b = await page.evaluate(() => { window.__bench.measuring = false; return { ...window.__bench }; });
  const secs = (Date.now() - t0) / 1000;
  await context.close();
  // The server logs what it sent on the wire (after permessage-deflate) when the socket closes.
  const sock = await waitFor('the WebSocket close in the server log', () => {
    const all = closedSockets(server.proc.logPath);
    return all.length > closedBefore && all[all.length - 1];
  });
  if (problems.length) throw new Error(`${url}: page errors: ${problems.join('; ')}`);
  return {
    first, fps: b.frames / secs, handler: b.handlerMs / Math.max(1, b.frames),
    canvas: b.canvasMs / Math.max(1, b.frames), wsKiBs: b.wsBytes / 1024 / secs, pageKiB: bytes / 1024,
    wireKiBs: sock.out / 1024 / Math.max(0.1, sock.secs),
  };
}

async function run() {
  const web = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-novnc-bench-'));
  let browser = null;
  try {
    if (!fs.existsSync(path.join(NOVNC, 'core', 'rfb.js'))) {
      throw new Error(`noVNC missing at ${NOVNC} (npm ci in tests/browser)`);
    }
    fs.writeFileSync(path.join(web, 'index.html'), NOVNC_PAGE);
    fs.writeFileSync(path.join(web, 'bench.js'), NOVNC_SCRIPT);
    for (const dir of ['core', 'vendor']) {
      fs.cpSync(path.join(NOVNC, dir), path.join(web, 'novnc', dir), { recursive: true });
    }
    const target = ['--target', `127.0.0.1:${PORT.demo}`];
    await startDemo();
    const ours = await startWsvnc('bench-gateway', PORT.gateway, target);
    const theirs = await startWsvnc('bench-relay', PORT.relay, [...target, '--relay', '--web', web]);
    browser = await launchChromium();
    const clients = [
      { name: 'wsvnc viewer (gateway)', url: `${ours.url}?resize=0`, server: ours, runs: [] },
      { name: 'noVNC 1.7 (relay)', url: theirs.url, server: theirs, runs: [] },
    ];
    for (let i = 0; i < RUNS; i++) {
      for (const c of clients) c.runs.push(await oneRun(browser, c));
      process.stderr.write(`run ${i + 1}/${RUNS} done\n`);
    }
    report(clients);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await killAll();
    fs.rmSync(web, { recursive: true, force: true });
  }
}

/** The demo VNC server alone (`--demo-server`, no HTTP side). */
async function startDemo() {
  await assertPortFree(PORT.demo);
  const proc = spawnTracked('bench-demo', WSVNC, ['--demo-server', `127.0.0.1:${PORT.demo}`]);
  await waitFor('the demo VNC server', async () => { assertRunning(proc); return tcpReady(PORT.demo); });
}

function report(clients) {
  const rows = [
    ['first pixels (ms from navigation)', 'first', 0, 'lower'],
    ['frames drawn per second', 'fps', 1, 'higher'],
    ['main-thread ms per frame (WS handlers)', 'handler', 2, 'lower'],
    ['canvas ms per frame', 'canvas', 2, 'lower'],
    ['WebSocket payload KiB/s (inflated, in page)', 'wsKiBs', 0, 'lower'],
    ['WebSocket wire KiB/s (server log, whole session)', 'wireKiBs', 0, 'lower'],
    ['page download KiB (cold load)', 'pageKiB', 1, 'lower'],
  ];
  const [a, b] = clients;
  const head = ['metric (median of ' + a.runs.length + ' runs)', a.name, b.name, 'noVNC / wsvnc'];
  const body = rows.map(([label, key, digits]) => {
    const va = median(a.runs.map((r) => r[key]));
    const vb = median(b.runs.map((r) => r[key]));
    return [label, va.toFixed(digits), vb.toFixed(digits), va ? (vb / va).toPrecision(3) + '×' : '–'];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r) => '| ' + r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + widths.map((w, i) => (i ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|');
  for (const r of body) console.log(line(r));
}

run().catch((e) => { console.error(e.stack || String(e)); process.exitCode = 1; });
