// Clipboard both ways. Remote → local: shown in the clipboard panel and, where the browser
// permits (secure context, focused page), written to the system clipboard; failures are
// silent. Local → remote: the panel's Send button, and paste events (keyboard.js).
// Text goes as UTF-8; the gateway passes it on as UTF-8 when the VNC server has the Extended
// Clipboard (ServerHello says so: `unicode`), else as Latin-1.

import { MAX_CLIPBOARD_BYTES, utf8Length } from './protocol.js';
import { t } from './i18n.js';

export class Clipboard {
  /** @param send (text) → true when it was sent (false: not connected, or view-only) */
  constructor(textarea, sendButton, note, send) {
    this.textarea = textarea;
    this.noteEl = note;
    this.send = send;
    this.last = '';
    this.unicode = false; // the VNC server takes Unicode text (set from ServerHello)
    sendButton.addEventListener('click', () => this.sendLocal(textarea.value));
    textarea.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.sendLocal(textarea.value);
      }
    });
  }

  /** Remote clipboard changed. */
  remote(text) {
    this.last = text;
    this.textarea.value = text;
    this.note(t('clip.copied'));
    try {
      if (navigator.clipboard && document.hasFocus()) {
        navigator.clipboard.writeText(text).catch(() => {});
      }
    } catch { /* not permitted: the panel still has it */ }
  }

  /** Sends local text to the remote clipboard; says in the panel what became of it. */
  sendLocal(text) {
    if (utf8Length(text) > MAX_CLIPBOARD_BYTES) {
      this.note(t('clip.tooBig'));
      return false;
    }
    if (!this.send(text)) {
      this.note(t('clip.notSent'));
      return false;
    }
    this.last = text;
    // Without the Extended Clipboard RFB carries Latin-1 only: the gateway sends "?" for the rest.
    this.note(t(!this.unicode && /[^\u0000-\u00ff]/u.test(text) ? 'clip.sentLossy' : 'clip.sent'));
    return true;
  }

  note(text) { this.noteEl.textContent = text; }
}
