// Clipboard both ways. Remote → local: shown in the clipboard panel and, where the browser
// permits (secure context, focused page), written to the system clipboard; failures are
// silent. Local → remote: the panel's Send button, and paste events (keyboard.js).
// Text goes as UTF-8; the gateway converts it to what the VNC server takes (Latin-1).

import { MAX_CLIPBOARD_BYTES, utf8Length } from './protocol.js';

export class Clipboard {
  /** @param send (text) → true when it was sent (false: not connected, or view-only) */
  constructor(textarea, sendButton, note, send) {
    this.textarea = textarea;
    this.noteEl = note;
    this.send = send;
    this.last = '';
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
    this.note('Copied on the remote desktop.');
    try {
      if (navigator.clipboard && document.hasFocus()) {
        navigator.clipboard.writeText(text).catch(() => {});
      }
    } catch { /* not permitted: the panel still has it */ }
  }

  /** Sends local text to the remote clipboard; says in the panel what became of it. */
  sendLocal(text) {
    if (utf8Length(text) > MAX_CLIPBOARD_BYTES) {
      this.note('Not sent: 1 MiB of text at most.');
      return false;
    }
    if (!this.send(text)) {
      this.note('Not sent: not connected, or view only.');
      return false;
    }
    this.last = text;
    // RFB carries Latin-1 only; the gateway turns anything else into "?".
    this.note(/[^\u0000-\u00ff]/u.test(text)
      ? 'Sent. Characters outside Latin-1 arrive as “?”.' : 'Sent to the remote desktop.');
    return true;
  }

  note(text) { this.noteEl.textContent = text; }
}
