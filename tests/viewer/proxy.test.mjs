// wsvnc's viewer in headless Chromium behind a real nginx (Debian package) that terminates
// TLS: once with the documented recipe (docs/nginx-wsvnc.conf) and once with nginx's bare
// WebSocket example (tests/proxy/nginx-defaults.conf, where Host names the upstream, so wsvnc
// is told the public origin with --allow-origin). Both pages load over https://, connect
// over wss:// and show the demo desktop.
//
// Ports 19140-19142 (moved by WSVNC_TEST_OFFSET like viewer.test.mjs).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { assertRunning, killAll, spawnTracked, tcpReady, waitFor, which } from '../browser/lib.mjs';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, readCanvas, startWsvnc } from './harness.mjs';

const OFFSET = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
const PORT = { recipe: 19140 + 1000 * OFFSET, defaults: 19141 + 1000 * OFFSET, gw: 19142 + 1000 * OFFSET };
const NGINX = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : which('nginx');

async function startNginx(tmp, name, port, snippet) {
  const proc = spawnTracked(`nginx-${name}`, path.join(ROOT, 'tests', 'proxy', 'start-nginx.sh'), [
    path.join(tmp, `nginx-${name}`), String(port), `127.0.0.1:${PORT.gw}`,
    path.join(tmp, 'server.pem'), path.join(tmp, 'server.key'), path.join(ROOT, snippet)]);
  await waitFor(`nginx (${name}) on port ${port}`, async () => {
    assertRunning(proc);
    return tcpReady(port);
  }, { timeoutMs: 15000 });
}

/** The viewer at `url` goes live and draws the demo desktop (not one flat colour). */
async function viewerWorks(browser, url) {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.body.classList.contains('live'), null, { timeout: 30000 });
    const c = await waitFor('the demo desktop on the canvas', async () => {
      const c = await readCanvas(page);
      if (!c || c.width !== 1024 || c.height !== 768) return null;
      const px = Buffer.from(c.rgba, 'base64');
      const colours = new Set();
      for (let i = 0; i < px.length && colours.size < 16; i += 4 * 997) colours.add(px.readUInt32LE(i));
      return colours.size >= 8 ? c : null;
    });
    assert.ok(c);
    return sockets;
  } finally {
    await page.close();
  }
}

describe('viewer behind nginx terminating TLS', { timeout: 120000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-viewer-proxy-'));
  let browser;

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    await killAll();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('setup: test CA, wsvnc --demo --trusted-proxy --allow-origin, two nginx, Chromium', async () => {
    assert.ok(NGINX, 'nginx not found (Debian package nginx)');
    execFileSync(path.join(ROOT, 'scripts', 'test-ca.sh'), [tmp, 'server']);
    await startWsvnc('wsvnc-behind-nginx', PORT.gw, ['--demo', '--trusted-proxy', '127.0.0.1',
      '--allow-origin', `https://localhost:${PORT.defaults}`,
      // nginx's defaults send the upstream's name as Host (DNS-rebinding check).
      '--allowed-host', 'wsvnc']);
    await startNginx(tmp, 'recipe', PORT.recipe, 'docs/nginx-wsvnc.conf');
    await startNginx(tmp, 'defaults', PORT.defaults, 'tests/proxy/nginx-defaults.conf');
    const spki = fs.readFileSync(path.join(tmp, 'server.spki'), 'utf8').trim();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${spki}`] });
  });

  test('the documented recipe: https page, wss socket, the desktop', async () => {
    const sockets = await viewerWorks(browser, `https://localhost:${PORT.recipe}/`);
    assert.ok(sockets.some((u) => u.startsWith(`wss://localhost:${PORT.recipe}/`)), JSON.stringify(sockets));
  });

  test("nginx's bare WebSocket example with the public origin allowed", async () => {
    const sockets = await viewerWorks(browser, `https://localhost:${PORT.defaults}/`);
    assert.ok(sockets.some((u) => u.startsWith(`wss://localhost:${PORT.defaults}/`)), JSON.stringify(sockets));
  });
});
