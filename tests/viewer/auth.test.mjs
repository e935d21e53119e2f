// Access control in a real browser: headless Chromium opens the viewer page of a wsvnc that
// requires HTTP Basic (credentials given to the browser context), or an access token in the
// page URL (a JWT minted here with node:crypto, not by wsvnc). The page, its scripts and its
// WebSocket must all be admitted (the canvas shows the demo desktop); without credentials
// the page is refused.
//
// Ports 127.0.0.1:19150-19151 (+1000·WSVNC_TEST_OFFSET). Needs target/debug/wsvnc (cargo build).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { killAll, run, waitFor } from '../browser/lib.mjs';
import { WSVNC, canvasPixel, launchChromium, startWsvnc } from './harness.mjs';

const OFFSET = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
const PORT = { basic: 19150 + 1000 * OFFSET, jwt: 19151 + 1000 * OFFSET };
const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-auth-'));
const KEY = 'a JWT key for the viewer test, longer than 32 bytes';

let browser;
before(async () => {
  if (!fs.existsSync(WSVNC)) throw new Error(`${WSVNC} missing: run cargo build`);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await killAll();
  fs.rmSync(DIR, { recursive: true, force: true });
});

/** Waits until the viewer's canvas shows the demo desktop (a pixel that is not black). */
async function showsDesktop(page) {
  await waitFor('the demo desktop on the canvas', async () => {
    const p = await canvasPixel(page, 100, 100);
    return p && (p[0] || p[1] || p[2]);
  }, { timeoutMs: 20000 });
}

function b64u(s) {
  return Buffer.from(s).toString('base64url');
}

function mintJwt(claims) {
  const head = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  return `${head}.${crypto.createHmac('sha256', KEY).update(head).digest('base64url')}`;
}

describe('HTTP Basic', () => {
  let url;
  before(async () => {
    const line = String(run(WSVNC, ['hash-password', 'ann'], { input: 'right horse\n' })).trim();
    assert.match(line, /^ann:\$2y\$10\$/);
    const file = path.join(DIR, 'users');
    fs.writeFileSync(file, `${line}\n`);
    ({ url } = await startWsvnc('wsvnc-basic', PORT.basic, ['--demo', '--basic-auth-file', file]));
  });

  test('without credentials the page is refused', async () => {
    const ctx = await browser.newContext();
    // Chromium, challenged with no credentials to give, abandons the navigation.
    const page = await ctx.newPage();
    await assert.rejects(page.goto(url), /ERR_INVALID_AUTH_CREDENTIALS/);
    const res = await ctx.request.get(url);
    assert.equal(res.status(), 401);
    assert.match(res.headers()['www-authenticate'], /^Basic realm="wsvnc"/);
    await ctx.close();
  });

  test('with credentials the page, its scripts and its WebSocket are admitted', async () => {
    const ctx = await browser.newContext({ httpCredentials: { username: 'ann', password: 'right horse' } });
    const page = await ctx.newPage();
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const res = await page.goto(url);
    assert.equal(res.status(), 200);
    await showsDesktop(page);
    assert.ok(sockets.some((u) => u.endsWith('/ws')), `WebSocket opened: ${sockets}`);
    await ctx.close();
  });

  test('a wrong password is refused', async () => {
    const ctx = await browser.newContext({ httpCredentials: { username: 'ann', password: 'wrong' } });
    const page = await ctx.newPage();
    const res = await page.goto(url);
    assert.ok([401, 429].includes(res.status()), `status ${res.status()}`);
    await ctx.close();
  });
});

describe('access token (JWT)', () => {
  let url;
  before(async () => {
    const file = path.join(DIR, 'jwt.key');
    fs.writeFileSync(file, `${KEY}\n`);
    ({ url } = await startWsvnc('wsvnc-jwt', PORT.jwt, ['--demo', '--jwt-secret-file', file]));
  });

  test('without a token the page is refused', async () => {
    const page = await browser.newPage();
    const res = await page.goto(url);
    assert.equal(res.status(), 401);
    assert.match(await res.text(), /access token is required/);
    await page.close();
  });

  test('?jwt= on the page URL admits the page, then its cookie the scripts and the WebSocket', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const token = mintJwt({ exp: Math.floor(Date.now() / 1000) + 300, sub: 'viewer-test' });
    const res = await page.goto(`${url}?jwt=${token}`);
    assert.equal(res.status(), 200);
    await showsDesktop(page);
    const cookies = await ctx.cookies();
    const c = cookies.find((k) => k.name === 'wsvnc_jwt');
    assert.ok(c && c.httpOnly && c.sameSite === 'Strict', JSON.stringify(cookies));
    await ctx.close();
  });

  test('an expired token is refused', async () => {
    const page = await browser.newPage();
    const res = await page.goto(`${url}?jwt=${mintJwt({ exp: 1000 })}`);
    assert.equal(res.status(), 401);
    assert.match(await res.text(), /expired/);
    await page.close();
  });
});
