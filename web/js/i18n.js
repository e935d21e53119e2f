// Every string the viewer shows, in one table per language: English here, the others in
// lang-XX.js (loaded only when chosen, so an English page fetches none of them). Same keys
// in every table (tests/viewer/i18n.test.mjs checks keys and {placeholders}).
//
// The language: `?lang=xx` if we have it, else the first of navigator.languages we have
// (by primary subtag: de-AT → de, zh-TW → zh, Simplified), else English.
//
// Markup names its strings: data-i18n (text), data-i18n-label (aria-label), data-i18n-title
// (title). Code calls t(key, params). Text that main.js composes in English (status lines,
// prompts) is translated where ui.js shows it: translateText() finds the English message it
// was made from ({name} placeholders match any text) and renders the same key in the chosen
// language; text that is no message of ours (the gateway's own words) stays as it is.

export const LANGUAGES = ['en', 'de', 'fr', 'es', 'zh'];

export const EN = {
  // page and toolbar
  screen: 'Remote desktop',
  canvas: 'Remote screen',
  kbdInput: 'Keyboard input for the remote desktop',
  toolbar: 'Viewer controls',
  starting: 'Starting…',
  keys: 'Special keys',
  ctrl: 'Ctrl',
  'ctrl.hold': 'Hold Ctrl',
  alt: 'Alt',
  'alt.hold': 'Hold Alt',
  win: 'Win',
  'win.send': 'Send Windows / Super key',
  tab: 'Tab',
  'tab.send': 'Send Tab',
  esc: 'Esc',
  'esc.send': 'Send Escape',
  cad: 'Ctrl+Alt+Del',
  'cad.send': 'Send Ctrl+Alt+Delete',
  osk: 'On-screen keyboard',
  'osk.show': 'Show on-screen keyboard',
  more: 'More controls',
  clipboard: 'Clipboard',
  'scale.title': 'Fit to window / 1:1',
  'scale.fit': 'Scale: fit to window (press for 1:1)',
  'scale.native': 'Scale: 1:1 (press to fit to window)',
  viewOnly: 'View only',
  'viewOnly.title': 'View only (no input)',
  stats: 'Statistics',
  'stats.title': 'Statistics (Ctrl+Alt+Shift+S)',
  full: 'Full screen',
  'full.title': 'Full screen (Ctrl+Alt+Shift+F)',
  disconnect: 'Disconnect',
  connect: 'Connect',
  pin: 'Keep toolbar open',
  showBar: 'Show toolbar',
  // overlay card
  password: 'Password',
  unlock: 'Unlock',
  reconnect: 'Reconnect',
  reconnectNow: 'Reconnect now',
  connecting: 'Connecting…',
  attempt: 'Attempt {n}',
  waiting: 'Waiting for the desktop…',
  failed: 'Failed: {reason}',
  connectionFailed: 'Connection failed',
  passwordRequired: 'Password required',
  askPassword: 'The VNC server asks for a password.',
  passwordRejected: 'That password was not accepted ({reason}). Try again.',
  passwordTooLong: 'That password is too long (256 bytes at most).',
  checkingPassword: 'Checking password…',
  username: 'User name',
  credentialsRequired: 'User name and password required',
  askCredentials: 'The VNC server asks for a user name and a password.',
  credentialsRejected: 'That user name or password was not accepted ({reason}). Try again.',
  credentialsTooLong: 'That user name or password is too long (256 bytes at most).',
  checkingCredentials: 'Checking user name and password…',
  connectedTo: 'Connected to “{name}”',
  connectedToViewOnly: 'Connected to “{name}” (view only)',
  reconnectingIn: 'Reconnecting in {s} s — {reason}',
  connectionLost: 'Connection lost',
  reconnectingDetail: '{reason}. Reconnecting in {s} s…',
  disconnected: 'Disconnected',
  // why a connection ended (connection.js)
  'why.closed': 'the gateway closed the connection',
  'why.goingAway': 'the gateway is going away',
  'why.lost': 'connection lost',
  'why.internal': 'the gateway hit an internal error',
  // clipboard panel
  'clip.close': 'Close clipboard',
  'clip.text': 'Clipboard text',
  'clip.hint': 'Remote copies appear here.',
  'clip.send': 'Send',
  'clip.sendLabel': 'Send text to the remote clipboard',
  'clip.copied': 'Copied on the remote desktop.',
  'clip.tooBig': 'Not sent: 1 MiB of text at most.',
  'clip.notSent': 'Not sent: not connected, or view only.',
  'clip.sentLossy': 'Sent. Characters outside Latin-1 arrive as “?”.',
  'clip.sent': 'Sent to the remote desktop.',
};

let table = EN;
let current = 'en';

/** The language to use: `override` (?lang=) when we have it, else the first we have of `preferred`. */
export function chooseLanguage(preferred = [], override = null) {
  for (const tag of [override, ...preferred]) {
    const primary = String(tag || '').toLowerCase().split(/[-_]/)[0];
    if (LANGUAGES.includes(primary)) return primary;
  }
  return 'en';
}

/** Loads the table of `lang` (English needs no fetch). */
export async function setLanguage(lang) {
  table = lang === 'en' ? EN : (await import(`./lang-${lang}.js`)).default;
  current = lang;
}

export const language = () => current;

/** `key` in the chosen language (English when a table lacks it), {placeholders} filled in. */
export function t(key, params = {}) {
  const s = table[key] ?? EN[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

// English messages as patterns, longest first, so "…” (view only)" wins over "…”".
let patterns = null;
function englishPatterns() {
  if (!patterns) {
    const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    patterns = Object.entries(EN).sort((a, b) => b[1].length - a[1].length).map(([key, en]) => {
      const names = [...en.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const re = new RegExp(`^${esc(en).replace(/\\\{\w+\\\}/g, '(.*)')}$`, 's');
      return { key, names, re };
    });
  }
  return patterns;
}

/**
 * English text composed from one of our messages → the same message in the chosen language
 * (placeholder values that are messages themselves are translated too); other text as is.
 */
export function translateText(text, depth = 0) {
  if (current === 'en' || !text) return text;
  for (const { key, names, re } of englishPatterns()) {
    const m = re.exec(text);
    if (!m) continue;
    const params = {};
    names.forEach((n, i) => { params[n] = depth ? m[i + 1] : translateText(m[i + 1], depth + 1); });
    return t(key, params);
  }
  return text;
}

/** Fills data-i18n / data-i18n-label / data-i18n-title under `root`, and the page language. */
export function localize(root = document) {
  if (root === document) document.documentElement.lang = current === 'zh' ? 'zh-Hans' : current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}
