// Mouse and pen → Pointer messages (RFB button mask: bit 0 left, 1 middle, 2 right,
// 3/4 wheel up/down, 5/6 wheel left/right; 7 back, 8 forward, which the gateway sends with
// ExtendedMouseButtons). Touch has its own module (touch.js) and drives the same Pointer
// state through move/press/click/scroll.

const WHEEL_STEP = 50; // CSS pixels of smooth scrolling per wheel click
const LINE_HEIGHT = 19; // deltaMode 1 (lines) → pixels, so 3 lines ≈ one click
const MOVE_INTERVAL = 16; // ms; pointer moves are coalesced to about one per frame

export const BUTTON = {
  LEFT: 1, MIDDLE: 2, RIGHT: 4, UP: 8, DOWN: 16, WLEFT: 32, WRIGHT: 64, BACK: 128, FORWARD: 256,
};
// Mask bits held by buttons (the rest are wheel clicks, pressed and released at once).
const HELD = BUTTON.LEFT | BUTTON.MIDDLE | BUTTON.RIGHT | BUTTON.BACK | BUTTON.FORWARD;

/** PointerEvent.buttons (1 left, 2 right, 4 middle, 8 back, 16 forward) → mask bits. */
export function maskFromButtons(b) {
  return (b & 1) | ((b & 4) ? 2 : 0) | ((b & 2) ? 4 : 0) | ((b & 8) ? BUTTON.BACK : 0) |
    ((b & 16) ? BUTTON.FORWARD : 0);
}

export class Pointer {
  /** @param send (x, y, mask) → void */
  constructor(canvas, display, send) {
    this.canvas = canvas;
    this.display = display;
    this.send = send;
    this.enabled = true;
    this.x = 0;
    this.y = 0;
    this.mask = 0;
    this.lastSent = 0;
    this.timer = null;
    this.acc = { x: 0, y: 0 };
    this.onActivate = null; // called on any press (main focuses the keyboard target)

    const opts = { passive: false };
    canvas.addEventListener('pointerdown', (e) => this.button(e, true), opts);
    canvas.addEventListener('pointerup', (e) => this.button(e, false), opts);
    canvas.addEventListener('pointercancel', (e) => this.button(e, false), opts);
    canvas.addEventListener('pointermove', (e) => this.pointermove(e), opts);
    canvas.addEventListener('wheel', (e) => this.wheel(e), opts);
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
    // Back and forward go to the remote, not to the browser's history.
    for (const type of ['mousedown', 'mouseup', 'auxclick']) {
      canvas.addEventListener(type, (e) => { if (e.button === 3 || e.button === 4) e.preventDefault(); });
    }
  }

  button(e, down) {
    if (e.pointerType === 'touch') return;
    e.preventDefault();
    if (down && this.onActivate) this.onActivate(e);
    if (down) this.canvas.setPointerCapture(e.pointerId);
    else if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    if (!this.enabled) return;
    const p = this.display.toRemote(e.clientX, e.clientY);
    this.press(p.x, p.y, maskFromButtons(e.buttons) | (this.mask & ~HELD));
  }

  pointermove(e) {
    if (e.pointerType === 'touch' || !this.enabled) return;
    const p = this.display.toRemote(e.clientX, e.clientY);
    // Chrome reports chorded button changes as pointermove.
    const mask = maskFromButtons(e.buttons);
    if (mask !== (this.mask & HELD)) this.press(p.x, p.y, mask);
    else this.move(p.x, p.y);
  }

  /** Moves the pointer; sent at most once per MOVE_INTERVAL (the latest position wins). */
  move(x, y) {
    if (x === this.x && y === this.y) return;
    this.x = x;
    this.y = y;
    const wait = this.lastSent + MOVE_INTERVAL - performance.now();
    if (wait <= 0) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Sets the button mask at a position; sent at once (with any pending move). */
  press(x, y, mask) {
    this.x = x;
    this.y = y;
    this.mask = mask;
    this.flush();
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    this.lastSent = performance.now();
    if (this.enabled) this.send(this.x, this.y, this.mask);
  }

  /** Presses and releases `bit` (a button or a wheel direction) `n` times at x, y. */
  click(x, y, bit, n = 1) {
    for (let i = 0; i < n; i++) {
      this.press(x, y, this.mask | bit);
      this.press(x, y, this.mask & ~bit);
    }
  }

  /** Accumulates a scroll distance in CSS pixels and sends whole wheel clicks. */
  scroll(x, y, dx, dy) {
    const a = this.acc;
    a.x += dx;
    a.y += dy;
    const cy = Math.trunc(a.y / WHEEL_STEP), cx = Math.trunc(a.x / WHEEL_STEP);
    a.y -= cy * WHEEL_STEP;
    a.x -= cx * WHEEL_STEP;
    if (cy) this.click(x, y, cy < 0 ? BUTTON.UP : BUTTON.DOWN, Math.min(Math.abs(cy), 20));
    if (cx) this.click(x, y, cx < 0 ? BUTTON.WLEFT : BUTTON.WRIGHT, Math.min(Math.abs(cx), 20));
  }

  wheel(e) {
    e.preventDefault();
    if (!this.enabled) return;
    let unit = 1;
    if (e.deltaMode === 1) unit = LINE_HEIGHT;
    else if (e.deltaMode === 2) unit = this.canvas.clientHeight || 400;
    // A change of direction drops what was accumulated the other way.
    if (Math.sign(e.deltaY) * Math.sign(this.acc.y) < 0) this.acc.y = 0;
    if (Math.sign(e.deltaX) * Math.sign(this.acc.x) < 0) this.acc.x = 0;
    const p = this.display.toRemote(e.clientX, e.clientY);
    this.scroll(p.x, p.y, e.deltaX * unit, e.deltaY * unit);
  }

  /** Releases all buttons (focus lost, view-only switched on). */
  releaseAll() {
    if (this.mask) this.press(this.x, this.y, 0);
  }

  forget() {
    this.mask = 0;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
