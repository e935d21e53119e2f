// Translations of the viewer (web/js/i18n.js and its lang-XX.js tables).
//
// Without a browser: every key of the English table exists in every language, with the same
// {placeholders} and no empty string; every key the markup (data-i18n*) and the code (t('…'))
// use exists; the language choice (?lang=, navigator.languages, fallback); English text
// composed by main.js is recognised and rendered in the chosen language.
//
// In Chromium with `locale` set (mock-gateway.mjs's demo desktop): German, French, Spanish
// and Chinese pages show every string of their table — text, aria-label, title, the status
// line — and no English one is left; German through the password prompt and the reconnect
// countdown; ?lang= overrides the browser's language; an English page fetches no table and
// a German one stays under 100 KB. Screenshots: artifacts/viewer/i18n-*.png.
//
// Port 127.0.0.1:19140 + 1000·WSVNC_TEST_OFFSET.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ARTIFACTS, ROOT, startMockAndChromium, testOffset } from './harness.mjs';
import * as I18N from '../../web/js/i18n.js';

const PORT = 19140 + 1000 * testOffset();
const WEB = path.join(ROOT, 'web');
const LOCALES = { de: 'de-DE', fr: 'fr-FR', es: 'es-ES', zh: 'zh-CN' };

const tables = { en: I18N.EN };
for (const lang of Object.keys(LOCALES)) tables[lang] = (await import(`../../web/js/lang-${lang}.js`)).default;
const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('translation tables', () => {
  test('the languages are English, German, French, Spanish and Chinese', () => {
    assert.deepEqual(I18N.LANGUAGES, ['en', 'de', 'fr', 'es', 'zh']);
  });

  for (const lang of Object.keys(LOCALES)) {
    test(`${lang}: every key, no other, same placeholders, no empty string`, () => {
      const table = tables[lang];
      assert.deepEqual(Object.keys(table).sort(), Object.keys(I18N.EN).sort(), `${lang} keys`);
      for (const [key, en] of Object.entries(I18N.EN)) {
        assert.equal(typeof table[key], 'string', `${lang}.${key}`);
        assert.ok(table[key].trim().length > 0, `${lang}.${key} is empty`);
        assert.deepEqual(placeholders(table[key]), placeholders(en), `${lang}.${key} placeholders`);
      }
    });
  }

  test('every key the markup and the code use is in the table', () => {
    const html = fs.readFileSync(path.join(WEB, 'index.html'), 'utf8');
    const used = [...html.matchAll(/data-i18n(?:-label|-title)?="([^"]+)"/g)].map((m) => m[1]);
    for (const f of fs.readdirSync(path.join(WEB, 'js')).filter((n) => n.endsWith('.js'))) {
      const src = fs.readFileSync(path.join(WEB, 'js', f), 'utf8');
      used.push(...[...src.matchAll(/\bt\('([^']+)'/g)].map((m) => m[1]));
    }
    assert.ok(used.length > 60, `${used.length} uses found`);
    assert.deepEqual(used.filter((k) => !(k in I18N.EN)), []);
  });

  test('language choice: ?lang=, then navigator.languages by primary subtag, then English', () => {
    const pick = I18N.chooseLanguage;
    assert.equal(pick(['de-AT', 'en']), 'de');
    assert.equal(pick(['pt-BR', 'fr-CA']), 'fr');
    assert.equal(pick(['zh-TW']), 'zh');
    assert.equal(pick(['ja', 'ko']), 'en');
    assert.equal(pick([]), 'en');
    assert.equal(pick(['de-DE'], 'es'), 'es');
    assert.equal(pick(['de-DE'], 'ZH-cn'), 'zh');
    assert.equal(pick(['de-DE'], 'xx'), 'de', 'an unknown ?lang= falls back to the browser');
  });

  test('English text composed by main.js is shown in the chosen language', async () => {
    await I18N.setLanguage('de');
    try {
      const tr = I18N.translateText;
      assert.equal(tr('Connecting…'), 'Verbinde…');
      assert.equal(tr('Connected to “demo:1” (view only)'), 'Verbunden mit „demo:1“ (nur ansehen)');
      assert.equal(tr('Connected to “x (y)”'), 'Verbunden mit „x (y)“');
      assert.equal(tr('Reconnecting in 4 s — connection lost'), 'Neuer Versuch in 4 s — Verbindung verloren');
      assert.equal(tr('Failed: the gateway hit an internal error'), 'Fehlgeschlagen: interner Fehler im Gateway');
      // The gateway's own words stay as they are, inside a message or alone.
      assert.equal(tr('Failed: unknown token \'x\''), 'Fehlgeschlagen: unknown token \'x\'');
      assert.equal(tr('connecting to VNC server'), 'connecting to VNC server');
      assert.equal(I18N.t('attempt', { n: 3 }), 'Versuch 3');
    } finally {
      await I18N.setLanguage('en');
    }
    assert.equal(I18N.translateText('Connecting…'), 'Connecting…');
  });
});

describe('translated viewer in Chromium', { timeout: 180000 }, () => {
  let env = null;
  before(async () => { env = await startMockAndChromium(PORT); });
  after(async () => { if (env) await env.stop(); });

  /** fn(page) on a page in `locale` loaded with `query` (closed afterwards); it records requests,
   *  their bytes and page errors. */
  async function withPage(locale, query, fn) {
    const context = await env.browser.newContext({ locale, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.problems = [];
    page.requests = [];
    page.bytes = 0;
    page.on('pageerror', (e) => page.problems.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') page.problems.push(m.text()); });
    page.on('request', (r) => page.requests.push(new URL(r.url()).pathname));
    page.on('response', async (r) => { try { page.bytes += (await r.body()).length; } catch { /* no body */ } });
    try {
      await page.goto(`${env.gw.url}${query}`);
      return await fn(page);
    } finally {
      await context.close();
    }
  }

  const waitLive = (page) => page.waitForFunction(() => document.body.classList.contains('live'), null,
    { timeout: 15000 });

  /** Every text, aria-label and title on the page (hidden parts included). */
  const allStrings = (page) => page.evaluate(() => {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) if (n.data.trim()) out.push(n.data.trim());
    for (const el of document.querySelectorAll('[aria-label], [title]')) {
      if (el.getAttribute('aria-label')) out.push(el.getAttribute('aria-label'));
      if (el.title) out.push(el.title);
    }
    return out;
  });

  /** English strings that have a different translation must not be on the page. */
  async function assertNoEnglishLeft(page, lang) {
    const strings = await allStrings(page);
    const english = Object.entries(I18N.EN).filter(([k, en]) => en !== tables[lang][k]).map(([, en]) => en);
    assert.deepEqual(strings.filter((s) => english.includes(s)), [], `${lang}: untranslated strings`);
  }

  for (const [lang, locale] of Object.entries(LOCALES)) {
    test(`${locale}: every string from the ${lang} table, none left in English`, async () => {
      const table = tables[lang];
      await withPage(locale, '?resize=0', async (page) => {
        await waitLive(page);
        assert.equal(await page.evaluate(() => navigator.language), locale);
        assert.equal(await page.evaluate(() => document.documentElement.lang), lang === 'zh' ? 'zh-Hans' : lang);
        const marked = await page.evaluate(() => ({
          text: [...document.querySelectorAll('[data-i18n]')].filter((e) => e.id !== 'status' && e.id !== 'o-title')
            .map((e) => [e.dataset.i18n, e.textContent]),
          label: [...document.querySelectorAll('[data-i18n-label]')].map((e) => [e.dataset.i18nLabel, e.getAttribute('aria-label')]),
          title: [...document.querySelectorAll('[data-i18n-title]')].map((e) => [e.dataset.i18nTitle, e.title]),
        }));
        for (const kind of ['text', 'label', 'title']) {
          assert.ok(marked[kind].length > 0);
          for (const [key, shown] of marked[kind]) assert.equal(shown, table[key], `${lang} ${kind} ${key}`);
        }
        const status = await page.$eval('#status', (e) => e.textContent);
        assert.equal(status, table.connectedTo.replace('{name}', 'demo:1 (mock)'));
        await assertNoEnglishLeft(page, lang);
        assert.ok(page.requests.includes(`/js/lang-${lang}.js`), 'the table was fetched');
        assert.deepEqual(page.problems, []);
        // Phone size with the menu open: the longest labels of the language in one picture.
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForFunction(() => document.body.classList.contains('compact'));
        await page.evaluate(() => document.getElementById('b-pin').click()); // keep the bar shown
        await page.evaluate(() => document.getElementById('b-menu').click());
        await page.waitForFunction(() => document.body.classList.contains('menu-open'));
        await page.screenshot({ path: path.join(ARTIFACTS, `i18n-${lang}-menu.png`) });
      });
    });
  }

  test('de-DE: password and credentials prompts and reconnect countdown in German', async () => {
    const de = tables.de;
    await withPage('de-DE', '?token=password&resize=0', async (page) => {
      await page.waitForFunction(() => !document.getElementById('pw').hidden, null, { timeout: 15000 });
      assert.equal(await page.$eval('#o-title', (e) => e.textContent), de.passwordRequired);
      assert.equal(await page.$eval('#o-text', (e) => e.textContent), de.askPassword);
      assert.equal(await page.$eval('label[for=pw-input]', (e) => e.textContent), de.password);
      assert.equal(await page.$eval('#pw button', (e) => e.textContent), de.unlock);
      assert.equal(await page.isVisible('#pw-user'), false, 'no user name asked');
      await assertNoEnglishLeft(page, 'de');
    });
    await withPage('de-DE', '?token=credentials&resize=0', async (page) => {
      await page.waitForFunction(() => !document.getElementById('pw').hidden, null, { timeout: 15000 });
      assert.equal(await page.$eval('#o-title', (e) => e.textContent), de.credentialsRequired);
      assert.equal(await page.$eval('#o-text', (e) => e.textContent), de.askCredentials);
      assert.equal(await page.$eval('label[for=pw-user]', (e) => e.textContent), de.username);
      assert.ok(await page.isVisible('#pw-user'));
      await assertNoEnglishLeft(page, 'de');
      await page.fill('#pw-user', 'me');
      await page.fill('#pw-input', 'secret');
      await page.press('#pw-input', 'Enter');
      await waitLive(page);
    });
    await withPage('de-DE', '?token=drop&resize=0', async (page) => {
      await waitLive(page);
      // The mock drops the connection 3 s after the first frame: the countdown runs in German.
      const prefix = de.reconnectingIn.split('{s}')[0];
      await page.waitForFunction((p) => document.getElementById('status').textContent.startsWith(p), prefix,
        { timeout: 15000 });
      assert.equal(await page.$eval('#o-title', (e) => e.textContent), de.connectionLost);
      assert.equal(await page.$eval('#o-connect', (e) => e.textContent), de.reconnectNow);
      await assertNoEnglishLeft(page, 'de');
    });
  });

  test('?lang= overrides the browser language; unknown ones fall back to it', async () => {
    await withPage('de-DE', '?lang=fr&resize=0', async (page) => {
      await waitLive(page);
      assert.equal(await page.evaluate(() => document.documentElement.lang), 'fr');
      assert.equal(await page.getAttribute('#b-clip', 'aria-label'), tables.fr.clipboard);
    });
    await withPage('de-DE', '?lang=tlh&resize=0', async (page) => {
      await waitLive(page);
      assert.equal(await page.getAttribute('#b-clip', 'aria-label'), tables.de.clipboard);
    });
  });

  test('an English page fetches no table; a German one stays under 100 KB', async () => {
    await withPage('en-US', '?resize=0', async (page) => {
      await waitLive(page);
      await page.waitForLoadState('networkidle');
      assert.deepEqual(page.requests.filter((p) => /lang-/.test(p)), []);
      assert.equal(await page.getAttribute('#b-clip', 'aria-label'), 'Clipboard');
    });
    await withPage('de-DE', '?resize=0', async (page) => {
      await waitLive(page);
      await page.waitForLoadState('networkidle');
      assert.ok(page.bytes > 10000 && page.bytes < 100 * 1024, `German page: ${page.bytes} bytes`);
    });
  });
});
