// Keyboard input → Key messages.
//
// Keys are read on a hidden <textarea> that holds focus while the remote screen is in use
// (so IME, dead keys and phone keyboards work). Rules:
// * A keydown that maps to a keysym is sent and its default action prevented, so browser
//   shortcuts go to the remote where the browser allows it (fullscreen + Keyboard Lock
//   extends that to Esc, Ctrl+W, …).
// * Every key-up sends exactly the keysym its key-down sent: what was sent is remembered per
//   KeyboardEvent.code, so Shift released before "A" still releases "A", not "a".
// * Dead keys, IME and "Unidentified" keys (phone keyboards) are not sent as keys; the text
//   they produce arrives as input/compositionend and is sent as down+up per character.
// * Everything held is released when the page loses focus or is hidden.
// * Ctrl+V / Shift+Insert: the browser's paste event runs first so the clipboard reaches the
//   remote before the V does (see `onPaste` in main.js).

import { keysymForEvent, keysymsForText, isModifier, XK } from './keysyms.js';

export class Keyboard {
  /** @param send (keysym, down) → void */
  constructor(target, send) {
    this.target = target;
    this.send = send;
    this.enabled = true;
    this.held = new Map(); // code (or key) → keysym sent on keydown
    this.sticky = new Set(); // latched modifier keysyms from the toolbar
    this.onStickyChange = null;
    this.onPaste = null; // (text) → void, set by main
    this.pendingPaste = null; // { id, keysym, timer }
    this.hotkey = null; // (KeyboardEvent) → true when the viewer used the key itself
    this.composing = false;
    target.addEventListener('keydown', (e) => this.keydown(e));
    target.addEventListener('keyup', (e) => this.keyup(e));
    target.addEventListener('input', (e) => this.input(e));
    target.addEventListener('compositionstart', () => { this.composing = true; });
    target.addEventListener('compositionend', (e) => this.compositionEnd(e));
    target.addEventListener('paste', (e) => this.paste(e));
    target.addEventListener('blur', () => this.releaseAll());
    window.addEventListener('blur', () => this.releaseAll());
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
  }

  keydown(e) {
    if (this.hotkey && this.hotkey(e)) { e.preventDefault(); return; }
    if (!this.enabled) return;
    if (e.isComposing || e.keyCode === 229) return; // IME: text comes with compositionend
    const keysym = keysymForEvent(e);
    if (keysym === null) return; // dead key etc.: leave it to the textarea
    const id = e.code || e.key;
    // Windows sends a fake ControlLeft before AltGraph: take it back.
    if (keysym === XK.ISO_Level3_Shift && this.held.get('ControlLeft') === XK.Control_L) {
      this.held.delete('ControlLeft');
      this.send(XK.Control_L, false);
    }
    const pasteKey = ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === 'v' || e.key === 'V')) ||
      (e.shiftKey && e.key === 'Insert');
    if (pasteKey && this.onPaste && !e.repeat) {
      // Let the browser fire `paste`; the key follows it (or a short timeout).
      this.flushPaste();
      this.pendingPaste = { id, keysym, timer: setTimeout(() => this.flushPaste(), 150) };
      return;
    }
    e.preventDefault();
    // A key that repeats sends the keysym chosen at its first press.
    const ks = this.held.get(id) ?? keysym;
    this.held.set(id, ks);
    this.send(ks, true);
  }

  keyup(e) {
    if (!this.enabled) return;
    const id = e.code || e.key;
    if (this.pendingPaste && this.pendingPaste.id === id) this.flushPaste();
    const ks = this.held.get(id);
    if (ks === undefined) return;
    e.preventDefault();
    this.held.delete(id);
    this.send(ks, false);
    if (!isModifier(e)) this.releaseSticky();
  }

  flushPaste() {
    const p = this.pendingPaste;
    if (!p) return;
    clearTimeout(p.timer);
    this.pendingPaste = null;
    this.held.set(p.id, p.keysym);
    this.send(p.keysym, true);
  }

  paste(e) {
    e.preventDefault();
    const text = e.clipboardData ? e.clipboardData.getData('text/plain') : '';
    if (text && this.onPaste) this.onPaste(text);
    this.flushPaste();
  }

  input(e) {
    if (e.isComposing || this.composing) return;
    if (e.inputType === 'insertText' || e.inputType === 'insertReplacementText') {
      if (this.enabled && e.data) this.typeText(e.data);
    } else if (e.inputType === 'deleteContentBackward' && this.enabled) {
      this.tap(XK.BackSpace); // phone keyboards
    } else if (e.inputType === 'insertLineBreak' && this.enabled) {
      this.tap(XK.Return);
    }
    this.target.value = '';
  }

  compositionEnd(e) {
    this.composing = false;
    if (this.enabled && e.data) this.typeText(e.data);
    this.target.value = '';
  }

  /** Sends text as key presses (composed characters, IME results). */
  typeText(text) {
    for (const ks of keysymsForText(text)) this.tap(ks);
    this.releaseSticky();
  }

  tap(keysym) {
    this.send(keysym, true);
    this.send(keysym, false);
  }

  /** Presses the keysyms in order and releases them in reverse (Ctrl-Alt-Del etc.). */
  combo(keysyms) {
    if (!this.enabled) return;
    for (const ks of keysyms) this.send(ks, true);
    for (const ks of [...keysyms].reverse()) this.send(ks, false);
    this.releaseSticky();
  }

  /** Toolbar modifier toggle: latched until pressed again or the next non-modifier key. */
  toggleSticky(keysym) {
    if (!this.enabled) return;
    if (this.sticky.has(keysym)) {
      this.sticky.delete(keysym);
      this.send(keysym, false);
    } else {
      this.sticky.add(keysym);
      this.send(keysym, true);
    }
    if (this.onStickyChange) this.onStickyChange(this.sticky);
  }

  releaseSticky() {
    if (this.sticky.size === 0) return;
    for (const ks of this.sticky) this.send(ks, false);
    this.sticky.clear();
    if (this.onStickyChange) this.onStickyChange(this.sticky);
  }

  /** Releases every key the remote believes is down. */
  releaseAll() {
    if (this.pendingPaste) { clearTimeout(this.pendingPaste.timer); this.pendingPaste = null; }
    for (const ks of this.held.values()) this.send(ks, false);
    this.held.clear();
    this.releaseSticky();
  }

  /** Forgets held keys without sending (the connection they were sent on is gone). */
  forget() {
    this.held.clear();
    this.sticky.clear();
    if (this.onStickyChange) this.onStickyChange(this.sticky);
  }
}
