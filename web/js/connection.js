// The WebSocket to the gateway, and reconnecting after drops. States: idle → connecting →
// open → (ServerHello: established()) …; a close goes to retrying (backoff 1, 2, 4 … 30 s,
// restarted after a ServerHello) → connecting, or to failed when it says the request itself
// is wrong (1002, 1003, 1007, 1008 e.g. a wrong password), this viewer found an error, or
// reconnecting is off. disconnect() → idle.

import { decode, clientHello, ProtocolError, SUBPROTOCOL } from './protocol.js';

const FATAL_CODES = new Set([1002, 1003, 1007, 1008]);
// Browsers may only send 1000 or 3000–4999; 4002 = "malformed message from the gateway".
export const CLOSE_PROTOCOL_ERROR = 4002;

export class Connection {
  /**
   * @param url () → string
   * @param h { onMessages(msgs, bytes, time), onState(state, info), formats: Promise of Accept bits }
   */
  constructor(url, h) {
    this.url = url;
    this.h = h;
    this.ws = null;
    this.state = 'idle';
    this.retry = true;
    this.attempt = 0;
    this.timer = null;
    this.failure = null; // reason set before the close (Error message, protocol error)
    this.fatal = false;
  }

  setState(state, info = {}) {
    this.state = state;
    this.h.onState(state, info);
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) this.drop(this.ws);
    this.failure = null;
    this.fatal = false;
    let ws;
    try {
      ws = new WebSocket(this.url(), SUBPROTOCOL);
    } catch (e) {
      this.setState('failed', { reason: `cannot open WebSocket: ${e.message}` });
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.setState('connecting', { attempt: this.attempt });
    ws.onopen = () => {
      Promise.resolve(this.h.formats || 0).then((formats) => {
        if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
        ws.send(clientHello(formats));
        this.setState('open');
      });
    };
    ws.onmessage = (e) => this.message(ws, e);
    ws.onclose = (e) => this.closed(ws, e);
    ws.onerror = () => {}; // the close event follows and says what happened
  }

  message(ws, e) {
    if (ws !== this.ws) return;
    const t = performance.now();
    let msgs;
    try {
      msgs = decode(e.data);
    } catch (err) {
      if (err instanceof ProtocolError) this.fail(`bad message from the gateway: ${err.message}`);
      else this.fail(`viewer error: ${err.message}`);
      return;
    }
    try {
      this.h.onMessages(msgs, e.data.byteLength, t);
    } catch (err) {
      const what = err instanceof ProtocolError ? 'bad message from the gateway' : 'viewer error';
      this.fail(`${what}: ${err.message}`);
    }
  }

  /** The session is up (ServerHello): reset the backoff. */
  established() { this.attempt = 0; }

  /** Remembers the gateway's Error text; the close that follows reports it. */
  error(text) { this.failure = text; }

  /** Closes because of something this viewer cannot go on with; no retry. */
  fail(reason) {
    const ws = this.ws;
    this.failure = reason;
    this.fatal = true;
    if (!ws) return;
    this.ws = null;
    this.drop(ws, CLOSE_PROTOCOL_ERROR, reason);
    this.h.onState('closed', {});
    this.setState('failed', { reason });
  }

  /** User asked to disconnect: no retry. */
  disconnect() {
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      this.drop(ws, 1000, 'disconnected by the user');
      this.h.onState('closed', {});
    }
    this.attempt = 0;
    this.setState('idle', { reason: 'disconnected' });
  }

  send(buf) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(buf);
  }

  drop(ws, code = 1000, reason = '') {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    // A close reason is at most 123 bytes (RFC 6455 §5.5.1).
    let r = reason;
    while (new TextEncoder().encode(r).length > 123) r = r.slice(0, -1);
    try { ws.close(code, r); } catch { /* already closing */ }
  }

  closed(ws, e) {
    if (ws !== this.ws) return;
    this.ws = null;
    const reason = this.failure || closeText(e);
    this.h.onState('closed', { code: e.code, reason });
    const fatal = this.fatal || FATAL_CODES.has(e.code);
    if (!this.retry || fatal) {
      this.setState('failed', { reason, code: e.code });
      return;
    }
    const delay = Math.min(30, 2 ** this.attempt);
    this.attempt++;
    const at = performance.now() + delay * 1000;
    this.setState('retrying', { reason, at, delay });
    this.timer = setTimeout(() => this.connect(), delay * 1000);
  }
}

function closeText(e) {
  if (e.reason) return e.reason;
  switch (e.code) {
    case 1000: return 'the gateway closed the connection';
    case 1001: return 'the gateway is going away';
    case 1006: return 'connection lost';
    case 1011: return 'the gateway hit an internal error';
    case 1013: return 'the gateway is busy, try again later';
    default: return `connection closed (code ${e.code})`;
  }
}
