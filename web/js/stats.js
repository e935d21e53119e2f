// Statistics overlay: frames drawn per second, bytes received per second, frame round trip
// (first message of a frame received → frame drawn) and draw time per frame, averaged over
// the last second.

export class Stats {
  constructor(el) {
    this.el = el;
    this.visible = false;
    this.bytes = 0;
    this.frames = 0;
    this.rtt = 0;
    this.draw = 0;
    this.total = 0;
    this.size = '';
    this.last = performance.now();
    this.timer = null;
  }

  received(n) { this.bytes += n; }

  /** One frame drawn: `first` = arrival of its first message, `t0`..`t1` = drawing. */
  frame(first, t0, t1) {
    this.frames++;
    this.total++;
    this.rtt += t1 - first;
    this.draw += t1 - t0;
  }

  show(on) {
    this.visible = on;
    this.el.hidden = !on;
    clearInterval(this.timer);
    this.timer = on ? setInterval(() => this.render(), 1000) : null;
    this.reset();
    if (on) this.render();
  }

  reset() {
    this.bytes = this.frames = this.rtt = this.draw = 0;
    this.last = performance.now();
  }

  render() {
    const dt = Math.max(1, performance.now() - this.last) / 1000;
    const f = this.frames;
    const rows = [
      ['frames/s', (f / dt).toFixed(1)],
      ['received', `${fmtBytes(this.bytes / dt)}/s`],
      ['round trip', f ? `${(this.rtt / f).toFixed(1)} ms` : '–'],
      ['draw', f ? `${(this.draw / f).toFixed(2)} ms` : '–'],
      ['frames', String(this.total)],
      ['desktop', this.size || '–'],
    ];
    this.el.textContent = rows.map(([k, v]) => `${k.padEnd(11)}${v}`).join('\n');
    this.reset();
  }
}

function fmtBytes(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}
