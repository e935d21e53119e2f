// The viewer on phones and small windows, in headless Chromium with touch emulation
// (playwright hasTouch / isMobile) against mock-gateway.mjs's demo desktop.
//
// At 320×568 and 390×844 (phones) and 1280×800 (a touch laptop), every toolbar control —
// the bar's own and those in its menu — is visible, inside the viewport, not covered by
// anything else, at least 44×44 CSS px (WCAG 2.5.5), and operable by a tap, each with its
// effect asserted: the keys reach the gateway, the on-screen keyboard input gets the focus,
// the clipboard panel opens and sends, scaling / view-only / statistics / full screen / pin
// toggle, disconnect closes the WebSocket. With a mouse at 1280×800 the same controls (but
// the on-screen keyboard, which a physical keyboard makes pointless) are in one row.
// Screenshots of each size go to artifacts/viewer/mobile-*.png (gitignored).
//
// Port 127.0.0.1:19130 + 1000·WSVNC_TEST_OFFSET.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { ARTIFACTS, startMockAndChromium, testOffset } from './harness.mjs';

const PORT = 19130 + 1000 * testOffset();

const XK = { Control_L: 0xffe3, Alt_L: 0xffe9, Super_L: 0xffeb, Tab: 0xff09, Escape: 0xff1b, Delete: 0xffff };
// Every toolbar control, in the order the test operates them (disconnect last).
const CONTROLS = ['b-ctrl', 'b-alt', 'b-win', 'b-tab', 'b-esc', 'b-cad', 'b-kbd', 'b-clip', 'b-scale',
  'b-view', 'b-stats', 'b-full', 'b-pin', 'b-conn'];

const SIZES = [
  { name: 'phone-320x568', viewport: { width: 320, height: 568 }, touch: true, isMobile: true, dpr: 2 },
  { name: 'phone-390x844', viewport: { width: 390, height: 844 }, touch: true, isMobile: true, dpr: 3 },
  { name: 'touch-1280x800', viewport: { width: 1280, height: 800 }, touch: true, isMobile: false, dpr: 1 },
  { name: 'mouse-1280x800', viewport: { width: 1280, height: 800 }, touch: false, isMobile: false, dpr: 1 },
];

let env = null;
let browser = null;
let gw = null;
before(async () => {
  env = await startMockAndChromium(PORT);
  ({ browser, gw } = env);
});
after(async () => { if (env) await env.stop(); });

/** Geometry of an element as the user sees it: box, visibility, and what is on top at its centre. */
function geometry(page, id) {
  return page.evaluate((elId) => {
    const el = document.getElementById(elId);
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    const visible = r.width > 0 && r.height > 0 && cs.visibility === 'visible' && Number(cs.opacity) > 0.5;
    const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return { x: r.x, y: r.y, w: r.width, h: r.height, visible, onTop: !!top && (top === el || el.contains(top)),
      vw: window.innerWidth, vh: window.innerHeight };
  }, id);
}

function assertReachable(g, id, minSize, size) {
  const where = `${size}: #${id} ${JSON.stringify(g)}`;
  assert.ok(g.visible, `${where} is not visible`);
  assert.ok(g.x >= 0 && g.y >= 0 && g.x + g.w <= g.vw + 0.5 && g.y + g.h <= g.vh + 0.5, `${where} is outside the viewport`);
  assert.ok(g.w >= minSize && g.h >= minSize, `${where} is smaller than ${minSize}×${minSize}`);
  assert.ok(g.onTop, `${where} is covered by another element`);
}

describe('toolbar on phones, touch laptops and desktops', { timeout: 240000 }, () => {
  for (const size of SIZES) {
    test(`${size.name}: every control visible, inside the viewport, big enough, and operable`, async () => {
      const context = await browser.newContext({ viewport: size.viewport, hasTouch: size.touch,
        isMobile: size.isMobile, deviceScaleFactor: size.dpr });
      const page = await context.newPage();
      const problems = [];
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
      const minSize = size.touch ? 44 : 24;
      const press = (sel) => (size.touch ? page.tap(sel) : page.click(sel));
      const shot = (what) => page.screenshot({ path: path.join(ARTIFACTS, `mobile-${size.name}-${what}.png`) });
      try {
        const next = gw.nextSession();
        await page.goto(`${gw.url}?resize=0`);
        const s = await next;
        await page.waitForFunction(() => document.body.classList.contains('live'), null, { timeout: 15000 });
        const compact = await page.evaluate(() => document.body.classList.contains('compact'));
        assert.equal(compact, size.viewport.width < 700, `${size.name}: compact toolbar iff the window is narrow`);
        const pointerCoarse = await page.evaluate(() => matchMedia('(pointer: coarse)').matches);
        assert.equal(pointerCoarse, size.touch, 'touch emulation gives a coarse pointer');

        // While live the bar hides itself; the handle brings it back. (With a mouse, moving to
        // the top edge does too; the handle is a thin tab there, not a 24 px target.)
        await page.waitForFunction(() => document.body.classList.contains('bar-hidden') &&
          getComputedStyle(document.getElementById('handle')).opacity === '1', null, { timeout: 10000 });
        await shot('hidden');
        assertReachable(await geometry(page, 'handle'), 'handle', size.touch ? minSize : 0, size.name);
        const barShown = () => page.waitForFunction(() => !document.body.classList.contains('bar-hidden') &&
          document.getElementById('bar').getBoundingClientRect().top >= 0);
        // A tap on the handle; a mouse at the top edge.
        const showBar = () => (size.touch ? page.tap('#handle') : page.mouse.move(size.viewport.width / 2, 1));
        await showBar();
        await barShown();

        const controls = CONTROLS.filter((id) => size.touch || id !== 'b-kbd');
        if (!size.touch) {
          const g = await geometry(page, 'b-kbd');
          assert.ok(!g.visible, 'no on-screen keyboard button with a mouse');
        }
        const inMenu = async (id) => compact && page.evaluate((x) => document.getElementById('more').contains(
          document.getElementById(x)), id);

        /** Shows the control (the bar if it hid itself, the menu if it is in there), checks it is reachable. */
        async function reveal(id) {
          if (await page.evaluate(() => document.getElementById('bar').getBoundingClientRect().top < 0)) {
            await page.waitForFunction(() => document.body.classList.contains('bar-hidden')); // not half-way
            await showBar();
            await barShown();
          }
          if (await inMenu(id) && !(await page.evaluate(() => document.body.classList.contains('menu-open')))) {
            assertReachable(await geometry(page, 'b-menu'), 'b-menu', minSize, size.name);
            await press('#b-menu');
            await page.waitForFunction(() => document.body.classList.contains('menu-open'));
          }
          assertReachable(await geometry(page, id), id, minSize, size.name);
        }
        const tap = async (id) => { await reveal(id); await press(`#${id}`); };
        const pressed = (id) => page.getAttribute(`#${id}`, 'aria-pressed');

        // All at once first (the screenshot shows them), then one by one.
        for (const id of controls) await reveal(id);
        await shot(compact ? 'menu' : 'bar');
        if (compact) {
          // The menu closes on a tap outside it.
          await page.touchscreen.tap(size.viewport.width / 2, size.viewport.height - 40);
          await page.waitForFunction(() => !document.body.classList.contains('menu-open'));
        }

        const keys = () => s.of('Key').map((k) => `${k.down ? '+' : '-'}${k.keysym.toString(16)}`);
        const keysAfter = async (n, want, what) => {
          await s.waitFor((x) => x.of('Key').length >= n + want.length, what);
          assert.deepEqual(keys().slice(n), want, what);
        };
        const hex = (ks) => ks.toString(16);
        let n = keys().length;
        await tap('b-ctrl');
        await keysAfter(n, [`+${hex(XK.Control_L)}`], 'Ctrl held');
        assert.equal(await pressed('b-ctrl'), 'true');
        await tap('b-ctrl');
        await keysAfter(n, [`+${hex(XK.Control_L)}`, `-${hex(XK.Control_L)}`], 'Ctrl released');
        n = keys().length;
        await tap('b-alt');
        await tap('b-alt');
        await keysAfter(n, [`+${hex(XK.Alt_L)}`, `-${hex(XK.Alt_L)}`], 'Alt held and released');
        for (const [id, ks] of [['b-win', XK.Super_L], ['b-tab', XK.Tab], ['b-esc', XK.Escape]]) {
          n = keys().length;
          await tap(id);
          await keysAfter(n, [`+${hex(ks)}`, `-${hex(ks)}`], id);
        }
        n = keys().length;
        await tap('b-cad');
        await keysAfter(n, ['+ffe3', '+ffe9', '+ffff', '-ffff', '-ffe9', '-ffe3'], 'Ctrl+Alt+Del');

        if (size.touch) {
          await tap('b-kbd');
          await page.waitForFunction(() => document.activeElement === document.getElementById('kbd'));
        }

        await tap('b-clip');
        await page.waitForFunction(() => !document.getElementById('clip').hidden);
        for (const id of ['clip-text', 'clip-send', 'clip-close']) {
          assertReachable(await geometry(page, id), id, id === 'clip-text' ? 0 : minSize, size.name);
        }
        await page.fill('#clip-text', `from a ${size.name}`);
        await press('#clip-send');
        assert.equal((await s.waitType('Clipboard')).text, `from a ${size.name}`);
        await shot('clipboard');
        await press('#clip-close');
        await page.waitForFunction(() => document.getElementById('clip').hidden);

        await tap('b-scale');
        assert.equal(await pressed('b-scale'), 'true');
        assert.ok(await page.evaluate(() => document.getElementById('screen').classList.contains('native')), '1:1');
        await tap('b-scale');
        assert.equal(await pressed('b-scale'), 'false');

        await tap('b-view');
        assert.ok(await page.evaluate(() => document.body.classList.contains('view-only')));
        await tap('b-view');
        assert.ok(!(await page.evaluate(() => document.body.classList.contains('view-only'))));

        await tap('b-stats');
        await page.waitForFunction(() => !document.getElementById('stats').hidden);
        await tap('b-stats');
        await page.waitForFunction(() => document.getElementById('stats').hidden);

        await tap('b-full');
        // aria-pressed follows the fullscreenchange event, which comes after the state changes.
        await page.waitForFunction(() => !!document.fullscreenElement &&
          document.getElementById('b-full').getAttribute('aria-pressed') === 'true', null, { timeout: 5000 });
        await tap('b-full');
        await page.waitForFunction(() => !document.fullscreenElement &&
          document.getElementById('b-full').getAttribute('aria-pressed') === 'false', null, { timeout: 5000 });

        await tap('b-pin');
        assert.equal(await pressed('b-pin'), 'true');

        await tap('b-conn');
        await s.waitFor((x) => x.closed, 'the WebSocket to close');
        await page.waitForFunction(() => document.getElementById('status').textContent === 'Disconnected');
        await shot('disconnected');
        // The overlay's Connect button is a target too, and reconnects.
        assertReachable(await geometry(page, 'o-connect'), 'o-connect', minSize, size.name);
        const again = gw.nextSession();
        await press('#o-connect');
        await again;
        await page.waitForFunction(() => document.body.classList.contains('live'), null, { timeout: 15000 });
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    });
  }

  test('a narrow window turns the bar compact and a wide one back, without a reload', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      await page.goto(`${gw.url}?resize=0`);
      await page.waitForFunction(() => document.body.classList.contains('live'), null, { timeout: 15000 });
      const compact = () => page.evaluate(() => document.body.classList.contains('compact'));
      assert.equal(await compact(), false);
      await page.setViewportSize({ width: 360, height: 640 });
      await page.waitForFunction(() => document.body.classList.contains('compact'));
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.waitForFunction(() => !document.body.classList.contains('compact'));
    } finally {
      await context.close();
    }
  });
});
