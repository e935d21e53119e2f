// Touch gestures → the shared Pointer:
//   tap = left click; long press (500 ms, still) = right click; one-finger drag = left drag;
//   two-finger drag = wheel scroll (content follows the fingers); two-finger tap = right click.
// The canvas has `touch-action: none`, and every touch event's default is prevented, so the
// browser neither scrolls, zooms nor synthesizes mouse events.

import { BUTTON } from './pointer.js';

const LONG_PRESS_MS = 500;
const SLOP = 10; // CSS px a finger may wander and still tap

export class Touch {
  constructor(canvas, display, pointer) {
    this.display = display;
    this.pointer = pointer;
    this.state = 'idle'; // idle | pending | drag | scroll | done
    this.start = null; // {x, y} client position of the first finger
    this.mid = null; // two-finger midpoint
    this.moved = false;
    this.timer = null;
    this.onActivate = null;
    const opts = { passive: false };
    canvas.addEventListener('touchstart', (e) => this.touchstart(e), opts);
    canvas.addEventListener('touchmove', (e) => this.touchmove(e), opts);
    canvas.addEventListener('touchend', (e) => this.touchend(e), opts);
    canvas.addEventListener('touchcancel', (e) => this.touchend(e), opts);
  }

  remote(t) { return this.display.toRemote(t.clientX, t.clientY); }

  touchstart(e) {
    e.preventDefault();
    if (this.onActivate) this.onActivate(e);
    const ts = e.touches;
    if (ts.length === 1) {
      this.state = 'pending';
      this.moved = false;
      this.start = { x: ts[0].clientX, y: ts[0].clientY };
      const p = this.remote(ts[0]);
      this.pointer.move(p.x, p.y);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.longPress(), LONG_PRESS_MS);
    } else if (ts.length === 2) {
      clearTimeout(this.timer);
      if (this.state === 'drag') this.pointer.press(this.pointer.x, this.pointer.y, 0);
      this.state = 'scroll';
      this.moved = false;
      this.mid = midpoint(ts);
    }
  }

  longPress() {
    if (this.state !== 'pending') return;
    this.state = 'done';
    const p = this.pointer;
    p.click(p.x, p.y, BUTTON.RIGHT);
  }

  touchmove(e) {
    e.preventDefault();
    const ts = e.touches;
    if (this.state === 'pending' && ts.length === 1) {
      const t = ts[0];
      if (Math.hypot(t.clientX - this.start.x, t.clientY - this.start.y) <= SLOP) return;
      clearTimeout(this.timer);
      this.state = 'drag';
      const p = this.display.toRemote(this.start.x, this.start.y);
      this.pointer.press(p.x, p.y, BUTTON.LEFT);
    }
    if (this.state === 'drag' && ts.length === 1) {
      const p = this.remote(ts[0]);
      this.pointer.move(p.x, p.y);
    } else if (this.state === 'scroll' && ts.length === 2) {
      const m = midpoint(ts);
      const dx = this.mid.x - m.x, dy = this.mid.y - m.y;
      if (!this.moved && Math.hypot(dx, dy) <= SLOP) return;
      this.moved = true;
      this.mid = m;
      const p = this.display.toRemote(m.x, m.y);
      this.pointer.scroll(p.x, p.y, dx, dy);
    }
  }

  touchend(e) {
    e.preventDefault();
    if (e.touches.length > 0) return; // wait for the last finger
    clearTimeout(this.timer);
    const p = this.pointer;
    if (this.state === 'pending') {
      p.click(p.x, p.y, BUTTON.LEFT);
    } else if (this.state === 'drag') {
      const t = e.changedTouches[0];
      const q = t ? this.remote(t) : p;
      p.press(q.x, q.y, 0);
    } else if (this.state === 'scroll' && !this.moved) {
      const q = this.display.toRemote(this.mid.x, this.mid.y);
      p.click(q.x, q.y, BUTTON.RIGHT);
    }
    this.state = 'idle';
  }
}

function midpoint(ts) {
  return { x: (ts[0].clientX + ts[1].clientX) / 2, y: (ts[0].clientY + ts[1].clientY) / 2 };
}
