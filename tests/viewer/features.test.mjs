// The RFB extensions through the viewer, in headless Chromium.
//
// Part 1, against mock-gateway.mjs: keys carry their KeyboardEvent.code (KeyCode); a dead key
// goes as its code alone and the character that completes it with the completing key's code
// (browser composition and Windows-style); Caps Lock follows the server's LedState; back and
// forward buttons go as PointerExt and the page does not navigate; the user name + password
// prompt (CredentialsRequired → Credentials, a rejected answer asked again with the user name
// kept); the clipboard note follows ServerHello's Unicode flag.
//
// Part 2, real TigerVNC Xvnc with -RawKeyboard (the server applies its own layout to
// scancodes) and, for comparison, without it (the server maps keysyms), an xterm running
// `cat > FILE`, the wsvnc gateway: keys typed as a German and a French keyboard produce them
// (code = physical key, key = the layout's character) arrive exactly — umlauts, ß, QWERTZ and
// AZERTY letters, AltGr (@, €), dead keys; a remote Caps Lock turned on behind the viewer's back
// is turned off before the next key; Greek, CJK and emoji through the clipboard both ways
// (xclip); the Adwaita ARGB cursor reaches the CSS cursor with the right (straight) alpha.
//
// Part 3, Xvnc with VeNCrypt X509Plain (a test CA made with openssl, a test-only PAM service):
// the viewer asks for a user name and a password; a wrong password is asked again; the right
// one shows the desktop.
//
// Ports 127.0.0.1:19141-19146 and X displays :82-:84 (each + 1000 / + 20 × WSVNC_TEST_OFFSET).
//
//   cd tests/viewer && node --test features.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { killAll, run, sleep, spawnTracked, waitFor } from '../browser/lib.mjs';
import { MockGateway, enc } from './mock-gateway.mjs';
import {
  ARTIFACTS, assertServesCurrentWeb, checkPrerequisites, launchChromium, readCanvas, startWsvnc, startXvnc,
  testOffset,
} from './harness.mjs';
import { xScreenshot, comparePixels } from '../browser/lib.mjs';

const OFFSET = testOffset();
const PORT = Object.fromEntries(Object.entries({
  mock: 19141, gw: 19142, xvncRaw: 19143, xvncKeysyms: 19144, gwTls: 19145, xvncTls: 19146 })
  .map(([k, v]) => [k, v + 1000 * OFFSET]));
const DISPLAY = { raw: 82 + 20 * OFFSET, keysyms: 83 + 20 * OFFSET, tls: 84 + 20 * OFFSET };

fs.mkdirSync(ARTIFACTS, { recursive: true });
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `features-${name}.png`) });

let browser = null;
after(async () => {
  if (browser) await browser.close().catch(() => {});
  await killAll();
});

async function newPage(viewport = { width: 1024, height: 768 }) {
  if (!browser) browser = await launchChromium();
  const page = await browser.newPage({ viewport });
  page.problems = [];
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !/willReadFrequently/.test(m.text())) {
      page.problems.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  return page;
}

const live = (page) => page.waitForFunction(() => document.body.classList.contains('live'),
  null, { timeout: 30000 });

/**
 * Keys as a keyboard with another layout produces them, through the DevTools protocol:
 * `code` is the physical key, `key` the layout's character.
 */
class Keys {
  constructor(cdp) { this.cdp = cdp; }
  ev(type, key, code, { text, vk = 0, location = 0 } = {}) {
    return this.cdp.send('Input.dispatchKeyEvent',
      { type, key, code, text, unmodifiedText: text, windowsVirtualKeyCode: vk, location });
  }
  /** A character key: down (with its text) and up. */
  async char(key, code) {
    await this.ev('keyDown', key, code, { text: key });
    await this.ev('keyUp', key, code);
  }
  async named(key, code, vk) {
    await this.ev('rawKeyDown', key, code, { vk });
    await this.ev('keyUp', key, code, { vk });
  }
  /** `fn` with a modifier held: 'AltGraph' (AltRight) or 'Shift' (ShiftLeft). */
  async with(mod, fn) {
    const [code, vk, location] = mod === 'AltGraph' ? ['AltRight', 225, 2] : ['ShiftLeft', 16, 1];
    await this.ev('rawKeyDown', mod, code, { vk, location });
    await fn();
    await this.ev('keyUp', mod, code, { vk, location });
  }
  /** A dead key, then the key that completes it, composed by the browser (Linux, macOS). */
  async deadComposed(deadCode, deadText, key, code, result) {
    await this.ev('rawKeyDown', 'Dead', deadCode, { vk: 221 });
    await this.cdp.send('Input.imeSetComposition', { text: deadText, selectionStart: 1, selectionEnd: 1 });
    await this.ev('keyUp', 'Dead', deadCode, { vk: 221 });
    await this.ev('rawKeyDown', key, code, { vk: 229 });
    await this.cdp.send('Input.insertText', { text: result });
    await this.ev('keyUp', key, code, { vk: 229 });
  }
  /** A dead key, then the completing key reporting the composed character (Windows). */
  async deadDirect(deadCode, code, result) {
    await this.ev('rawKeyDown', 'Dead', deadCode, { vk: 221 });
    await this.ev('keyUp', 'Dead', deadCode, { vk: 221 });
    await this.char(result, code);
  }
}

// ==========================================================================================
// Part 1: mock gateway
// ==========================================================================================

describe('extensions against the mock gateway', { timeout: 120000 }, () => {
  const gw = new MockGateway();
  let page, cdp, keys;

  before(async () => {
    checkPrerequisites([]);
    await gw.start(PORT.mock);
    page = await newPage();
    cdp = await page.context().newCDPSession(page);
    keys = new Keys(cdp);
  });
  after(async () => {
    if (page) await page.close().catch(() => {});
    await gw.stop();
  });

  /** A fresh live session; `flags` of ServerHello. */
  async function open(flags = 0, query = '?resize=0') {
    gw.onSession = () => {};
    const next = gw.nextSession();
    await page.goto(`${gw.url}${query}`);
    const s = await next;
    await s.waitType('ClientHello');
    s.send(enc.hello(320, 200, flags, 'mock'), enc.fill(0, 0, 320, 200, [0, 0, 0]), enc.endFrame(1));
    await s.waitType('FrameAck');
    await page.mouse.click(100, 100); // focus the keyboard input
    await s.waitFor((x) => x.of('Pointer').some((m) => m.mask === 1) && x.of('Pointer').at(-1).mask === 0, 'the click');
    return s;
  }

  const keyLog = (s, from = 0) => s.of('Key').slice(from)
    .map((k) => `${k.down ? '+' : '-'}${k.keysym.toString(16)}${k.code ? `@${k.code}` : ''}`);

  test('keys carry their code; text without a key goes by keysym alone', async () => {
    const s = await open();
    await keys.char('z', 'KeyY'); // a German Z: the physical key is Y's
    await keys.named('Enter', 'Enter', 13);
    await cdp.send('Input.insertText', { text: 'ß' }); // no key event: text only
    await s.waitFor((x) => x.of('Key').length >= 6, '6 keys');
    assert.deepEqual(keyLog(s), ['+7a@KeyY', '-7a@KeyY', '+ff0d@Enter', '-ff0d@Enter', '+df', '-df']);
    assert.deepEqual(s.errors, []);
  });

  test('dead keys: the dead key by code, the composed character with the completing key', async () => {
    const s = await open();
    await keys.deadComposed('Equal', '´', 'e', 'KeyE', 'é');
    await s.waitFor((x) => x.of('Key').length >= 4, '4 keys');
    // Windows reports the composed character on the completing key itself.
    await keys.deadDirect('BracketLeft', 'KeyA', 'â');
    await s.waitFor((x) => x.of('Key').length >= 8, '8 keys');
    assert.deepEqual(keyLog(s), ['+0@Equal', '-0@Equal', '+e9@KeyE', '-e9@KeyE',
      '+0@BracketLeft', '-0@BracketLeft', '+e2@KeyA', '-e2@KeyA']);
    // Nothing typed into the keyboard input stays there.
    assert.equal(await page.$eval('#kbd', (t) => t.value), '');
    assert.deepEqual(s.errors, []);
  });

  test('Caps Lock follows the server: a differing remote lock is tapped before the next key', async () => {
    const s = await open();
    s.send(enc.ledState(0b100)); // Caps Lock on at the server, off here
    await page.waitForFunction(() => wsvnc.keyboard.remoteLocks && wsvnc.keyboard.remoteLocks.CapsLock === true);
    await keys.char('a', 'KeyA');
    await keys.char('b', 'KeyB'); // the remote state is unknown until the next report: no tap
    await s.waitFor((x) => x.of('Key').length >= 6, '6 keys');
    assert.deepEqual(keyLog(s), ['+ffe5@CapsLock', '-ffe5@CapsLock', '+61@KeyA', '-61@KeyA', '+62@KeyB', '-62@KeyB']);
    s.send(enc.ledState(0));
    await page.waitForFunction(() => wsvnc.keyboard.remoteLocks.CapsLock === false);
    await keys.char('c', 'KeyC');
    await s.waitFor((x) => x.of('Key').length >= 8, '8 keys');
    assert.deepEqual(keyLog(s, 6), ['+63@KeyC', '-63@KeyC'], 'in step: nothing extra');
    assert.deepEqual(s.errors, []);
  });

  test('back and forward buttons go as PointerExt, and the page stays', async () => {
    const s = await open();
    const url = page.url();
    const n = s.of('Pointer').length;
    for (const [button, bit] of [['back', 8], ['forward', 16]]) {
      await cdp.send('Input.dispatchMouseEvent', { type: 'mousePressed', x: 150, y: 80, button, buttons: bit, clickCount: 1 });
      await cdp.send('Input.dispatchMouseEvent', { type: 'mouseReleased', x: 150, y: 80, button, buttons: 0, clickCount: 1 });
    }
    await s.waitFor((x) => x.of('Pointer').slice(n).filter((m) => m.mask === 0).length >= 2, 'releases');
    const masks = s.of('Pointer').slice(n).map((m) => m.mask);
    assert.deepEqual(masks.filter((m) => m), [0x80, 0x100], `masks ${masks}`);
    await sleep(300);
    assert.equal(page.url(), url, 'no history navigation');
    assert.deepEqual(s.errors, []);
  });

  test('user name and password prompt; a rejected answer is asked again with the user name kept', async () => {
    gw.onSession = () => {};
    let next = gw.nextSession();
    await page.goto(`${gw.url}?resize=0`);
    let s = await next;
    await s.waitType('ClientHello');
    s.send(enc.credentialsRequired());
    await page.waitForSelector('#pw-user', { state: 'visible' });
    assert.equal(await page.$eval('#o-title', (e) => e.textContent), 'User name and password required');
    await shot(page, 'mock-credentials');
    await page.fill('#pw-user', 'zoë');
    await page.fill('#pw-input', 'wrong');
    next = gw.nextSession();
    await page.press('#pw-input', 'Enter');
    const c = await s.waitType('Credentials');
    assert.deepEqual([c.username, c.password], ['zoë', 'wrong']);
    s.send(enc.error('VNC authentication failed: denied'));
    s.close(1008, 'VNC authentication failed');
    s = await next; // asked again at once, on a new connection
    await s.waitType('ClientHello');
    s.send(enc.credentialsRequired());
    await page.waitForFunction(() => /not accepted/.test(document.getElementById('o-text').textContent) &&
      !document.getElementById('pw').hidden);
    assert.equal(await page.$eval('#pw-user', (e) => e.value), 'zoë', 'the user name is kept');
    await page.fill('#pw-input', 'right');
    await page.press('#pw-input', 'Enter');
    const c2 = await s.waitType('Credentials');
    assert.deepEqual([c2.username, c2.password], ['zoë', 'right']);
    assert.equal(s.of('Password').length, 0);
    s.send(enc.hello(320, 200, 0, 'mock'), enc.fill(0, 0, 320, 200, [0, 0, 0]), enc.endFrame(1));
    await live(page);
    // A password prompt has no user name field.
    next = gw.nextSession();
    await page.goto(`${gw.url}?resize=0`);
    s = await next;
    await s.waitType('ClientHello');
    s.send(enc.passwordRequired());
    await page.waitForSelector('#pw-input', { state: 'visible' });
    assert.equal(await page.isVisible('#pw-user'), false);
    assert.deepEqual(page.problems, []);
  });

  test('the clipboard note follows the Unicode flag of ServerHello', async () => {
    for (const [flags, note] of [[0, /outside Latin-1/], [4, /^Sent to the remote desktop\.$/]]) {
      const s = await open(flags);
      await page.evaluate(() => wsvnc.clipboard.sendLocal('Ελληνικά 中文 😀'));
      const m = await s.waitType('Clipboard');
      assert.equal(m.text, 'Ελληνικά 中文 😀');
      assert.match(await page.$eval('#clip-note', (e) => e.textContent), note);
    }
  });
});

// ==========================================================================================
// Part 2: real Xvnc, real wsvnc gateway
// ==========================================================================================

const XTERM = { x: 10, y: 10 };

/**
 * An xterm (UTF-8) titled `title` running `cat > file` with no echo, at XTERM; resolves once
 * its window is mapped (it is then on top: there is no window manager).
 */
async function typingXterm(x, file, title) {
  fs.writeFileSync(file, '');
  spawnTracked(title, 'xterm', ['-T', title, '-geometry', `70x10+${XTERM.x}+${XTERM.y}`, '-fn', 'fixed', '-u8',
    '+sb', '-e', 'sh', '-c', `stty -echo; exec cat > '${file}'`],
  { env: { ...x.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } });
  await waitFor(`the xterm ${title}`, () => {
    try { return String(run('xdotool', ['search', '--onlyvisible', '--name', `^${title}$`], { env: x.env })).trim() !== ''; } catch { return false; }
  }, { timeoutMs: 15000 });
}

/** Waits until `file` holds `want`; fails naming what it holds instead. */
async function expectTyped(file, want, what) {
  try {
    await waitFor(`${what}: ${JSON.stringify(want)} in the xterm`, () => fs.readFileSync(file, 'utf8') === want,
      { timeoutMs: 20000 });
  } catch (e) {
    throw new Error(`${e.message}; it holds ${JSON.stringify(fs.readFileSync(file, 'utf8'))}`);
  }
}

/** A German keyboard (de-DE layout in the browser) typing. */
async function typeGerman(keys) {
  for (const [k, code] of [['ü', 'BracketLeft'], ['ö', 'Semicolon'], ['ä', 'Quote'], ['ß', 'Minus'],
    ['z', 'KeyY'], ['y', 'KeyZ']]) {
    await keys.char(k, code);
  }
  await keys.with('AltGraph', () => keys.char('@', 'KeyQ'));
  await keys.with('AltGraph', () => keys.char('€', 'KeyE'));
  await keys.with('Shift', () => keys.char('/', 'Digit7'));
  await keys.deadComposed('Equal', '´', 'e', 'KeyE', 'é'); // dead acute + e
  await keys.deadDirect('Backquote', 'KeyA', 'â'); // dead circumflex + a, as Windows reports it
  await keys.named('Enter', 'Enter', 13);
}
const GERMAN = 'üöäßzy@€/éâ\n';

describe('keyboard layouts, LEDs, clipboard and cursor through the gateway to Xvnc', { timeout: 300000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-features-'));
  let raw, keysyms, gw, page, keys;
  after(async () => {
    if (page) await page.close().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A viewer of `token` typing into a fresh xterm on `x` (focus follows the pointer). */
  async function typingSession(x, token, layout) {
    run('setxkbmap', [layout], { env: x.env });
    const file = path.join(tmp, `typed-${x.display}-${layout}.txt`);
    await typingXterm(x, file, `wsvnc-typing-${x.display}-${layout}`);
    const p = await newPage();
    await p.goto(`${gw.url}?resize=0&token=${token}`);
    await live(p);
    // The pointer over the xterm: it gets the keys (checked where the X server has it).
    const [px, py] = await p.$eval('#canvas', (c) => {
      const r = c.getBoundingClientRect();
      return [r.left + 100.5 * r.width / c.width, r.top + 50.5 * r.height / c.height];
    });
    await p.mouse.click(px, py);
    await waitFor('the X pointer over the xterm', () =>
      /x:100 y:50 /.test(String(run('xdotool', ['getmouselocation'], { env: x.env }))));
    return { p, file, keys: new Keys(await p.context().newCDPSession(p)) };
  }

  test('setup: Xvnc with and without -RawKeyboard, wsvnc, Chromium', async () => {
    checkPrerequisites();
    raw = await startXvnc(DISPLAY.raw, PORT.xvncRaw, { extra: ['-RawKeyboard'] });
    keysyms = await startXvnc(DISPLAY.keysyms, PORT.xvncKeysyms);
    run('xsetroot', ['-solid', '#203040'], { env: raw.env });
    const tokens = path.join(tmp, 'tokens');
    fs.writeFileSync(tokens, `raw: 127.0.0.1:${PORT.xvncRaw}\nkeysyms: 127.0.0.1:${PORT.xvncKeysyms}\n`);
    gw = await startWsvnc('wsvnc-features', PORT.gw, ['--token-file', tokens]);
    await assertServesCurrentWeb(gw.url);
  });

  test('a German keyboard: umlauts, ß, QWERTZ, AltGr, dead keys (server layout de, by scancode)', async () => {
    const s = await typingSession(raw, 'raw', 'de');
    ({ p: page, keys } = s);
    await typeGerman(keys);
    await expectTyped(s.file, GERMAN, 'de, -RawKeyboard');
    await shot(page, 'german');
  });

  test('the same German keys to a server that maps keysyms (no -RawKeyboard)', async () => {
    const s = await typingSession(keysyms, 'keysyms', 'de');
    await typeGerman(s.keys);
    await expectTyped(s.file, GERMAN, 'de, keysyms');
    await s.p.close();
  });

  test('a French keyboard: AZERTY letters, é à ç, AltGr, dead circumflex (server layout fr)', async () => {
    if (page) await page.close();
    const s = await typingSession(raw, 'raw', 'fr');
    ({ p: page, keys } = s);
    for (const [k, code] of [['a', 'KeyQ'], ['z', 'KeyW'], ['q', 'KeyA'], ['m', 'Semicolon'], ['é', 'Digit2'],
      ['à', 'Digit0'], ['ç', 'Digit9']]) {
      await keys.char(k, code);
    }
    await keys.with('AltGraph', () => keys.char('@', 'Digit0'));
    await keys.with('AltGraph', () => keys.char('€', 'KeyE'));
    await keys.deadComposed('BracketLeft', '^', 'e', 'KeyE', 'ê');
    await keys.with('Shift', () => keys.char('1', 'Digit1'));
    await keys.named('Enter', 'Enter', 13);
    await expectTyped(s.file, 'azqméàç@€ê1\n', 'fr, -RawKeyboard');
  });

  test('a remote Caps Lock turned on behind the viewer is turned off before the next key', async () => {
    if (page) await page.close();
    const s = await typingSession(raw, 'raw', 'us');
    ({ p: page, keys } = s);
    run('xdotool', ['key', 'Caps_Lock'], { env: raw.env });
    await page.waitForFunction(() => wsvnc.keyboard.remoteLocks && wsvnc.keyboard.remoteLocks.CapsLock === true,
      null, { timeout: 20000 });
    await keys.char('x', 'KeyX');
    await keys.named('Enter', 'Enter', 13);
    await expectTyped(s.file, 'x\n', 'Caps Lock synced');
    await page.waitForFunction(() => wsvnc.keyboard.remoteLocks && wsvnc.keyboard.remoteLocks.CapsLock === false,
      null, { timeout: 20000 });
  });

  test('Greek, CJK and emoji through the clipboard both ways (xclip)', async () => {
    const remote = 'Ελληνικά: καλημέρα\n中文：你好，世界 日本語\n😀🎉 ok';
    const file = path.join(tmp, 'clip.txt');
    fs.writeFileSync(file, remote);
    spawnTracked('xclip-features', 'xclip', ['-selection', 'clipboard', '-quiet', file], { env: raw.env });
    await page.waitForFunction((t) => document.getElementById('clip-text').value === t, remote, { timeout: 20000 });
    const mine = 'Γειά σου 世界 🚀 — ok';
    await page.evaluate((t) => wsvnc.clipboard.sendLocal(t), mine);
    assert.match(await page.$eval('#clip-note', (e) => e.textContent), /^Sent to the remote desktop\.$/);
    const read = () => { try { return String(run('xclip', ['-o', '-selection', 'clipboard'], { env: raw.env })); } catch { return ''; } };
    await waitFor('the browser text on the remote clipboard', () => read() === mine, { timeoutMs: 20000 });
  });

  test('the Adwaita ARGB cursor reaches the CSS cursor with straight alpha', async () => {
    const theme = '/usr/share/icons/Adwaita/cursors/left_ptr';
    assert.ok(fs.existsSync(theme), 'install adwaita-icon-theme');
    const before = await page.$eval('#canvas', (c) => c.style.cursor);
    // Xvnc sends the shape once the client has pointed where the X pointer is; then it sends
    // it when it changes: set the root window's cursor, twice so it changes.
    await page.mouse.move(600, 500);
    await page.mouse.move(620, 520);
    for (const name of ['watch', 'left_ptr']) {
      run('xsetroot', ['-cursor_name', name], { env: { ...raw.env, XCURSOR_THEME: 'Adwaita', XCURSOR_SIZE: '24' } });
      await sleep(300);
    }
    await page.waitForFunction((b) => {
      const c = document.getElementById('canvas').style.cursor;
      return c !== b && c.startsWith('url(');
    }, before, { timeout: 20000 });
    const css = await page.$eval('#canvas', (c) => c.style.cursor);
    const m = /^url\("?(data:image\/png;base64,[^")]+)"?\) (\d+) (\d+), default$/.exec(css);
    assert.ok(m, css);
    const got = await page.evaluate(async (url) => {
      const img = new Image();
      img.src = url;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width;
      c.height = img.height;
      const g = c.getContext('2d', { willReadFrequently: true });
      g.drawImage(img, 0, 0);
      return { w: img.width, h: img.height, rgba: [...g.getImageData(0, 0, img.width, img.height).data] };
    }, m[1]);
    const want = xcursorImage(theme, got.w, got.h);
    assert.ok(want, `no ${got.w}x${got.h} image in ${theme}`);
    assert.deepEqual([Number(m[2]), Number(m[3])], [want.xhot, want.yhot], 'hotspot');
    let partial = 0, telling = 0, worst = 0;
    for (let i = 0; i < got.w * got.h; i++) {
      const [a, r, g, b] = want.argb[i]; // premultiplied, as Xcursor stores it
      const px = got.rgba.slice(i * 4, i * 4 + 4); // straight, as the browser shows it
      assert.ok(Math.abs(px[3] - a) <= 1, `pixel ${i}: alpha ${px[3]} vs ${a}`);
      if (a === 0) continue;
      for (const [k, v] of [[0, r], [1, g], [2, b]]) {
        worst = Math.max(worst, Math.abs(Math.round(px[k] * px[3] / 255) - v));
        // Premultiplying twice would darken this channel visibly.
        if (a < 255 && Math.abs(Math.round(v * a / 255) - v) > 3) telling++;
      }
      if (a < 255) partial++;
    }
    assert.ok(worst <= 3, `premultiplied channels differ by up to ${worst}`);
    assert.ok(partial > 0 && telling > 0, `${partial} partly transparent pixels, ${telling} that tell the alphas apart`);
  });
});

/**
 * The image of an Xcursor file (X11 Xcursor(3) file format) that, cropped to its visible
 * pixels as TigerVNC crops cursors, is w×h: { xhot, yhot (of the cropped image), argb:
 * [[a, r, g, b] premultiplied, as Xcursor stores them] }, or null.
 */
function xcursorImage(file, w, h) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 4) !== 'Xcur') throw new Error(`${file} is not an Xcursor file`);
  const ntoc = b.readUInt32LE(12);
  for (let i = 0; i < ntoc; i++) {
    const [type, , pos] = [0, 4, 8].map((o) => b.readUInt32LE(16 + i * 12 + o));
    if (type !== 0xfffd0002) continue;
    const [width, height, xhot, yhot] = [16, 20, 24, 28].map((o) => b.readUInt32LE(pos + o));
    const px = (x, y) => {
      const v = b.readUInt32LE(pos + 36 + (y * width + x) * 4);
      return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
    };
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (px(x, y)[0] === 0) continue;
        [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      }
    }
    if (x1 - x0 + 1 !== w || y1 - y0 + 1 !== h) continue;
    const argb = [];
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) argb.push(px(x, y));
    return { xhot: xhot - x0, yhot: yhot - y0, argb };
  }
  return null;
}

// ==========================================================================================
// Part 3: VeNCrypt X509Plain, the browser asked for a user name and a password
// ==========================================================================================

const PLAIN_USER = 'vncviewer';
const PLAIN_PW = 'pl@in ünï 7';

/** A test CA and a server certificate for 127.0.0.1 it signed (EC P-256), made by openssl. */
function makePki(dir) {
  const f = (n) => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2',
    '-subj', '/CN=wsvnc viewer test CA']);
  run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(f('ext.cnf'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' +
    'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n');
  run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

/**
 * A test-only PAM service (pam_userdb with one user, made by db_load) for TigerVNC's Plain
 * check, as tests/common/vnc_tls.rs makes one: /etc/pam.d/<name>, removed by `remove()`.
 * Needs root (it writes /etc/pam.d; Xvnc's PAM check needs it too).
 */
function makePamService(dir, user, password) {
  assert.equal(process.getuid(), 0, 'the X509Plain test needs root: it adds a test-only PAM service under /etc/pam.d');
  const modules = ['/lib/x86_64-linux-gnu/security', '/usr/lib/x86_64-linux-gnu/security', '/lib/security'];
  assert.ok(modules.some((d) => fs.existsSync(path.join(d, 'pam_userdb.so'))),
    'pam_userdb.so not found: install the Debian package libpam-modules');
  const input = path.join(dir, 'users.txt');
  fs.writeFileSync(input, `${user}\n${password}\n`);
  run('db_load', ['-T', '-t', 'hash', '-f', input, path.join(dir, 'users.db')]);
  fs.rmSync(input);
  const name = `wsvnc-viewer-test-${OFFSET}-${process.pid}`;
  const file = path.join('/etc/pam.d', name);
  fs.writeFileSync(file, '# Test-only service of wsvnc\'s viewer tests (tests/viewer/features.test.mjs).\n' +
    `auth required pam_userdb.so db=${path.join(dir, 'users')}\naccount required pam_permit.so\n`);
  return { name, remove: () => fs.rmSync(file, { force: true }) };
}

describe('X509Plain: the viewer asks for a user name and a password', { timeout: 120000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsvnc-x509-'));
  let pam = null, page;
  after(async () => {
    if (page) await page.close().catch(() => {});
    if (pam) pam.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a wrong password is asked again with the user name kept; the right one connects', async () => {
    checkPrerequisites(['Xvnc', 'xsetroot', 'xdpyinfo', 'openssl', 'db_load', 'import', 'convert']);
    const pki = makePki(tmp);
    pam = makePamService(tmp, PLAIN_USER, PLAIN_PW);
    const x = await startXvnc(DISPLAY.tls, PORT.xvncTls, {
      width: 640, height: 480,
      security: ['-SecurityTypes', 'X509Plain', '-X509Cert', pki.cert, '-X509Key', pki.key,
        '-PAMService', pam.name, '-PlainUsers', PLAIN_USER],
    });
    run('xsetroot', ['-solid', '#3e8a2e'], { env: x.env });
    const gw = await startWsvnc('wsvnc-features-tls', PORT.gwTls,
      ['--target', `127.0.0.1:${PORT.xvncTls}`, '--vnc-ca', pki.ca]);
    page = await newPage();
    await page.goto(`${gw.url}?resize=0`);
    await page.waitForSelector('#pw-user', { state: 'visible', timeout: 20000 });
    assert.equal(await page.$eval('#o-title', (e) => e.textContent), 'User name and password required');
    await shot(page, 'x509plain-prompt');
    await page.fill('#pw-user', PLAIN_USER);
    await page.fill('#pw-input', 'not the password');
    await page.press('#pw-input', 'Enter');
    await page.waitForFunction(() => /not accepted/.test(document.getElementById('o-text').textContent) &&
      !document.getElementById('pw').hidden, null, { timeout: 20000 });
    assert.equal(await page.$eval('#pw-user', (e) => e.value), PLAIN_USER);
    await shot(page, 'x509plain-rejected');
    await page.fill('#pw-input', PLAIN_PW);
    await page.press('#pw-input', 'Enter');
    await live(page);
    const want = xScreenshot(x.display, 640, 480);
    await waitFor('the canvas to equal the X screen', async () => {
      const c = await readCanvas(page);
      return c && c.width === 640 && comparePixels(Buffer.from(c.rgba, 'base64'), want, 640, 480).count === 0;
    }, { timeoutMs: 20000 });
    await shot(page, 'x509plain-live');
    assert.deepEqual(page.problems, []);
  });
});
