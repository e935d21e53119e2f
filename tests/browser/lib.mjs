// Helpers for the browser tests: tracked child processes (killed by PID on
// every exit path), free ports / X displays, polling, a static file server
// for the test page and noVNC, and X screenshots through ImageMagick.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const NOVNC_DIR = path.join(HERE, 'node_modules', '@novnc', 'novnc');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- processes

const tracked = new Set(); // { name, child, logPath }

function isAlive(child) {
    return child.exitCode === null && child.signalCode === null;
}

// Signals the process group led by the child (its pid), falling back to the
// pid alone.
function signal(child, sig) {
    if (!child.pid) return;
    try {
        process.kill(-child.pid, sig);
    } catch {
        if (isAlive(child)) {
            try { process.kill(child.pid, sig); } catch { /* already gone */ }
        }
    }
}

// Kills one tracked process (its group) right away.
export function killNow(entry) {
    signal(entry.child, 'SIGKILL');
}

// Spawns `cmd args` with stdout+stderr going to artifacts/<name>.log; the
// child's process group is killed in killAll() (and at exit or on a signal).
export function spawnTracked(name, cmd, args, opts = {}) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const logPath = path.join(ARTIFACTS, `${name}.log`);
    const fd = fs.openSync(logPath, 'w');
    // detached: own process group (pgid = pid), so that processes it forks
    // (websockify forks one per connection) are killed with it.
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, ...opts });
    fs.closeSync(fd);
    const entry = { name, child, logPath, spawnError: null };
    child.on('error', (e) => { entry.spawnError = e; });
    tracked.add(entry);
    return entry;
}

export function logTail(entry, n = 20) {
    try {
        const lines = fs.readFileSync(entry.logPath, 'utf8').trimEnd().split('\n');
        return lines.slice(-n).join('\n');
    } catch {
        return '(no log)';
    }
}

// Fails with the process's log when it has died.
export function assertRunning(entry) {
    if (entry.spawnError) {
        throw new Error(`${entry.name}: cannot start: ${entry.spawnError.message}`);
    }
    if (!isAlive(entry.child)) {
        throw new Error(`${entry.name} (pid ${entry.child.pid}) exited ` +
            `(code ${entry.child.exitCode}, signal ${entry.child.signalCode}); log:\n${logTail(entry)}`);
    }
}

// Kills every tracked process (newest first) by PID: SIGTERM, then SIGKILL
// after a grace period.
export async function killAll() {
    const entries = [...tracked].reverse();
    for (const e of entries) {
        if (isAlive(e.child)) signal(e.child, 'SIGTERM');
    }
    const deadline = Date.now() + 3000;
    for (const e of entries) {
        while (e.child.pid && isAlive(e.child) && Date.now() < deadline) await sleep(50);
        // SIGKILL the group even when the leader is gone: forked children
        // may still be there.
        signal(e.child, 'SIGKILL');
        tracked.delete(e);
    }
}

process.on('exit', () => {
    for (const e of tracked) signal(e.child, 'SIGKILL');
});
const SIGNUM = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
for (const sig of Object.keys(SIGNUM)) {
    process.on(sig, () => {
        // SIGTERM first so that Xvnc removes its lock file and socket.
        killAll().finally(() => process.exit(128 + SIGNUM[sig]));
    });
}

// ---------------------------------------------------------------- ports, displays

export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

function displayInUse(n) {
    return fs.existsSync(`/tmp/.X${n}-lock`) || fs.existsSync(`/tmp/.X11-unix/X${n}`);
}

// First display number >= start with neither a lock file nor a socket.
export function freeDisplay(start = 57) {
    for (let n = start; n < start + 200; n++) {
        if (!displayInUse(n)) return n;
    }
    throw new Error(`no free X display number in ${start}..${start + 199}`);
}

export function tcpReady(port, host = '127.0.0.1') {
    return new Promise((resolve) => {
        const s = net.connect({ port, host });
        const done = (ok) => { s.destroy(); resolve(ok); };
        s.once('connect', () => done(true));
        s.once('error', () => done(false));
        s.setTimeout(1000, () => done(false));
    });
}

// Polls `fn` (sync or async) until it returns a truthy value; throws with
// `what` and the last value/error after `timeoutMs`.
export async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 100 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
            last = v;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            const detail = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
        }
        await sleep(intervalMs);
    }
}

// ---------------------------------------------------------------- prerequisites

export function which(cmd) {
    if (cmd.includes('/')) return fs.existsSync(cmd) ? cmd : null;
    for (const dir of (process.env.PATH || '').split(':')) {
        const p = path.join(dir || '.', cmd);
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch { /* next */ }
    }
    return null;
}

// ---------------------------------------------------------------- relay command

// RELAY_CMD is a command template, split on whitespace (no shell, no
// quoting), with {listen} and {target} replaced by HOST:PORT.
export function relayArgv(template, listen, target) {
    if (!template.includes('{listen}') || !template.includes('{target}')) {
        throw new Error(`RELAY_CMD must contain {listen} and {target}: ${JSON.stringify(template)}`);
    }
    return template.trim().split(/\s+/)
        .map((w) => w.replaceAll('{listen}', listen).replaceAll('{target}', target));
}

// ---------------------------------------------------------------- static server

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                '.mjs': 'text/javascript; charset=utf-8', '.json': 'application/json' };

// Serves page/index.html at / and the noVNC package under /novnc/.
export function startStaticServer() {
    const pageDir = path.join(HERE, 'page');
    const server = http.createServer((req, res) => {
        const url = new URL(req.url, 'http://x');
        let root; let rel;
        if (url.pathname === '/' || url.pathname === '/index.html') {
            root = pageDir; rel = 'index.html';
        } else if (url.pathname.startsWith('/novnc/')) {
            root = NOVNC_DIR; rel = decodeURIComponent(url.pathname.slice('/novnc/'.length));
        } else {
            res.writeHead(404).end('not found');
            return;
        }
        const file = path.resolve(root, rel);
        if (!file.startsWith(root + path.sep)) {
            res.writeHead(403).end('forbidden');
            return;
        }
        fs.readFile(file, (err, data) => {
            if (err) {
                res.writeHead(404).end('not found');
                return;
            }
            res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
                                 'cache-control': 'no-store' });
            res.end(data);
        });
    });
    return new Promise((resolve, reject) => {
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
    });
}

// ---------------------------------------------------------------- X side

export function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { maxBuffer: 64 << 20, timeout: 20000, ...opts });
    if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
    if (r.status !== 0) {
        throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${String(r.stderr).trim()}`);
    }
    return r.stdout;
}

// Screenshot of the whole X screen: returns raw RGB bytes (row-major,
// 3 bytes a pixel); writes a PNG copy to `pngPath` when given.
export function xScreenshot(display, width, height, pngPath) {
    const rgb = run('import', ['-display', `:${display}`, '-window', 'root', '-depth', '8', 'rgb:-'],
                    { env: { ...process.env, DISPLAY: `:${display}` } });
    if (rgb.length !== width * height * 3) {
        throw new Error(`X screenshot is ${rgb.length} bytes, expected ${width}x${height}x3`);
    }
    if (pngPath) rgbToPng(rgb, width, height, pngPath);
    return rgb;
}

export function rgbToPng(rgb, width, height, pngPath) {
    run('convert', ['-size', `${width}x${height}`, '-depth', '8', 'rgb:-', `png:${pngPath}`], { input: rgb });
}

// Compares noVNC's RGBA canvas with an RGB X screenshot. Returns the number
// of differing pixels, their bounding box and the first few of them.
export function comparePixels(rgba, rgb, width, height) {
    let count = 0;
    const box = { x0: width, y0: height, x1: -1, y1: -1 };
    const samples = [];
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const i = y * width + x;
            const a = i * 4; const b = i * 3;
            if (rgba[a] !== rgb[b] || rgba[a + 1] !== rgb[b + 1] || rgba[a + 2] !== rgb[b + 2]) {
                count++;
                if (x < box.x0) box.x0 = x;
                if (y < box.y0) box.y0 = y;
                if (x > box.x1) box.x1 = x;
                if (y > box.y1) box.y1 = y;
                if (samples.length < 5) {
                    samples.push({ x, y, canvas: [rgba[a], rgba[a + 1], rgba[a + 2]],
                                   x11: [rgb[b], rgb[b + 1], rgb[b + 2]] });
                }
            }
        }
    }
    return { count, box: count ? box : null, samples };
}

// RGB image marking differing pixels red over a dimmed copy of the X image.
export function diffImage(rgba, rgb, width, height) {
    const out = Buffer.alloc(width * height * 3);
    for (let i = 0; i < width * height; i++) {
        const a = i * 4; const b = i * 3;
        const same = rgba[a] === rgb[b] && rgba[a + 1] === rgb[b + 1] && rgba[a + 2] === rgb[b + 2];
        if (same) {
            out[b] = rgb[b] >> 2; out[b + 1] = rgb[b + 1] >> 2; out[b + 2] = rgb[b + 2] >> 2;
        } else {
            out[b] = 255; out[b + 1] = 0; out[b + 2] = 0;
        }
    }
    return out;
}

// ---------------------------------------------------------------- Xvnc, xterm, canvas vs X

/**
 * `Xvnc` (no security, loopback only) on the first free display from `start` and a free
 * port; another process may take the display between the check and the start, so a few
 * numbers are tried. `extraArgs` are added (e.g. -rfbunixpath). Resolves with
 * { display, rfbPort, xvnc } once the RFB port and the X display answer.
 */
export async function startXvnc({ width, height, start = 57, desktop = 'wsvnc-browser-test', extraArgs = [] }) {
    let lastErr;
    for (let attempt = 0; attempt < 5; attempt++) {
        const display = freeDisplay(start);
        const rfbPort = await freePort();
        const xvnc = spawnTracked(`Xvnc-${display}`, 'Xvnc', [
            `:${display}`, '-SecurityTypes', 'None', '-localhost', '-rfbport', String(rfbPort),
            '-geometry', `${width}x${height}`, '-depth', '24', '-nolisten', 'tcp',
            '-AlwaysShared', '-desktop', desktop, ...extraArgs,
        ]);
        try {
            await waitFor(`Xvnc :${display} to accept RFB on ${rfbPort}`, async () => {
                assertRunning(xvnc);
                return await tcpReady(rfbPort);
            }, { timeoutMs: 15000 });
            await waitFor(`X display :${display}`, () => {
                assertRunning(xvnc);
                run('xdpyinfo', ['-display', `:${display}`]);
                return true;
            }, { timeoutMs: 10000 });
            return { display, rfbPort, xvnc };
        } catch (e) {
            lastErr = e;
            killNow(xvnc);
            start = display + 1;
        }
    }
    throw lastErr;
}

/**
 * A solid root colour and an xterm with flat colours and the core `fixed` font (no
 * anti-aliasing: the VNC encoders stay lossless) at a fixed place (no window manager),
 * running `sh -c script`. Resolves with { proc, geom: { x, y, w, h } } once it is mapped.
 */
export async function startXterm(display, { root, geometry, bg, fg, title, script }) {
    const env = { ...process.env, DISPLAY: `:${display}` };
    run('xsetroot', ['-solid', root], { env });
    const proc = spawnTracked(`xterm-${display}`, 'xterm', [
        '-display', `:${display}`, '-geometry', geometry, '-fn', 'fixed', '-bg', bg, '-fg', fg,
        '-title', title, '+sb', '-e', 'sh', '-c', script,
    ], { env });
    const geom = await waitFor('the xterm window to be mapped', () => {
        assertRunning(proc);
        const info = String(run('xwininfo', ['-display', `:${display}`, '-name', title]));
        if (!/Map State: IsViewable/.test(info)) return null;
        const num = (re) => Number(info.match(re)[1]);
        return { x: num(/Absolute upper-left X:\s+(-?\d+)/), y: num(/Absolute upper-left Y:\s+(-?\d+)/),
                 w: num(/Width:\s+(\d+)/), h: num(/Height:\s+(\d+)/) };
    });
    return { proc, geom };
}

/**
 * Waits until the page's canvas equals a fresh X screenshot (re-captured on every try, so
 * content that is still changing just takes another round). `readCanvas()` and
 * `canvasPng()` run in the page: { width, height, rgba (base64) } or null, and a PNG data
 * URL. Saves <label>-x11.png, -canvas.png, -page.png (and -diff.png on a mismatch) in
 * `dir`; returns the last comparison ({ count: 0 } when equal, -1 when the size is wrong).
 */
export async function expectCanvasMatchesX(page, { display, width, height, label, dir = ARTIFACTS,
    readCanvas, canvasPng, timeoutMs = 20000 }) {
    const deadline = Date.now() + timeoutMs;
    let last = null;
    for (;;) {
        const x = xScreenshot(display, width, height);
        const c = await page.evaluate(readCanvas);
        if (c && c.width === width && c.height === height) {
            const rgba = Buffer.from(c.rgba, 'base64');
            const cmp = comparePixels(rgba, x, width, height);
            last = { x, rgba, cmp };
            if (cmp.count === 0) break;
        } else {
            last = { x, rgba: null, cmp: { count: -1, size: c && [c.width, c.height] } };
        }
        if (Date.now() > deadline) break;
        await sleep(250);
    }
    fs.mkdirSync(dir, { recursive: true });
    rgbToPng(last.x, width, height, path.join(dir, `${label}-x11.png`));
    const dataUrl = await page.evaluate(canvasPng);
    if (dataUrl) {
        fs.writeFileSync(path.join(dir, `${label}-canvas.png`), Buffer.from(dataUrl.split(',')[1], 'base64'));
    }
    await page.screenshot({ path: path.join(dir, `${label}-page.png`) });
    if (last.rgba && last.cmp.count !== 0) {
        rgbToPng(diffImage(last.rgba, last.x, width, height), width, height, path.join(dir, `${label}-diff.png`));
    }
    return last.cmp;
}
