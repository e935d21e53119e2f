// End-to-end: noVNC 1.7 (library) in headless Chromium -> WebSocket relay
// under test (RELAY_CMD) -> TigerVNC Xvnc with an xterm on it.
//
//   (a) the noVNC canvas shows exactly the pixels of the X screen
//       (compared with an ImageMagick screenshot of the root window);
//   (b) a click and typed keys go through noVNC and reach the xterm;
//   (c) screenshots and logs are saved in tests/browser/artifacts/.
//
// Every missing prerequisite fails the test; nothing is skipped.
// RELAY_CMD: command template with {listen} and {target} (HOST:PORT), e.g.
//   websockify {listen} {target}
//   target/release/wsvnc --listen {listen} --target {target} --relay --allow-origin *
// RELAY_TLS_SPKI: set when the relay serves TLS (noVNC then connects to
// wss://); the base64 SHA-256 of its public key (scripts/test-ca.sh writes
// it), which Chromium is told to trust (--ignore-certificate-errors-spki-list).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
    ARTIFACTS, CHROMIUM, NOVNC_DIR, assertRunning, expectCanvasMatchesX, freePort, killAll, relayArgv,
    sleep, spawnTracked, startStaticServer, startXterm, startXvnc, tcpReady, waitFor, which, xScreenshot,
} from './lib.mjs';

const WIDTH = 800;
const HEIGHT = 600;
const ROOT_COLOUR = '#2e5c8a';
const ROOT_RGB = [0x2e, 0x5c, 0x8a];
const XTERM_BG = '#1e1e1e';
const XTERM_FG = '#f0d000';
// xterm position and size on the X screen (no window manager, so exact).
const XTERM_X = 120;
const XTERM_Y = 90;
const TOKEN = `wsvnc-Typed_${crypto.randomBytes(4).toString('hex')} 42.ok`;

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync'];

const TLS_SPKI = process.env.RELAY_TLS_SPKI || '';

const ctx = {};

// Collects every missing prerequisite so one run names them all.
function checkPrerequisites() {
    const missing = [];
    for (const cmd of ['Xvnc', 'xterm', 'xsetroot', 'xdpyinfo', 'xwininfo', 'import', 'convert']) {
        if (!which(cmd)) missing.push(`command ${cmd} (run scripts/deps.sh)`);
    }
    if (!which(CHROMIUM)) missing.push(`Chromium at ${CHROMIUM} (apt package chromium)`);
    if (!fs.existsSync(path.join(NOVNC_DIR, 'core', 'rfb.js'))) {
        missing.push('node_modules/@novnc/novnc (npm ci in tests/browser)');
    }
    if (!fs.existsSync(path.join(path.dirname(NOVNC_DIR), '..', 'playwright-core'))) {
        missing.push('node_modules/playwright-core (npm ci in tests/browser)');
    }
    const relay = process.env.RELAY_CMD;
    if (!relay) {
        missing.push('RELAY_CMD (e.g. "websockify {listen} {target}")');
    } else {
        const exe = relayArgv(relay, 'x', 'y')[0];
        if (!which(exe)) missing.push(`relay executable ${exe} from RELAY_CMD`);
    }
    if (missing.length) {
        throw new Error('missing prerequisites:\n  - ' + missing.join('\n  - '));
    }
}

const inPage = { readCanvas: () => window.readCanvas(), canvasPng: () => window.canvasPng() };

const expectCanvasMatchesXHere = (page, label) =>
    expectCanvasMatchesX(page, { display: ctx.display, width: WIDTH, height: HEIGHT, label, ...inPage });

describe(`noVNC through RELAY_CMD to Xvnc${TLS_SPKI ? ' over wss://' : ''}`, { timeout: 180000 }, () => {
    // Setup is a test of its own (not a `before` hook) so that a missing
    // prerequisite shows up as a failed test in the counts, not as
    // "cancelled".
    test('setup: prerequisites, Xvnc + xterm, relay, Chromium + noVNC connected', async (t) => {
        const t0 = Date.now();
        const phase = (what) => t.diagnostic(`${what} at +${Date.now() - t0} ms`);
        fs.rmSync(ARTIFACTS, { recursive: true, force: true });
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        checkPrerequisites();
        ctx.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-browser-'));
        ctx.typedFile = path.join(ctx.tmp, 'typed.txt');

        Object.assign(ctx, await startXvnc({ width: WIDTH, height: HEIGHT }));
        phase(`Xvnc :${ctx.display} ready (rfb port ${ctx.rfbPort})`);
        // The shell prints a title line, then `cat` copies the typed line into the file.
        const xterm = await startXterm(ctx.display, {
            root: ROOT_COLOUR, geometry: `52x12+${XTERM_X}+${XTERM_Y}`, bg: XTERM_BG, fg: XTERM_FG,
            title: 'wsvnc-test', script: `echo 'wsvnc browser test: type below'; exec cat > '${ctx.typedFile}'`,
        });
        ctx.xterm = xterm.proc;
        ctx.xtermGeom = xterm.geom;

        phase('xterm mapped');
        ctx.relayPort = await freePort();
        const argv = relayArgv(process.env.RELAY_CMD, `127.0.0.1:${ctx.relayPort}`, `127.0.0.1:${ctx.rfbPort}`);
        ctx.relay = spawnTracked('relay', argv[0], argv.slice(1));
        await waitFor(`relay (${argv.join(' ')}) to listen on ${ctx.relayPort}`, async () => {
            assertRunning(ctx.relay);
            return await tcpReady(ctx.relayPort);
        }, { timeoutMs: 20000 });

        phase('relay listening');
        ctx.http = await startStaticServer();

        const { chromium } = await import('playwright-core');
        const tlsArgs = TLS_SPKI ? [`--ignore-certificate-errors-spki-list=${TLS_SPKI}`] : [];
        ctx.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                              args: [...CHROMIUM_ARGS, ...tlsArgs] });
        phase('Chromium launched');
        ctx.page = await ctx.browser.newPage({ viewport: { width: 1024, height: 700 } });
        ctx.consoleLog = [];
        ctx.page.on('console', (m) => ctx.consoleLog.push(`${m.type()}: ${m.text()}`));
        ctx.page.on('pageerror', (e) => ctx.consoleLog.push(`pageerror: ${e.message}`));
        const wsUrl = `${TLS_SPKI ? 'wss' : 'ws'}://127.0.0.1:${ctx.relayPort}/websockify`;
        await ctx.page.goto(`http://127.0.0.1:${ctx.http.address().port}/?ws=${encodeURIComponent(wsUrl)}`);
        await waitFor('noVNC to connect', async () => {
            assertRunning(ctx.relay);
            const s = await ctx.page.evaluate(() => window.testState);
            if (s && (s.disconnected || s.securityFailure)) {
                throw new Error(`noVNC did not connect: ${JSON.stringify(s)}`);
            }
            return s && s.connected;
        });
        phase('noVNC connected');
        ctx.ready = true;
    });

    after(async () => {
        try {
            if (ctx.consoleLog) fs.writeFileSync(path.join(ARTIFACTS, 'browser-console.log'), ctx.consoleLog.join('\n') + '\n');
            if (ctx.browser) await ctx.browser.close();
        } finally {
            if (ctx.http) ctx.http.close();
            await killAll();
            if (ctx.tmp) fs.rmSync(ctx.tmp, { recursive: true, force: true });
        }
    });

    const requireSetup = () => {
        if (!ctx.ready) throw new Error('setup failed (see the setup test above)');
    };

    test('(a) noVNC canvas equals the X screen pixel for pixel', async () => {
        requireSetup();
        const cmp = await expectCanvasMatchesXHere(ctx.page, 'a-initial');
        // The pointer is not part of either image: Xvnc sends it as a cursor
        // pseudo-encoding, noVNC draws it on a separate canvas, and X's
        // GetImage (import) does not include it. So no difference is allowed.
        assert.equal(cmp.count, 0, `pixels differ: ${JSON.stringify(cmp)} (see artifacts/a-initial-*.png)`);
        const x = xScreenshot(ctx.display, WIDTH, HEIGHT);
        // Sanity: the screenshot really shows what was drawn (root colour in
        // the corner, xterm background inside the window).
        assert.deepEqual([...x.subarray(0, 3)], ROOT_RGB);
        const g = ctx.xtermGeom;
        const i = ((g.y + g.h - 4) * WIDTH + (g.x + g.w - 4)) * 3;
        assert.deepEqual([...x.subarray(i, i + 3)], [0x1e, 0x1e, 0x1e]);
    });

    test('(b) click and keys through noVNC reach the xterm', async () => {
        requireSetup();
        const page = ctx.page;
        const rect = await page.evaluate(() => window.canvasRect());
        assert.ok(rect, 'no noVNC canvas');
        const g = ctx.xtermGeom;
        // Click in the middle of the xterm: X focus follows the pointer (no
        // window manager), and noVNC focuses its canvas on mouse down.
        await page.mouse.click(rect.x + g.x + g.w / 2, rect.y + g.y + g.h / 2);
        await sleep(300);
        await page.keyboard.type(TOKEN, { delay: 15 });
        await page.keyboard.press('Enter');
        const got = await waitFor(`the typed line in ${ctx.typedFile}`, () => {
            assertRunning(ctx.xterm);
            const s = fs.existsSync(ctx.typedFile) ? fs.readFileSync(ctx.typedFile, 'utf8') : '';
            return s.endsWith('\n') ? s : null;
        }, { timeoutMs: 15000 });
        assert.equal(got, TOKEN + '\n');

        // The echoed text is now on screen: the canvas must follow again.
        const cmp = await expectCanvasMatchesXHere(page, 'b-after-typing');
        assert.equal(cmp.count, 0, `pixels differ after typing: ${JSON.stringify(cmp)} (see artifacts/b-after-typing-*.png)`);
    });

    test('(c) screenshots were saved', () => {
        requireSetup();
        for (const f of ['a-initial-x11.png', 'a-initial-canvas.png', 'a-initial-page.png',
                         'b-after-typing-x11.png', 'b-after-typing-canvas.png', 'b-after-typing-page.png']) {
            const p = path.join(ARTIFACTS, f);
            assert.ok(fs.existsSync(p) && fs.statSync(p).size > 0, `missing artifact ${p}`);
        }
    });
});
