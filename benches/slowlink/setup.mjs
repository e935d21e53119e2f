// Setting up the benchmark's fixed parts: Xvnc, the two servers on the link's host side,
// Chromium inside the namespace, noVNC's page, and the link check.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import {
  CHROMIUM, CHROMIUM_ARGS, DISPLAY, HERE, HOST_ADDR, NETNS, NODE_MODULES, NOVNC, NOVNC_PAGE, NOVNC_SCRIPT, OUT,
  PORT, PYTHON, WSVNC, env,
} from './config.mjs';
import { SCREEN } from './content.mjs';
import { assertRunning, spawnTracked, tcpReady, waitFor } from './procs.mjs';

export function checkNodeSide() {
  const missing = [];
  if (!fs.existsSync(path.join(NODE_MODULES, 'playwright-core'))) missing.push(`${NODE_MODULES}/playwright-core (npm ci in tests/browser)`);
  if (!fs.existsSync(path.join(NOVNC, 'core', 'rfb.js'))) missing.push(`${NOVNC} (npm ci in tests/browser)`);
  if (!fs.existsSync(WSVNC)) missing.push(`${WSVNC} (cargo build --release, or set WSVNC_BIN)`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (Debian package chromium)`);
  if (missing.length) throw new Error('missing:\n  - ' + missing.join('\n  - '));
}

const X_FILES = [`/tmp/.X${DISPLAY}-lock`, `/tmp/.X11-unix/X${DISPLAY}`];

/** Removes the display's lock file and socket when the Xvnc that made them is gone. */
export function removeStaleXFiles() {
  let pid = null;
  try { pid = Number(fs.readFileSync(X_FILES[0], 'utf8').trim()); } catch { return; }
  try {
    process.kill(pid, 0);
    return; // still running: not ours to touch
  } catch { /* gone */ }
  for (const f of X_FILES) fs.rmSync(f, { force: true });
}

export async function startXvnc() {
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

export async function startServers() {
  for (const p of [PORT.gateway, PORT.websockify]) {
    if (await tcpReady(p, HOST_ADDR)) throw new Error(`${HOST_ADDR}:${p} is in use (set SLB_PORT_BASE)`);
  }
  const target = `127.0.0.1:${PORT.rfb}`;
  const ws = spawnTracked('websockify', 'websockify', ['--web', novncWebDir(), `${HOST_ADDR}:${PORT.websockify}`, target]);
  const extra = (env.WSVNC_ARGS || '').split(/\s+/).filter(Boolean);
  const gw = spawnTracked('wsvnc', WSVNC, ['--listen', `${HOST_ADDR}:${PORT.gateway}`, '--no-auth', '--target', target, ...extra],
    { env: { ...process.env, RUST_LOG: env.RUST_LOG || 'info' } });
  for (const [p, proc] of [[PORT.websockify, ws], [PORT.gateway, gw]]) {
    await waitFor(`${proc.name} on ${HOST_ADDR}:${p}`, async () => { assertRunning(proc); return tcpReady(p, HOST_ADDR); });
  }
  return { ws, gw };
}

export async function launchBrowser() {
  const { chromium } = await import(path.join(NODE_MODULES, 'playwright-core', 'index.mjs'));
  return chromium.launch({
    executablePath: path.join(HERE, 'chromium-netns.sh'), args: CHROMIUM_ARGS, timeout: 60000,
    env: { ...process.env, SLB_NETNS: NETNS, CHROMIUM_PATH: CHROMIUM },
  });
}

/**
 * What the emulated link really does, from inside the namespace: TCP handshake time (one RTT)
 * and the goodput of a ~2 s stream from the host side (kernel TCP through the emulator).
 */
export async function linkCheck(link) {
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
