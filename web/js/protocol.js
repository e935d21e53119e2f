// wsvnc browser protocol v3 (docs/protocol.md): decode server messages, encode
// browser messages. Pure functions, no DOM: also imported by Node unit tests.
// All integers little-endian; `str` = u32 byte length + UTF-8.

export const VERSION = 3;
export const SUBPROTOCOL = 'wsvnc.v3';

export const S = {
  SERVER_HELLO: 0x01, RESIZE: 0x02, FILL: 0x03, COPY: 0x04, PIXELS: 0x05,
  END_FRAME: 0x06, CURSOR: 0x07, BELL: 0x08, CLIPBOARD: 0x09,
  DESKTOP_NAME: 0x0a, PASSWORD_REQUIRED: 0x0b, STATUS: 0x0c, ERROR: 0x0d,
  PALETTE: 0x0e, JPEG: 0x0f, LED_STATE: 0x10, CREDENTIALS_REQUIRED: 0x11,
  END_PART: 0x12, IMAGE_BEGIN: 0x13, IMAGE_DATA: 0x14, PNG: 0x15, WEBP: 0x16,
};
export const C = {
  CLIENT_HELLO: 0x80, KEY: 0x81, POINTER: 0x82, CLIPBOARD: 0x83,
  FRAME_ACK: 0x84, RESIZE_REQUEST: 0x85, PASSWORD: 0x86, KEY_CODE: 0x87,
  POINTER_EXT: 0x88, CREDENTIALS: 0x89, RECEIVED: 0x8a, ACCEPT: 0x8b,
};
/** ImageBegin formats. */
export const IMAGE_FORMATS = ['image/jpeg', 'image/png', 'image/webp'];
/** Accept bits: image formats decoded beyond JPEG and PNG. */
export const ACCEPT_WEBP = 1;

/** A server message that does not parse. The connection is closed with `message`. */
export class ProtocolError extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8enc = new TextEncoder();

// Longest string the viewer accepts from the gateway (clipboard is the big one).
const MAX_STR = 16 << 20;

/** Reads fields from one WebSocket message; every read is bounds-checked. */
class Reader {
  constructor(buf) {
    this.buf = buf;
    this.dv = new DataView(buf);
    this.pos = 0;
  }
  need(n, what) {
    if (this.pos + n > this.buf.byteLength) {
      throw new ProtocolError(`truncated ${what} (need ${n} bytes at offset ${this.pos})`);
    }
  }
  u8(what) { this.need(1, what); return this.dv.getUint8(this.pos++); }
  u16(what) { this.need(2, what); const v = this.dv.getUint16(this.pos, true); this.pos += 2; return v; }
  u32(what) { this.need(4, what); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
  bytes(n, what) {
    this.need(n, what);
    const v = new Uint8ClampedArray(this.buf, this.pos, n);
    this.pos += n;
    return v;
  }
  str(what) {
    const n = this.u32(what);
    if (n > MAX_STR) throw new ProtocolError(`${what}: string of ${n} bytes is too long`);
    this.need(n, what);
    try {
      const s = utf8.decode(new Uint8Array(this.buf, this.pos, n));
      this.pos += n;
      return s;
    } catch {
      throw new ProtocolError(`${what}: string is not UTF-8`);
    }
  }
  rect(what) {
    return { x: this.u16(what), y: this.u16(what), w: this.u16(what), h: this.u16(what) };
  }
}

/**
 * Decodes every protocol message in one binary WebSocket message.
 * Returns an array of `{type, ...fields}`; throws ProtocolError on any malformed input.
 * Pixel data is a zero-copy Uint8ClampedArray view into `buf`.
 */
export function decode(buf) {
  if (!(buf instanceof ArrayBuffer)) throw new ProtocolError('text message (binary expected)');
  if (buf.byteLength === 0) throw new ProtocolError('empty message');
  const r = new Reader(buf);
  const out = [];
  while (r.pos < buf.byteLength) {
    const type = r.u8('type');
    switch (type) {
      case S.SERVER_HELLO: {
        const version = r.u8('ServerHello');
        if (version !== VERSION) throw new ProtocolError(`unsupported protocol version ${version}`);
        const width = r.u16('ServerHello'), height = r.u16('ServerHello');
        const flags = r.u8('ServerHello');
        out.push({ type, version, width, height, flags,
          viewOnly: (flags & 1) !== 0, resizeSupported: (flags & 2) !== 0,
          unicodeClipboard: (flags & 4) !== 0, name: r.str('ServerHello name') });
        break;
      }
      case S.RESIZE:
        out.push({ type, width: r.u16('Resize'), height: r.u16('Resize') });
        break;
      case S.FILL: {
        const m = r.rect('Fill');
        m.type = type;
        m.r = r.u8('Fill'); m.g = r.u8('Fill'); m.b = r.u8('Fill'); m.a = r.u8('Fill');
        out.push(m);
        break;
      }
      case S.COPY: {
        const m = r.rect('Copy');
        m.type = type;
        m.sx = r.u16('Copy'); m.sy = r.u16('Copy');
        out.push(m);
        break;
      }
      case S.PIXELS: { // RGB, 3 bytes per pixel
        const m = r.rect('Pixels');
        m.type = type;
        m.data = r.bytes(m.w * m.h * 3, 'Pixels data');
        out.push(m);
        break;
      }
      case S.PALETTE: { // n colours (RGB), then indices packed MSB first, rows byte-aligned
        const m = r.rect('Palette');
        m.type = type;
        m.n = r.u8('Palette') + 1;
        m.colours = r.bytes(m.n * 3, 'Palette colours');
        m.bits = m.n <= 2 ? 1 : m.n <= 4 ? 2 : m.n <= 16 ? 4 : 8;
        m.rowBytes = Math.ceil(m.w * m.bits / 8);
        m.data = r.bytes(m.rowBytes * m.h, 'Palette indices');
        out.push(m);
        break;
      }
      case S.JPEG: // baseline JFIF of exactly w×h
      case S.PNG: // 8-bit RGB PNG of exactly w×h (exact pixels)
      case S.WEBP: { // WebP lossless of exactly w×h (exact pixels; only after Accept)
        const what = { [S.JPEG]: 'Jpeg', [S.PNG]: 'Png', [S.WEBP]: 'Webp' }[type];
        const m = r.rect(what);
        m.type = type;
        m.mime = IMAGE_FORMATS[[S.JPEG, S.PNG, S.WEBP].indexOf(type)];
        m.data = r.bytes(r.u32(what), `${what} data`);
        out.push(m);
        break;
      }
      case S.IMAGE_BEGIN: { // an image whose bytes follow in ImageData messages
        const m = r.rect('ImageBegin');
        m.type = type;
        const format = r.u8('ImageBegin');
        m.mime = IMAGE_FORMATS[format];
        if (!m.mime) throw new ProtocolError(`ImageBegin format ${format}`);
        m.total = r.u32('ImageBegin');
        out.push(m);
        break;
      }
      case S.IMAGE_DATA:
        out.push({ type, data: r.bytes(r.u32('ImageData'), 'ImageData data') });
        break;
      case S.END_FRAME:
        out.push({ type, id: r.u32('EndFrame') });
        break;
      case S.END_PART: {
        const id = r.u32('EndPart');
        const last = r.u8('EndPart');
        if (last > 1) throw new ProtocolError(`EndPart flag ${last}`);
        out.push({ type, id, last: last === 1 });
        break;
      }
      case S.CURSOR: {
        const hx = r.u16('Cursor'), hy = r.u16('Cursor');
        const w = r.u16('Cursor'), h = r.u16('Cursor');
        out.push({ type, hx, hy, w, h, data: r.bytes(w * h * 4, 'Cursor data') });
        break;
      }
      case S.BELL:
      case S.PASSWORD_REQUIRED:
      case S.CREDENTIALS_REQUIRED:
        out.push({ type });
        break;
      case S.LED_STATE: { // bit 0 Scroll Lock, 1 Num Lock, 2 Caps Lock
        const leds = r.u8('LedState');
        if (leds > 7) throw new ProtocolError(`LedState: unknown bits in 0x${leds.toString(16)}`);
        out.push({ type, scroll: (leds & 1) !== 0, num: (leds & 2) !== 0, caps: (leds & 4) !== 0 });
        break;
      }
      case S.CLIPBOARD:
        out.push({ type, text: r.str('Clipboard') });
        break;
      case S.DESKTOP_NAME:
        out.push({ type, name: r.str('DesktopName') });
        break;
      case S.STATUS: {
        const level = r.u8('Status');
        out.push({ type, level, text: r.str('Status') });
        break;
      }
      case S.ERROR:
        out.push({ type, text: r.str('Error') });
        break;
      default:
        throw new ProtocolError(`unknown message type 0x${type.toString(16).padStart(2, '0')}`);
    }
  }
  return out;
}

// ---- browser → gateway

function msg(type, size) {
  const buf = new ArrayBuffer(1 + size);
  const dv = new DataView(buf);
  dv.setUint8(0, type);
  return dv;
}

function strMsg(type, text) {
  const bytes = utf8enc.encode(text);
  const dv = msg(type, 4 + bytes.length);
  dv.setUint32(1, bytes.length, true);
  new Uint8Array(dv.buffer, 5).set(bytes);
  return dv.buffer;
}

/** ClientHello, followed in the same message by Accept with `formats` (ACCEPT_* bits) unless 0. */
export function clientHello(formats = 0) {
  const dv = new DataView(new ArrayBuffer(formats ? 4 : 2));
  dv.setUint8(0, C.CLIENT_HELLO);
  dv.setUint8(1, VERSION);
  if (formats) {
    dv.setUint8(2, C.ACCEPT);
    dv.setUint8(3, formats);
  }
  return dv.buffer;
}

/** Key by keysym; with the physical key's KeyboardEvent.code (`isKeyCode`) a KeyCode message. */
export function key(down, keysym, code = '') {
  if (!code) {
    const dv = msg(C.KEY, 5);
    dv.setUint8(1, down ? 1 : 0);
    dv.setUint32(2, keysym >>> 0, true);
    return dv.buffer;
  }
  const dv = msg(C.KEY_CODE, 9 + code.length);
  dv.setUint8(1, down ? 1 : 0);
  dv.setUint32(2, keysym >>> 0, true);
  dv.setUint32(6, code.length, true);
  for (let i = 0; i < code.length; i++) dv.setUint8(10 + i, code.charCodeAt(i));
  return dv.buffer;
}

/** A KeyboardEvent.code the gateway takes: ASCII letters and digits, at most MAX_KEY_CODE. */
export const isKeyCode = (code) => typeof code === 'string' && /^[A-Za-z0-9]{1,32}$/.test(code);

/** Pointer: mask bits 0-6 as RFB (buttons, wheel), 7 back, 8 forward (then PointerExt). */
export function pointer(x, y, mask) {
  const ext = (mask & 0x180) !== 0;
  const dv = msg(ext ? C.POINTER_EXT : C.POINTER, ext ? 6 : 5);
  dv.setUint16(1, x, true);
  dv.setUint16(3, y, true);
  if (ext) dv.setUint16(5, mask, true);
  else dv.setUint8(5, mask);
  return dv.buffer;
}

export function clipboard(text) { return strMsg(C.CLIPBOARD, text); }
export function password(text) { return strMsg(C.PASSWORD, text); }

export function credentials(username, pw) {
  const u = utf8enc.encode(username), p = utf8enc.encode(pw);
  const dv = msg(C.CREDENTIALS, 8 + u.length + p.length);
  dv.setUint32(1, u.length, true);
  new Uint8Array(dv.buffer, 5, u.length).set(u);
  dv.setUint32(5 + u.length, p.length, true);
  new Uint8Array(dv.buffer, 9 + u.length).set(p);
  return dv.buffer;
}

export function frameAck(id) {
  const dv = msg(C.FRAME_ACK, 4);
  dv.setUint32(1, id >>> 0, true);
  return dv.buffer;
}

export function received(id) {
  const dv = msg(C.RECEIVED, 4);
  dv.setUint32(1, id >>> 0, true);
  return dv.buffer;
}

export function resizeRequest(width, height) {
  const dv = msg(C.RESIZE_REQUEST, 4);
  dv.setUint16(1, width, true);
  dv.setUint16(3, height, true);
  return dv.buffer;
}

/** Limits the gateway enforces (docs/protocol.md); checked before sending. */
export const MAX_CLIPBOARD_BYTES = 1 << 20;
export const MAX_PASSWORD_BYTES = 256; // and user name
export const MAX_RESIZE = 8192;
export function utf8Length(text) { return utf8enc.encode(text).length; }
