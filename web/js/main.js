// Wires the modules together and runs one viewer session per connection:
// ClientHello → [PasswordRequired ↔ Password | CredentialsRequired ↔ Credentials] → ServerHello
// → frames (… EndFrame → FrameAck).

import * as P from './protocol.js';
import { S, ProtocolError } from './protocol.js';
import { load, store, socketUrl } from './settings.js';
import { Connection } from './connection.js';
import { Display, decodesWebp } from './display.js';
import { Keyboard } from './keyboard.js';
import { XK } from './keysyms.js';
import { Pointer } from './pointer.js';
import { Clipboard } from './clipboard.js';
import { Stats } from './stats.js';
import { UI } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);
const settings = load();
const ui = new UI();
const screen = $('screen'), canvas = $('canvas'), kbd = $('kbd');
const display = new Display(canvas, screen);
const stats = new Stats($('stats'));

// Per-connection state; null while not connected.
let session = null;
// The password (and user name, null when none was asked) typed last: remembered in memory for
// automatic reconnects; forgotten when rejected (the user name stays, to fill the prompt).
let login = null;
let lastUser = '';
let countdown = null;
let resizeTimer = null;
let rejected = null; // the gateway's reason when the password typed last was not accepted

// Accept WebP (lossless refinements, ~0.77× PNG's bytes) where it decodes.
const formats = decodesWebp().then((ok) => (ok ? P.ACCEPT_WEBP : 0));
const conn = new Connection(() => socketUrl(settings), { onMessages, onState, formats });
conn.retry = settings.reconnect;
const send = (buf) => conn.send(buf);

const canInput = () => !!(session && session.ready && !settings.view_only && !session.viewOnly);

const keyboard = new Keyboard(kbd, (keysym, down, code) => {
  if (canInput()) send(P.key(down, keysym, code));
});
const pointer = new Pointer(canvas, display, (x, y, mask) => {
  if (canInput()) send(P.pointer(x, y, mask));
});
const clipboard = new Clipboard($('clip-text'), $('clip-send'), $('clip-note'), (text) => {
  if (!canInput()) return false;
  send(P.clipboard(text));
  return true;
});
keyboard.onPaste = (text) => clipboard.sendLocal(text);
keyboard.hotkey = hotkey;
keyboard.onStickyChange = (held) => {
  ui.pressed('b-ctrl', held.has(XK.Control_L));
  ui.pressed('b-alt', held.has(XK.Alt_L));
};

const focusKeyboard = () => { if (!settings.view_only) kbd.focus({ preventScroll: true }); };
pointer.onActivate = focusKeyboard;
// Touch gestures only where there is a touchscreen (the module is not fetched otherwise).
if (navigator.maxTouchPoints > 0 || 'ontouchstart' in window) {
  import('./touch.js').then(({ Touch }) => {
    // A tap must not pop up the phone keyboard; the toolbar does that.
    new Touch(canvas, display, pointer).onActivate = () => {};
  });
}

// ---- messages from the gateway

function onMessages(msgs, bytes, t) {
  stats.received(bytes);
  for (const m of msgs) {
    switch (m.type) {
      case S.SERVER_HELLO: hello(m); break;
      case S.RESIZE: case S.FILL: case S.COPY: case S.PIXELS: case S.PALETTE: case S.JPEG: case S.PNG: case S.WEBP:
      case S.IMAGE_BEGIN: case S.IMAGE_DATA:
        if (!session.ready) throw new ProtocolError('drawing message before ServerHello');
        if (session.frameStart === null) session.frameStart = t;
        display.queue(m);
        break;
      case S.END_FRAME: case S.END_PART:
        if (!session.ready) throw new ProtocolError('end of a frame before ServerHello');
        if (m.type === S.END_PART && !m.last) display.endPart(); // held until the picture's last part
        else endFrame(m.id, t, m.type === S.END_PART);
        // Arrived: the gateway's pacing measures the network with this (docs/protocol.md, Pacing).
        send(P.received(m.id));
        break;
      case S.CURSOR: display.setCursor(m); break;
      case S.BELL: ui.bell(); break;
      case S.CLIPBOARD: clipboard.remote(m.text); break;
      case S.DESKTOP_NAME: session.name = m.name; showLive(); break;
      case S.PASSWORD_REQUIRED: loginRequired(false); break;
      case S.CREDENTIALS_REQUIRED: loginRequired(true); break;
      case S.LED_STATE: keyboard.remoteLocks = { CapsLock: m.caps, NumLock: m.num }; break;
      case S.STATUS:
        if (session.ready) ui.el.status.textContent = m.text;
        else ui.status(m.text, 'Connecting…', m.text);
        if (m.level > 0) ui.showBar();
        break;
      case S.ERROR:
        if (session.passwordSent && !session.ready) {
          login = null;
          rejected = m.text;
        }
        conn.error(m.text);
        ui.status(`Failed: ${m.text}`, 'Connection failed', m.text);
        break;
    }
  }
}

function hello(m) {
  if (session.ready) throw new ProtocolError('second ServerHello');
  session.ready = true;
  rejected = null;
  session.name = m.name;
  session.viewOnly = m.viewOnly;
  session.resizeSupported = m.resizeSupported;
  clipboard.unicode = m.unicodeClipboard;
  conn.established();
  ui.hidePassword();
  display.setSize(m.width, m.height);
  session.width = m.width;
  session.height = m.height;
  stats.size = `${m.width}×${m.height}`;
  applyInputState();
  showLive();
  if (matchMedia('(pointer: fine)').matches) focusKeyboard();
  requestResize();
}

function endFrame(id, t, picture) {
  const first = session.frameStart ?? t;
  session.frameStart = null;
  const s = session;
  s.frames.push(id);
  display.endFrame(picture).then((t0) => {
    if (t0 === null || s !== session) return; // the connection went away meanwhile
    const t1 = performance.now();
    painted(s, id);
    stats.frame(first, t0, t1);
    document.body.classList.remove('empty');
    stats.size = `${display.width}×${display.height}`;
    if (s.width !== display.width || s.height !== display.height) {
      s.width = display.width;
      s.height = display.height;
      s.lastRequest = null;
    }
  }, (err) => {
    if (s !== session) return;
    const what = err instanceof ProtocolError ? 'bad message from the gateway' : 'viewer error';
    conn.fail(`${what}: ${err.message}`);
  });
}

// Frames may be drawn out of order (Display.drawReady); FrameAck names the newest frame drawn
// with every earlier one.
function painted(s, id) {
  s.painted.add(id);
  let last = null;
  while (s.frames.length > 0 && s.painted.has(s.frames[0])) {
    last = s.frames.shift();
    s.painted.delete(last);
  }
  if (last !== null) queueAck(last);
}

// Frames are drawn once their EndFrame (and their images) arrived, and acknowledged on the next animation
// frame, when the browser is about to paint them: a page that is not being painted (hidden
// tab, busy main thread) holds the gateway at its in-flight budget (docs/protocol.md, Pacing)
// instead of being sent frames nobody sees. Acks belong to their connection's session.
function queueAck(id) {
  const s = session;
  if (s.acks.length === 0) {
    requestAnimationFrame(() => {
      if (s === session) for (const a of s.acks) send(P.frameAck(a));
      s.acks.length = 0;
    });
  }
  s.acks.push(id);
}

/** The gateway asks for the VNC password, or (`withUser`) for a user name and a password. */
function loginRequired(withUser) {
  session.withUser = withUser;
  if (login !== null && (login.user !== null) === withUser && !session.passwordSent) {
    sendLogin();
    return;
  }
  ui.setPhase('');
  let prompt;
  if (withUser) {
    prompt = rejected === null ? 'The VNC server asks for a user name and a password.'
      : `That user name or password was not accepted (${rejected}). Try again.`;
  } else {
    prompt = rejected === null ? 'The VNC server asks for a password.'
      : `That password was not accepted (${rejected}). Try again.`;
  }
  ui.askPassword(prompt, withUser ? lastUser : null);
  rejected = null;
}

function sendLogin() {
  session.passwordSent = true;
  send(login.user === null ? P.password(login.password) : P.credentials(login.user, login.password));
}

ui.onPassword = (pw, user) => {
  if (!session) return;
  if (P.utf8Length(pw) > P.MAX_PASSWORD_BYTES || (user !== null && P.utf8Length(user) > P.MAX_PASSWORD_BYTES)) {
    ui.askPassword(user === null ? 'That password is too long (256 bytes at most).'
      : 'That user name or password is too long (256 bytes at most).', user);
    return;
  }
  login = { password: pw, user };
  if (user !== null) lastUser = user;
  sendLogin();
  ui.setPhase('connecting');
  ui.status(user === null ? 'Checking password…' : 'Checking user name and password…');
};

function showLive() {
  const name = session.name || 'remote desktop';
  const ro = settings.view_only || session.viewOnly ? ' (view only)' : '';
  ui.setPhase('live');
  ui.status(`Connected to “${name}”${ro}`);
  document.title = `${name} — wsvnc`;
}

// ---- connection state

function onState(state, info) {
  clearInterval(countdown);
  countdown = null;
  switch (state) {
    case 'connecting':
      session = null;
      ui.setPhase('connecting');
      ui.connectButton(null);
      ui.hidePassword();
      ui.status('Connecting…', 'Connecting…', info.attempt ? `Attempt ${info.attempt + 1}` : '');
      ui.connButton(true);
      break;
    case 'open':
      session = { ready: false, name: '', viewOnly: false, resizeSupported: false,
        frameStart: null, passwordSent: false, lastRequest: null, acks: [], frames: [], painted: new Set(),
        width: 0, height: 0 };
      ui.status('Waiting for the desktop…');
      break;
    case 'closed':
      // Closed with 1008 after a password and before ServerHello: the password was rejected
      // (the gateway may or may not have sent an Error first).
      if (session && session.passwordSent && !session.ready && info.code === 1008) {
        login = null;
        if (rejected === null) rejected = info.reason;
      }
      session = null;
      keyboard.forget();
      pointer.forget();
      display.reset();
      ui.hidePassword();
      break;
    case 'retrying': {
      ui.setPhase('');
      ui.connectButton('Reconnect now');
      const tick = () => {
        const s = Math.max(1, Math.ceil((info.at - performance.now()) / 1000));
        ui.status(`Reconnecting in ${s} s — ${info.reason}`, 'Connection lost',
          `${info.reason}. Reconnecting in ${s} s…`);
      };
      tick();
      countdown = setInterval(tick, 250);
      break;
    }
    case 'failed':
      // A rejected password: ask again on a new connection at once (each try needs the
      // user, so this cannot hammer the server into its lockout).
      if (rejected !== null) { conn.connect(); break; }
      ui.setPhase('failed');
      ui.connectButton('Reconnect');
      ui.status(`Failed: ${info.reason}`, 'Connection failed', info.reason);
      ui.connButton(false);
      break;
    case 'idle':
      ui.setPhase('');
      ui.connectButton('Connect');
      ui.status('Disconnected', 'Disconnected', '');
      ui.connButton(false);
      break;
  }
}

// ---- remote resize

function requestResize() {
  if (!session || !session.ready || !session.resizeSupported || !settings.resize || !canInput()) return;
  const clamp = (v) => Math.max(1, Math.min(P.MAX_RESIZE, Math.floor(v)));
  const w = clamp(screen.clientWidth), h = clamp(screen.clientHeight);
  if (w === display.width && h === display.height) return;
  const key = `${w}x${h}`;
  if (session.lastRequest === key) return;
  session.lastRequest = key;
  send(P.resizeRequest(w, h));
}

window.addEventListener('resize', () => {
  display.layout();
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(requestResize, 400);
});

// ---- toolbar

function applyInputState() {
  const ro = settings.view_only || (session && session.viewOnly);
  if (ro) { keyboard.releaseAll(); pointer.releaseAll(); }
  keyboard.enabled = pointer.enabled = !ro;
  document.body.classList.toggle('view-only', !!ro);
  ui.pressed('b-view', ro);
  $('b-view').disabled = !!(session && session.viewOnly);
}

function setScale(mode) {
  settings.scale = mode;
  display.setMode(mode);
  ui.pressed('b-scale', mode === 'native');
  $('b-scale').setAttribute('aria-label', t(mode === 'fit' ? 'scale.fit' : 'scale.native'));
}

function toggleStats(on = !stats.visible) {
  settings.stats = on;
  stats.show(on);
  ui.pressed('b-stats', on);
}

function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (document.documentElement.requestFullscreen) {
    document.documentElement.requestFullscreen()
      .then(() => navigator.keyboard && navigator.keyboard.lock && navigator.keyboard.lock())
      .catch(() => {});
  }
}

/** Viewer shortcuts (Ctrl+Alt+Shift+…): used here, never sent to the remote. */
function hotkey(e) {
  if (!(e.ctrlKey && e.altKey && e.shiftKey) || e.type !== 'keydown') return false;
  if (e.code === 'KeyS') toggleStats();
  else if (e.code === 'KeyF') toggleFullscreen();
  else if (e.code === 'KeyM') { ui.showBar(); $('b-clip').focus(); }
  else return false;
  return true;
}
window.addEventListener('keydown', (e) => { if (e.target !== kbd && hotkey(e)) e.preventDefault(); });

/** Binds a toolbar button; mouse clicks give the keyboard focus back to the remote. */
function bind(id, fn) {
  $(id).addEventListener('click', (e) => {
    fn(e);
    if (e.detail > 0 && matchMedia('(pointer: fine)').matches && $('clip').hidden) focusKeyboard();
  });
}

bind('b-ctrl', () => keyboard.toggleSticky(XK.Control_L));
bind('b-alt', () => keyboard.toggleSticky(XK.Alt_L));
bind('b-win', () => keyboard.combo([XK.Super_L]));
bind('b-tab', () => keyboard.combo([XK.Tab]));
bind('b-esc', () => keyboard.combo([XK.Escape]));
bind('b-cad', () => keyboard.combo([XK.Control_L, XK.Alt_L, XK.Delete]));
$('b-kbd').addEventListener('click', () => kbd.focus());
bind('b-scale', () => { setScale(settings.scale === 'fit' ? 'native' : 'fit'); store(settings, 'scale'); });
bind('b-view', () => {
  settings.view_only = !settings.view_only;
  applyInputState();
  store(settings, 'view_only');
  if (session && session.ready) showLive();
});
bind('b-stats', () => { toggleStats(); store(settings, 'stats'); });
bind('b-full', toggleFullscreen);
bind('b-conn', () => {
  if (conn.state === 'idle' || conn.state === 'failed') conn.connect();
  else conn.disconnect();
});
$('b-clip').addEventListener('click', () => {
  const panel = $('clip');
  panel.hidden = !panel.hidden;
  ui.pressed('b-clip', !panel.hidden);
  if (!panel.hidden) $('clip-text').focus();
});
$('clip-close').addEventListener('click', () => {
  $('clip').hidden = true;
  ui.pressed('b-clip', false);
  focusKeyboard();
});
$('o-connect').addEventListener('click', () => { conn.attempt = 0; conn.connect(); });
document.addEventListener('fullscreenchange', () => {
  ui.pressed('b-full', !!document.fullscreenElement);
  display.layout();
});

// ---- start

document.body.classList.add('empty');
setScale(settings.scale);
applyInputState();
if (settings.stats) toggleStats(true);
if (settings.autoconnect) conn.connect();
else onState('idle', {});

// For tests and debugging: read-only handles, no effect on the page.
window.wsvnc = { settings, display, conn, stats, keyboard, clipboard };
