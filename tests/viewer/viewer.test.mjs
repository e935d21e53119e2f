// The viewer page (web/) in headless Chromium.
//
// Part 1, against mock-gateway.mjs (an independent protocol v2 encoder and a strict decoder
// of what the viewer sends): every server message has its effect, frames are applied and
// acknowledged whole, malformed input closes with 4002, status line, password prompt,
// reconnect backoff, keyboard mapping, no console errors, page size and origin.
//
// Part 2, against real components: TigerVNC Xvnc with an xterm, the wsvnc binary
// (target/debug/wsvnc, `cargo build` first) in gateway mode, the viewer it serves. Checks
// canvas pixels against `import -window root`, typing (read back from `cat > FILE` in the
// xterm), pointer buttons and wheel (xev), clipboard both ways (xclip), VncAuth password
// prompt, reconnect after the VNC server restarts, fit/1:1 scaling, remote resize.
// Screenshots of each state go to artifacts/viewer/ (gitignored).
//
// Ports 127.0.0.1:19100-19149, X displays :80-:84. Every missing prerequisite fails the
// setup test with the Debian package to install; every process started is killed by PID.
//
//   cd tests/viewer && npm ci && node --test viewer.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { comparePixels, diffImage, killAll, rgbToPng, run, sleep, spawnTracked, waitFor, xScreenshot }
  from '../browser/lib.mjs';
import { MockGateway, enc, jpegOf, pngOf, rgba, webpOf } from './mock-gateway.mjs';
import {
  ARTIFACTS, assertServesCurrentWeb, canvasPixel, checkPrerequisites, launchChromium, readCanvas, saveCanvasPng,
  startWsvnc, startXvnc, stopXvnc,
} from './harness.mjs';

// WSVNC_TEST_OFFSET=N (0..9) moves ports by 1000·N and displays by 20·N, so several
// checkouts can run their tests at once.
const OFFSET = Number(process.env.WSVNC_TEST_OFFSET ?? 0);
if (!(Number.isInteger(OFFSET) && OFFSET >= 0 && OFFSET <= 9)) throw new Error('WSVNC_TEST_OFFSET must be 0..9');
const PORT = Object.fromEntries(Object.entries({ mock: 19100, gw: 19110, xvnc: 19111, gwPw: 19120, xvncPw: 19121 })
  .map(([k, v]) => [k, v + 1000 * OFFSET]));
const DISPLAY = { main: 80 + 20 * OFFSET, pw: 81 + 20 * OFFSET };
// Extra wsvnc arguments, e.g. WSVNC_ARGS='--encodings zrle,copyrect' to test one
// encoding's path; by default the gateway's own encoding list (Tight first).
const EXTRA = (process.env.WSVNC_ARGS ?? '')
  .split(/\s+/).filter(Boolean);

fs.mkdirSync(ARTIFACTS, { recursive: true });
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });

let browser = null;
after(async () => {
  if (browser) await browser.close().catch(() => {});
  await killAll();
});

/** A page that records console errors, page errors and every request. */
async function newPage(viewport = { width: 1024, height: 768 }, options = {}) {
  if (!browser) browser = await launchChromium();
  const page = await browser.newPage({ viewport, ...options });
  page.problems = [];
  page.requests = [];
  page.on('console', (m) => {
    // The tests' own getImageData reads cause Chromium's willReadFrequently hint.
    if ((m.type() === 'error' || m.type() === 'warning') && !/willReadFrequently/.test(m.text())) {
      page.problems.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('request', (r) => page.requests.push(r.url()));
  return page;
}

/**
 * Loads the viewer in a fresh page until it is live, then checks what the page fetched:
 * under 100 KB in all, nothing from another origin, no console errors or warnings.
 */
async function checkPageLoad(url) {
  const p = await newPage();
  const bytes = [];
  p.on('response', async (r) => {
    try { bytes.push((await r.body()).length); } catch { /* redirects have no body */ }
  });
  await p.goto(url);
  await p.waitForFunction(() => document.body.classList.contains('live'), null, { timeout: 30000 });
  await p.waitForLoadState('networkidle');
  const total = bytes.reduce((a, b) => a + b, 0);
  assert.ok(total > 10000 && total < 100 * 1024, `page downloaded ${total} bytes`);
  const origin = new URL(url).origin;
  assert.deepEqual(p.requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:')), []);
  assert.deepEqual(p.problems, []);
  await p.close();
}

const statusText = (page) => page.$eval('#status', (e) => e.textContent);
const waitStatus = (page, re, ms = 10000) => page.waitForFunction(
  (src) => new RegExp(src).test(document.getElementById('status').textContent), re.source, { timeout: ms });

// ==========================================================================================
// Part 1: mock gateway
// ==========================================================================================

describe('viewer against the mock gateway', { timeout: 120000 }, () => {
  const gw = new MockGateway();
  let page;

  before(async () => {
    await gw.start(PORT.mock);
    page = await newPage();
  });
  after(async () => {
    if (page) await page.close().catch(() => {});
    await gw.stop();
  });

  /** Loads the page with a fresh session handed to the test (no default script). */
  async function open(query = '') {
    gw.onSession = () => {};
    const next = gw.nextSession();
    await page.goto(`${gw.url}${query}`);
    const s = await next;
    await s.waitType('ClientHello');
    return s;
  }

  /** Session up: hello + a black full frame, acknowledged. */
  async function live(s, w = 320, h = 200, flags = 0) {
    s.send(enc.hello(w, h, flags, 'mock'), enc.fill(0, 0, w, h, [0, 0, 0]), enc.endFrame(1));
    await s.waitType('FrameAck');
  }

  test('handshake: subprotocol, ClientHello first, version 3, then Accept WebP', async () => {
    const s = await open();
    assert.equal(s.protocol, 'wsvnc.v3');
    assert.deepEqual(s.received[0], { type: 'ClientHello', version: 3 });
    // Chromium decodes WebP lossless exactly (the viewer's probe), so it says so.
    assert.deepEqual(s.received[1], { type: 'Accept', formats: 1 });
    assert.equal(s.url.pathname, '/ws');
  });

  test('every server message has its effect', async () => {
    const s = await open('?resize=0');
    s.send(enc.status(0, 'connecting to VNC server'));
    await waitStatus(page, /connecting to VNC server/);
    s.send(enc.hello(320, 200, 0, 'first name'));
    // Fill, Pixels, Copy (from the Pixels block), a Cursor, then EndFrame.
    const block = rgba(16, 8, (x, y) => [x * 16, y * 32, 7]);
    s.send(enc.fill(0, 0, 320, 200, [10, 20, 30]), enc.fill(100, 50, 20, 10, [200, 100, 50]),
      enc.pixels(10, 10, 16, 8, block), enc.copy(200, 150, 16, 8, 10, 10),
      enc.cursor(1, 2, 4, 4, rgba(4, 4, () => [255, 0, 0])), enc.endFrame(7));
    assert.equal((await s.waitType('FrameAck')).id, 7);
    const px = (x, y) => canvasPixel(page, x, y);
    assert.deepEqual(await px(0, 0), [10, 20, 30, 255]);
    assert.deepEqual(await px(319, 199), [10, 20, 30, 255]);
    assert.deepEqual(await px(100, 50), [200, 100, 50, 255]);
    assert.deepEqual(await px(119, 59), [200, 100, 50, 255]);
    assert.deepEqual(await px(120, 60), [10, 20, 30, 255]);
    assert.deepEqual(await px(10 + 3, 10 + 5), [48, 160, 7, 255]);
    assert.deepEqual(await px(200 + 3, 150 + 5), [48, 160, 7, 255], 'Copy moved the Pixels block');
    const cursor = await page.$eval('#canvas', (c) => c.style.cursor);
    assert.match(cursor, /^url\("?data:image\/png;base64,.*"?\) 1 2, default$/);
    await shot(page, 'mock-frame');

    // Overlapping Copy (scroll up by one row): the source is read before it is overwritten.
    s.send(enc.pixels(0, 0, 4, 4, rgba(4, 4, (x, y) => [y * 60, 0, 0])), enc.copy(0, 0, 4, 3, 0, 1),
      enc.endFrame(9));
    assert.equal((await s.waitType('FrameAck', 2)).id, 9);
    for (let y = 0; y < 4; y++) {
      assert.deepEqual(await px(1, y), [Math.min(3, y + 1) * 60, 0, 0, 255], `row ${y} after the scroll`);
    }

    // Resize inside a frame: canvas resized and cleared to black, then drawn.
    s.send(enc.resize(160, 100), enc.fill(0, 0, 10, 10, [1, 2, 3]), enc.endFrame(8));
    assert.equal((await s.waitType('FrameAck', 3)).id, 8);
    assert.deepEqual(await page.$eval('#canvas', (c) => [c.width, c.height]), [160, 100]);
    assert.deepEqual(await px(5, 5), [1, 2, 3, 255]);
    assert.deepEqual(await px(150, 90), [0, 0, 0, 255]);

    // Cursor 0×0 hides the pointer.
    s.send(enc.cursor(0, 0, 0, 0, Buffer.alloc(0)));
    await page.waitForFunction(() => document.getElementById('canvas').style.cursor === 'none');

    // Bell flashes, Clipboard fills the panel, DesktopName renames, Status shows.
    s.send(enc.bell());
    await page.waitForFunction(() => document.getElementById('flash').classList.contains('on'));
    s.send(enc.clipboard('from the remote: ünï€ode'));
    await page.waitForFunction(() => document.getElementById('clip-text').value === 'from the remote: ünï€ode');
    s.send(enc.desktopName('second name'));
    await page.waitForFunction(() => document.title === 'second name — wsvnc');
    assert.match(await statusText(page), /Connected to “second name”/);
    s.send(enc.status(1, 'VNC server is slow'));
    await waitStatus(page, /^VNC server is slow$/);

    // Error: shown, and the close that follows (1008) is not retried.
    s.send(enc.error('the VNC server went away'));
    s.close(1008, 'policy');
    await waitStatus(page, /Failed: the VNC server went away/);
    await page.waitForFunction(() => wsvnc.conn.state !== 'open');
    assert.equal(await page.evaluate(() => wsvnc.conn.state), 'failed');
    assert.equal(await page.$eval('#o-title', (e) => e.textContent), 'Connection failed');
    await shot(page, 'mock-error');
    assert.deepEqual(s.errors, []);
  });

  test('a frame is drawn and acknowledged only when its EndFrame arrives', async () => {
    const s = await open('?resize=0');
    await live(s);
    // The frame's drawing comes in two WebSocket messages; EndFrame in a third.
    s.send(enc.fill(0, 0, 100, 100, [255, 0, 0]));
    s.send(enc.fill(100, 0, 100, 100, [0, 255, 0]));
    // Let the page process both messages: a Status after them is visible once they were.
    s.send(enc.status(0, 'marker'));
    await waitStatus(page, /^marker$/);
    assert.deepEqual(await canvasPixel(page, 50, 50), [0, 0, 0, 255], 'nothing drawn before EndFrame');
    assert.equal(s.of('FrameAck').length, 1, 'no ack before EndFrame');
    s.send(enc.endFrame(2));
    assert.equal((await s.waitType('FrameAck', 2)).id, 2);
    assert.deepEqual(await canvasPixel(page, 50, 50), [255, 0, 0, 255]);
    assert.deepEqual(await canvasPixel(page, 150, 50), [0, 255, 0, 255]);
    // Several frames in one message: one ack each, in order.
    s.send(enc.fill(0, 0, 1, 1, [1, 1, 1]), enc.endFrame(3), enc.endFrame(4),
      enc.fill(0, 0, 1, 1, [2, 2, 2]), enc.endFrame(5));
    await s.waitType('FrameAck', 5);
    assert.deepEqual(s.of('FrameAck').map((m) => m.id), [1, 2, 3, 4, 5]);
    assert.deepEqual(await canvasPixel(page, 0, 0), [2, 2, 2, 255]);
    assert.deepEqual(s.errors, []);
  });

  test('Palette and Jpeg messages draw; frames apply in order, whole, acked after paint', async () => {
    const s = await open('?resize=0');
    await live(s);
    // Palettes of 2, 3 and 17 colours (1, 2 and 8 bits per index) at odd widths: exact.
    const cols = (n) => Array.from({ length: n }, (_, i) => [i * 13 % 256, 255 - i * 7, i * 29 % 256]);
    s.send(enc.palette(1, 1, 13, 3, cols(2), (x, y) => (x + y) % 2),
      enc.palette(20, 1, 7, 5, cols(3), (x, y) => (x * 2 + y) % 3),
      enc.palette(40, 1, 9, 4, cols(17), (x, y) => (x + 9 * y) % 17));
    // A JPEG (real, from ImageMagick) in its own message, then EndFrame in another: nothing is
    // drawn before the frame's end and its image are in.
    const jpeg = jpegOf(64, 48, (x) => (x < 32 ? [200, 30, 30] : [30, 30, 200]));
    s.send(enc.jpeg(100, 100, 64, 48, jpeg));
    s.send(enc.status(0, 'marker'));
    await waitStatus(page, /^marker$/);
    assert.deepEqual(await canvasPixel(page, 1, 1), [0, 0, 0, 255], 'nothing drawn before EndFrame');
    // The next frame paints over part of the JPEG: order must hold even though the JPEG
    // decodes asynchronously.
    s.send(enc.endFrame(2), enc.fill(150, 100, 14, 48, [0, 255, 0]), enc.endFrame(3));
    await s.waitType('FrameAck', 3);
    assert.deepEqual(s.of('FrameAck').map((m) => m.id), [1, 2, 3]);
    for (const [x, y, n, idx] of [[1, 1, 2, (x, y) => (x + y) % 2], [20, 1, 3, (x, y) => (x * 2 + y) % 3],
      [40, 1, 17, (x, y) => (x + 9 * y) % 17]]) {
      for (const [dx, dy] of [[0, 0], [1, 0], [2, 1], [5, 2]]) {
        const c = cols(n)[idx(dx, dy)];
        assert.deepEqual(await canvasPixel(page, x + dx, y + dy), [...c, 255], `palette of ${n} at ${dx},${dy}`);
      }
    }
    const near = (got, want) => got.slice(0, 3).every((v, i) => Math.abs(v - want[i]) <= 12);
    const red = await canvasPixel(page, 110, 120), blue = await canvasPixel(page, 140, 120);
    assert.ok(near(red, [200, 30, 30]), `JPEG left half ${red}`);
    assert.ok(near(blue, [30, 30, 200]), `JPEG right half ${blue}`);
    assert.deepEqual(await canvasPixel(page, 155, 120), [0, 255, 0, 255], 'the later frame is on top');
    assert.deepEqual(s.errors, []);
  });

  test('a picture in parts is held and drawn whole; frames between its parts go first', async () => {
    const s = await open('?resize=0');
    await live(s);
    // A JPEG sent in pieces across three parts, with a Fill beside it in the first part.
    const jpeg = jpegOf(64, 48, (x) => (x < 32 ? [200, 30, 30] : [30, 30, 200]));
    const third = Math.ceil(jpeg.length / 3);
    s.send(enc.fill(0, 0, 64, 48, [9, 9, 9]), enc.imageBegin(100, 100, 64, 48, 0, jpeg.length),
      enc.imageData(jpeg.subarray(0, third)), enc.endPart(2, false));
    assert.equal((await s.waitType('Received', 2)).id, 2, 'a part is acknowledged on receipt');
    s.send(enc.imageData(jpeg.subarray(third, 2 * third)), enc.endPart(3, false));
    await s.waitType('Received', 3);
    // A frame between the parts, apart from the picture: drawn at once.
    s.send(enc.fill(300, 190, 10, 10, [0, 255, 0]), enc.endFrame(4));
    assert.equal((await s.waitType('FrameAck', 2)).id, 4, 'acked after paint');
    assert.deepEqual(await canvasPixel(page, 305, 195), [0, 255, 0, 255]);
    assert.deepEqual(await canvasPixel(page, 10, 10), [0, 0, 0, 255], 'the held picture is not drawn');
    assert.deepEqual(await canvasPixel(page, 110, 120), [0, 0, 0, 255]);
    // The last part: the whole picture at once.
    s.send(enc.imageData(jpeg.subarray(2 * third)), enc.endPart(5, true));
    assert.equal((await s.waitType('FrameAck', 3)).id, 5);
    assert.deepEqual(await canvasPixel(page, 10, 10), [9, 9, 9, 255]);
    const near = (got, want) => got.slice(0, 3).every((v, i) => Math.abs(v - want[i]) <= 12);
    assert.ok(near(await canvasPixel(page, 110, 120), [200, 30, 30]), 'JPEG from its pieces');
    assert.deepEqual(s.of('Received').map((m) => m.id), [1, 2, 3, 4, 5], 'Received for every end, in order');
    // A Resize drops a picture being received: its parts are never drawn.
    s.send(enc.fill(0, 0, 10, 10, [1, 2, 3]), enc.endPart(6, false));
    await s.waitType('Received', 6);
    s.send(enc.resize(320, 200), enc.endFrame(7));
    assert.equal((await s.waitType('FrameAck', 4)).id, 7);
    assert.deepEqual(await canvasPixel(page, 5, 5), [0, 0, 0, 255], 'cleared, the held part dropped');
    assert.deepEqual(s.errors, []);
  });

  test('Webp draws exact pixels, whole and in ImageBegin pieces', async () => {
    const s = await open('?resize=0');
    await live(s);
    const fn = (x, y) => [(x * 53 + y * 7) % 256, (x * 5 + y * 89) % 256, (x * y) % 256];
    const webp = webpOf(40, 24, fn);
    s.send(enc.webp(100, 50, 40, 24, webp), enc.endFrame(2));
    assert.equal((await s.waitType('FrameAck', 2)).id, 2);
    const half = webp.length >> 1;
    s.send(enc.imageBegin(200, 120, 40, 24, 2, webp.length), enc.imageData(webp.subarray(0, half)),
      enc.imageData(webp.subarray(half)), enc.endFrame(3));
    await s.waitFor((x) => x.of('FrameAck').some((m) => m.id === 3), 'FrameAck 3');
    for (const [x, y] of [[0, 0], [13, 5], [39, 23], [21, 11]]) {
      assert.deepEqual(await canvasPixel(page, 100 + x, 50 + y), [...fn(x, y), 255], `Webp pixel ${x},${y}`);
      assert.deepEqual(await canvasPixel(page, 200 + x, 120 + y), [...fn(x, y), 255], `pieces pixel ${x},${y}`);
    }
    assert.deepEqual(s.errors, []);
  });

  test('a PNG draws exact pixels; a small frame is not held up by a large image decoding', async () => {
    const s = await open('?resize=0');
    await live(s);
    const fn = (x, y) => [(x * 37 + y * 11) % 256, (x * 3 + y * 101) % 256, (x ^ y) % 256];
    const png = pngOf(50, 30, fn);
    s.send(enc.png(10, 20, 50, 30, png), enc.endFrame(2));
    assert.equal((await s.waitType('FrameAck', 2)).id, 2);
    for (const [x, y] of [[0, 0], [7, 3], [49, 29], [25, 17]]) {
      assert.deepEqual(await canvasPixel(page, 10 + x, 20 + y), [...fn(x, y), 255], `PNG pixel ${x},${y}`);
    }
    // A big JPEG frame, then a small one elsewhere: the small one may be drawn first, and the
    // acknowledgements still name frames whose predecessors are drawn.
    const big = jpegOf(320, 150, (x, y) => [(x * 7) % 256, (y * 5) % 256, (x + y) % 256]);
    s.send(enc.jpeg(0, 0, 320, 150, big), enc.endFrame(3), enc.fill(300, 180, 10, 10, [1, 250, 1]),
      enc.endFrame(4));
    await s.waitFor((x) => x.of('FrameAck').some((m) => m.id === 4), 'FrameAck 4');
    // Cumulative: 4 covers 3 when the small frame was drawn first.
    const acks = s.of('FrameAck').map((m) => m.id);
    assert.ok(acks.every((id, i) => i === 0 || id > acks[i - 1]), `in order: ${acks}`);
    assert.deepEqual(await canvasPixel(page, 305, 185), [1, 250, 1, 255]);
    assert.deepEqual(s.errors, []);
  });

  const malformed = [
    ['unknown type', Buffer.from([0x7f])],
    ['truncated Fill', enc.fill(0, 0, 1, 1, [0, 0, 0]).subarray(0, 6)],
    ['Pixels shorter than w*h*3', enc.pixels(0, 0, 2, 2, Buffer.alloc(8))],
    ['Palette index past its colours',
      Buffer.concat([enc.palette(0, 0, 2, 1, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], (x) => x * 3), enc.endFrame(2)])],
    ['Jpeg that does not decode', Buffer.concat([enc.jpeg(0, 0, 8, 8, Buffer.from('not a jpeg')), enc.endFrame(2)])],
    ['Jpeg of another size than its rectangle',
      Buffer.concat([enc.jpeg(0, 0, 16, 8, jpegOf(8, 8, () => [9, 9, 9])), enc.endFrame(2)])],
    ['ImageData without ImageBegin', enc.imageData(Buffer.alloc(3))],
    ['ImageData past the image', Buffer.concat([enc.imageBegin(0, 0, 8, 8, 0, 2), enc.imageData(Buffer.alloc(3))])],
    ['frame ended inside an image', Buffer.concat([enc.imageBegin(0, 0, 8, 8, 1, 100), enc.endFrame(2)])],
    ['picture ended inside an image',
      Buffer.concat([enc.imageBegin(0, 0, 8, 8, 1, 100), enc.endPart(2, false), enc.endPart(3, true)])],
    ['ImageBegin of an unknown format', enc.imageBegin(0, 0, 8, 8, 7, 100)],
    ['EndPart flag other than 0 or 1', Buffer.from([0x12, 2, 0, 0, 0, 2])],
    ['string length past the end', Buffer.from([0x09, 0xff, 0, 0, 0, 0x41])],
    ['Status text not UTF-8', Buffer.from([0x0c, 0, 2, 0, 0, 0, 0xc3, 0x28])],
    ['Fill outside the desktop', Buffer.concat([enc.fill(300, 0, 21, 1, [0, 0, 0]), enc.endFrame(2)])],
    ['Copy source outside the desktop', Buffer.concat([enc.copy(0, 0, 10, 10, 315, 0), enc.endFrame(2)])],
    ['second ServerHello', enc.hello(10, 10)],
    ['empty message', Buffer.alloc(0)],
  ];
  for (const [what, bytes] of malformed) {
    test(`malformed server message closes with 4002: ${what}`, async () => {
      const s = await open('?resize=0');
      await live(s);
      s.ws.send(bytes, { binary: true });
      await s.waitFor((x) => x.closed, 'close');
      assert.equal(s.closeCode, 4002);
      assert.match(s.closeReason, /bad message from the gateway/);
      await waitStatus(page, /^Failed: bad message from the gateway/);
      assert.equal(await page.evaluate(() => wsvnc.conn.state), 'failed', 'not retried');
    });
  }

  test('a frame that never ends cannot grow without bound', async () => {
    const s = await open('?resize=0');
    await live(s, 64, 64);
    const block = enc.pixels(0, 0, 64, 64, Buffer.alloc(64 * 64 * 4, 0x80));
    for (let i = 0; i < 100 && !s.closed; i++) s.send(block, block, block, block); // 64 KiB each
    await s.waitFor((x) => x.closed, 'close');
    assert.equal(s.closeCode, 4002);
    assert.match(s.closeReason, /frame without EndFrame grew/);
    assert.equal(s.of('FrameAck').length, 1);
  });

  test('drawing before ServerHello is a protocol error', async () => {
    const s = await open();
    s.send(enc.fill(0, 0, 1, 1, [0, 0, 0]));
    await s.waitFor((x) => x.closed, 'close');
    assert.equal(s.closeCode, 4002);
  });

  test('status line and overlay follow the connection', async () => {
    const s = await open();
    assert.match(await statusText(page), /Waiting for the desktop/);
    assert.equal(await page.evaluate(() => document.body.classList.contains('connecting')), true);
    s.send(enc.status(0, 'negotiating with the VNC server'));
    await waitStatus(page, /^negotiating with the VNC server$/);
    assert.equal(await page.$eval('#o-text', (e) => e.textContent), 'negotiating with the VNC server');
    await live(s);
    await waitStatus(page, /^Connected to “mock”$/);
    assert.equal(await page.evaluate(() => document.body.classList.contains('live')), true);
    await page.waitForFunction(() => getComputedStyle(document.getElementById('overlay')).opacity === '0');
    assert.equal(await page.$eval('#overlay', (e) => getComputedStyle(e).pointerEvents), 'none',
      'overlay lets input through while live');
  });

  test('password prompt: asks, sends; a wrong password asks again on a new connection', async () => {
    let s = await open();
    s.send(enc.passwordRequired());
    await page.waitForSelector('#pw-input', { state: 'visible' });
    assert.match(await statusText(page), /Password required/);
    await shot(page, 'mock-password');
    // Typing into the form must not go to the remote as keys.
    await page.fill('#pw-input', 'wrong pässword');
    await page.press('#pw-input', 'Enter');
    assert.equal((await s.waitType('Password')).password, 'wrong pässword');
    assert.equal(s.of('Key').length, 0);
    // Rejected: a new connection at once, and the prompt says why (the wrong password was
    // forgotten, so it is not sent again by itself).
    const next = gw.nextSession();
    s.send(enc.error('Authentication failed'));
    s.close(1008, 'authentication failed');
    s = await next;
    await s.waitType('ClientHello');
    s.send(enc.passwordRequired());
    await page.waitForSelector('#pw-input', { state: 'visible' });
    assert.equal(await page.$eval('#o-text', (e) => e.textContent),
      'That password was not accepted (Authentication failed). Try again.');
    assert.equal(s.of('Password').length, 0);
    await page.fill('#pw-input', 'secret');
    await page.click('#pw button[type=submit]');
    assert.equal((await s.waitType('Password')).password, 'secret');
    await live(s);
    assert.equal(await page.isVisible('#pw'), false);

    // A drop after that reconnects and answers PasswordRequired from memory.
    const third = gw.nextSession(10000);
    s.terminate();
    s = await third;
    await s.waitType('ClientHello');
    s.send(enc.passwordRequired());
    assert.equal((await s.waitType('Password')).password, 'secret');
  });

  test('reconnect backoff: 1, 2, 4 s while failing; reset after a ServerHello', async () => {
    let s = await open();
    await page.evaluate(() => {
      window.delays = [];
      const c = wsvnc.conn;
      const set = c.setState.bind(c);
      c.setState = (state, info) => {
        if (state === 'retrying') window.delays.push(info.delay);
        set(state, info);
      };
    });
    const delays = () => page.evaluate(() => window.delays);
    for (let i = 0; i < 3; i++) {
      const next = gw.nextSession(15000);
      s.terminate();
      if (i === 0) await waitStatus(page, /Reconnecting in 1 s — connection lost/);
      s = await next;
      await s.waitType('ClientHello');
    }
    assert.deepEqual(await delays(), [1, 2, 4]);
    await live(s);
    const next = gw.nextSession(15000);
    s.close(1001, 'going away');
    s = await next;
    assert.deepEqual(await delays(), [1, 2, 4, 1]);
    // ?reconnect=0: a drop is final.
    s = await open('?reconnect=0');
    await live(s);
    s.terminate();
    await waitStatus(page, /Failed: connection lost/);
    assert.equal(await page.evaluate(() => wsvnc.conn.state), 'failed');
  });

  test('keysym mapping (keysyms.js units, in the browser)', async () => {
    await open();
    const rows = await page.evaluate(async () => {
      const { keysymForEvent, keysymsForText, XK } = await import('/js/keysyms.js');
      const ev = (key, code = '', location = 0) => keysymForEvent({ key, code, location });
      return {
        a: ev('a', 'KeyA'), A: ev('A', 'KeyA'), at: ev('@', 'Digit2'), euro: ev('€', 'KeyE'),
        eacute: ev('é', 'Digit2'), enter: ev('Enter', 'Enter'), bs: ev('Backspace', 'Backspace'),
        left: ev('ArrowLeft', 'ArrowLeft'), f12: ev('F12', 'F12'), shiftR: ev('Shift', 'ShiftRight', 2),
        ctrlL: ev('Control', 'ControlLeft', 1), altgr: ev('AltGraph', 'AltRight', 2),
        np5: ev('5', 'Numpad5', 3), npEnter: ev('Enter', 'NumpadEnter', 3), npHome: ev('Home', 'Numpad7', 3),
        dead: ev('Dead', 'BracketLeft'), unid: ev('Unidentified', ''), space: ev(' ', 'Space'),
        emoji: ev('😀', ''), text: keysymsForText('a\nü€\t'), XK,
      };
    });
    const X = rows.XK;
    assert.equal(rows.a, 0x61);
    assert.equal(rows.A, 0x41);
    assert.equal(rows.at, 0x40);
    assert.equal(rows.euro, 0x010020ac);
    assert.equal(rows.eacute, 0xe9);
    assert.equal(rows.enter, X.Return);
    assert.equal(rows.bs, X.BackSpace);
    assert.equal(rows.left, X.Left);
    assert.equal(rows.f12, 0xffc9);
    assert.equal(rows.shiftR, X.Shift_R);
    assert.equal(rows.ctrlL, X.Control_L);
    assert.equal(rows.altgr, X.ISO_Level3_Shift);
    assert.equal(rows.np5, 0xffb5);
    assert.equal(rows.npEnter, 0xff8d);
    assert.equal(rows.npHome, 0xff95);
    assert.equal(rows.dead, null);
    assert.equal(rows.unid, null);
    assert.equal(rows.space, 0x20);
    assert.equal(rows.emoji, 0x0101f600);
    assert.deepEqual(rows.text, [0x61, X.Return, 0xfc, 0x010020ac, X.Tab]);
  });

  test('keyboard events become Key messages; every key-up matches its key-down', async () => {
    const s = await open('?resize=0');
    await live(s);
    await page.mouse.click(100, 100); // focuses the keyboard target
    await page.keyboard.type('aZ');
    await page.keyboard.press('Enter');
    // Shift released before the letter: the letter's up is still "A".
    await page.keyboard.down('Shift');
    await page.keyboard.down('KeyA');
    await page.keyboard.up('Shift');
    await page.keyboard.up('KeyA');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('Backspace');
    await s.waitFor((x) => x.of('Key').length >= 14, '14 keys');
    const keys = s.of('Key').map((k) => `${k.down ? '+' : '-'}${k.keysym.toString(16)}`);
    // (Playwright types "Z" as the key "Z" without pressing Shift.)
    assert.deepEqual(keys, ['+61', '-61', '+5a', '-5a', '+ff0d', '-ff0d',
      '+ffe1', '+41', '-ffe1', '-41', '+ff51', '-ff51', '+ff08', '-ff08']);
    // Pointer: the click above arrived as press + release inside the desktop.
    const ptr = s.of('Pointer');
    assert.ok(ptr.some((p) => p.mask === 1) && ptr.at(-1).mask === 0, JSON.stringify(ptr));
    // Focus lost while a key is down: it is released on the remote.
    await page.keyboard.down('KeyQ');
    await page.evaluate(() => document.getElementById('kbd').blur());
    await s.waitFor((x) => x.of('Key').length >= 16, 'release on blur');
    assert.deepEqual(s.of('Key').slice(-2).map((k) => [k.down, k.keysym]), [[1, 0x71], [0, 0x71]]);
    await page.keyboard.up('KeyQ');
  });

  test('pointer mapping: fit (scaled), 1:1, and a HiDPI screen; touch tap and long press', async () => {
    const p = await newPage({ width: 800, height: 600 }, { deviceScaleFactor: 2, hasTouch: true });
    try {
      gw.onSession = () => {};
      const next = gw.nextSession();
      await p.goto(`${gw.url}?resize=0`);
      const s = await next;
      await s.waitType('ClientHello');
      await live(s, 1600, 1200);
      const last = () => s.of('Pointer').at(-1);
      // fit: 1600×1200 shown in 800×600 CSS px, so one CSS px is 2 remote pixels.
      await p.mouse.click(100.25, 50.25);
      await s.waitFor(() => s.of('Pointer').some((m) => m.mask === 1) && last().mask === 0, 'click');
      assert.deepEqual(s.of('Pointer').find((m) => m.mask === 1), { type: 'Pointer', x: 200, y: 100, mask: 1 });
      assert.deepEqual(last(), { type: 'Pointer', x: 200, y: 100, mask: 0 });
      // 1:1 (native): one remote pixel per CSS pixel whatever devicePixelRatio is.
      await p.evaluate(() => document.getElementById('b-scale').click());
      await p.waitForFunction(() => document.getElementById('canvas').getBoundingClientRect().width === 1600);
      await p.mouse.click(300, 200);
      await s.waitFor(() => s.of('Pointer').some((m) => m.x === 300 && m.y === 200 && m.mask === 1) &&
        last().mask === 0, '1:1 click');
      // Touch: a tap is a left click, a long press a right click.
      const n = s.of('Pointer').length;
      await p.touchscreen.tap(140, 330); // below the toolbar
      await s.waitFor(() => s.of('Pointer').slice(n).some((m) => m.mask === 1) && last().mask === 0, 'tap');
      assert.deepEqual(s.of('Pointer').slice(n).filter((m) => m.mask).map((m) => [m.x, m.y, m.mask]), [[140, 330, 1]]);
      const cdp = await p.context().newCDPSession(p);
      const touch = (type, pts) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: pts });
      const m = s.of('Pointer').length;
      await touch('touchStart', [{ x: 160, y: 370 }]);
      await s.waitFor(() => s.of('Pointer').slice(m).some((q) => q.mask === 4), 'long press → right button', 5000);
      await touch('touchEnd', []);
      assert.deepEqual(s.of('Pointer').slice(m).filter((q) => q.mask).map((q) => [q.x, q.y, q.mask]), [[160, 370, 4]]);
      assert.deepEqual(p.problems, []);
    } finally {
      await p.close();
    }
  });

  test('toolbar keys: sticky Ctrl applies to the next key; Ctrl+Alt+Del', async () => {
    const s = await open('?resize=0');
    await live(s);
    await page.mouse.click(100, 100);
    await page.mouse.move(500, 1); // the toolbar shows at the top edge
    await page.click('#b-ctrl');
    assert.equal(await page.getAttribute('#b-ctrl', 'aria-pressed'), 'true');
    await page.keyboard.press('c');
    await page.click('#b-cad');
    await s.waitFor((x) => x.of('Key').length >= 10, '10 keys');
    const keys = s.of('Key').map((k) => `${k.down ? '+' : '-'}${k.keysym.toString(16)}`);
    assert.deepEqual(keys, ['+ffe3', '+63', '-63', '-ffe3', '+ffe3', '+ffe9', '+ffff', '-ffff', '-ffe9', '-ffe3']);
    assert.equal(await page.getAttribute('#b-ctrl', 'aria-pressed'), 'false');
  });

  test('clipboard panel: sends, and says what became of the text', async () => {
    const s = await open('?resize=0');
    await live(s);
    await page.mouse.move(500, 1);
    await page.click('#b-clip');
    const note = () => page.$eval('#clip-note', (e) => e.textContent);
    await page.fill('#clip-text', 'plain café');
    await page.click('#clip-send');
    assert.equal((await s.waitType('Clipboard')).text, 'plain café');
    assert.equal(await note(), 'Sent to the remote desktop.');
    await page.fill('#clip-text', 'price: 5 €');
    await page.click('#clip-send');
    assert.equal((await s.waitType('Clipboard', 2)).text, 'price: 5 €');
    assert.match(await note(), /outside Latin-1 arrive as “\?”/);
    s.send(enc.clipboard('from there'));
    await page.waitForFunction(() => document.getElementById('clip-text').value === 'from there');
    assert.equal(await note(), 'Copied on the remote desktop.');
    await page.fill('#clip-text', 'x'.repeat((1 << 20) + 1));
    await page.click('#clip-send');
    assert.equal(await note(), 'Not sent: 1 MiB of text at most.');
    await page.click('#clip-close');
    assert.equal(s.of('Clipboard').length, 2);
  });

  test('view-only sessions send no input', async () => {
    const s = await open('?resize=0');
    await live(s, 320, 200, 1); // flags bit 0: view-only
    assert.match(await statusText(page), /\(view only\)/);
    await page.mouse.click(50, 50);
    await page.keyboard.type('x');
    s.send(enc.status(0, 'marker2'));
    await waitStatus(page, /marker2/);
    assert.equal(s.of('Key').length + s.of('Pointer').length, 0);
  });

  test('resize request follows the window when the gateway supports it', async () => {
    const s = await open();
    await live(s, 320, 200, 2);
    const r = await s.waitType('ResizeRequest');
    const [w, h] = await page.$eval('#screen', (e) => [e.clientWidth, e.clientHeight]);
    assert.deepEqual([r.width, r.height], [w, h]);
    await page.setViewportSize({ width: 700, height: 500 });
    const r2 = await s.waitType('ResizeRequest', 2);
    assert.deepEqual([r2.width, r2.height], [700, 500]);
    await page.setViewportSize({ width: 1024, height: 768 });
  });

  test('the page: under 100 KB, same origin only, no console errors', async () => {
    gw.onSession = async (s) => { await s.waitType('ClientHello'); await live(s); };
    await checkPageLoad(gw.url);
    assert.deepEqual(page.problems, [], 'console of the mock-gateway page');
  });
});

// ==========================================================================================
// Part 2: real Xvnc, real wsvnc gateway
// ==========================================================================================

const ROOT_A = '#2e5c8a', ROOT_A_RGB = [0x2e, 0x5c, 0x8a];
const ROOT_B = '#8a3e2e', ROOT_B_RGB = [0x8a, 0x3e, 0x2e];
// Windows at fixed places (no window manager): the xterm runs `cat > typed.txt`; xev logs
// pointer events over its window.
const XTERM = { x: 20, y: 20 };
const XEV = { x: 600, y: 500, w: 300, h: 200 };

/** Width × height of an X display (xdpyinfo). */
function xSize(env) {
  const m = /dimensions:\s+(\d+)x(\d+) pixels/.exec(String(run('xdpyinfo', [], { env })));
  return [Number(m[1]), Number(m[2])];
}

/** Page position (CSS px) of a remote pixel's centre, from the canvas's on-screen box. */
async function pagePoint(page, x, y) {
  return page.$eval('#canvas', (c, [rx, ry]) => {
    const r = c.getBoundingClientRect();
    return [r.left + (rx + 0.5) * r.width / c.width, r.top + (ry + 0.5) * r.height / c.height];
  }, [x, y]);
}

/**
 * Waits until the canvas equals a fresh screenshot of the X root window (pixel for pixel;
 * the pointer is drawn by the browser as a CSS cursor, in neither image). Saves
 * <label>-x11.png, <label>-canvas.png, <label>-page.png and, on a mismatch, <label>-diff.png.
 */
async function expectCanvasMatchesX(page, x, label, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    const [w, h] = xSize(x.env);
    const rgb = xScreenshot(x.display, w, h);
    const c = await readCanvas(page);
    last = { w, h, rgb, c, cmp: null };
    if (c && c.width === w && c.height === h) {
      last.rgba = Buffer.from(c.rgba, 'base64');
      last.cmp = comparePixels(last.rgba, rgb, w, h);
      if (last.cmp.count === 0) break;
    }
    if (Date.now() > deadline) break;
    await sleep(250);
  }
  rgbToPng(last.rgb, last.w, last.h, path.join(ARTIFACTS, `${label}-x11.png`));
  await saveCanvasPng(page, path.join(ARTIFACTS, `${label}-canvas.png`));
  await shot(page, `${label}-page`);
  if (last.cmp && last.cmp.count) {
    rgbToPng(diffImage(last.rgba, last.rgb, last.w, last.h), last.w, last.h,
      path.join(ARTIFACTS, `${label}-diff.png`));
  }
  assert.ok(last.c, `${label}: the viewer has no canvas`);
  assert.deepEqual([last.c.width, last.c.height], [last.w, last.h], `${label}: canvas size`);
  assert.equal(last.cmp.count, 0, `${label}: ${last.cmp.count} pixels differ, e.g. ` +
    JSON.stringify(last.cmp.samples));
}

/** Events logged by xev: [{ type, button, x, y }] for ButtonPress/ButtonRelease. */
function xevButtons(log) {
  const out = [];
  const re = /(ButtonPress|ButtonRelease) event[^\n]*\n[^\n]*root:\((-?\d+),(-?\d+)\)[^\n]*\n\s*state 0x[0-9a-f]+, button (\d+)/g;
  for (const m of fs.readFileSync(log, 'utf8').matchAll(re)) {
    out.push({ type: m[1], x: Number(m[2]), y: Number(m[3]), button: Number(m[4]) });
  }
  return out;
}

/** The gateway's /metrics count of rectangles it encoded, by form (summed over sessions). */
async function encodedRects(url) {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const out = { jpeg: 0, png: 0, webp: 0 };
  for (const m of text.matchAll(/^wsvnc_session_encoded_rects_total\{[^}]*form="(\w+)"\} (\d+)$/gm)) {
    if (m[1] in out) out[m[1]] += Number(m[2]);
  }
  return out;
}

const live = (page) => page.waitForFunction(() => document.body.classList.contains('live'),
  null, { timeout: 30000 });

describe('viewer through the wsvnc gateway to Xvnc', { timeout: 300000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-viewer-'));
  const typed = path.join(tmp, 'typed.txt');
  const xevLog = path.join(ARTIFACTS, 'xev.log');
  let x, gw, page;

  after(async () => {
    if (page) await page.close().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function startDesktop() {
    run('xsetroot', ['-solid', ROOT_A], { env: x.env });
    spawnTracked('xterm', 'xterm', ['-geometry', `80x24+${XTERM.x}+${XTERM.y}`, '-fn', 'fixed',
      '-bg', '#1e1e1e', '-fg', '#f0d000', '-cr', '#f0d000', '+sb', '-e', 'sh', '-c',
      `exec cat > '${typed}'`], { env: { ...x.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } });
    const xev = spawnTracked('xev', 'sh', ['-c',
      `exec stdbuf -oL xev -geometry ${XEV.w}x${XEV.h}+${XEV.x}+${XEV.y} -event mouse > '${xevLog}'`], { env: x.env });
    return xev;
  }

  test('setup: prerequisites, Xvnc, xterm, xev, wsvnc gateway, Chromium', async () => {
    checkPrerequisites();
    x = await startXvnc(DISPLAY.main, PORT.xvnc);
    startDesktop();
    await waitFor('the xterm to create typed.txt', () => fs.existsSync(typed));
    await waitFor('the xev window', () => fs.existsSync(xevLog) && /Outer window/.test(fs.readFileSync(xevLog, 'utf8')));
    gw = await startWsvnc('wsvnc-gateway', PORT.gw, ['--target', `127.0.0.1:${PORT.xvnc}`, '--metrics', ...EXTRA]);
    await assertServesCurrentWeb(gw.url);
    page = await newPage();
    await page.goto(`${gw.url}?resize=0`);
    await live(page);
  });

  test('the canvas shows the X screen, and follows changes', async () => {
    await expectCanvasMatchesX(page, x, 'real-initial');
    assert.deepEqual((await canvasPixel(page, 1000, 740)).slice(0, 3), ROOT_A_RGB);
    run('xsetroot', ['-solid', ROOT_B], { env: x.env });
    await waitFor('the new root colour on the canvas', async () =>
      JSON.stringify((await canvasPixel(page, 1000, 740)).slice(0, 3)) === JSON.stringify(ROOT_B_RGB));
    await expectCanvasMatchesX(page, x, 'real-root-changed');
  });

  test('a photo goes as JPEG, then WebP lossless from the gateway makes the canvas exact', async () => {
    const photo = path.join(tmp, 'photo.png');
    run('convert', ['-size', '320x200', '-seed', '7', 'plasma:fractal', '-blur', '0x1', photo]);
    const before = await encodedRects(gw.url);
    const shown = spawnTracked('photo', 'display', ['-immutable', '-geometry', '+520+40', photo], { env: x.env });
    try {
      // The photo was seen and sent lossy first; exact only once its JPEG areas are refined:
      // Chromium decoded the gateway's own VP8L bitstream to the X server's pixels.
      await waitFor('the photo sent as JPEG', async () => (await encodedRects(gw.url)).jpeg > before.jpeg);
      await expectCanvasMatchesX(page, x, 'real-photo');
      assert.notDeepEqual((await canvasPixel(page, 680, 140)).slice(0, 3), ROOT_B_RGB, 'the photo is shown');
      const after = await encodedRects(gw.url);
      assert.ok(after.jpeg > before.jpeg, `JPEG rects ${before.jpeg} -> ${after.jpeg}`);
      assert.ok(after.webp > before.webp, `WebP rects ${before.webp} -> ${after.webp}`);
      assert.equal(after.png, before.png, 'no PNG for a browser that accepts WebP');
    } finally {
      process.kill(-shown.child.pid);
    }
  });

  test('typing reaches the xterm exactly: letters, Shift, symbols, AltGr, Enter, Backspace, arrows', async () => {
    const [px, py] = await pagePoint(page, XTERM.x + 100, XTERM.y + 100);
    await page.mouse.click(px, py); // no window manager: focus follows the pointer
    const kb = page.keyboard;
    await kb.type('hello World!');
    await kb.press('Backspace');
    await kb.type('?');
    await kb.press('Enter');
    await kb.type('~!@#$%^&*()_+{}|:"<>? `-=[]\\;\',./');
    await kb.press('Enter');
    // Real Shift chords (KeyboardEvent.key is the shifted character, Shift held).
    for (const code of ['KeyQ', 'Digit1', 'Digit2', 'Slash']) {
      await kb.down('Shift');
      await kb.press(code);
      await kb.up('Shift');
    }
    await kb.press('Enter');
    // Characters not on the page's layout arrive as text (input events).
    await kb.type('€@äßé');
    await kb.press('Enter');
    // A German layout: AltGr+E = €, AltGr+Q = @, AltGr+7 = {, as Chromium reports them.
    const cdp = await page.context().newCDPSession(page);
    const key = (type, k, code, text, vk, location = 0) => cdp.send('Input.dispatchKeyEvent',
      { type, key: k, code, text, unmodifiedText: text, windowsVirtualKeyCode: vk, location });
    await key('rawKeyDown', 'AltGraph', 'AltRight', undefined, 225, 2);
    for (const [k, code, vk] of [['€', 'KeyE', 69], ['@', 'KeyQ', 81], ['{', 'Digit7', 55]]) {
      await key('keyDown', k, code, k, vk);
      await key('keyUp', k, code, undefined, vk);
    }
    await key('keyUp', 'AltGraph', 'AltRight', undefined, 225, 2);
    await cdp.detach();
    await kb.press('Enter');
    // Arrow keys: `cat` on a cooked tty keeps the escape sequence xterm sends.
    await kb.type('x');
    await kb.press('ArrowLeft');
    await kb.press('ArrowUp');
    await kb.type('y');
    await kb.press('Enter');
    const want = 'hello World?\n~!@#$%^&*()_+{}|:"<>? `-=[]\\;\',./\nQ!@?\n€@äßé\n€@{\n';
    await waitFor('the typed lines in typed.txt', () => fs.readFileSync(typed, 'utf8').split('\n').length >= 7,
      { timeoutMs: 20000 });
    const got = fs.readFileSync(typed, 'utf8');
    await expectCanvasMatchesX(page, x, 'real-typed');
    assert.equal(got.slice(0, want.length), want);
    assert.match(got.slice(want.length), /^x\x1b(\[|O)D\x1b(\[|O)Ay\n$/);
  });

  test('clicks, buttons and the wheel reach the X server at the right place', async () => {
    const at = async (rx, ry) => pagePoint(page, rx, ry);
    let [px, py] = await at(XEV.x + 10, XEV.y + 20);
    await page.mouse.click(px, py);
    [px, py] = await at(XEV.x + 30, XEV.y + 40);
    await page.mouse.click(px, py, { button: 'right' });
    await page.mouse.click(px, py, { button: 'middle' });
    [px, py] = await at(XEV.x + 50, XEV.y + 60);
    await page.mouse.move(px, py);
    await page.mouse.wheel(0, 100); // 2 clicks down (50 CSS px a click)
    await page.mouse.wheel(0, -50); // 1 click up
    await waitFor('xdotool: the pointer at the last position', () =>
      /x:650 y:560 /.test(String(run('xdotool', ['getmouselocation'], { env: x.env }))));
    await waitFor('the wheel events in the xev log', () => xevButtons(xevLog).length >= 12);
    const ev = xevButtons(xevLog).map((e) => `${e.type === 'ButtonPress' ? '+' : '-'}${e.button}@${e.x},${e.y}`);
    assert.deepEqual(ev, ['+1@610,520', '-1@610,520', '+3@630,540', '-3@630,540', '+2@630,540',
      '-2@630,540', '+5@650,560', '-5@650,560', '+5@650,560', '-5@650,560', '+4@650,560', '-4@650,560']);
  });

  test('clipboard both ways (xclip on the remote display)', async () => {
    const remote = `remote café ${Date.now()}`;
    const file = path.join(tmp, 'clip.txt');
    fs.writeFileSync(file, remote); // UTF-8: xclip serves it as UTF8_STRING
    const owner = spawnTracked('xclip', 'xclip', ['-selection', 'clipboard', '-quiet', file], { env: x.env });
    await page.waitForFunction((t) => document.getElementById('clip-text').value === t, remote, { timeout: 20000 });
    // Browser → remote through the clipboard panel: show the toolbar, open, type, Send.
    await page.mouse.move(500, 1);
    await page.click('#b-clip');
    await page.fill('#clip-text', 'from the browser: naïve 42');
    await shot(page, 'real-clipboard-panel');
    await page.click('#clip-send');
    const read = (sel) => { try { return String(run('xclip', ['-o', '-selection', sel], { env: x.env })); } catch { return ''; } };
    await waitFor('the browser text on the remote CLIPBOARD', () => read('clipboard') === 'from the browser: naïve 42');
    await waitFor('… and on PRIMARY', () => read('primary') === 'from the browser: naïve 42');
    await page.click('#clip-close');
    assert.notEqual(owner.child.exitCode, null, 'xclip lost the selection to the VNC server');
  });

  test('fit and 1:1 scaling', async () => {
    await page.setViewportSize({ width: 800, height: 600 });
    const box = () => page.$eval('#canvas', (c) => { const r = c.getBoundingClientRect(); return [r.width, r.height]; });
    await page.waitForFunction(() => Math.round(document.getElementById('canvas').getBoundingClientRect().width) === 800);
    assert.deepEqual((await box()).map(Math.round), [800, 600]);
    await shot(page, 'real-scale-fit');
    await page.mouse.move(400, 1);
    await page.click('#b-scale');
    await page.waitForFunction(() => Math.round(document.getElementById('canvas').getBoundingClientRect().width) === 1024);
    assert.deepEqual((await box()).map(Math.round), [1024, 768]);
    assert.match(page.url(), /scale=native/);
    await shot(page, 'real-scale-native');
    // Input maps to the right pixel in both modes: in 1:1 the desktop scrolls.
    await page.click('#b-scale');
    await page.waitForFunction(() => Math.round(document.getElementById('canvas').getBoundingClientRect().width) === 800);
    await page.setViewportSize({ width: 1024, height: 768 });
  });

  test('reconnects after the VNC server restarts', async () => {
    await stopXvnc(x);
    await waitStatus(page, /Reconnecting in \d+ s|Failed|Connecting/, 20000);
    await shot(page, 'real-vnc-down');
    assert.notEqual(await page.evaluate(() => wsvnc.conn.state), 'failed', 'a dropped VNC server is retried');
    x = await startXvnc(DISPLAY.main, PORT.xvnc);
    startDesktop();
    await live(page);
    await expectCanvasMatchesX(page, x, 'real-reconnected', 40000);
  });

  test('remote resize follows the window (ExtendedDesktopSize)', async () => {
    const p = await newPage({ width: 900, height: 700 });
    await p.goto(gw.url);
    await live(p);
    await waitFor('Xvnc resized to 900x700', () => xSize(x.env).join('x') === '900x700', { timeoutMs: 20000 });
    await expectCanvasMatchesX(p, x, 'real-resized-900x700');
    await p.setViewportSize({ width: 1000, height: 600 });
    await waitFor('Xvnc resized to 1000x600', () => xSize(x.env).join('x') === '1000x600', { timeoutMs: 20000 });
    await expectCanvasMatchesX(p, x, 'real-resized-1000x600');
    assert.match(String(run('xrandr', [], { env: x.env })), /current 1000 x 600/);
    // The other viewer (resize=0) follows the new size too.
    await expectCanvasMatchesX(page, x, 'real-resized-other-viewer');
    assert.deepEqual(p.problems, []);
    await p.close();
  });

  test('the page from wsvnc: under 100 KB, same origin only, no console errors', async () => {
    await checkPageLoad(`${gw.url}?resize=0`);
    assert.deepEqual(page.problems, [], 'console of the main real page');
  });
});

describe('VncAuth: the viewer asks for the password', { timeout: 120000 }, () => {
  let x, gw, page;
  after(async () => { if (page) await page.close().catch(() => {}); });

  test('a wrong password is asked again; the right one connects', async () => {
    checkPrerequisites(['Xvnc', 'vncpasswd', 'xsetroot', 'xdpyinfo', 'import', 'convert']);
    const pwFile = path.join(os.tmpdir(), `wsvnc-viewer-passwd-${process.pid}`);
    fs.writeFileSync(pwFile, run('vncpasswd', ['-f'], { input: 'sésame42\n' }));
    try {
      x = await startXvnc(DISPLAY.pw, PORT.xvncPw, { width: 640, height: 480, passwordFile: pwFile });
      run('xsetroot', ['-solid', ROOT_B], { env: x.env });
      gw = await startWsvnc('wsvnc-gateway-pw', PORT.gwPw, ['--target', `127.0.0.1:${PORT.xvncPw}`, ...EXTRA]);
      page = await newPage();
      await page.goto(`${gw.url}?resize=0`);
      await page.waitForSelector('#pw-input', { state: 'visible', timeout: 20000 });
      await shot(page, 'real-password-prompt');
      await page.fill('#pw-input', 'wrong');
      await page.press('#pw-input', 'Enter');
      await page.waitForFunction(() => /not accepted/.test(document.getElementById('o-text').textContent) &&
        !document.getElementById('pw').hidden, null, { timeout: 20000 });
      await shot(page, 'real-password-wrong');
      await page.fill('#pw-input', 'sésame42');
      await page.press('#pw-input', 'Enter');
      await live(page);
      await expectCanvasMatchesX(page, x, 'real-password-ok');
      assert.deepEqual(page.problems, []);
    } finally {
      fs.rmSync(pwFile, { force: true });
    }
  });
});
