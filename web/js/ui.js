// Page chrome: status line, overlay card (connecting / failed / password), toolbar
// auto-hide, the compact toolbar with its menu for narrow windows, toggles, bell flash, and
// the page's language. Knows the DOM, not the protocol.
//
// Text: every string comes from i18n.js. main.js composes status lines in English; status(),
// askPassword() and connectButton() show them translated (i18n.translateText).

import { chooseLanguage, localize, setLanguage, t, translateText } from './i18n.js';

const $ = (id) => document.getElementById(id);

// The language is settled before main.js builds the page (top-level await: an English page
// fetches nothing; another language fetches its one table).
try {
  await setLanguage(chooseLanguage(navigator.languages, new URLSearchParams(location.search).get('lang')));
} catch {
  await setLanguage('en'); // its table could not be fetched: English rather than no page
}
localize();

export class UI {
  constructor() {
    this.el = {
      status: $('status'), title: $('o-title'), text: $('o-text'), connect: $('o-connect'),
      pw: $('pw'), pwInput: $('pw-input'), pwUser: $('pw-user'), bar: $('bar'), handle: $('handle'),
      clip: $('clip'), flash: $('flash'), conn: $('b-conn'), pin: $('b-pin'),
      menu: $('b-menu'), more: $('more'),
    };
    this.pinned = false;
    this.hideTimer = null;
    this.onPassword = null; // (password, userName or null when none was asked)
    this.el.pw.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = this.el.pwInput.value;
      const user = this.el.pw.classList.contains('with-user') ? this.el.pwUser.value : null;
      this.el.pwInput.value = '';
      this.el.pw.hidden = true;
      if (this.onPassword) this.onPassword(v, user);
    });
    this.setupAutoHide();
    this.setupMenu();
    this.fit();
    window.addEventListener('resize', () => this.fit());
    if (document.fonts) document.fonts.ready.then(() => this.fit());
  }

  /** body classes: connecting | live | failed (none of them = idle). */
  setPhase(phase) {
    const b = document.body.classList;
    for (const p of ['connecting', 'live', 'failed']) b.toggle(p, p === phase);
    this.fit();
    if (phase === 'live') this.scheduleHide(2500);
    else this.showBar();
  }

  /** Status line in the toolbar, plus the overlay card's title and detail. */
  status(line, title = line, detail = '') {
    const text = translateText(line);
    this.el.status.textContent = text;
    this.el.status.title = text;
    this.el.title.textContent = translateText(title);
    this.el.text.textContent = translateText(detail);
  }

  /** The overlay's button: label and whether it is shown. */
  connectButton(label) {
    this.el.connect.hidden = !label;
    if (label) this.el.connect.textContent = translateText(label);
  }

  /** Connection toolbar button: "disconnect" while a session is wanted, else "connect". */
  connButton(connected) {
    const label = t(connected ? 'disconnect' : 'connect');
    this.el.conn.setAttribute('aria-label', label);
    this.el.conn.title = label;
    this.el.conn.querySelector('.label').textContent = label;
    this.el.conn.classList.toggle('off', !connected);
  }

  /** The password prompt; with `user` (the name typed last, or '') a user name field too. */
  askPassword(prompt, user = null) {
    const title = t(user === null ? 'passwordRequired' : 'credentialsRequired');
    this.status(title, title, translateText(prompt));
    document.body.classList.remove('connecting');
    const withUser = user !== null;
    this.el.pw.classList.toggle('with-user', withUser);
    this.el.pwUser.required = withUser;
    this.el.pw.hidden = false;
    if (withUser) this.el.pwUser.value = user;
    (withUser && !user ? this.el.pwUser : this.el.pwInput).focus();
  }

  hidePassword() { this.el.pw.hidden = true; }

  bell() {
    const f = this.el.flash;
    f.classList.remove('on');
    void f.offsetWidth; // restart the animation
    f.classList.add('on');
  }

  pressed(id, on) { $(id).setAttribute('aria-pressed', on ? 'true' : 'false'); }

  // ---- compact toolbar: when every control does not fit in one row (phones, narrow
  // windows, long translations), the bar keeps the status, the on-screen keyboard and a
  // menu button; the other controls open below it as a menu (#more).
  fit() {
    const b = document.body.classList;
    const { bar } = this.el;
    b.remove('compact');
    const fits = bar.scrollWidth <= bar.clientWidth + 1 && bar.offsetWidth <= window.innerWidth;
    b.toggle('compact', !fits);
    if (fits) this.menuOpen(false);
  }

  menuOpen(open) {
    document.body.classList.toggle('menu-open', open);
    this.el.menu.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) this.showBar();
  }

  setupMenu() {
    const { menu, more, bar } = this.el;
    menu.addEventListener('click', () => this.menuOpen(!document.body.classList.contains('menu-open')));
    // A control in the menu did its job (main.js's handlers ran first): close the menu.
    more.addEventListener('click', (e) => {
      if (document.body.classList.contains('compact') && e.target.closest('button')) this.menuOpen(false);
    });
    document.addEventListener('pointerdown', (e) => {
      if (document.body.classList.contains('menu-open') && !bar.contains(e.target)) this.menuOpen(false);
    }, true);
    window.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && document.body.classList.contains('menu-open')) {
        this.menuOpen(false);
        menu.focus();
      }
    });
  }

  // ---- toolbar auto-hide: hides after a few seconds while live; comes back when the
  // pointer reaches the top edge, the handle is clicked/tapped, or a control has focus.
  setupAutoHide() {
    const { bar, handle, pin } = this.el;
    handle.addEventListener('click', () => { this.showBar(); this.scheduleHide(4000); });
    bar.addEventListener('pointerenter', () => this.showBar());
    bar.addEventListener('pointerleave', () => this.scheduleHide(1200));
    bar.addEventListener('focusin', () => this.showBar());
    bar.addEventListener('focusout', () => this.scheduleHide(2500));
    window.addEventListener('pointermove', (e) => {
      if (e.pointerType === 'mouse' && e.clientY <= 4 && !e.buttons) this.showBar();
    });
    // A click on a control leaves the keyboard focus where it is: taking it from the remote
    // keyboard input would release the keys it holds (a latched Ctrl, say) before the
    // control acts.
    bar.addEventListener('mousedown', (e) => {
      if (e.target.closest('button') && document.activeElement === $('kbd')) e.preventDefault();
    });
    pin.addEventListener('click', () => {
      this.pinned = !this.pinned;
      this.pressed('b-pin', this.pinned);
      if (this.pinned) this.showBar(); else this.scheduleHide(1500);
    });
  }

  showBar() {
    clearTimeout(this.hideTimer);
    document.body.classList.remove('bar-hidden');
  }

  scheduleHide(ms) {
    clearTimeout(this.hideTimer);
    this.hideTimer = setTimeout(() => {
      const b = document.body.classList;
      if (this.pinned || !b.contains('live') || b.contains('menu-open') ||
          this.el.bar.contains(document.activeElement) || this.el.bar.matches(':hover')) return;
      b.add('bar-hidden');
    }, ms);
  }
}
