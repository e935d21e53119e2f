// websockify's own documented command lines, run against wsvnc, with the pages of Debian's
// `novnc` package (/usr/share/novnc: vnc.html, vnc_lite.html) in headless Chromium and a
// real TigerVNC Xvnc behind. Debian's `websockify` runs the same command lines in the same
// run as the control: a check that fails for websockify is a wrong check, not a finding.
//
//   websockify --web /usr/share/novnc PORT localhost:RFB      (noVNC's README)
//     vnc_lite.html: canvas equals the X screen, typed keys reach the xterm; the page is
//                    served without a Content-Security-Policy (it has an inline module script)
//     vnc.html?autoconnect=true: canvas equals the X screen
//     vnc_lite.html?path=some/prefix/websockify: the upgrade is accepted on any path
//   websockify --web … --token-plugin TokenFile --token-source DIR PORT
//     a token directory (two files); ?path=websockify?token=desk connects, an unknown token
//     does not
//   websockify --web … --target-config FILE PORT, FILE holding 'sock: unix_socket:PATH'
//     (Xvnc -rfbunixpath): vnc.html connects over the Unix socket
//
// WSVNC_BIN (default target/release/wsvnc). Ports are free ones; X displays start at
// :85 + 20·WSVNC_TEST_OFFSET. Screenshots and logs: tests/browser/artifacts/websockify-compat/.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
    ARTIFACTS, CHROMIUM, HERE, assertRunning, expectCanvasMatchesX, freePort, killAll, killNow, sleep,
    spawnTracked, startXterm, startXvnc, tcpReady, waitFor, which,
} from './lib.mjs';

const OFFSET = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
if (!(Number.isInteger(OFFSET) && OFFSET >= 0 && OFFSET <= 9)) throw new Error('WSVNC_TEST_OFFSET must be 0..9');
const NOVNC_WEB = '/usr/share/novnc';
const WSVNC = process.env.WSVNC_BIN || path.resolve(HERE, '../../target/release/wsvnc');
const SERVERS = { websockify: 'websockify', wsvnc: WSVNC };
const OUT = path.join(ARTIFACTS, 'websockify-compat');
const WIDTH = 800;
const HEIGHT = 600;
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync'];

const ctx = {};

function checkPrerequisites() {
    const missing = [];
    for (const [cmd, pkg] of [['Xvnc', 'tigervnc-standalone-server'], ['xterm', 'xterm'],
        ['xsetroot', 'x11-xserver-utils'], ['xdpyinfo', 'x11-utils'], ['xwininfo', 'x11-utils'],
        ['import', 'imagemagick'], ['convert', 'imagemagick'], ['websockify', 'websockify']]) {
        if (!which(cmd)) missing.push(`command ${cmd} (Debian package ${pkg})`);
    }
    for (const f of ['vnc.html', 'vnc_lite.html', 'core/rfb.js']) {
        if (!fs.existsSync(path.join(NOVNC_WEB, f))) missing.push(`${NOVNC_WEB}/${f} (Debian package novnc)`);
    }
    if (!which(CHROMIUM)) missing.push(`${CHROMIUM} (Debian package chromium)`);
    if (!fs.existsSync(path.join(HERE, 'node_modules', 'playwright-core'))) {
        missing.push('tests/browser/node_modules/playwright-core (npm ci in tests/browser)');
    }
    if (!fs.existsSync(WSVNC)) missing.push(`${WSVNC} (cargo build --release, or set WSVNC_BIN)`);
    if (missing.length) throw new Error('missing prerequisites:\n  - ' + missing.join('\n  - '));
}

/** Runs `server args…` (listening on 127.0.0.1:PORT) for the duration of fn(url). */
async function withServer(server, args, fn) {
    const port = await freePort();
    const argv = args.map((a) => a.replaceAll('{listen}', `127.0.0.1:${port}`));
    const proc = spawnTracked(`${server}-${port}`, SERVERS[server], argv,
        { env: { ...process.env, RUST_LOG: 'info' } });
    try {
        await waitFor(`${server} ${argv.join(' ')} to listen`, async () => {
            assertRunning(proc);
            return tcpReady(port);
        }, { timeoutMs: 20000 });
        return await fn(`http://127.0.0.1:${port}/`, proc);
    } finally {
        killNow(proc);
    }
}

/** A fresh browser context and page that records page errors, CSP reports and failed requests. */
async function newPage() {
    const context = await ctx.browser.newContext({ viewport: { width: 1024, height: 768 } });
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
        if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push(`console: ${m.text()}`);
    });
    // vnc.html fetches package.json for its version label; Debian's package does not ship it.
    const absent = /\/(favicon\.ico|package\.json)$/;
    page.on('response', (r) => {
        if (r.status() >= 400 && !absent.test(r.url())) page.problems.push(`${r.status()} ${r.url()}`);
    });
    page.closeAll = () => context.close();
    return page;
}

// The framebuffer is the largest canvas on the page (noVNC may add a cursor canvas).
const inPage = {
    readCanvas: () => {
        const c = [...document.querySelectorAll('canvas')].sort((a, b) => b.width * b.height - a.width * a.height)[0];
        if (!c || !c.width || !c.height) return null;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
        return { width: c.width, height: c.height, rgba: btoa(s) };
    },
    canvasPng: () => {
        const c = [...document.querySelectorAll('canvas')].sort((a, b) => b.width * b.height - a.width * a.height)[0];
        return c && c.width ? c.toDataURL('image/png') : null;
    },
};

async function expectScreen(page, label) {
    const cmp = await expectCanvasMatchesX(page, { display: ctx.display, width: WIDTH, height: HEIGHT, label,
        dir: OUT, ...inPage });
    assert.equal(cmp.count, 0, `${label}: canvas differs from the X screen: ${JSON.stringify(cmp)} (see ${OUT})`);
}

const liteStatus = (page) => page.$eval('#status', (e) => e.textContent);

/** vnc_lite.html until its status says Connected (or fails with the status it shows). */
async function openLite(url, query, label) {
    const page = await newPage();
    const response = await page.goto(`${url}vnc_lite.html${query}`);
    assert.equal(response.status(), 200);
    try {
        await waitFor(`${label}: vnc_lite.html to connect`, async () => {
            const s = await liteStatus(page);
            if (/went wrong|Disconnected/.test(s)) throw new Error(`vnc_lite.html says "${s}"`);
            return s.startsWith('Connected');
        }, { timeoutMs: 20000 });
    } catch (e) {
        await page.screenshot({ path: path.join(OUT, `${label}-failed.png`) });
        throw new Error(`${e.message}; page problems: ${JSON.stringify(page.problems)}`);
    }
    return { page, response };
}

async function openFull(url, query, label) {
    const page = await newPage();
    await page.goto(`${url}vnc.html?autoconnect=true${query}`);
    try {
        await page.waitForFunction(() => document.documentElement.classList.contains('noVNC_connected'), null,
            { timeout: 20000 });
    } catch (e) {
        await page.screenshot({ path: path.join(OUT, `${label}-failed.png`) });
        throw new Error(`${label}: vnc.html did not connect (${e.message}); page problems: ${JSON.stringify(page.problems)}`);
    }
    return page;
}

describe('websockify command lines: wsvnc and (control) websockify with Debian novnc pages', { timeout: 400000 }, () => {
    test('setup: prerequisites, Xvnc on TCP and a Unix socket, xterm, token files, Chromium', async () => {
        fs.rmSync(OUT, { recursive: true, force: true });
        fs.mkdirSync(OUT, { recursive: true });
        checkPrerequisites();
        ctx.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-wscompat-'));
        ctx.typedFile = path.join(ctx.tmp, 'typed.txt');
        ctx.sock = path.join(ctx.tmp, 'vnc.sock');
        Object.assign(ctx, await startXvnc({ width: WIDTH, height: HEIGHT, start: 85 + 20 * OFFSET,
            desktop: 'wsvnc-websockify-compat', extraArgs: ['-rfbunixpath', ctx.sock] }));
        await waitFor(`Xvnc's Unix socket ${ctx.sock}`, () => fs.existsSync(ctx.sock));
        const xterm = await startXterm(ctx.display, {
            root: '#3a6b35', geometry: '48x10+140+120', bg: '#101010', fg: '#e0e0e0', title: 'wscompat',
            script: `echo 'websockify command lines'; exec cat > '${ctx.typedFile}'`,
        });
        ctx.xterm = xterm.proc;
        ctx.xtermGeom = xterm.geom;

        // A token directory as websockify reads one: every file in it.
        ctx.tokenDir = path.join(ctx.tmp, 'tokens.d');
        fs.mkdirSync(ctx.tokenDir);
        fs.writeFileSync(path.join(ctx.tokenDir, 'other.conf'), 'elsewhere: 127.0.0.1:1\n');
        fs.writeFileSync(path.join(ctx.tokenDir, 'desk.conf'), `# the test desktop\ndesk: 127.0.0.1:${ctx.rfbPort}\n`);
        ctx.targetConfig = path.join(ctx.tmp, 'targets.cfg');
        fs.writeFileSync(ctx.targetConfig, `sock: unix_socket:${ctx.sock}\n`);

        const { chromium } = await import('playwright-core');
        ctx.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
        ctx.ready = true;
    });

    after(async () => {
        try {
            if (ctx.browser) await ctx.browser.close();
        } finally {
            await killAll();
            if (ctx.tmp) fs.rmSync(ctx.tmp, { recursive: true, force: true });
        }
    });

    const requireSetup = () => {
        if (!ctx.ready) throw new Error('setup failed (see the setup test above)');
    };

    for (const server of Object.keys(SERVERS)) {
        test(`${server} --web ${NOVNC_WEB} PORT localhost:RFB: vnc_lite.html, vnc.html, any path`, async () => {
            requireSetup();
            await withServer(server, ['--web', NOVNC_WEB, '{listen}', `localhost:${ctx.rfbPort}`], async (url) => {
                const { page, response } = await openLite(url, '', `${server}-lite`);
                // noVNC's pages have inline scripts: a default-src 'self' policy would stop them.
                assert.equal(response.headers()['content-security-policy'], undefined);
                await expectScreen(page, `${server}-lite`);
                const line = `typed via ${server} ${crypto.randomBytes(3).toString('hex')}`;
                const rect = await page.evaluate(() => {
                    const r = document.querySelector('#screen canvas').getBoundingClientRect();
                    return { x: r.x, y: r.y };
                });
                const g = ctx.xtermGeom;
                await page.mouse.click(rect.x + g.x + g.w / 2, rect.y + g.y + g.h / 2);
                await sleep(200);
                await page.keyboard.type(line, { delay: 10 });
                await page.keyboard.press('Enter');
                await waitFor(`"${line}" in ${ctx.typedFile}`, () => {
                    assertRunning(ctx.xterm);
                    return fs.existsSync(ctx.typedFile) && fs.readFileSync(ctx.typedFile, 'utf8').endsWith(`${line}\n`);
                });
                assert.deepEqual(page.problems, []);
                await page.closeAll();

                const full = await openFull(url, '', `${server}-vnc`);
                await expectScreen(full, `${server}-vnc`);
                assert.deepEqual(full.problems, []);
                await full.closeAll();

                // websockify accepts the WebSocket on any path (e.g. behind a proxy prefix).
                const prefixed = await openLite(url, '?path=some/prefix/websockify', `${server}-anypath`);
                await expectScreen(prefixed.page, `${server}-anypath`);
                await prefixed.page.closeAll();
            });
        });

        test(`${server} --web … --token-plugin TokenFile --token-source DIR PORT`, async () => {
            requireSetup();
            const args = ['--web', NOVNC_WEB, '--token-plugin', 'TokenFile', '--token-source', ctx.tokenDir, '{listen}'];
            await withServer(server, args, async (url) => {
                const { page } = await openLite(url, `?path=${encodeURIComponent('websockify?token=desk')}`,
                    `${server}-tokendir`);
                await expectScreen(page, `${server}-tokendir`);
                await page.closeAll();
                // An unknown token never connects.
                const bad = await newPage();
                await bad.goto(`${url}vnc_lite.html?path=${encodeURIComponent('websockify?token=nope')}`);
                await waitFor(`${server}: an unknown token to be refused`, async () => {
                    const s = await liteStatus(bad);
                    if (s.startsWith('Connected')) throw new Error('connected with an unknown token');
                    return /went wrong|Disconnected/.test(s);
                }, { timeoutMs: 20000 });
                await bad.closeAll();
            });
        });

        test(`${server} --web … --target-config FILE PORT with a unix_socket: line`, async () => {
            requireSetup();
            const args = ['--web', NOVNC_WEB, '--target-config', ctx.targetConfig, '{listen}'];
            await withServer(server, args, async (url) => {
                const page = await openFull(url, `&path=${encodeURIComponent('websockify?token=sock')}`, `${server}-unix`);
                await expectScreen(page, `${server}-unix`);
                assert.deepEqual(page.problems, []);
                await page.closeAll();
            });
        });
    }
});
