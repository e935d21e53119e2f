// Clipboard both ways. Remote → local: shown in the clipboard panel and, where the browser
// permits (secure context, focused page), written to the system clipboard; failures are
// silent. Local → remote: the panel's Send button, and paste events (keyboard.js).
// Text goes as UTF-8; the gateway converts it to what the VNC server takes (Latin-1).

import { MAX_CLIPBOARD_BYTES, utf8Length } from './protocol.js';

export class Clipboard {
  /** @param send (text) → void */
  constructor(textarea, sendButton, send) {
    this.textarea = textarea;
    this.send = send;
    this.last = '';
    this.onRemote = null; // (text) → void: UI hint
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
    if (this.onRemote) this.onRemote(text);
    try {
      if (navigator.clipboard && document.hasFocus()) {
        navigator.clipboard.writeText(text).catch(() => {});
      }
    } catch { /* not permitted: the panel still has it */ }
  }

  /** Sends local text to the remote clipboard; returns false when it is too long. */
  sendLocal(text) {
    if (utf8Length(text) > MAX_CLIPBOARD_BYTES) return false;
    this.last = text;
    this.send(text);
    return true;
  }
}
