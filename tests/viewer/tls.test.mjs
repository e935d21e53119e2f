// wsvnc's own viewer over https:// and wss:// in headless Chromium: wsvnc --cert/--key
// --ssl-only with a throwaway CA (scripts/test-ca.sh), Chromium trusting that server key
// through --ignore-certificate-errors-spki-list (a fresh profile, nothing installed),
// through the real gateway to Xvnc: the page and the WebSocket are TLS, the canvas equals
// the X screen, typing reaches an xterm; plain HTTP to the TLS-only port gets no page.
//
// Ports 19130-19131 and display :82 (moved by WSVNC_TEST_OFFSET like viewer.test.mjs).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import {
  comparePixels, killAll, run, sleep, spawnTracked, waitFor, xScreenshot,
} from '../browser/lib.mjs';
import {
  CHROMIUM, CHROMIUM_ARGS, ROOT, checkPrerequisites, readCanvas, startWsvnc, startXvnc,
} from './harness.mjs';

const OFFSET = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
const PORT = { gw: 19130 + 1000 * OFFSET, xvnc: 19131 + 1000 * OFFSET };
const DISPLAY = 82 + 20 * OFFSET;
const ROOT_RGB = [0x2e, 0x8a, 0x5c];

/** Waits until the canvas equals a fresh screenshot of the X root window. */
async function canvasMatchesX(page, x, w, h) {
  let cmp = null;
  await waitFor('the canvas to equal the X screen', async () => {
    const c = await readCanvas(page);
    if (!c || c.width !== w || c.height !== h) return false;
    cmp = comparePixels(Buffer.from(c.rgba, 'base64'), xScreenshot(x.display, w, h), w, h);
    return cmp.count === 0;
  }, { timeoutMs: 30000 }).catch((e) => {
    throw new Error(`${e.message}; last comparison ${JSON.stringify(cmp)}`);
  });
}

/** Raw bytes back from a plain HTTP request (until close or 5 s). */
function plainRequest(port) {
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    s.setTimeout(5000, () => s.destroy());
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('viewer over https and wss (wsvnc --cert --key --ssl-only)', { timeout: 180000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-viewer-tls-'));
  const typed = path.join(tmp, 'typed.txt');
  let x, browser, page;
  const wsUrls = [];

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    await killAll();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('setup: test CA, Xvnc + xterm, wsvnc with TLS only, Chromium trusting the key', async () => {
    checkPrerequisites();
    execFileSync(path.join(ROOT, 'scripts', 'test-ca.sh'), [tmp, 'server']);
    x = await startXvnc(DISPLAY, PORT.xvnc, { width: 800, height: 600 });
    run('xsetroot', ['-solid', '#2e8a5c'], { env: x.env });
    spawnTracked('xterm-tls', 'xterm', ['-geometry', '60x10+40+40', '-fn', 'fixed', '-bg', '#1e1e1e',
      '-fg', '#f0d000', '+sb', '-e', 'sh', '-c', `exec cat > '${typed}'`], { env: x.env });
    await waitFor('the xterm to create typed.txt', () => fs.existsSync(typed));
    await startWsvnc('wsvnc-tls', PORT.gw, ['--target', `127.0.0.1:${PORT.xvnc}`,
      '--cert', path.join(tmp, 'server.pem'), '--key', path.join(tmp, 'server.key'), '--ssl-only']);
    const spki = fs.readFileSync(path.join(tmp, 'server.spki'), 'utf8').trim();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${spki}`] });
    page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    page.on('websocket', (ws) => wsUrls.push(ws.url()));
    await page.goto(`https://localhost:${PORT.gw}/?resize=0`);
    await page.waitForFunction(() => document.body.classList.contains('live'), null, { timeout: 30000 });
  });

  test('the page and its WebSocket are TLS, and the canvas equals the X screen', async () => {
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    assert.ok(wsUrls.length > 0 && wsUrls.every((u) => u.startsWith(`wss://localhost:${PORT.gw}/`)),
      `WebSockets opened: ${JSON.stringify(wsUrls)}`);
    await canvasMatchesX(page, x, 800, 600);
    const c = await readCanvas(page);
    const corner = [...Buffer.from(c.rgba, 'base64').subarray((599 * 800 + 799) * 4, (599 * 800 + 799) * 4 + 3)];
    assert.deepEqual(corner, ROOT_RGB, 'the root colour in the corner');
  });

  test('typing over wss reaches the xterm', async () => {
    const box = await page.$eval('#canvas', (e) => {
      const r = e.getBoundingClientRect();
      return { x: r.left, y: r.top, sx: r.width / e.width, sy: r.height / e.height };
    });
    await page.mouse.click(box.x + 150 * box.sx, box.y + 60 * box.sy); // focus follows the pointer
    await sleep(200);
    await page.keyboard.type('over TLS 1.3!');
    await page.keyboard.press('Enter');
    const got = await waitFor('the typed line', () => {
      const s = fs.readFileSync(typed, 'utf8');
      return s.endsWith('\n') ? s : null;
    }, { timeoutMs: 15000 });
    assert.equal(got, 'over TLS 1.3!\n');
    await canvasMatchesX(page, x, 800, 600);
  });

  test('plain HTTP to the TLS-only port gets no page', async () => {
    const reply = await plainRequest(PORT.gw);
    assert.ok(!reply.toString('latin1').startsWith('HTTP/'), `plain HTTP was answered: ${reply.toString('latin1', 0, 60)}`);
  });
});
