// Real components for the viewer tests and the viewer benchmark: Xvnc displays, an xterm,
// the wsvnc binary, headless Chromium, and reading the viewer's canvas.
//
// Process tracking (kill by process group on every exit path), polling and the X screenshot
// come from tests/browser/lib.mjs, so both browser suites clean up the same way.
// Ports and displays are fixed per caller (this helper's range: 127.0.0.1:19000-19199,
// displays :80-:89) and checked to be free before use.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  assertRunning, killNow, run, spawnTracked, tcpReady, waitFor, which,
} from '../browser/lib.mjs';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../..');
export const ARTIFACTS = path.join(ROOT, 'artifacts', 'viewer');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const WSVNC = process.env.WSVNC_BIN || path.join(ROOT, 'target', 'debug', 'wsvnc');
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

// Commands the real tests need, with the Debian package that has each.
const COMMANDS = {
  Xvnc: 'tigervnc-standalone-server', vncpasswd: 'tigervnc-tools or tigervnc-standalone-server',
  xterm: 'xterm', xsetroot: 'x11-xserver-utils', xrandr: 'x11-xserver-utils',
  xdpyinfo: 'x11-utils', xev: 'x11-utils', xdotool: 'xdotool', xclip: 'xclip',
  import: 'imagemagick', convert: 'imagemagick', display: 'imagemagick', setxkbmap: 'x11-xkb-utils', openssl: 'openssl',
  db_load: 'db-util',
};

/** Every missing prerequisite in one error (package names included); nothing is skipped. */
export function checkPrerequisites(commands = Object.keys(COMMANDS)) {
  const missing = [];
  for (const cmd of commands) {
    if (!which(cmd)) missing.push(`command ${cmd} (Debian package ${COMMANDS[cmd]})`);
  }
  if (!which(CHROMIUM)) missing.push(`${CHROMIUM} (Debian package chromium)`);
  if (!fs.existsSync(path.join(HERE, 'node_modules', 'playwright-core'))) {
    missing.push('tests/viewer/node_modules/playwright-core (npm ci in tests/viewer)');
  }
  if (!fs.existsSync(WSVNC)) missing.push(`${WSVNC} (cargo build)`);
  if (missing.length) throw new Error('missing prerequisites:\n  - ' + missing.join('\n  - '));
}

export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Fails when something already listens on the port (another test run, another helper). */
export async function assertPortFree(port) {
  if (await tcpReady(port)) throw new Error(`127.0.0.1:${port} is already in use`);
}

/**
 * Starts `Xvnc :display` on rfbPort: no security, VncAuth with `passwordFile`, or `security`
 * (Xvnc arguments, e.g. -SecurityTypes X509Plain …); `extra` are more Xvnc arguments.
 * Returns { display, rfbPort, proc, env } once the RFB port and the X display answer.
 */
export async function startXvnc(display, rfbPort,
  { width = 1024, height = 768, passwordFile = null, security = null, extra = [] } = {}) {
  if (fs.existsSync(`/tmp/.X${display}-lock`)) {
    throw new Error(`X display :${display} is in use (/tmp/.X${display}-lock exists)`);
  }
  await assertPortFree(rfbPort);
  security ??= passwordFile ? ['-SecurityTypes', 'VncAuth', '-PasswordFile', passwordFile]
    : ['-SecurityTypes', 'None'];
  const proc = spawnTracked(`Xvnc-${display}`, 'Xvnc', [
    `:${display}`, '-rfbport', String(rfbPort), ...security, '-geometry', `${width}x${height}`,
    '-depth', '24', '-interface', '127.0.0.1', '-nolisten', 'tcp', '-AlwaysShared',
    '-desktop', `wsvnc-viewer-${display}`, ...extra,
  ]);
  await waitFor(`Xvnc :${display} on port ${rfbPort}`, async () => {
    assertRunning(proc);
    return tcpReady(rfbPort);
  }, { timeoutMs: 15000 });
  const env = { ...process.env, DISPLAY: `:${display}` };
  await waitFor(`X display :${display}`, () => {
    assertRunning(proc);
    run('xdpyinfo', [], { env });
    return true;
  }, { timeoutMs: 10000 });
  return { display, rfbPort, proc, env };
}

/** Stops an Xvnc and waits until its display and port are free again. */
export async function stopXvnc(x) {
  killNow(x.proc);
  await waitFor(`Xvnc :${x.display} to exit`, async () =>
    x.proc.child.exitCode !== null || x.proc.child.signalCode !== null, { timeoutMs: 10000 });
  // SIGKILL leaves the lock file and socket behind; Xvnc reuses a stale lock, but be tidy.
  for (const f of [`/tmp/.X${x.display}-lock`, `/tmp/.X11-unix/X${x.display}`]) {
    try { fs.unlinkSync(f); } catch { /* gone */ }
  }
  await waitFor(`port ${x.rfbPort} to close`, async () => !(await tcpReady(x.rfbPort)));
}

/** wsvnc on listenPort with `args` (e.g. --target …); resolves when it accepts HTTP. */
export async function startWsvnc(name, listenPort, args) {
  await assertPortFree(listenPort);
  const proc = spawnTracked(name, WSVNC, ['--listen', `127.0.0.1:${listenPort}`, ...args],
    { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' } });
  await waitFor(`${name} on port ${listenPort}`, async () => {
    assertRunning(proc);
    return tcpReady(listenPort);
  }, { timeoutMs: 15000 });
  return { proc, url: `http://127.0.0.1:${listenPort}/` };
}

/**
 * Fails unless the wsvnc at `url` serves the viewer files as they are in web/ now (the
 * binary embeds web/ at build time: a stale build would test old code).
 */
export async function assertServesCurrentWeb(url) {
  const stale = [];
  const web = path.join(ROOT, 'web');
  const files = ['index.html', 'app.css', ...fs.readdirSync(path.join(web, 'js')).map((f) => `js/${f}`)];
  for (const f of files) {
    const res = await fetch(new URL(f, url));
    const body = Buffer.from(await res.arrayBuffer());
    if (!res.ok || !body.equals(fs.readFileSync(path.join(web, f)))) stale.push(f);
  }
  if (stale.length) {
    throw new Error(`${WSVNC} serves an old copy of web/ (${stale.join(', ')}): run cargo build`);
  }
}

/** Page → { width, height, rgba (base64) } of the viewer's canvas (or null before one exists). */
export function readCanvas(page, selector = '#canvas') {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    if (!c || !c.width || !c.height) return null;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
    return { width: c.width, height: c.height, rgba: btoa(s) };
  }, selector);
}

/** One canvas pixel [r, g, b, a]. */
export function canvasPixel(page, x, y, selector = '#canvas') {
  return page.evaluate(([sel, px, py]) => {
    const c = document.querySelector(sel);
    if (!c || px >= c.width || py >= c.height) return null;
    return [...c.getContext('2d').getImageData(px, py, 1, 1).data];
  }, [selector, x, y]);
}

/** Writes the canvas bitmap as PNG. */
export async function saveCanvasPng(page, file, selector = '#canvas') {
  const url = await page.evaluate((sel) => {
    const c = document.querySelector(sel);
    return c && c.width ? c.toDataURL('image/png') : null;
  }, selector);
  if (url) fs.writeFileSync(file, Buffer.from(url.split(',')[1], 'base64'));
}

/** WSVNC_TEST_OFFSET (0..9): this checkout's ports are + 1000·N, its X displays + 20·N. */
export function testOffset() {
  const n = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
  if (!(Number.isInteger(n) && n >= 0 && n <= 9)) throw new Error('WSVNC_TEST_OFFSET must be 0..9');
  return n;
}

/**
 * For suites against the page alone: mock-gateway.mjs (its demo desktop by default) on
 * 127.0.0.1:port and a Chromium. Resolves with { gw, browser, stop() }.
 */
export async function startMockAndChromium(port) {
  checkPrerequisites([]);
  const { MockGateway } = await import('./mock-gateway.mjs');
  const gw = new MockGateway();
  await gw.start(port);
  const browser = await launchChromium();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return {
    gw, browser,
    async stop() {
      await browser.close().catch(() => {});
      await gw.stop();
    },
  };
}
