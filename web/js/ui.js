// Page chrome: status line, overlay card (connecting / failed / password), toolbar
// auto-hide, toggles, bell flash. Knows the DOM, not the protocol.

const $ = (id) => document.getElementById(id);

export class UI {
  constructor() {
    this.el = {
      status: $('status'), title: $('o-title'), text: $('o-text'), connect: $('o-connect'),
      pw: $('pw'), pwInput: $('pw-input'), bar: $('bar'), handle: $('handle'),
      clip: $('clip'), flash: $('flash'), conn: $('b-conn'), pin: $('b-pin'),
    };
    this.pinned = false;
    this.hideTimer = null;
    this.onPassword = null;
    this.el.pw.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = this.el.pwInput.value;
      this.el.pwInput.value = '';
      this.el.pw.hidden = true;
      if (this.onPassword) this.onPassword(v);
    });
    this.setupAutoHide();
  }

  /** body classes: connecting | live | failed (none of them = idle). */
  setPhase(phase) {
    const b = document.body.classList;
    for (const p of ['connecting', 'live', 'failed']) b.toggle(p, p === phase);
    if (phase === 'live') this.scheduleHide(2500);
    else this.showBar();
  }

  /** Status line in the toolbar, plus the overlay card's title and detail. */
  status(line, title = line, detail = '') {
    this.el.status.textContent = line;
    this.el.status.title = line;
    this.el.title.textContent = title;
    this.el.text.textContent = detail;
  }

  /** The overlay's button: label and whether it is shown. */
  connectButton(label) {
    this.el.connect.hidden = !label;
    if (label) this.el.connect.textContent = label;
  }

  /** Connection toolbar button: "disconnect" while a session is wanted, else "connect". */
  connButton(connected) {
    const label = connected ? 'Disconnect' : 'Connect';
    this.el.conn.setAttribute('aria-label', label);
    this.el.conn.title = label;
    this.el.conn.classList.toggle('off', !connected);
  }

  askPassword(prompt) {
    this.status('Password required', 'Password required', prompt);
    document.body.classList.remove('connecting');
    this.el.pw.hidden = false;
    this.el.pwInput.focus();
  }

  hidePassword() { this.el.pw.hidden = true; }

  bell() {
    const f = this.el.flash;
    f.classList.remove('on');
    void f.offsetWidth; // restart the animation
    f.classList.add('on');
  }

  pressed(id, on) { $(id).setAttribute('aria-pressed', on ? 'true' : 'false'); }

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
      if (this.pinned || !b.contains('live') || this.el.bar.contains(document.activeElement) ||
          this.el.bar.matches(':hover')) return;
      b.add('bar-hidden');
    }, ms);
  }
}
