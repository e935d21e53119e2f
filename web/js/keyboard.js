// Keyboard input → Key / KeyCode messages (rules: docs/protocol.md "Keyboard").
//
// Keys are read on a hidden <textarea> that holds focus (IME, dead keys, phone keyboards).
// A key-up sends what its key-down sent; everything held is released on blur or hide.
// * Ctrl+V / Shift+Insert wait for the paste event, so the clipboard goes first (main.js).

import { keysymForEvent, keysymsForText, keysymForCodePoint, isModifier, XK } from './keysyms.js';
import { isKeyCode } from './protocol.js';

// Physical keys of the toolbar's keysyms, so they go by scancode too.
const CODE_OF = new Map([
  [XK.Control_L, 'ControlLeft'], [XK.Alt_L, 'AltLeft'], [XK.Super_L, 'MetaLeft'],
  [XK.Tab, 'Tab'], [XK.Escape, 'Escape'], [XK.Delete, 'Delete'],
]);

// Lock keys kept in step: [getModifierState name, code, keysym]; Apple's browsers do not
// report NumLock.
const APPLE = typeof navigator !== 'undefined' && /Mac|iPhone|iPad|iPod/.test(navigator.platform || '');
const LOCKS = [['CapsLock', 'CapsLock', XK.Caps_Lock], ...(APPLE ? [] : [['NumLock', 'NumLock', XK.Num_Lock]])];

export class Keyboard {
  /** @param send (keysym, down, code) → void; code '' when there is no physical key */
  constructor(target, send) {
    this.target = target;
    this.send = send;
    this.enabled = true;
    this.held = new Map(); // code (or key) → { keysym, code } sent on keydown
    this.sticky = new Set(); // latched modifier keysyms from the toolbar
    this.onStickyChange = null;
    this.onPaste = null; // (text) → void, set by main
    this.pendingPaste = null; // { id, keysym, code, timer }
    this.hotkey = null; // (KeyboardEvent) → true when the viewer used the key itself
    this.composing = false;
    this.dead = false; // a dead key went down: the composition it starts is ours
    this.completing = ''; // code of the key pressed while composing after a dead key
    this.remoteLocks = null; // { CapsLock, NumLock }: true/false as the server reported, null unknown
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
    const code = isKeyCode(e.code) ? e.code : '';
    if (e.isComposing || e.keyCode === 229) {
      // IME or a dead key's composition: the text comes with compositionend.
      if (this.dead && code) this.completing = code;
      return;
    }
    if (e.key === 'Dead' && code) {
      // Not prevented: the browser composes (see the rules above).
      this.syncLocks(e, code);
      this.dead = true;
      this.press(code, 0, code);
      return;
    }
    const keysym = keysymForEvent(e);
    if (keysym === null) return; // IME processing, unidentified: leave it to the textarea
    this.dead = false;
    const id = code || e.key;
    // Windows sends a fake ControlLeft before AltGraph: take it back.
    const ctrl = this.held.get('ControlLeft');
    if (keysym === XK.ISO_Level3_Shift && ctrl && ctrl.keysym === XK.Control_L) {
      this.held.delete('ControlLeft');
      this.send(XK.Control_L, false, ctrl.code);
    }
    const pasteKey = ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === 'v' || e.key === 'V')) ||
      (e.shiftKey && e.key === 'Insert');
    if (pasteKey && this.onPaste && !e.repeat) {
      // Let the browser fire `paste`; the key follows it (or a short timeout).
      this.flushPaste();
      this.pendingPaste = { id, keysym, code, timer: setTimeout(() => this.flushPaste(), 150) };
      return;
    }
    e.preventDefault();
    if (code) this.syncLocks(e, code);
    // A key that repeats sends the keysym chosen at its first press.
    const held = this.held.get(id);
    this.press(id, held ? held.keysym : keysym, code);
  }

  /** Sends a key down and remembers it under `id` for its key-up. */
  press(id, keysym, code) {
    this.held.set(id, { keysym, code });
    this.send(keysym, true, code);
  }

  keyup(e) {
    if (!this.enabled) return;
    const id = (isKeyCode(e.code) ? e.code : '') || e.key;
    if (this.pendingPaste && this.pendingPaste.id === id) this.flushPaste();
    const k = this.held.get(id);
    if (k === undefined) return;
    if (k.keysym !== 0) e.preventDefault(); // a dead key's key-up belongs to the composition
    this.held.delete(id);
    this.send(k.keysym, false, k.code);
    if (!isModifier(e) && k.keysym !== 0) this.releaseSticky();
  }

  /** Taps remote locks that differ from ours (not for the lock key itself: it toggles). */
  syncLocks(e, code) {
    const r = this.remoteLocks;
    if (!r || typeof e.getModifierState !== 'function') return;
    for (const [name, lockCode, keysym] of LOCKS) {
      if (code === lockCode) {
        r[name] = null; // toggled now: unknown until the server says
      } else if (r[name] != null && r[name] !== e.getModifierState(name)) {
        this.send(keysym, true, lockCode);
        this.send(keysym, false, lockCode);
        r[name] = null;
      }
    }
  }

  flushPaste() {
    const p = this.pendingPaste;
    if (!p) return;
    clearTimeout(p.timer);
    this.pendingPaste = null;
    this.press(p.id, p.keysym, p.code);
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
      if (this.enabled && e.data) this.composed(e.data);
    } else if (e.inputType === 'deleteContentBackward' && this.enabled) {
      this.tap(XK.BackSpace); // phone keyboards
    } else if (e.inputType === 'insertLineBreak' && this.enabled) {
      this.tap(XK.Return);
    }
    this.target.value = '';
  }

  compositionEnd(e) {
    this.composing = false;
    if (this.enabled && e.data) this.composed(e.data);
    this.target.value = '';
  }

  /** Browser text: after a dead key, one character goes with the completing key's code. */
  composed(text) {
    const code = this.completing;
    const after = this.dead;
    this.completing = '';
    this.dead = false;
    const cps = [...text];
    const keysym = cps.length === 1 ? keysymForCodePoint(cps[0].codePointAt(0)) : null;
    if (after && code && keysym !== null) {
      this.send(keysym, true, code);
      this.send(keysym, false, code);
      this.releaseSticky();
    } else {
      this.typeText(text);
    }
  }

  /** Sends text as key presses (composed characters, IME results). */
  typeText(text) {
    for (const ks of keysymsForText(text)) this.tap(ks);
    this.releaseSticky();
  }

  tap(keysym) {
    this.send(keysym, true, '');
    this.send(keysym, false, '');
  }

  /** Presses the keysyms in order and releases them in reverse (Ctrl-Alt-Del etc.). */
  combo(keysyms) {
    if (!this.enabled) return;
    for (const ks of keysyms) this.send(ks, true, CODE_OF.get(ks) || '');
    for (const ks of [...keysyms].reverse()) this.send(ks, false, CODE_OF.get(ks) || '');
    this.releaseSticky();
  }

  /** Toolbar modifier toggle: latched until pressed again or the next non-modifier key. */
  toggleSticky(keysym) {
    if (!this.enabled) return;
    const down = !this.sticky.has(keysym);
    if (down) this.sticky.add(keysym);
    else this.sticky.delete(keysym);
    this.send(keysym, down, CODE_OF.get(keysym) || '');
    if (this.onStickyChange) this.onStickyChange(this.sticky);
  }

  releaseSticky() {
    if (this.sticky.size === 0) return;
    for (const ks of this.sticky) this.send(ks, false, CODE_OF.get(ks) || '');
    this.sticky.clear();
    if (this.onStickyChange) this.onStickyChange(this.sticky);
  }

  /** Releases every key the remote believes is down. */
  releaseAll() {
    if (this.pendingPaste) { clearTimeout(this.pendingPaste.timer); this.pendingPaste = null; }
    for (const k of this.held.values()) this.send(k.keysym, false, k.code);
    this.held.clear();
    this.releaseSticky();
  }

  /** Forgets held keys without sending (the connection they were sent on is gone). */
  forget() {
    this.held.clear();
    this.sticky.clear();
    this.remoteLocks = null;
    this.dead = false;
    this.completing = '';
    if (this.onStickyChange) this.onStickyChange(this.sticky);
  }
}
