// Configuration of the slow-link benchmark: environment knobs, fixed resources (moved by
// WSVNC_TEST_OFFSET like the tests), the links, contents and clients to run, noVNC's page.

import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../..');
export const env = process.env;
const num = (name, dflt) => (env[name] !== undefined && env[name] !== '' ? Number(env[name]) : dflt);

export const QUICK = env.QUICK === '1';
export const CFG = {
  runs: num('RUNS', QUICK ? 1 : 3),
  warmMs: num('WARM_MS', QUICK ? 800 : 1500),
  windowMs: num('WINDOW_MS', QUICK ? 2500 : 4000),
  graceMs: num('GRACE_MS', QUICK ? 800 : 1500),
  psnrSamples: num('PSNR_SAMPLES', QUICK ? 2 : 3),
  restMs: num('REST_MS', QUICK ? 1500 : 3000),
  settledMs: num('SETTLED_MS', 700),
  probeMs: num('PROBE_MS', 200),
  queueMs: num('QUEUE_MS', 100),
  connectMs: num('CONNECT_MS', 30000),
  // A page whose animation frames fell below this rate was starved of CPU by other load on
  // the machine (headless Chromium runs them at 60 Hz): such a measurement is repeated once.
  minRafHz: num('MIN_RAF_HZ', 30),
};
export const OUT = env.SLB_OUT || path.join(ROOT, 'target', 'slowlink-bench');
// Fixed resources, moved by WSVNC_TEST_OFFSET=N (like the tests) so parallel checkouts can run
// it at once, each overridable: ports 27000+20N.. (Xvnc, gateway, websockify), X display
// :300+N, namespace wsvnc-bench-bN, subnet 10.223.N.0 (host .1, browser .2).
const OFFSET = num('WSVNC_TEST_OFFSET', 0);
const PORT_BASE = num('SLB_PORT_BASE', 27000 + 20 * OFFSET);
export const PORT = { rfb: PORT_BASE, gateway: PORT_BASE + 1, websockify: PORT_BASE + 2, check: PORT_BASE + 3 };
export const DISPLAY = num('SLB_DISPLAY', 300 + OFFSET);
export const NETNS = env.SLB_NETNS || `wsvnc-bench-b${OFFSET}`;
export const HOST_ADDR = env.SLB_HOST_ADDR || `10.223.${OFFSET}.1`;
export const NS_ADDR = env.SLB_NS_ADDR || `10.223.${OFFSET}.2`;
export const HOST_IF = env.SLB_HOST_IF || `wsvnc-bh${OFFSET}`;
export const NS_IF = env.SLB_NS_IF || `wsvnc-bb${OFFSET}`;
export const WSVNC = env.WSVNC_BIN || path.join(ROOT, 'target', 'release', 'wsvnc');
export const CHROMIUM = env.CHROMIUM_PATH || '/usr/bin/chromium';
export const NODE_MODULES = env.SLB_NODE_MODULES || path.join(ROOT, 'tests', 'browser', 'node_modules');
export const NOVNC = path.join(NODE_MODULES, '@novnc', 'novnc');
export const PYTHON = env.SLB_PYTHON || '/usr/bin/python3';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
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
export const LINKS = parseLinks(env.LINKS || 'lan,20/20,4/40,1/80');
export const CONTENTS = (env.CONTENTS || 'slideshow,terminal,drag').split(',').map((s) => s.trim()).filter(Boolean);
const CLIENT_NAMES = (env.CLIENTS || 'novnc,wsvnc').split(',').map((s) => s.trim()).filter(Boolean);

// noVNC's RFB class on a bare page, served by websockify --web. noVNC defaults are kept
// (Tight, JPEG quality 6, compression 2): the page sets no quality or compression.
export const NOVNC_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>noVNC slow-link bench</title>
<style>html,body{margin:0;background:#000}#screen{width:1024px;height:768px}</style>
<script type="module" src="bench.js"></script></head>
<body><div id="screen"></div></body></html>
`;
export const NOVNC_SCRIPT = `import RFB from './novnc/core/rfb.js';
const url = new URL('websockify', location.href);
url.protocol = 'ws:';
const rfb = new RFB(document.getElementById('screen'), url.href, { shared: true });
rfb.viewOnly = true;
rfb.scaleViewport = false;
rfb.clipViewport = false;
rfb.resizeSession = false;
window.rfb = rfb;
`;

export const log = (msg) => process.stderr.write(`[slowlink ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

export function clients() {
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
